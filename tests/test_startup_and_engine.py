"""Cheap startup (no torch until a tool needs it) and the engine's sharing rules."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading

import pytest
from PIL import Image

from pixelmcp.config import load_settings
from pixelmcp.engine.pool import ModelPool
from pixelmcp.engine.queue import Job

HEAVY = ("torch", "diffusers", "transformers")


def test_building_the_server_and_listing_tools_imports_no_model_library(tmp_path):
    script = textwrap.dedent(
        f"""
        import sys, anyio
        from mcp import Client
        from pixelmcp.config import load_settings
        from pixelmcp.server.app import build_server

        async def main():
            server = build_server(load_settings(profile="tiny", output_dir={str(tmp_path)!r}))
            async with Client(server) as client:
                tools = await client.list_tools()
                await client.list_resource_templates()
            print(sorted(t.name for t in tools.tools))
            print([m for m in {HEAVY!r} if m in sys.modules])

        anyio.run(main)
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    tools_line, heavy_line = out.stdout.strip().splitlines()[-2:]
    assert tools_line == ("['ask_about_image', 'check_job', 'classify_image', 'compare_images', 'controlnet_generate', "
                          "'edit_image', 'extend_image', 'generate_image', 'list_images', 'list_models', 'remove_background', "
                          "'rewrite_prompt', 'style_transfer', 'upscale_image', 'vary_image']")
    assert heavy_line == "[]"


@pytest.fixture(scope="module")
def tiny_pool(tmp_path_factory):
    import os
    from pathlib import Path

    cache = os.environ.get("PIXELMCP_TEST_CACHE_DIR") or tmp_path_factory.mktemp("engine-cache")
    settings = load_settings(profile="tiny", output_dir=tmp_path_factory.mktemp("out"), cache_dir=Path(cache))
    return ModelPool(settings), settings


def test_pool_loads_once_and_reuses_the_pipeline(tiny_pool):
    from pixelmcp.engine.diffusion import load_pipeline

    pool, settings = tiny_pool
    spec = settings.catalog["tiny-sd15"]
    first = pool.get(spec, load_pipeline(spec), Job())
    hits = pool.stats.hits
    assert pool.get(spec, load_pipeline(spec), Job()) is first
    assert pool.stats.hits == hits + 1
    assert pool.device == "cpu" and str(first.unet.dtype) == "torch.float32"


def tensors_of(model) -> list[tuple[str, str, int]]:
    """Each tensor of a pipeline or module as (dtype, device, storage address): what a view must never change."""
    from pixelmcp.engine import memory

    return [(str(t.dtype), str(t.device), t.untyped_storage().data_ptr()) for t in memory.tensors_of(model)]


def test_each_request_gets_its_own_scheduler_over_shared_components(tiny_pool, monkeypatch):
    from pixelmcp.engine import diffusion

    pool, settings = tiny_pool
    spec = settings.catalog["tiny-sd15"]
    pipe = pool.get(spec, diffusion.load_pipeline(spec), Job())
    seen = []
    original = diffusion.view

    def spy(view_class, shared, **kwargs):
        seen.append(original(view_class, shared, **kwargs))
        return seen[-1]

    monkeypatch.setattr(diffusion, "view", spy)
    before = tensors_of(pipe)
    call = diffusion.DiffusionCall("a cat", None, 32, 32, 2, 5.0, (1,))
    diffusion.denoise(pipe, call, Job(), lambda done, total: None)
    diffusion.denoise(pipe, call, Job(), lambda done, total: None)
    assert tensors_of(pipe) == before  # not a dtype, a device or a storage of the shared model changed
    assert len(seen) == 2
    for view in seen:
        assert view.unet is pipe.unet and view.vae is pipe.vae and view.text_encoder is pipe.text_encoder
        assert view.scheduler is not pipe.scheduler
    assert seen[0].scheduler is not seen[1].scheduler


def test_a_set_cancel_event_stops_the_pipeline_before_any_image(tiny_pool):
    from pixelmcp.engine import diffusion
    from pixelmcp.errors import GenerationCancelled

    pool, settings = tiny_pool
    spec = settings.catalog["tiny-sd15"]
    pipe = pool.get(spec, diffusion.load_pipeline(spec), Job())
    job = Job(cancel=threading.Event())
    steps = []

    def on_step(done, total):
        steps.append(done)
        job.cancel.set()

    with pytest.raises(GenerationCancelled):
        diffusion.denoise(pipe, diffusion.DiffusionCall("a", None, 32, 32, 10, 5.0, (1,)), job, on_step)
    assert steps == [1]


