"""Long calls answer with a job within the call budget; check_job collects the tool's own result, or cancels."""

from __future__ import annotations

import json
from unittest.mock import ANY

import anyio
import pytest
from conftest import stored_files
from helpers import data_uri, error_text, ok, shapes
from mcp import Client

from pixelmcp.server.app import build_server

pytestmark = pytest.mark.anyio

#: Work that the `held` fixture keeps past a 0.3 s budget for as long as a test needs (on any machine).
SLOW = {"prompt": "a harbour at dawn", "width": 128, "height": 128, "steps": 4, "seed": 3, "rewrite": False}


async def collect(client: Client, job_id: str, **arguments):
    """check_job until the job is done; the last answer."""
    with anyio.fail_after(300):
        while True:
            result = await client.call_tool("check_job", {"job_id": job_id, **arguments})
            data = result.structured_content or {}
            if result.is_error or "job" not in data or data["job"]["status"] in ("completed", "failed", "cancelled"):
                return result


async def test_a_call_past_its_budget_answers_with_a_job_and_check_job_returns_the_tools_own_result(make_settings,
                                                                                                    held):
    server = build_server(make_settings(call_budget_s=0.3))
    async with Client(server, read_timeout_seconds=5) as client:
        with anyio.fail_after(20):  # the call itself returns within the budget, not after the work
            started = await client.call_tool("generate_image", SLOW)
        assert not started.is_error
        job = started.structured_content["job"]
        assert job["tool"] == "generate_image" and job["status"] in ("queued", "loading", "running")
        assert f"check_job with job_id='{job['id']}'" in started.content[-1].text
        held.release()
        result = await collect(client, job["id"])
    data = ok(result)
    assert [block.type for block in result.content] == ["image", "resource_link", "text"]
    assert (data["width"], data["height"], data["steps"], data["seed"]) == (128, 128, 4, 3)
    assert data["uri"] == result.content[1].uri and f"{data['id']}.png" in stored_files(make_settings())


async def test_a_call_within_its_budget_answers_as_usual_and_leaves_no_job(make_settings):
    server = build_server(make_settings(call_budget_s=60))
    async with Client(server) as client:
        data = ok(await client.call_tool("generate_image", {"prompt": "a kite", "seed": 1, "rewrite": False}))
    assert "job" not in data and data["seed"] == 1


async def test_progress_reaches_the_job_and_eta_follows_the_steps(make_settings, held):
    held.after = 2  # two steps give a rate
    server = build_server(make_settings(call_budget_s=0.3))
    async with Client(server, read_timeout_seconds=5) as client:
        job_id = (await client.call_tool("generate_image", SLOW)).structured_content["job"]["id"]
        await held.wait_held()
        job = (await client.call_tool("check_job", {"job_id": job_id, "wait_s": 0})).structured_content["job"]
        assert job["status"] == "running" and job["progress"] == 0.5 and job["message"] == "step 2/4"
        assert job["eta_s"] is not None and job["eta_s"] >= 0
        resource = await client.read_resource(f"pixelmcp://jobs/{job_id}")
        assert json.loads(resource.contents[0].text)["job"] == {**job, "elapsed_s": ANY}
        held.release()
        ok(await collect(client, job_id))


async def test_cancel_stops_the_job_and_stores_nothing(make_settings, held):
    settings = make_settings(call_budget_s=0.3)
    async with Client(build_server(settings), read_timeout_seconds=5) as client:
        job_id = (await client.call_tool("generate_image", SLOW)).structured_content["job"]["id"]
        await held.wait_held()
        asked = await client.call_tool("check_job", {"job_id": job_id, "cancel": True})
        # It stops at the next step boundary, which may come after the answer.
        assert asked.structured_content["job"]["status"] in ("cancelled", "running")
        final = await collect(client, job_id)
        assert final.structured_content["job"]["status"] == "cancelled"
    assert not [name for name in stored_files(settings) if name.endswith(".png")]


async def test_unknown_ids_and_waits_past_the_budget_are_clear_errors(make_settings):
    server = build_server(make_settings(call_budget_s=2))
    async with Client(server, read_timeout_seconds=5) as client:
        unknown = error_text(await client.call_tool("check_job", {"job_id": "no-such-job"}))
        too_long = error_text(await client.call_tool("check_job", {"job_id": "x", "wait_s": 5}))
    assert "job_id" in unknown and "no-such-job" in unknown and "expired" in unknown
    assert "wait_s" in too_long and "0..2" in too_long


async def test_a_job_outlives_its_session_and_its_server_process(make_settings, held):
    settings = make_settings(call_budget_s=0.3)
    async with Client(build_server(settings), read_timeout_seconds=5) as client:
        job_id = (await client.call_tool("generate_image", SLOW)).structured_content["job"]["id"]
        held.release()
    # The session is over (its lifespan waited for the job to finish); another session collects it ...
    server = build_server(settings)
    async with Client(server, read_timeout_seconds=5) as other:
        first = ok(await other.call_tool("check_job", {"job_id": job_id}))
    # ... and so does a new server process over the same output folder, from what the job left on disk.
    async with Client(build_server(settings), read_timeout_seconds=5) as later:
        again = ok(await later.call_tool("check_job", {"job_id": job_id}))
    assert first["id"] == again["id"] and first["width"] == 128


