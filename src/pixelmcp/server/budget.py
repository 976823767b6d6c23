"""The call budget: every slow tool call blocks at most PIXELMCP_CALL_BUDGET_S, then answers with a job
(service/jobs.py) that goes on in the server's background task group; `check_job` collects it, and a client of
the Tasks extension gets a task handle instead (server/tasks.py)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from mcp.server.extension import Extension
from mcp_types import CallToolResult, TextContent

from pixelmcp.errors import PixelError
from pixelmcp.server import tasks
from pixelmcp.service import jobs
from pixelmcp.service.jobs import JobBoard, JobRecord, JobStatusResult, current_job, owner_of
from pixelmcp.tools.check import status_result

#: The tools whose calls may outlive the budget (every tool that runs a model).
SLOW_TOOLS = frozenset({"generate_image", "rewrite_prompt", "controlnet_generate", "style_transfer",
                        "classify_image", "ask_about_image", "compare_images", "edit_image", "extend_image",
                        "upscale_image", "vary_image", "remove_background"})


class CallBudget(Extension):
    """Runs every tools/call through `within_budget`."""

    identifier = "io.github.pixelmcp/jobs"

    def __init__(self, budget_s: float, state: Callable[[], Any]):
        self.budget_s = budget_s
        self.state = state  # () -> the running server's AppState

    def settings(self) -> dict:
        return {"callBudgetS": self.budget_s, "collectWith": "check_job"}

    async def intercept_tool_call(self, params, ctx, call_next):
        state = self.state()
        owner = owner_of(getattr(ctx.request, "headers", None))
        handle = None
        if tasks.declares_tasks(ctx):  # a Tasks-extension client gets a task handle instead of a job status
            def handle(record):
                return tasks.task_of(record, state.settings.job_retention_s, tasks.CreateTaskResult)
        return await within_budget(state.jobs, state.pool.background, state.settings.call_budget_s, params.name,
                                   owner, lambda: call_next(ctx), handle)


async def within_budget(board: JobBoard, group: Any, budget_s: float, tool: str, owner: str | None,
                        call: Callable[[], Awaitable[Any]],
                        handle: Callable[[JobRecord], Any] | None = None) -> Any:
    """Run a tool call; if it is not done within `budget_s`, answer with a job and let it go on in `group`.

    The answer is the job's status, or `handle(record)` (a task handle, for a client of the Tasks
    extension). A call the client cancels cancels its work too. A protocol error the call raises
    within the budget is raised as it would have been.
    """
    if tool not in SLOW_TOOLS or not budget_s or group is None:
        return await call()
    try:
        record = board.open(tool, owner)
    except PixelError as e:
        return CallToolResult(content=[TextContent(type="text", text=str(e))], is_error=True)
    answer: list[Any] = []  # the call's own answer, for a call that waits for it

    async def work() -> None:
        current_job.set(record)
        with anyio.CancelScope() as scope:
            record.scope = scope
            try:
                result = await call()
            except Exception as e:  # noqa: BLE001 (a protocol error: re-raised by the waiting call, or kept)
                board.close(record, raised=e)
                return
            answer.append(result)
            board.close(record, result=stored_form(result))
        if scope.cancelled_caught:
            board.close(record, cancelled=True)

    async def keep_posted() -> None:
        """While the job runs past its call, other instances sharing the output folder see where it stands."""
        while not record.done.is_set():
            with anyio.move_on_after(jobs.JOB_HEARTBEAT_S):
                await record.done.wait()
            if record.detached and not record.done.is_set():
                board.post(record)

    group.start_soon(work)
    group.start_soon(keep_posted)
    try:
        with anyio.move_on_after(budget_s):
            await record.answer_now.wait()
    except anyio.get_cancelled_exc_class():
        record.cancel()  # the client gave up on its call: the work stops too
        board.forget(record)
        raise
    if not record.done.is_set():
        board.detach(record)
        return handle(record) if handle is not None else status_result(record.info(), waited=True)
    board.forget(record)
    if record.raised is not None:
        raise record.raised
    return answer[0] if answer else None


def stored_form(result: Any) -> dict[str, Any] | None:
    """A tool's answer as a job keeps it (JSON); None for what is not a tool result."""
    if isinstance(result, CallToolResult):
        return result.model_dump(mode="json", by_alias=True, exclude_none=True)
    return None


def job_schema(result_schema: dict[str, Any]) -> dict[str, Any]:
    """A tool's published output schema that also admits the job status a call past its budget returns."""
    job = JobStatusResult.model_json_schema(ref_template="#/$defs/{model}")
    defs = {**result_schema.get("$defs", {}), **job.pop("$defs", {})}
    result = {k: v for k, v in result_schema.items() if k != "$defs"}
    return {"type": "object", "anyOf": [result, job], "$defs": defs}
