"""A client of the MCP Tasks extension on the Python SDK's own extension seam: a ResultClaim for resultType "task"
that polls tasks/get (and can send tasks/cancel), as the extension's specification describes."""

from __future__ import annotations

from typing import Any, Literal

import anyio
from mcp.client.extension import ClaimContext, ClientExtension, ResultClaim
from mcp_types import CallToolResult, Request, RequestParams, Result
from pydantic import ConfigDict, Field

TASKS = "io.modelcontextprotocol/tasks"


class TaskHandle(Result):
    model_config = ConfigDict(extra="allow", populate_by_name=True)
    result_type: Literal["task"] = Field(alias="resultType")
    task_id: str = Field(alias="taskId")
    status: str
    poll_interval_ms: int | None = Field(None, alias="pollIntervalMs")


class TaskState(Result):
    model_config = ConfigDict(extra="allow", populate_by_name=True)
    result_type: str | None = Field(None, alias="resultType")
    task_id: str = Field(alias="taskId")
    status: str
    status_message: str | None = Field(None, alias="statusMessage")
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None


class Ack(Result):
    model_config = ConfigDict(extra="allow")


class TaskIdParams(RequestParams):
    task_id: str = Field(alias="taskId")


class GetTask(Request[TaskIdParams, Literal["tasks/get"]]):
    method: Literal["tasks/get"] = "tasks/get"
    name_param = "taskId"


class CancelTask(Request[TaskIdParams, Literal["tasks/cancel"]]):
    method: Literal["tasks/cancel"] = "tasks/cancel"
    name_param = "taskId"


class TasksClient(ClientExtension):
    """Polls tasks/get until the task settles and hands back the tool's result; records what it saw."""

    identifier = TASKS

    def __init__(self, cancel_after_polls: int | None = None, on_poll=None):
        self.handles: list[TaskHandle] = []
        self.states: list[TaskState] = []
        self.cancel_after_polls = cancel_after_polls
        self.on_poll = on_poll  # called with each state seen

    def claims(self):
        return [ResultClaim(result_type="task", model=TaskHandle, resolve=self.resolve)]

    async def resolve(self, handle: TaskHandle, ctx: ClaimContext) -> CallToolResult:
        self.handles.append(handle)
        polls = 0
        with anyio.fail_after(300):
            while True:
                state = await ctx.session.send_request(GetTask(params=TaskIdParams(taskId=handle.task_id)), TaskState)
                self.states.append(state)
                polls += 1
                if self.on_poll is not None:
                    self.on_poll(state)
                if state.status == "completed":
                    return CallToolResult.model_validate(state.result)
                if state.status in ("failed", "cancelled"):
                    return CallToolResult(content=[], is_error=True, structured_content={"task": state.model_dump()})
                if self.cancel_after_polls is not None and polls >= self.cancel_after_polls:
                    await ctx.session.send_request(CancelTask(params=TaskIdParams(taskId=handle.task_id)), Ack)
                await anyio.sleep((handle.poll_interval_ms or 1000) / 4000)
