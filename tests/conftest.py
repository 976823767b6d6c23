"""Shared fixtures: the tiny profile, built once per session, and servers over it.

Tests drive the server the way clients do, through `mcp.Client` (in memory here; stdio and
HTTP subprocesses in test_e2e.py).
"""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"  # a hub id must fail at once, never try the network
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
if "PYTEST_XDIST_WORKER_COUNT" in os.environ:  # (before torch starts its thread pool)
    # The cores shared out between the workers: torch's default of one thread per core in every worker makes the
    # OpenMP pools of two workers fight over the same cores, which slows both many times over.
    _share = (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"])
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, _share)))

import threading
from pathlib import Path

import pytest

from pixelmcp.config import Settings, load_settings
from pixelmcp.server.app import build_server

#: Most test workers `-n auto` starts: each imports torch and holds its own tiny models, and the suite's CPU work is
#: mostly torch's own threads, so more workers than this only add memory.
MAX_WORKERS = 4


def pytest_xdist_auto_num_workers(config):
    return max(2, min(MAX_WORKERS, os.cpu_count() or 1))


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture(scope="session")
def tiny_cache(tmp_path_factory) -> Path:
    """One tiny-model cache for the whole session: each architecture is built once."""
    shared = os.environ.get("PIXELMCP_TEST_CACHE_DIR")
    return Path(shared) if shared else tmp_path_factory.mktemp("tiny-cache")


@pytest.fixture
def make_settings(tiny_cache, tmp_path, monkeypatch):
    """Settings for the tiny profile with a fresh output folder; keyword arguments override."""
    for key in list(os.environ):
        if key.startswith("PIXELMCP_") and key != "PIXELMCP_TEST_CACHE_DIR":
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)

    def make(**overrides) -> Settings:
        values = dict(profile="tiny", output_dir=tmp_path / "out", cache_dir=tiny_cache)
        values.update(overrides)
        return load_settings(**values)

    return make


@pytest.fixture
def settings(make_settings) -> Settings:
    return make_settings()


@pytest.fixture
def server(settings):
    return build_server(settings)


class StepGate:
    """Holds every denoising job at a step until the test releases it: work that stays "slow" exactly as long as
    a test needs, on any machine, with no timing. A held job still stops when cancelled, as between real steps."""

    def __init__(self, after: int):
        self.after = after  # steps that run before the hold
        self.opened = threading.Event()
        self.reached = threading.Event()  # a job is held

    def release(self) -> None:
        self.opened.set()

    async def wait_held(self, timeout_s: float = 120) -> None:
        import anyio

        with anyio.fail_after(timeout_s):
            while not self.reached.is_set():
                await anyio.sleep(0.02)


@pytest.fixture
def held(monkeypatch):
    """A StepGate over the engine's step reports ("step i/n", "tile i/n"); `held.after` steps run first (1)."""
    from pixelmcp.engine.queue import Job

    gate = StepGate(after=1)
    report = Job.report

    def held_report(job, done, total, message):
        report(job, done, total, message)
        if total and message.startswith(("step ", "tile ")) and done >= gate.after and not gate.opened.is_set():
            gate.reached.set()
            while not gate.opened.wait(0.05):
                report(job, done, total, message)  # as the next step would: a batch's job learns its members left
                job.check()

    monkeypatch.setattr(Job, "report", held_report)
    yield gate
    gate.release()


def stored_files(settings: Settings) -> list[str]:
    folder = Path(settings.output_dir)
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


OPENAI_TEST_KEY = "sk-test-0123456789abcdefSECRET"


@pytest.fixture
def api():
    """A local server speaking OpenAI's wire format (test files for other providers define their own `api`)."""
    from fake_providers import fake_openai

    with fake_openai() as server:
        yield server


@pytest.fixture
def openai_settings(make_settings, api, monkeypatch):
    """Settings whose `openai` provider is `api`, keyed with OPENAI_TEST_KEY; keyword arguments override."""
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_COMPATIBLE_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_TEST_KEY)

    def make(**overrides):
        values = dict(openai_base_url=f"http://127.0.0.1:{api.port}/v1", provider_retry_base_s=0.01)
        return make_settings(**{**values, **overrides})

    return make
