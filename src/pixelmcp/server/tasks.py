"""The MCP Tasks extension (`io.modelcontextprotocol/tasks`, on protocol 2026-07-28).

A client that declares the extension in a request's capabilities gets a task handle
(`resultType: "task"`) instead of a job status when a slow call outlives its budget, and follows it
with `tasks/get` (the tool's complete result arrives inlined once the task is completed),
`tasks/update` and `tasks/cancel`. Tasks are pixelmcp's jobs (service/jobs.py) under the extension's
names and states: queued, downloading, loading and running are `working`; a tool result, error
result included, is `completed`; a protocol error the call raised is `failed`; a cancelled job is
`cancelled`. Every other client keeps the job path (`check_job`).
"""

from __future__ import annotations

from typing import Any, Literal

from mcp.server.extension import Extension, MethodBinding
from mcp.shared.exceptions import MCPError
from mcp_types import RequestParams, Result
from pydantic import ConfigDict, Field

from pixelmcp.errors import PixelError
from pixelmcp.service import jobs

TASKS = "io.modelcontextprotocol/tasks"
MODERN = frozenset({"2026-07-28"})
#: How often clients are asked to poll, in milliseconds.
POLL_INTERVAL_MS = 1000
MISSING_CAPABILITY = -32021
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603


class _Task(Result):
    model_config = ConfigDict(extra="allow", populate_by_name=True)

    task_id: str = Field(alias="taskId")
    status: Literal["working", "input_required", "completed", "cancelled", "failed"]
    status_message: str | None = Field(None, alias="statusMessage")
    created_at: str = Field(alias="createdAt")
    last_updated_at: str = Field(alias="lastUpdatedAt")
    ttl_ms: int | None = Field(alias="ttlMs")
    poll_interval_ms: int = Field(POLL_INTERVAL_MS, alias="pollIntervalMs")


class CreateTaskResult(_Task):
    """The answer to a tools/call that goes on as a task."""

    result_type: Literal["task"] = Field("task", alias="resultType")


class DetailedTask(_Task):
    """tasks/get's answer: the task, with the tool's result once completed, or the error once failed."""

    result_type: Literal["complete"] = Field("complete", alias="resultType")
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None


class Acknowledged(Result):
    result_type: Literal["complete"] = Field("complete", alias="resultType")


class TaskParams(RequestParams):
    task_id: str = Field(alias="taskId")


class UpdateTaskParams(TaskParams):
    input_responses: dict[str, Any] = Field(default_factory=dict, alias="inputResponses")


def declares_tasks(ctx: Any) -> bool:
    """Whether this request's client declared the extension (2026-07-28 per-request capabilities)."""
    capabilities = getattr(ctx.session, "client_capabilities", None)
    extensions = getattr(capabilities, "extensions", None) or {}
    return ctx.protocol_version in MODERN and TASKS in extensions


def task_of(record: jobs.JobRecord, retention_s: float, cls: type[_Task] | None = None) -> _Task:
    """A job as a task: a DetailedTask for tasks/get, or `cls` (CreateTaskResult: the handle a tools/call answers
    with, which carries no result)."""
    cls = cls or DetailedTask
    info, result, raised = record.info(), record.result, record.raised
    fields: dict[str, Any] = dict(task_id=info.id, created_at=info.created,
                                  last_updated_at=jobs.iso_time(record.updated),
                                  ttl_ms=int(retention_s * 1000), status_message=info.message)
    if info.status == "cancelled":
        return cls(status="cancelled", **fields)
    if raised is not None or (info.status == "failed" and result is None):
        code = raised.error.code if isinstance(raised, MCPError) else INTERNAL_ERROR
        message = str(raised.error.message if isinstance(raised, MCPError) else raised or info.error)
        extra = {"error": {"code": code, "message": message}} if cls is DetailedTask else {}
        return cls(status="failed", **{**fields, "status_message": message}, **extra)
    if info.status in jobs.FINISHED and result is not None:
        extra = {}
        if cls is DetailedTask:
            extra["result"] = result
        return cls(status="completed", **fields, **extra)
    return cls(status="working", **fields)


class TasksExtension(Extension):
    """tasks/get, tasks/update and tasks/cancel over the server's jobs."""

    identifier = TASKS

    def __init__(self, board: Any, settings: Any):
        self.board = board  # () -> JobBoard of the running server
        self.retention_s = settings.job_retention_s

    def methods(self) -> list[MethodBinding]:
        return [MethodBinding("tasks/get", TaskParams, self._get, protocol_versions=MODERN),
                MethodBinding("tasks/update", UpdateTaskParams, self._update, protocol_versions=MODERN),
                MethodBinding("tasks/cancel", TaskParams, self._cancel, protocol_versions=MODERN)]

    def _find(self, ctx: Any, task_id: str) -> jobs.JobRecord:
        if not declares_tasks(ctx):
            raise MCPError(MISSING_CAPABILITY, "Missing required client capability",
                           {"requiredCapabilities": {"extensions": {TASKS: {}}}})
        try:
            return self.board().find(task_id, jobs.owner_of(getattr(ctx.request, "headers", None)))
        except PixelError as e:
            raise MCPError(INVALID_PARAMS, f"Failed to retrieve task: {e}") from e

    async def _get(self, ctx: Any, params: TaskParams) -> DetailedTask:
        return task_of(self._find(ctx, params.task_id), self.retention_s)

    async def _update(self, ctx: Any, params: UpdateTaskParams) -> Acknowledged:
        self._find(ctx, params.task_id)  # pixelmcp's tasks never wait for input: responses are ignored
        return Acknowledged()

    async def _cancel(self, ctx: Any, params: TaskParams) -> Acknowledged:
        record = self._find(ctx, params.task_id)
        if record.elsewhere and not record.finished:
            self.board().ask_to_cancel(record.id)
        else:
            record.cancel()
        return Acknowledged()

