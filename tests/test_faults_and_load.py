"""Faults a server meets in the field, and many clients at once: clear errors, and it stays up."""

from __future__ import annotations

import anyio
import psutil
import pytest
from helpers import error_text, ok
from mcp import Client

from pixelmcp.engine.tiny import ensure_built
from pixelmcp.server.app import build_server

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("damage", ["truncated unet", "garbage unet", "garbage text encoder", "garbage tokenizer"])
async def test_corrupt_weights_are_a_clear_error_and_the_next_call_works(make_settings, tiny_cache, tmp_path, damage):
    import shutil

    broken = tmp_path / "broken-sd15"
    shutil.copytree(ensure_built("sd15", tiny_cache / "tiny"), broken)
    if damage == "garbage tokenizer":  # a slow tokenizer's vocabulary: tokenizers fails with a bare Exception
        (broken / "tokenizer" / "tokenizer.json").unlink()
        (broken / "tokenizer" / "merges.txt").write_text("#version: 0.2\n")
        damaged = broken / "tokenizer" / "vocab.json"
    else:
        damaged = next(broken.glob(f"{'text_encoder' if 'text encoder' in damage else 'unet'}/*.safetensors"))
    if damage.startswith("truncated"):
        damaged.write_bytes(damaged.read_bytes()[:1000])  # as after an interrupted copy
    else:
        damaged.write_bytes(b"<html>an error page saved in place of the file</html>")
    settings = make_settings(models={"tiny-sd15": {"source": str(broken)}})
    async with Client(build_server(settings)) as client:
        message = error_text(await client.call_tool("generate_image", {"prompt": "a", "rewrite": False}))
        healthy = ok(await client.call_tool("generate_image", {"prompt": "a", "model": "tiny-sdxl",
                                                                "rewrite": False}))
        report = ok(await client.call_tool("list_models", {}))
    assert "Could not load model 'tiny-sd15'" in message and str(broken) in message
    assert healthy["model"] == "tiny-sdxl"
    # Nothing half-loaded left behind: the healthy model and the CLIP that scored its image only.
    assert sorted(m["alias"] for m in report["loaded"]) == ["tiny-clip", "tiny-sdxl"]


async def test_missing_weights_name_the_folder_and_the_fix(make_settings, tmp_path):
    empty = tmp_path / "empty-model"
    empty.mkdir()
    settings = make_settings(models={"tiny-sd15": {"source": str(empty)}})
    async with Client(build_server(settings)) as client:
        message = error_text(await client.call_tool("generate_image", {"prompt": "a", "rewrite": False}))
    assert str(empty) in message and "complete diffusers/transformers save" in message