async def test_a_queued_job_reports_its_place_and_the_job_count_is_bounded(make_settings, held):
    server = build_server(make_settings(call_budget_s=0.3, max_jobs=2))
    async with Client(server, read_timeout_seconds=5) as client:
        first = (await client.call_tool("generate_image", SLOW)).structured_content["job"]
        await held.wait_held()
        second = (await client.call_tool("generate_image", {**SLOW, "seed": 4})).structured_content["job"]
        assert second["status"] == "queued" and second["queue_position"] == 1
        refused = error_text(await client.call_tool("generate_image", {**SLOW, "seed": 5}))
        assert "PIXELMCP_MAX_JOBS=2" in refused
        held.release()
        for job in (first, second):
            ok(await collect(client, job["id"]))


async def test_finished_jobs_expire(make_settings, held):
    server = build_server(make_settings(call_budget_s=0.3, job_retention_s=0.5))
    async with Client(server, read_timeout_seconds=5) as client:
        job_id = (await client.call_tool("generate_image", SLOW)).structured_content["job"]["id"]
        held.release()
        ok(await collect(client, job_id))
        await anyio.sleep(1.0)
        expired = error_text(await client.call_tool("check_job", {"job_id": job_id}))
    assert "expired" in expired and job_id in expired


async def test_controlnet_generate_past_its_budget_is_collected_with_its_control_map(make_settings, held):
    server = build_server(make_settings(call_budget_s=0.3))
    arguments = {"prompt": "a tower", "image": data_uri(shapes((128, 128))), "control_type": "canny", "steps": 4,
                 "seed": 2, "rewrite": False}
    async with Client(server, read_timeout_seconds=5) as client:
        job = (await client.call_tool("controlnet_generate", arguments)).structured_content["job"]
        assert job["tool"] == "controlnet_generate"
        held.release()
        result = await collect(client, job["id"])
    data = ok(result)
    assert data["control_map"]["uri"] in [getattr(block, "uri", None) for block in result.content]


async def test_every_model_tool_publishes_a_schema_that_admits_the_job_answer(make_settings):
    import jsonschema

    from pixelmcp.server.budget import SLOW_TOOLS

    async with Client(build_server(make_settings())) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    job = {"job": {"id": "x" * 16, "tool": "t", "status": "running", "progress": 0.5, "message": "step 1/2",
                   "elapsed_s": 1.0, "created": "2026-01-01T00:00:00+00:00"}}
    for name in SLOW_TOOLS:
        schema = tools[name].output_schema
        if schema is not None:
            jsonschema.validate(job, schema)
            with pytest.raises(jsonschema.ValidationError):
                jsonschema.validate({"something": "else"}, schema)


async def test_an_upscale_past_its_budget_is_a_job_whose_tiles_show_and_whose_result_is_the_tools(make_settings,
                                                                                                held):
    server = build_server(make_settings(call_budget_s=0.3))
    image = data_uri(shapes((128, 128)))
    async with Client(server, read_timeout_seconds=5) as client:
        with anyio.fail_after(20):
            started = await client.call_tool("upscale_image", {"image": image, "seed": 1, "steps": 4,
                                                               "strength": 0.9})
        job_id = started.structured_content["job"]["id"]
        await held.wait_held()
        status = (await client.call_tool("check_job", {"job_id": job_id, "wait_s": 0})).structured_content
        held.release()
        result = await collect(client, job_id)
    data = ok(result)
    assert (data["width"], data["height"], data["scale"]) == (256, 256, 2)
    assert status["job"]["message"].startswith("tile "), status


async def test_cancel_stops_an_edit_and_stores_nothing(make_settings, held):
    server = build_server(make_settings(call_budget_s=0.3))
    async with Client(server, read_timeout_seconds=5) as client:
        job_id = (await client.call_tool("edit_image", {"image": data_uri(shapes((128, 128))), "prompt": "x",
                                                        "steps": 4, "strength": 1.0, "seed": 1})
                  ).structured_content["job"]["id"]
        await held.wait_held()
        await client.call_tool("check_job", {"job_id": job_id, "cancel": True})
        final = await collect(client, job_id)
    assert final.structured_content["job"]["status"] == "cancelled"
    assert not [name for name in stored_files(make_settings()) if name.endswith(".png")]  # not even the input


async def test_another_instance_on_the_same_output_folder_reports_collects_and_cancels_a_job(make_settings, held,
                                                                                              monkeypatch):
    from pixelmcp.service import jobs

    monkeypatch.setattr(jobs, "JOB_HEARTBEAT_S", 0.2)  # how often the running instance rewrites the job's file
    settings = make_settings(call_budget_s=0.3)
    async with (Client(build_server(settings), read_timeout_seconds=5) as running,
                Client(build_server(settings), read_timeout_seconds=5) as other):
        job_id = (await running.call_tool("generate_image", SLOW)).structured_content["job"]["id"]
        await held.wait_held()
        status = (await other.call_tool("check_job", {"job_id": job_id, "wait_s": 0})).structured_content
        assert status["job"]["id"] == job_id and status["job"]["status"] == "running"
        held.release()
        collected = await collect(other, job_id)  # waits by re-reading the job's file
        image = await other.read_resource(ok(collected)["uri"])  # the shared folder holds its images too
        held.opened.clear()
        held.reached.clear()
        doomed = (await running.call_tool("generate_image", SLOW)).structured_content["job"]["id"]
        await held.wait_held()
        asked = await other.call_tool("check_job", {"job_id": doomed, "cancel": True})
        final = await collect(running, doomed)
    data = ok(collected)
    assert data["width"] == 128 and f"{data['id']}.png" in stored_files(settings)
    assert "asked to stop it" in asked.content[-1].text and image.contents[0].mime_type == "image/png"
    assert final.structured_content["job"]["status"] == "cancelled"
