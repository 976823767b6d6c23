"""Pool memory: budgets, LRU eviction, leases, refusals, OOM retry, busy queue, batching, visibility."""

from __future__ import annotations

import json
import threading

import anyio
import pytest
from helpers import assert_same_picture, error_text, ok
from mcp import Client

from pixelmcp.engine import memory
from pixelmcp.engine.loaders import loader_for
from pixelmcp.engine.pool import ModelPool
from pixelmcp.engine.queue import Job
from pixelmcp.errors import ModelLoadError, OutOfMemory
from pixelmcp.server.app import build_server

pytestmark = pytest.mark.anyio

IMAGE_MODELS = ["tiny-sd15", "tiny-sdxl", "tiny-sd3"]


def sizes(settings) -> dict[str, int]:
    """Measured device bytes of each tiny image pipeline."""
    pool = ModelPool(settings)
    result = {}
    for alias in IMAGE_MODELS:
        spec = settings.catalog[alias]
        job = Job()
        value = pool.get(spec, loader_for(pool.settings, spec), job)
        result[alias] = memory.bytes_by_device(value)["cpu"]
        pool._release_leases(job)
    return result


def load(pool: ModelPool, alias: str) -> None:
    spec = pool.settings.catalog[alias]
    job = Job()
    pool.get(spec, loader_for(pool.settings, spec), job)
    pool._release_leases(job)