async def test_a_crash_inside_a_tool_is_contained(server, monkeypatch):
    from pixelmcp.engine import diffusion

    original = diffusion.denoise
    calls = []

    def explode_once(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise KeyError("unexpected internal state")
        return original(*args, **kwargs)

    monkeypatch.setattr(diffusion, "denoise", explode_once)
    async with Client(server) as client:
        crashed = await client.call_tool("generate_image", {"prompt": "a", "rewrite": False})
        after = ok(await client.call_tool("generate_image", {"prompt": "a", "rewrite": False}))
    text = error_text(crashed)
    assert "generate_image" in text and "KeyError: 'unexpected internal state'" in text
    assert "tiny-sd15 (float32 on cpu)" in text and "server log" in text and "Try the call again" in text
    assert after["model"] == "tiny-sd15"


async def test_a_crash_outside_the_engine_names_the_tool_the_error_and_the_log(server, monkeypatch, caplog):
    from pixelmcp.router import Router

    async def broken(self, model):
        raise RuntimeError("a library failed here")

    monkeypatch.setattr(Router, "generator", broken)
    async with Client(server) as client:
        crashed = await client.call_tool("generate_image", {"prompt": "a", "rewrite": False})
        listed = ok(await client.call_tool("list_models", {}))  # the server is still up
    text = error_text(crashed)
    assert "generate_image failed: RuntimeError: a library failed here" in text and "server log" in text
    assert "Traceback" not in text and "Traceback" in caplog.text  # the traceback stays on the server
    assert listed["profile"] == "tiny"


async def test_many_concurrent_http_clients_are_all_answered_without_leaks(tiny_cache, tmp_path):
    """16 HTTP clients x 3 calls, twice as many as the queue holds: each call gets an image or a clear busy error;
    afterwards the server holds no more open files or threads than before."""
    from test_e2e import start_http

    process, port = await start_http(tiny_cache, tmp_path, PIXELMCP_MAX_QUEUE="8")
    server = psutil.Process(process.pid)
    url = f"http://127.0.0.1:{port}/mcp"
    outcomes = {"ok": 0, "busy": 0}

    async def client_session(index: int) -> None:
        async with Client(url) as client:
            for call in range(3):
                result = await client.call_tool("generate_image", {"prompt": f"a {index}", "seed": call,
                                                                    "steps": 2, "rewrite": False})
                if result.is_error:
                    assert "busy" in result.content[0].text, result.content[0].text
                    outcomes["busy"] += 1
                else:
                    outcomes["ok"] += 1

    try:
        with anyio.fail_after(240):
            await client_session(-1)  # warm: load the model
            files_before, threads_before = server.num_fds(), server.num_threads()
            async with anyio.create_task_group() as tg:
                for index in range(16):
                    tg.start_soon(client_session, index)
            await client_session(-2)  # and it still answers afterwards
        assert outcomes["ok"] + outcomes["busy"] == 3 * 18 and outcomes["ok"] > 8
        assert server.num_fds() <= files_before + 4
        assert server.num_threads() <= threads_before + 4
    finally:
        process.terminate()
        process.wait(timeout=30)


async def test_a_call_past_its_timeout_is_stopped_with_a_clear_error(make_settings, monkeypatch):
    from pixelmcp.engine import diffusion

    original = diffusion.denoise
    stopped = []

    def endless(pipe, call, job, on_step, **kwargs):
        if call.steps == 7:  # the request that never finishes on its own
            job.cancel.wait(timeout=60)
            stopped.append(job.cancel.is_set())
            job.check()
        return original(pipe, call, job, on_step, **kwargs)

    monkeypatch.setattr(diffusion, "denoise", endless)
    server = build_server(make_settings(call_timeout_s=2.0))
    async with Client(server) as client:
        with anyio.fail_after(60):
            ok(await client.call_tool("generate_image", {"prompt": "warm", "rewrite": False}))  # load the model
            message = error_text(await client.call_tool("generate_image", {"prompt": "a", "steps": 7,
                                                                            "rewrite": False}))
            after = ok(await client.call_tool("generate_image", {"prompt": "b", "rewrite": False}))
        report = ok(await client.call_tool("list_models", {}))
    assert "longer than 2 s" in message and "PIXELMCP_CALL_TIMEOUT_S" in message
    assert stopped == [True]  # the work itself was told to stop, not just abandoned
    assert after["model"] == "tiny-sd15" and report["stats"]["timeouts"] == 1


async def test_a_client_that_disconnects_mid_call_does_not_block_the_next(make_settings, tiny_cache, tmp_path, held):
    server = build_server(make_settings())
    step = anyio.Event()

    async def on_progress(progress, total, message):
        if message and message.startswith("step"):
            step.set()

    with anyio.fail_after(120):
        async with anyio.create_task_group() as tg:
            async def leaving_client() -> None:
                async with Client(server) as client:
                    await client.call_tool("generate_image", {"prompt": "a", "steps": 50, "rewrite": False},
                                           progress_callback=on_progress)

            tg.start_soon(leaving_client)
            await step.wait()  # (held there until it is cancelled)
            tg.cancel_scope.cancel()  # the client goes away mid-generation
        held.after = 10**9
        async with Client(server) as client:
            ok(await client.call_tool("generate_image", {"prompt": "next", "rewrite": False}))
