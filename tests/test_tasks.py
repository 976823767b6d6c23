"""The MCP Tasks extension: a declaring client gets a task handle for a call past its budget, polls tasks/get
until the tool's result arrives inlined, and can cancel; other clients keep the job path."""

from __future__ import annotations

import pytest
from conftest import stored_files
from helpers import ok
from mcp import Client
from mcp.shared.exceptions import MCPError
from tasks_client import TASKS, GetTask, TaskIdParams, TasksClient, TaskState

from pixelmcp.server.app import build_server

pytestmark = pytest.mark.anyio

#: Work that the `held` fixture keeps past a 0.3 s budget for as long as a test needs.
SLOW = {"prompt": "a lighthouse", "width": 128, "height": 128, "steps": 4, "seed": 7, "rewrite": False}


async def test_a_declaring_client_gets_a_task_and_the_tools_result_inlined_when_it_completes(make_settings, held):
    server = build_server(make_settings(call_budget_s=0.3))
    tasks = TasksClient(on_poll=lambda state: held.release())  # one poll sees it working
    async with Client(server, extensions=[tasks]) as client:
        capabilities = client.server_capabilities.extensions or {}
        result = await client.call_tool("generate_image", SLOW)
    assert TASKS in capabilities
    data = ok(result)
    assert [block.type for block in result.content] == ["image", "resource_link", "text"] and data["seed"] == 7
    handle = tasks.handles[0]
    assert handle.status == "working" and handle.poll_interval_ms == 1000
    assert {s.status for s in tasks.states[:-1]} == {"working"} and tasks.states[-1].status == "completed"
    assert tasks.states[-1].task_id == handle.task_id and tasks.states[-1].result_type == "complete"


async def test_tasks_cancel_stops_the_task_and_stores_nothing(make_settings, held):
    settings = make_settings(call_budget_s=0.3)
    tasks = TasksClient(cancel_after_polls=1)
    async with Client(build_server(settings), extensions=[tasks]) as client:
        result = await client.call_tool("generate_image", SLOW)
    assert result.is_error and tasks.states[-1].status == "cancelled"
    assert not [name for name in stored_files(settings) if name.endswith(".png")]


async def test_a_fast_call_answers_as_usual_even_for_a_declaring_client(make_settings):
    tasks = TasksClient()
    async with Client(build_server(make_settings(call_budget_s=60)), extensions=[tasks]) as client:
        data = ok(await client.call_tool("generate_image", {"prompt": "a kite", "seed": 1, "rewrite": False}))
    assert data["seed"] == 1 and tasks.handles == []


async def test_tasks_methods_need_the_extension_and_a_known_id(make_settings):
    server = build_server(make_settings())
    async with Client(server) as plain:
        with pytest.raises(MCPError) as undeclared:
            await plain.session.send_request(GetTask(params=TaskIdParams(taskId="x")), TaskState)
    async with Client(server, extensions=[TasksClient()]) as declaring:
        with pytest.raises(MCPError) as unknown:
            await declaring.session.send_request(GetTask(params=TaskIdParams(taskId="no-such-task")), TaskState)
    assert undeclared.value.error.code == -32021
    assert unknown.value.error.code == -32602 and "no-such-task" in unknown.value.error.message