def test_tiny_models_are_built_once_and_reused(tmp_path):
    from pixelmcp.engine.tiny import ensure_built

    folder = ensure_built("chat-llm", tmp_path)
    stamp = (folder / "config.json").stat().st_mtime_ns
    assert ensure_built("chat-llm", tmp_path) == folder
    assert (folder / "config.json").stat().st_mtime_ns == stamp
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")]


def test_generated_images_are_real_images_not_blank(tiny_pool):
    from pixelmcp.engine import diffusion

    pool, settings = tiny_pool
    spec = settings.catalog["tiny-sd15"]
    pipe = pool.get(spec, diffusion.load_pipeline(spec), Job())
    images, scheduler = diffusion.denoise(
        pipe, diffusion.DiffusionCall("a", None, 48, 32, 2, 5.0, (1, 2)), Job(), lambda d, t: None
    )
    assert scheduler == "PNDMScheduler"
    assert [im.size for im in images] == [(48, 32), (48, 32)]
    assert all(isinstance(im, Image.Image) and im.getextrema() != ((0, 0), (0, 0), (0, 0)) for im in images)


def test_controlnet_view_shares_the_base_components_and_the_pool_caches_the_controlnet(tiny_pool, monkeypatch):
    import diffusers

    from pixelmcp.engine import control, diffusion
    from pixelmcp.router import Router

    pool, settings = tiny_pool
    spec = settings.catalog["tiny-sd15"]
    wanted = Router(settings, pool).controlnet(spec, "canny")
    pipe = pool.get(spec, diffusion.load_pipeline(spec), Job())
    controlnet = pool.get(wanted, control.load_controlnet(wanted), Job())
    assert pool.get(wanted, control.load_controlnet(wanted), Job()) is controlnet

    views = []
    original = diffusion.view

    def spy(view_class, shared, **kwargs):
        views.append(original(view_class, shared, **kwargs))
        return views[-1]

    monkeypatch.setattr(diffusion, "view", spy)
    before = tensors_of(pipe), tensors_of(controlnet)
    call = diffusion.DiffusionCall("a", None, 32, 32, 2, 5.0, (1,), control_image=Image.new("RGB", (32, 32)))
    diffusion.denoise(pipe, call, Job(), lambda d, t: None, controlnet=controlnet)
    assert (tensors_of(pipe), tensors_of(controlnet)) == before
    (view,) = views
    assert type(view) is diffusers.StableDiffusionControlNetPipeline
    assert view.unet is pipe.unet and view.vae is pipe.vae
    assert view.text_encoder is pipe.text_encoder and view.tokenizer is pipe.tokenizer
    assert view.controlnet is controlnet and view.scheduler is not pipe.scheduler


def test_tiny_controlnet_zero_convolutions_are_randomised(tiny_pool):
    from pixelmcp.engine import control
    from pixelmcp.router import Router

    pool, settings = tiny_pool
    wanted = Router(settings, pool).controlnet(settings.catalog["tiny-sdxl"], "depth")
    controlnet = pool.get(wanted, control.load_controlnet(wanted), Job())
    for conv in [*controlnet.controlnet_down_blocks, controlnet.controlnet_mid_block]:
        assert conv.weight.abs().sum() > 0


def test_ip_adapter_is_attached_for_the_call_only(tiny_pool):
    from pixelmcp.engine import control, diffusion
    from pixelmcp.router import Router

    pool, settings = tiny_pool
    spec = settings.catalog["tiny-sd15"]
    wanted = Router(settings, pool).ip_adapter(spec)
    pipe = pool.get(spec, diffusion.load_pipeline(spec), Job())
    adapter = pool.get(wanted, control.load_ip_adapter(wanted, spec.ip_adapter), Job())
    processors = {name: type(p) for name, p in pipe.unet.attn_processors.items()}
    call = diffusion.DiffusionCall("a", None, 32, 32, 2, 5.0, (1,), ip_image=Image.new("RGB", (32, 32)),
                                   ip_scale=control.ip_adapter_scale("style", 0.7, spec.style_blocks))
    diffusion.denoise(pipe, call, Job(), lambda d, t: None, ip_adapter=adapter)
    assert {name: type(p) for name, p in pipe.unet.attn_processors.items()} == processors
    assert pipe.unet.encoder_hid_proj is None and pipe.image_encoder is None


def test_style_mode_scales_only_the_style_blocks():
    from pixelmcp.engine.control import ip_adapter_scale

    blocks = {"up": {"block_0": [0.0, 1.0, 0.0]}}
    assert ip_adapter_scale("style", 0.5, blocks) == {"up": {"block_0": [0.0, 0.5, 0.0]}}
    assert ip_adapter_scale("subject", 0.5, blocks) == 0.5
