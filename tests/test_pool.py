"""ModelPool jobs: one per device, cancellable while queued or running, heartbeats while waiting."""

from __future__ import annotations

import threading

import anyio
import pytest

from pixelmcp.engine import queue as queue_module
from pixelmcp.engine.pool import ModelPool
from pixelmcp.engine.queue import Job
from pixelmcp.errors import GenerationCancelled

pytestmark = pytest.mark.anyio


@pytest.fixture
def pool(settings) -> ModelPool:
    return ModelPool(settings)


async def test_jobs_on_one_device_never_overlap(pool):
    running, peak, lock = [0], [0], threading.Lock()
    release = threading.Event()

    def work(job: Job) -> int:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        release.wait(timeout=30)
        with lock:
            running[0] -= 1
        return 1

    results = []

    async def submit():
        results.append(await pool.run(work))

    with anyio.fail_after(60):
        async with anyio.create_task_group() as tg:
            for _ in range(4):
                tg.start_soon(submit)
            await anyio.wait_all_tasks_blocked()
            release.set()
    assert peak[0] == 1 and len(results) == 4
    assert pool.stats.jobs == 4
    assert any(queue_s > 0 for _, queue_s in results)  # the others waited for the device


async def test_a_cancelled_queued_request_leaves_the_queue_without_running(pool):
    started = threading.Event()
    release = threading.Event()
    ran_second = []

    def blocker(job: Job) -> str:
        started.set()
        release.wait(timeout=30)
        return "first"

    def second(job: Job) -> str:
        ran_second.append(True)
        return "second"

    with anyio.fail_after(60):
        async with anyio.create_task_group() as tg:
            tg.start_soon(pool.run, blocker)
            await anyio.to_thread.run_sync(started.wait)
            with anyio.CancelScope() as scope:
                tg.start_soon(lambda: pool.run(second))
                await anyio.wait_all_tasks_blocked()
                scope.cancel()
            tg.cancel_scope.cancel()
            release.set()
    assert ran_second == []


async def test_cancelling_a_running_job_sets_its_cancel_event_and_waits_for_the_worker(pool):
    entered = threading.Event()
    worker_returned = []

    def work(job: Job) -> None:
        entered.set()
        job.cancel.wait(timeout=30)
        worker_returned.append(job.cancel.is_set())
        raise GenerationCancelled()

    with anyio.fail_after(60):
        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as tg:
                tg.start_soon(pool.run, work)
                await anyio.to_thread.run_sync(entered.wait)
                scope.cancel()
    # The cancel scope only exits after the worker thread returned.
    assert worker_returned == [True]
    assert pool.stats.cancelled == 1


async def test_a_library_error_in_the_worker_reaches_the_caller_as_a_tool_error_that_keeps_its_cause(pool):
    from pixelmcp.errors import EngineFailure

    def work(job: Job) -> None:
        job.report(3, 4, "step 3/4")
        raise KeyError("boom")

    with pytest.raises(EngineFailure, match="at 'step 3/4': KeyError: 'boom'") as raised:
        await pool.run(work)
    assert isinstance(raised.value.__cause__, KeyError)  # (the traceback goes to the log with it)


async def test_heartbeats_report_the_job_status_while_waiting(pool, monkeypatch):
    monkeypatch.setattr(queue_module, "HEARTBEAT_SECONDS", 0.01)
    release = threading.Event()
    statuses: list[str] = []
    heard = anyio.Event()

    def work(job: Job) -> None:
        job.status = "loading big-model"
        release.wait(timeout=30)

    async def progress(done: float, total: float | None, status: str | None) -> None:
        assert (done, total) == (0, None)  # a heartbeat is a phase message, not a step
        statuses.append(status)
        if status == "loading big-model":
            heard.set()  # never set (and the test times out) if heartbeats stop or lose the status

    with anyio.fail_after(60):
        async with anyio.create_task_group() as tg:
            tg.start_soon(pool.run, work, progress)
            await heard.wait()
            release.set()
    assert set(statuses) <= {"starting", "running", "loading big-model"}
