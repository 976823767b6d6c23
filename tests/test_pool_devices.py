"""Several GPUs in one pool, on fake devices: placement, per-device budgets and eviction, replicas of a busy model.

The pool's memory accounting is the seam: models here are stand-ins whose size and device the fake
`memory` functions report, so the policy runs exactly as on GPUs, without one.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import anyio
import pytest

from pixelmcp.catalog import ModelSpec
from pixelmcp.engine import devices, memory
from pixelmcp.engine.pool import ModelPool
from pixelmcp.errors import ModelLoadError

pytestmark = pytest.mark.anyio

GB = 2**30
SIZES = {"a": 6 * GB, "b": 6 * GB, "c": 6 * GB, "small": 1 * GB}
FOLDERS: dict[str, str] = {}


@dataclass(eq=False)
class Stand:
    """A loaded model's stand-in: its size, and where it is."""

    size: int
    device: str


@pytest.fixture
def fake_gpus(monkeypatch, make_settings, tmp_path):
    """A pool over two 10 GB fake GPUs (budgets: all of each); the models' sources are empty local folders."""
    for name in SIZES:
        (tmp_path / name).mkdir()
        FOLDERS[name] = str(tmp_path / name)
    monkeypatch.setattr(devices, "pick_device", lambda name: name)
    monkeypatch.setattr(memory, "bytes_by_device", lambda value, counted=None: {value.device: value.size})
    monkeypatch.setattr(memory, "move", lambda value, device: setattr(value, "device", device))
    monkeypatch.setattr(memory, "release", lambda device: None)
    monkeypatch.setattr(memory, "device_capacity", lambda device: 10 * GB)
    monkeypatch.setattr(memory, "device_available", lambda device: 10 * GB)
    monkeypatch.setattr(memory, "estimate_bytes", lambda source, *args, **kwargs: SIZES[Path(source).name])

    def make(**overrides) -> ModelPool:
        values = dict(devices="cuda:0,cuda:1", dtype="float32", working_reserve_mb=0, cpu_tier=False)
        return ModelPool(make_settings(**{**values, **overrides}))

    return make


def spec(name: str) -> ModelSpec:
    return ModelSpec(alias=name, kind="sd15", source=FOLDERS[name])


def loader(source: str, device: str, dtype) -> Stand:
    return Stand(SIZES[Path(source).name], device)


async def use(pool: ModelPool, *names: str, hold: threading.Event | None = None,
              started: threading.Event | None = None) -> str:
    """A job that leases `names` (loading them where the pool placed it); returns its device."""
    specs = [spec(name) for name in names]

    def work(job) -> str:
        for entry in specs:
            pool.get(entry, loader, job)
        if started is not None:
            started.set()
        if hold is not None:
            assert hold.wait(30), "the job was never released"
        return job.device

    device, _ = await pool.run(work, None, specs)
    return device


def resident(pool: ModelPool) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {device: set() for device in pool.devices}
    for model in pool.loaded():
        if model.tier == "device":
            found[model.device].add(model.spec.alias)
    return found


async def test_a_model_goes_where_there_is_room_and_its_jobs_follow_it(fake_gpus):
    pool = fake_gpus()
    assert await use(pool, "a") == "cuda:0"
    assert await use(pool, "b") == "cuda:1"  # more free memory there
    assert await use(pool, "a") == "cuda:0" and await use(pool, "b") == "cuda:1"  # where they are loaded
    assert resident(pool) == {"cuda:0": {"a"}, "cuda:1": {"b"}}
    assert pool.stats.loads == 2 and pool.stats.hits == 2
    snapshot = pool.snapshot()
    assert [d["device"] for d in snapshot["devices"]] == ["cuda:0", "cuda:1"]
    assert [d["used_bytes"] for d in snapshot["devices"]] == [6 * GB, 6 * GB]
    assert snapshot["budget_bytes"] == 20 * GB and snapshot["used_bytes"] == 12 * GB


async def test_each_device_evicts_only_its_own_models_least_recently_used_first(fake_gpus):
    pool = fake_gpus()
    await use(pool, "a")
    await use(pool, "b")
    await use(pool, "small")  # fits beside a on cuda:0 (4 GB free on each: the first wins the tie)
    assert resident(pool) == {"cuda:0": {"a", "small"}, "cuda:1": {"b"}}
    assert await use(pool, "c") == "cuda:1"  # more free there (4 GB against 3): b makes way, a stays
    assert resident(pool) == {"cuda:0": {"a", "small"}, "cuda:1": {"c"}}
    assert pool.stats.evictions == 1


async def second_while_first_runs(pool: ModelPool, name: str) -> tuple[dict[str, str], dict[str, str],
                                                                        dict[str, int]]:
    """A job for `name` that holds its device, and a second one started meanwhile. Returns where each ran, which of
    them had finished while the first still held its device (waiting up to a second for the second), and the jobs
    running or waiting on each device then."""
    first_running, release = threading.Event(), threading.Event()
    placed: dict[str, str] = {}

    async def first() -> None:
        placed["first"] = await use(pool, name, hold=release, started=first_running)

    async def second() -> None:
        placed["second"] = await use(pool, name)

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(first)
        await anyio.to_thread.run_sync(first_running.wait, 30)
        tasks.start_soon(second)
        with anyio.move_on_after(1.0):
            while "second" not in placed:
                await anyio.sleep(0.02)
        finished, loads = dict(placed), {device: pool.queue.load(device) for device in pool.devices}
        release.set()
    return placed, finished, loads


async def test_a_busy_models_second_request_runs_at_once_on_a_copy_when_replicas_are_allowed(fake_gpus):
    pool = fake_gpus(model_replicas=2)
    placed, finished, _ = await second_while_first_runs(pool, "a")
    assert placed == {"first": "cuda:0", "second": "cuda:1"}
    assert finished == {"second": "cuda:1"}  # it ran while the first still held cuda:0
    assert resident(pool) == {"cuda:0": {"a"}, "cuda:1": {"a"}}
    assert await use(pool, "a") == "cuda:0"  # idle again: no third copy, the first holder serves


async def test_without_replicas_the_second_request_waits_for_the_device_that_holds_the_model(fake_gpus):
    pool = fake_gpus()
    placed, finished, loads = await second_while_first_runs(pool, "a")
    assert finished == {} and loads == {"cuda:0": 2, "cuda:1": 0}  # queued behind the first
    assert placed == {"first": "cuda:0", "second": "cuda:0"}
    assert resident(pool) == {"cuda:0": {"a"}, "cuda:1": set()}


async def test_a_copy_is_made_only_where_it_fits_without_evicting(fake_gpus):
    pool = fake_gpus(model_replicas=2)
    await use(pool, "b")  # cuda:0 holds b: no room left there for a copy of a
    assert await use(pool, "a") == "cuda:1"
    placed, _, _ = await second_while_first_runs(pool, "a")
    assert placed == {"first": "cuda:1", "second": "cuda:1"} and resident(pool)["cuda:0"] == {"b"}


def test_the_devices_setting_is_checked(monkeypatch):
    monkeypatch.setattr(devices, "pick_device", lambda name: name)
    assert devices.pick_devices("auto", "cuda:0, cuda:1") == ["cuda:0", "cuda:1"]
    assert devices.pick_devices("auto", "cuda,cuda:1") == ["cuda:0", "cuda:1"]
    with pytest.raises(ModelLoadError, match="names a device twice"):
        devices.pick_devices("auto", "cuda:0,cuda:0")
    monkeypatch.undo()
    assert devices.pick_devices("cpu", None) == ["cpu"]
