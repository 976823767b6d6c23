"""Half precision: every image tool in bfloat16 (which the CPU runs), and the pooled models keep the dtypes they
were loaded with after any number of requests of any kind.

Users run half precision on GPUs; a suite that only ran float32 would never see a view cast the shared models
(diffusers' `from_pipe`, huggingface/diffusers#12754) or two models of one call disagree on their dtype.
"""

from __future__ import annotations

import pytest
from helpers import data_uri, error_text, ok, shapes
from mcp import Client
from PIL import Image

from pixelmcp.server.app import build_server

pytestmark = pytest.mark.anyio

QUIET = {"rewrite": False, "verify": False}


def left_half_mask(size=(64, 64)) -> Image.Image:
    mask = Image.new("L", size, 0)
    mask.paste(255, (0, 0, size[0] // 2, size[1]))
    return mask


def image_calls(source: str, mask: str, style: str) -> list[tuple[str, dict]]:
    """One call of every image tool on every path the engine has: each family's text-to-image, image-to-image,
    inpainting (the base UNet, a dedicated one, a mask from words), outpainting, tiles, each ControlNet map,
    both IP-Adapter modes, the cut-out, and the models that read images."""
    calls: list[tuple[str, dict]] = []
    for model in ("tiny-sd15", "tiny-sdxl", "tiny-sd3", "tiny-flux"):
        calls.append(("generate_image", {"prompt": "a lighthouse", "model": model, "seed": 1, **QUIET}))
        calls.append(("edit_image", {"image": source, "prompt": "x", "model": model, "strength": 0.5, "seed": 1,
                                     **QUIET}))
        calls.append(("edit_image", {"image": source, "prompt": "x", "model": model, "mask": mask, "seed": 1,
                                     **QUIET}))
    calls += [
        ("generate_image", {"prompt": "a lighthouse", "seed": 2, "n": 2, "rewrite": True}),  # the LLM, alignment
        ("edit_image", {"image": source, "prompt": "x", "mask_prompt": "the square", "seed": 1, **QUIET}),
        ("extend_image", {"image": source, "prompt": "wider", "left": 16, "seed": 1, **QUIET}),
        ("upscale_image", {"image": source, "seed": 1, "verify": False}),
        ("controlnet_generate", {"prompt": "a", "image": source, "seed": 1, **QUIET}),
        ("controlnet_generate", {"prompt": "a", "image": source, "control_type": "depth", "model": "tiny-sdxl",
                                 "seed": 1, **QUIET}),
        ("controlnet_generate", {"prompt": "a", "image": source, "control_type": "segmentation", "seed": 1,
                                 **QUIET}),
        ("controlnet_generate", {"prompt": "a", "image": source, "control_type": "pose", "seed": 1, **QUIET}),
        ("style_transfer", {"prompt": "a", "style_image": style, "seed": 1, **QUIET}),
        ("style_transfer", {"prompt": "a", "style_image": style, "mode": "subject", "model": "tiny-sdxl", "seed": 1,
                            **QUIET}),
        ("remove_background", {"image": source}),
        ("classify_image", {"image": source, "labels": ["a cat", "a dog"]}),
        ("ask_about_image", {"image": source, "question": "What is shown?", "max_tokens": 4}),
        ("generate_image", {"prompt": "a lighthouse", "seed": 3, **QUIET}),  # the first model again, last
    ]
    return calls


def floating(dtypes: dict[str, int]) -> set[str]:
    """The floating-point dtypes among a model's (integer buffers such as position ids are not cast)."""
    return {name for name in dtypes if "float" in name}


def assert_models_as_loaded(report: dict, dtype: str, after: str) -> None:
    """Every loaded model was loaded in `dtype` and holds exactly the tensors it held then (the odd float32
    buffer a library keeps on purpose, such as rotary frequencies, included), its bytes are what it holds now,
    and the pool never had to cast a model back."""
    assert report["loaded"], after
    for model in report["loaded"]:
        name, dtypes = model["alias"], model["dtypes"]
        assert model["dtype"] == dtype, (after, name, model["dtype"])
        assert dtypes == model["loaded_dtypes"], (after, name, dtypes, model["loaded_dtypes"])
        assert dtypes[dtype] >= 0.9 * sum(size for kind, size in dtypes.items() if kind in floating(dtypes)), \
            (after, name, dtypes)
        assert model["bytes"] == sum(dtypes.values()) > 0, (after, name)
    assert report["stats"]["dtype_repairs"] == 0, after


async def test_every_image_tool_runs_in_bfloat16_and_every_pooled_model_keeps_its_dtype(make_settings):
    server = build_server(make_settings(dtype="bfloat16"))
    source, mask, style = data_uri(shapes()), data_uri(left_half_mask()), data_uri(shapes(offset=12))
    async with Client(server) as client:
        for tool, arguments in image_calls(source, mask, style):
            data = ok(await client.call_tool(tool, arguments))
            after = f"{tool} {arguments.get('model', '')}"
            if "path" in data:
                with Image.open(data["path"]) as made:
                    made.load()
                    assert made.width > 0 and made.height > 0, after
            else:
                assert tool in ("classify_image", "ask_about_image"), after
            assert_models_as_loaded(ok(await client.call_tool("list_models", {})), "bfloat16", after)


async def test_a_deliberate_mix_of_dtypes_survives_every_request(make_settings):
    # In float16, transformers keeps T5's `wo` layers in float32 (`_keep_in_fp32_modules`): FLUX's second text
    # encoder is a mix on purpose. A view that cast the pipeline to one dtype would undo it.
    server = build_server(make_settings(dtype="float16"))
    source = data_uri(shapes())
    async with Client(server) as client:
        ok(await client.call_tool("generate_image", {"prompt": "a", "model": "tiny-flux", "seed": 1, **QUIET}))
        first = {m["alias"]: m for m in ok(await client.call_tool("list_models", {}))["loaded"]}
        assert floating(first["tiny-flux"]["dtypes"]) == {"float16", "float32"}
        for arguments in ({"strength": 0.5}, {"mask": data_uri(left_half_mask())}):
            ok(await client.call_tool("edit_image", {"image": source, "prompt": "x", "model": "tiny-flux", "seed": 1,
                                                     **arguments, **QUIET}))
        ok(await client.call_tool("generate_image", {"prompt": "a", "model": "tiny-flux", "seed": 2, **QUIET}))
        report = ok(await client.call_tool("list_models", {}))
    last = {m["alias"]: m for m in report["loaded"]}
    assert last["tiny-flux"]["dtypes"] == first["tiny-flux"]["dtypes"]
    assert last["tiny-flux"]["bytes"] == first["tiny-flux"]["bytes"]
    assert report["stats"]["dtype_repairs"] == 0


async def test_views_made_with_from_pipe_would_fail_the_lane_and_a_dtype_mismatch_is_explained(make_settings,
                                                                                              monkeypatch):
    # What the engine did before: views made with diffusers' from_pipe, which casts the shared pipeline to float32
    # in place (huggingface/diffusers#12754). The lane must catch it; an inpainting call whose dedicated UNet then
    # disagrees with the cast base must say what failed; and the pool must put the model back.
    import torch

    from pixelmcp.engine import diffusion

    real_view = diffusion.view
    server = build_server(make_settings(dtype="bfloat16"))
    source, mask = data_uri(shapes()), data_uri(left_half_mask())
    async with Client(server) as client:
        monkeypatch.setattr(diffusion, "view", lambda view_class, pipe, **parts: view_class.from_pipe(pipe, **parts))
        ok(await client.call_tool("generate_image", {"prompt": "a", "seed": 1, **QUIET}))
        report = ok(await client.call_tool("list_models", {}))
        assert report["stats"]["dtype_repairs"] == 1  # cast to float32 by the view, cast back by the pool
        with pytest.raises(AssertionError):
            assert_models_as_loaded(report, "bfloat16", "from_pipe")

        def casting_view(view_class, pipe, **parts):  # from_pipe's cast of the shared base, the UNet passed in kept
            pipe.to(dtype=torch.float32)
            return real_view(view_class, pipe, **parts)

        monkeypatch.setattr(diffusion, "view", casting_view)
        failed = await client.call_tool("edit_image", {"image": source, "prompt": "x", "mask": mask, "seed": 1,
                                                       **QUIET})
        text = error_text(failed)
        assert "The work failed inside the model library" in text  # not only "Error executing tool edit_image"
        assert "tiny-sd15+inpaint (bfloat16 on cpu)" in text
        assert "tiny-sd15 (bfloat16 on cpu, holding float32 now)" in text
        assert "must have the same dtype" in text and "PIXELMCP_DTYPE=float32" in text
        assert "StableDiffusionInpaintPipeline" in text  # where it failed
        monkeypatch.setattr(diffusion, "view", real_view)
        again = ok(await client.call_tool("edit_image", {"image": source, "prompt": "x", "mask": mask, "seed": 1,
                                                         **QUIET}))
        assert again["path"]
        report = ok(await client.call_tool("list_models", {}))
    assert report["stats"]["dtype_repairs"] == 2
    assert_models_as_loaded({**report, "stats": {"dtype_repairs": 0}}, "bfloat16", "after the repairs")


async def test_compile_never_makes_a_call_wait_and_warm_shapes_run_compiled(make_settings):
    # PIXELMCP_COMPILE: the first call at a shape runs at once, uncompiled, while that shape compiles in the
    # background; once it is warm, calls at it run compiled (the same picture) and other shapes still run plain.
    # The eager backend traces with dynamo exactly as inductor would, without inductor's C++ build.
    import anyio
    from helpers import assert_same_picture

    server = build_server(make_settings(compile=True, compile_backend="eager", dtype="bfloat16"))
    arguments = {"prompt": "a lighthouse", "seed": 4, **QUIET}
    async with Client(server) as client:
        first = ok(await client.call_tool("generate_image", arguments))
        report = ok(await client.call_tool("list_models", {}))["compile"]
        assert report["backend"] == "eager" and report["compiled_calls"] == 0
        assert report["compiling"] or report["warm"] == [[64, 64, 1, True]]
        with anyio.fail_after(240):
            while report["compiling"]:
                await anyio.sleep(0.2)
                report = ok(await client.call_tool("list_models", {}))["compile"]
        assert report["warm"] == [[64, 64, 1, True]] and report["failed"] == 0
        compiled = ok(await client.call_tool("generate_image", arguments))
        other = ok(await client.call_tool("generate_image", {**arguments, "width": 48}))
        final = ok(await client.call_tool("list_models", {}))
        with anyio.fail_after(240):  # the new shape compiles in the background too
            while final["compile"]["compiling"]:
                await anyio.sleep(0.2)
                final = ok(await client.call_tool("list_models", {}))
        assert final["compile"]["warm"] == [[48, 64, 1, True], [64, 64, 1, True]]
    assert final["compile"]["compiled_calls"] == 1  # the warm shape; 48 px ran plain
    assert_same_picture(first["path"], compiled["path"])
    assert other["width"] == 48
    assert_models_as_loaded(final, "bfloat16", "compiled")