@pytest.fixture
def budget_for_two(make_settings):
    """Settings whose budget holds the two largest tiny pipelines but not all three."""
    measured = sizes(make_settings())
    ordered = sorted(measured.values())
    budget = (ordered[1] + ordered[2] + ordered[0] // 2) / 2**20
    return make_settings(memory_budget_mb=budget, working_reserve_mb=0), measured


def test_least_recently_used_unpinned_model_is_evicted_first(budget_for_two):
    settings, _ = budget_for_two
    pool = ModelPool(settings)
    load(pool, "tiny-sd15")
    load(pool, "tiny-sdxl")
    load(pool, "tiny-sd15")  # a hit: sd15 is now the most recently used
    load(pool, "tiny-sd3")
    resident = {m.spec.alias for m in pool.loaded()}
    assert resident == {"tiny-sd15", "tiny-sd3"}
    assert pool.stats.evictions == 1 and pool.stats.hits == 1 and pool.stats.loads == 3
    assert pool._used_bytes() <= pool.budget_bytes


def test_a_resident_model_is_never_reloaded(budget_for_two):
    settings, _ = budget_for_two
    pool = ModelPool(settings)
    for _ in range(3):
        load(pool, "tiny-sd15")
    assert pool.stats.loads == 1 and pool.stats.hits == 2


def test_leased_models_are_not_evicted_and_the_refusal_names_what_is_loaded(budget_for_two):
    settings, _ = budget_for_two
    pool = ModelPool(settings)
    job = Job()
    for alias in ("tiny-sd15", "tiny-sdxl"):
        spec = settings.catalog[alias]
        pool.get(spec, loader_for(pool.settings, spec), job)  # both leased by one running job
    spec = settings.catalog["tiny-sd3"]
    with pytest.raises(ModelLoadError) as info:
        pool.get(spec, loader_for(pool.settings, spec), Job())
    message = str(info.value)
    assert "tiny-sd3" in message and "tiny-sd15" in message and "tiny-sdxl" in message and "(in use)" in message
    assert "PIXELMCP_MEMORY_BUDGET_MB" in message and "offload" in message
    assert {m.spec.alias for m in pool.loaded()} == {"tiny-sd15", "tiny-sdxl"}  # consistent after the refusal
    pool._release_leases(job)
    load(pool, "tiny-sd3")  # once released, the LRU one makes way
    assert "tiny-sd3" in {m.spec.alias for m in pool.loaded()}


async def test_pins_hold_while_a_job_runs_concurrently_with_eviction(budget_for_two):
    settings, _ = budget_for_two
    pool = ModelPool(settings)
    load(pool, "tiny-sdxl")
    inside = threading.Event()
    release = threading.Event()

    def long_job(job: Job) -> None:
        spec = settings.catalog["tiny-sd15"]
        pool.get(spec, loader_for(pool.settings, spec), job)
        inside.set()
        release.wait(timeout=30)

    async with anyio.create_task_group() as tg:
        tg.start_soon(pool.run, long_job)
        await anyio.to_thread.run_sync(inside.wait)
        # Meanwhile another thread needs room (e.g. a keep-alive sweep or another device's job).
        await anyio.to_thread.run_sync(pool.evict_unpinned)
        assert pool.is_resident("tiny-sd15") and not pool.is_resident("tiny-sdxl")
        idle = await anyio.to_thread.run_sync(pool.evict_idle, 0.0)
        assert idle == [] and pool.is_resident("tiny-sd15")
        release.set()
    assert [m.pins for m in pool.loaded()] == [0]


def test_a_model_larger_than_the_whole_budget_is_refused_before_loading(make_settings):
    pool = ModelPool(make_settings(memory_budget_mb=0.5, working_reserve_mb=0))
    spec = pool.settings.catalog["tiny-sd15"]
    with pytest.raises(ModelLoadError, match="Not enough memory on cpu for tiny-sd15"):
        pool.get(spec, loader_for(pool.settings, spec), Job())
    assert pool.loaded() == [] and pool.stats.loads == 0


def test_shared_storage_is_counted_once(settings):
    pool = ModelPool(settings)
    spec = settings.catalog["tiny-sd15"]
    job = Job()
    pipe = pool.get(spec, loader_for(pool.settings, spec), job)
    view = type(pipe).from_pipe(pipe)  # shares every component
    counted: set = set()
    alone = memory.bytes_by_device(pipe)["cpu"]
    assert memory.bytes_by_device(pipe, counted)["cpu"] == alone
    assert memory.bytes_by_device(view, counted) == {}
    assert pool._used_bytes() == alone


def test_out_of_memory_frees_unused_models_and_retries_once(budget_for_two):
    import torch

    settings, _ = budget_for_two
    pool = ModelPool(settings)
    load(pool, "tiny-sdxl")
    attempts = []

    def flaky(job: Job) -> str:
        spec = settings.catalog["tiny-sd15"]
        pool.get(spec, loader_for(pool.settings, spec), job)
        attempts.append(pool.is_resident("tiny-sdxl"))
        if len(attempts) == 1:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return "done"

    assert pool._run_job(flaky, Job()) == "done"
    assert attempts == [True, False]  # the retry ran after the unused model was freed
    assert pool.stats.oom_retries == 1 and all(m.pins == 0 for m in pool.loaded())


def test_a_second_out_of_memory_is_a_clear_error_and_the_pool_stays_consistent(settings):
    import torch

    pool = ModelPool(settings)

    def always(job: Job) -> None:
        spec = settings.catalog["tiny-sd15"]
        pool.get(spec, loader_for(pool.settings, spec), job)
        raise torch.OutOfMemoryError("CUDA out of memory")

    with pytest.raises(OutOfMemory, match="even after freeing"):
        pool._run_job(always, Job())
    assert all(m.pins == 0 for m in pool.loaded())
    load(pool, "tiny-sd15")  # and the pool still works


async def test_a_full_queue_answers_busy_at_once(make_settings):
    pool = ModelPool(make_settings(max_queue=1))
    release = threading.Event()
    started = threading.Event()

    def blocker(job: Job) -> None:
        started.set()
        release.wait(timeout=30)

    with anyio.fail_after(60):
        async with anyio.create_task_group() as tg:
            tg.start_soon(pool.run, blocker)
            await anyio.to_thread.run_sync(started.wait)
            tg.start_soon(pool.run, lambda job: None)  # waits: the queue now holds one
            await anyio.wait_all_tasks_blocked()
            from pixelmcp.errors import Busy

            with pytest.raises(Busy, match="1 request\\(s\\) are already waiting") as info:
                await pool.run(lambda job: None)
            assert "PIXELMCP_MAX_QUEUE" in str(info.value)
            release.set()
    assert pool.stats.busy_refusals == 1


async def test_busy_reaches_the_client_as_a_tool_error(make_settings):
    server = build_server(make_settings(max_queue=0, max_batch=1))
    long_job = {"prompt": "a", "steps": 50, "width": 256, "height": 256, "rewrite": False}
    async with Client(server) as client:
        ok(await client.call_tool("generate_image", {"prompt": "warm", "rewrite": False}))
        step = anyio.Event()

        async def on_progress(progress, total, message):
            if message and message.startswith("step"):
                step.set()

        with anyio.fail_after(120):
            async with anyio.create_task_group() as tg:
                tg.start_soon(client.call_tool, "generate_image", long_job, None, on_progress)
                await step.wait()
                message = error_text(await client.call_tool("generate_image", {"prompt": "b", "rewrite": False}))
                tg.cancel_scope.cancel()
    assert "busy" in message and "PIXELMCP_MAX_QUEUE" in message


# --------------------------------------------------------------------------- batching


async def test_concurrent_requests_are_batched_and_each_matches_its_solo_run(make_settings):
    server = build_server(make_settings(batch_window_ms=200))
    prompts = ["a red house", "a blue boat", "a green tree", "a cat"]
    async with Client(server) as client:
        results: dict[str, dict] = {}

        async def one(prompt: str, seed: int) -> None:
            results[prompt] = ok(await client.call_tool("generate_image", {"prompt": prompt, "seed": seed,
                                                                             "rewrite": False}))

        with anyio.fail_after(120):
            async with anyio.create_task_group() as tg:
                for seed, prompt in enumerate(prompts):
                    tg.start_soon(one, prompt, seed)
    solo_server = build_server(make_settings(max_batch=1))
    async with Client(solo_server) as client:
        solo = {p: ok(await client.call_tool("generate_image", {"prompt": p, "seed": s, "rewrite": False}))
                for s, p in enumerate(prompts)}
    assert {r["batch_size"] for r in results.values()} == {4}
    assert {r["batch_size"] for r in solo.values()} == {1}
    for prompt in prompts:
        # Each image comes from its own seed's noise: the same picture as alone, up to the rounding of
        # batched kernels (which differs between CPUs and GPUs, so no bit-for-bit claim).
        assert_same_picture(results[prompt]["path"], solo[prompt]["path"])


async def test_requests_that_differ_in_size_are_not_batched_together(make_settings):
    server = build_server(make_settings(batch_window_ms=200))
    async with Client(server) as client:
        results = []

        async def one(width: int) -> None:
            results.append(ok(await client.call_tool("generate_image", {"prompt": "a", "width": width, "seed": 1,
                                                                         "rewrite": False})))

        async with anyio.create_task_group() as tg:
            tg.start_soon(one, 64)
            tg.start_soon(one, 96)
    assert sorted(r["batch_size"] for r in results) == [1, 1]


# --------------------------------------------------------------------------- visibility, keep-alive, preload


async def test_list_models_and_the_models_resource_show_what_is_loaded(server):
    async with Client(server) as client:
        before = ok(await client.call_tool("list_models", {}))
        ok(await client.call_tool("generate_image", {"prompt": "a", "rewrite": False}))
        after = ok(await client.call_tool("list_models", {}))
        resource = json.loads((await client.read_resource("pixelmcp://models")).contents[0].text)
    assert before["loaded"] == [] and before["stats"]["loads"] == 0
    assert {e["alias"] for e in before["catalog"]} >= {"tiny-sd15", "tiny-clip", "tiny-qwen2-vl"}
    loaded = {m["alias"]: m for m in after["loaded"]}
    assert set(loaded) == {"tiny-sd15", "tiny-clip"}  # the image model, and the CLIP that scored the image
    assert loaded["tiny-sd15"]["tier"] == "device" and loaded["tiny-sd15"]["bytes"] > 0
    assert after["used_bytes"] == sum(m["bytes"] for m in loaded.values()) and after["budget_bytes"] > 0
    assert after["stats"]["loads"] == 2
    assert next(e for e in after["catalog"] if e["alias"] == "tiny-sd15")["loaded"] is True
    assert {m["alias"] for m in resource["loaded"]} == set(loaded)


def test_keep_alive_unloads_only_idle_unpinned_models(settings):
    pool = ModelPool(settings)
    load(pool, "tiny-sd15")
    assert pool.evict_idle(3600) == []
    assert pool.evict_idle(0) == ["tiny-sd15"] and pool.loaded() == []


async def test_preload_warms_models_after_the_server_answers(make_settings):
    server = build_server(make_settings(preload=["tiny-sd15", "tiny-clip"]))
    async with Client(server) as client:
        await client.list_tools()  # answers while preloading runs in the background
        with anyio.fail_after(60):
            while True:
                report = ok(await client.call_tool("list_models", {}))
                if {m["alias"] for m in report["loaded"]} == {"tiny-sd15", "tiny-clip"}:
                    break
                await anyio.sleep(0.05)  # polling a background warm-up; bounded by fail_after
        data = ok(await client.call_tool("generate_image", {"prompt": "a", "rewrite": False}))
    assert data["timings"]["load_s"] == 0.0
