"""LoRAs per call: tiny LoRAs in diffusers' own file format (engine/tiny.py) on the tiny models, through an MCP client.

What holds by construction is compared exactly: a LoRA at weight 0 adds exactly zero to every layer it wraps, and
requests with different LoRAs never share a pipeline call, so each runs the very call it runs alone.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import anyio
import pytest
from helpers import assert_same_picture, cli_env, data_uri, error_text, ok, pixels, run_cli, shapes
from mcp import Client
from PIL import Image

from pixelmcp.engine.tiny import ensure_built
from pixelmcp.server.app import build_server

pytestmark = pytest.mark.anyio

QUIET = {"rewrite": False, "verify": False}
PLAIN = {"prompt": "a lighthouse", "seed": 3, **QUIET}
A = {"name": "tiny-lora-a", "weight": 1.0}
B = {"name": "tiny-lora-b"}  # its catalog weight: 0.8


def lora_copy(settings, tiny_name: str, folder: Path, file_name: str) -> Path:
    """A tiny LoRA's file copied to `folder/file_name` (a user's own .safetensors)."""
    folder.mkdir(parents=True, exist_ok=True)
    built = ensure_built(tiny_name, settings.tiny_dir) / "pytorch_lora_weights.safetensors"
    return Path(shutil.copyfile(built, folder / file_name))


def loaded(report: dict, alias: str) -> dict:
    return next(m for m in report["loaded"] if m["alias"] == alias)


async def test_a_lora_changes_the_pixels_at_its_weight_and_weight_zero_gives_the_models_own(server):
    async with Client(server) as client:
        plain = ok(await client.call_tool("generate_image", PLAIN))
        full = ok(await client.call_tool("generate_image", {**PLAIN, "loras": [A]}))
        half = ok(await client.call_tool("generate_image", {**PLAIN, "loras": [{**A, "weight": 0.5}]}))
        zero = ok(await client.call_tool("generate_image", {**PLAIN, "loras": [{**A, "weight": 0}]}))
        made = await client.call_tool("generate_image", {**PLAIN, "loras": [A, B]})
        both = ok(made)
    summary = next(block.text for block in made.content if block.type == "text")
    assert summary.startswith("Generated 1 image(s) with tiny-sd15 and LoRAs tiny-lora-a 1, tiny-lora-b 0.8: ")
    assert pixels(zero["path"]) == pixels(plain["path"])  # the adapter adds exactly 0
    assert len({pixels(r["path"]) for r in (plain, full, half, both)}) == 4
    assert plain["loras"] == [] and full["loras"] == [A]
    assert both["loras"] == [A, {"name": "tiny-lora-b", "weight": 0.8}]  # a LoRA's own weight when none is given
    sidecar = json.loads(Path(both["path"]).with_suffix(".json").read_text())
    assert sidecar["params"]["loras"] == both["loras"]
    with Image.open(both["path"]) as png:
        assert png.text["parameters"].splitlines()[0] == "a lighthouse <lora:tiny-lora-a:1.0> <lora:tiny-lora-b:0.8>"
        assert json.loads(png.text["pixelmcp"])["loras"] == both["loras"]


async def test_switching_loras_loads_each_once_and_gives_the_same_pixels_again(server):
    async with Client(server) as client:
        first = ok(await client.call_tool("generate_image", {**PLAIN, "loras": [A]}))
        ok(await client.call_tool("generate_image", {**PLAIN, "loras": [B]}))
        ok(await client.call_tool("generate_image", PLAIN))
        again = ok(await client.call_tool("generate_image", {**PLAIN, "loras": [A]}))
        report = ok(await client.call_tool("list_models", {}))
        listed = ok(await client.call_tool("list_models", {"task": "lora"}))
    assert pixels(again["path"]) == pixels(first["path"])
    assert report["stats"]["lora_loads"] == 2 and report["stats"]["lora_evictions"] == 0  # switched, not reloaded
    assert len(loaded(report, "tiny-sd15")["loras"]) == 2
    entries = {entry["alias"]: entry for entry in listed["catalog"]}
    assert set(entries) == {"tiny-lora-a", "tiny-lora-b", "tiny-lora-xl"}
    assert entries["tiny-lora-b"]["base"] == "sd15" and entries["tiny-lora-b"]["default_weight"] == 0.8
    assert entries["tiny-lora-b"]["trigger_words"] == ["tinyb"]
    assert "controlnet_generate" in entries["tiny-lora-a"]["tools"]


async def test_concurrent_requests_with_different_loras_give_the_pixels_they_give_alone(make_settings):
    # Different LoRA sets never share a pipeline call, and a job sets its adapters on the model it runs alone: the
    # same pixels as each request alone, exactly. Requests with the same set do share one call.
    calls = {"none": PLAIN, "a": {**PLAIN, "loras": [A]}, "b": {**PLAIN, "loras": [{**B, "weight": 0.5}]},
             "a+b": {**PLAIN, "loras": [B, A]}}
    together: dict[str, dict] = {}
    async with Client(build_server(make_settings(batch_window_ms=300))) as client:
        async def one(name: str, arguments: dict) -> None:
            together[name] = ok(await client.call_tool("generate_image", arguments))

        with anyio.fail_after(120):
            async with anyio.create_task_group() as group:
                for name, arguments in calls.items():
                    group.start_soon(one, name, arguments)
                for seed in (11, 12):  # the same LoRA at the same weight: one pipeline call
                    group.start_soon(one, f"seed {seed}", {**PLAIN, "seed": seed, "loras": [{**A, "weight": 0.9}]})
    async with Client(build_server(make_settings(max_batch=1))) as client:
        alone = {name: ok(await client.call_tool("generate_image", arguments)) for name, arguments in calls.items()}
        alone_11 = ok(await client.call_tool("generate_image", {**PLAIN, "seed": 11, "loras": [{**A, "weight": 0.9}]}))
    for name in calls:
        assert together[name]["batch_size"] == 1, name
        assert pixels(together[name]["path"]) == pixels(alone[name]["path"]), name
    assert len({pixels(r["path"]) for r in alone.values()}) == 4
    assert together["seed 11"]["batch_size"] == together["seed 12"]["batch_size"] == 2
    assert_same_picture(together["seed 11"]["path"], alone_11["path"])  # (batched kernels round differently)


async def test_every_local_image_tool_applies_and_records_loras(server):
    source, style = data_uri(shapes()), data_uri(shapes(offset=12))
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (0, 0, 32, 64))
    calls = [
        ("edit_image", {"image": source, "prompt": "x", "strength": 0.6, "seed": 1, **QUIET}),
        ("edit_image", {"image": source, "prompt": "x", "mask": data_uri(mask), "seed": 1, **QUIET}),  # inpaint UNet
        ("extend_image", {"image": source, "prompt": "wider", "right": 16, "seed": 1, **QUIET}),
        ("upscale_image", {"image": source, "seed": 1, "verify": False}),
        ("controlnet_generate", {"prompt": "a", "image": source, "seed": 1, **QUIET}),
        ("style_transfer", {"prompt": "a", "style_image": style, "seed": 1, **QUIET}),
    ]
    async with Client(server) as client:
        for tool, arguments in calls:
            without = ok(await client.call_tool(tool, arguments))
            with_lora = ok(await client.call_tool(tool, {**arguments, "loras": [B]}))
            assert without["loras"] == [] and with_lora["loras"] == [{"name": "tiny-lora-b", "weight": 0.8}], tool
            assert pixels(with_lora["path"]) != pixels(without["path"]), tool
            again = ok(await client.call_tool(tool, arguments))  # the adapters are off again for a call without
            assert pixels(again["path"]) == pixels(without["path"]), tool
        report = ok(await client.call_tool("list_models", {}))
    assert loaded(report, "tiny-sd15+inpaint")["loras"]  # the dedicated inpainting UNet got the LoRA's UNet part
    assert report["stats"]["lora_loads"] == 2  # once into the base pipeline, once into the inpainting UNet


async def test_loras_keep_half_precision(make_settings):
    # Adapters are made in the dtype of the layers they wrap: a bfloat16 model gains only bfloat16 bytes, and the
    # pool never has to cast anything back.
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (0, 0, 32, 64))
    async with Client(build_server(make_settings(dtype="bfloat16"))) as client:
        ok(await client.call_tool("generate_image", {**PLAIN, "loras": [A, B]}))
        ok(await client.call_tool("edit_image", {"image": data_uri(shapes()), "prompt": "x", "mask": data_uri(mask),
                                                 "seed": 1, "loras": [A], **QUIET}))
        ok(await client.call_tool("generate_image", {**PLAIN, "model": "tiny-sdxl", "loras": [{"name": "tiny-lora-xl"}]}))
        report = ok(await client.call_tool("list_models", {}))
    assert report["stats"]["dtype_repairs"] == 0
    for alias in ("tiny-sd15", "tiny-sd15+inpaint", "tiny-sdxl"):
        model = loaded(report, alias)
        assert model["dtype"] == "bfloat16" and model["loras"], alias
        grown = {dtype for dtype, size in model["dtypes"].items() if size != model["loaded_dtypes"].get(dtype)}
        assert grown == {"bfloat16"}, (alias, model["dtypes"], model["loaded_dtypes"])
        assert model["bytes"] == sum(model["dtypes"].values())  # the adapters are counted in the model's memory


async def test_a_lora_for_another_family_is_refused_naming_both(make_settings, tmp_path):
    settings = make_settings()
    mine = lora_copy(settings, "sd15-lora-a", tmp_path / "mine", "portrait.safetensors")  # in the working folder
    async with Client(build_server(settings)) as client:
        message = error_text(await client.call_tool("generate_image", {**PLAIN, "model": "tiny-sdxl", "loras": [A]}))
        assert "Invalid loras='tiny-lora-a'" in message
        assert "trained for SD 1.5 (sd15), and model 'tiny-sdxl' is SDXL (sdxl)" in message
        assert "tiny-lora-xl" in message  # the fix names a LoRA that fits
        # A file's header does not always say its family (tiny widths are no real model's): it is checked on load.
        message = error_text(await client.call_tool("generate_image", {**PLAIN, "model": "tiny-sdxl",
                                                                       "loras": [{"name": str(mine)}]}))
        assert f"Invalid loras={str(mine.resolve())!r}: does not fit model 'tiny-sdxl'" in message
        assert "has shape [4, 32] where the model's has [4, 64]" in message
        plain = ok(await client.call_tool("generate_image", {**PLAIN, "model": "tiny-sdxl"}))  # nothing left behind
        report = ok(await client.call_tool("list_models", {}))
        fits = ok(await client.call_tool("generate_image", {**PLAIN, "loras": [{"name": str(mine), "weight": 0.7}]}))
    assert loaded(report, "tiny-sdxl")["loras"] == [] and report["stats"]["lora_loads"] == 0
    assert plain["loras"] == [] and fits["loras"] == [{"name": str(mine.resolve()), "weight": 0.7}]


async def test_lora_files_by_name_in_lora_dirs_or_by_path_and_the_refusals(make_settings, tmp_path):
    settings = make_settings(lora_dirs=[tmp_path / "loras"])
    lora_copy(settings, "sd15-lora-b", tmp_path / "loras", "watercolour.safetensors")
    outside = lora_copy(settings, "sd15-lora-a", tmp_path.parent / f"{tmp_path.name}-elsewhere", "x.safetensors")
    (tmp_path / "notes.txt").write_text("not a LoRA")
    async with Client(build_server(settings)) as client:
        by_name = ok(await client.call_tool("generate_image", {**PLAIN, "loras": [{"name": "watercolour"}]}))
        listed = ok(await client.call_tool("list_models", {"task": "lora"}))
        refusals = {
            "outside": [{"name": str(outside)}],
            "not safetensors": [{"name": str(tmp_path / "notes.txt")}],
            "missing": [{"name": str(tmp_path / "gone.safetensors")}],
            "unknown": [{"name": "sparkles"}],
            "not a lora": [{"name": "tiny-clip"}],
            "twice": [A, {**A, "weight": 0.5}],
            "too many": [A, B, {"name": "watercolour"}, {"name": "tiny-lora-a"}, {"name": "tiny-lora-b"}],
            "weight": [{**A, "weight": 9}],
            "nan": [{**A, "weight": "NaN"}],
        }
        messages = {name: error_text(await client.call_tool("generate_image", {**PLAIN, "loras": loras}))
                    for name, loras in refusals.items()}
    assert by_name["loras"] == [{"name": "watercolour", "weight": 1.0}]
    assert "watercolour" in {entry["alias"] for entry in listed["catalog"]}
    assert "is outside the folders this server may read" in messages["outside"] and "PIXELMCP_LORA_DIRS" in \
        messages["outside"]
    assert "is not a LoRA this server knows" in messages["not safetensors"]
    assert "no such file" in messages["missing"]
    assert "Use one of tiny-lora-a, tiny-lora-b, tiny-lora-xl, watercolour" in messages["unknown"]
    assert "is the clip model 'tiny-clip', not a LoRA" in messages["not a lora"]
    assert "is given twice" in messages["twice"]
    assert "stacks 5 LoRAs, over the limit of 4" in messages["too many"]
    assert messages["weight"].endswith("Invalid loras[0].weight=9: out of range; accepted: -4..4. Pass "
                                       "loras[0].weight within -4..4, or omit it for its default.")
    assert "loras[0].weight" in messages["nan"] and "not a finite number" in messages["nan"]


async def test_a_provider_model_refuses_loras(openai_settings):
    async with Client(build_server(openai_settings())) as client:
        message = error_text(await client.call_tool("generate_image", {"prompt": "a", "model": "openai:gpt-image-1",
                                                                       "loras": [A], "rewrite": False}))
    assert "model 'openai:gpt-image-1' is served by openai, and LoRAs run on local diffusion models only" in message


async def test_each_model_keeps_at_most_lora_cache_adapters(make_settings):
    async with Client(build_server(make_settings(lora_cache=1))) as client:
        first = ok(await client.call_tool("generate_image", {**PLAIN, "loras": [A]}))
        ok(await client.call_tool("generate_image", {**PLAIN, "loras": [B]}))
        middle = ok(await client.call_tool("list_models", {}))
        again = ok(await client.call_tool("generate_image", {**PLAIN, "loras": [A]}))
        both = ok(await client.call_tool("generate_image", {**PLAIN, "loras": [A, B]}))  # a call's own always stay
        report = ok(await client.call_tool("list_models", {}))
    assert len(loaded(middle, "tiny-sd15")["loras"]) == 1 and middle["stats"]["lora_evictions"] == 1
    assert pixels(again["path"]) == pixels(first["path"])
    assert report["stats"]["lora_loads"] == 4 and both["loras"] == [A, {"name": "tiny-lora-b", "weight": 0.8}]


async def test_variations_and_sweeps_carry_the_loras(server):
    async with Client(server) as client:
        parent = ok(await client.call_tool("generate_image", {**PLAIN, "loras": [{**A, "weight": 0.6}]}))
        varied = ok(await client.call_tool("vary_image", {"image": parent["uri"], "n": 1, "seed": 5, "verify": False}))
        swept = ok(await client.call_tool("generate_image", {**PLAIN, "loras": [{"name": "tiny-lora-a"}],
                                                             "sweep_lora_weight": [0, 0.5, 1]}))
        plain = ok(await client.call_tool("generate_image", PLAIN))
        without = error_text(await client.call_tool("generate_image", {**PLAIN, "sweep_lora_weight": [0, 1]}))
        given = error_text(await client.call_tool("generate_image", {**PLAIN, "loras": [A],
                                                                     "sweep_lora_weight": [0, 1]}))
    assert varied["loras"] == [{"name": "tiny-lora-a", "weight": 0.6}]
    assert swept["axes"] == {"lora_weight": [0, 0.5, 1]}
    assert [cell["values"] for cell in swept["cells"]] == [{"lora_weight": w} for w in (0, 0.5, 1)]
    weights = [json.loads(Path(cell["image"]["path"]).with_suffix(".json").read_text())["params"]["loras"][0]["weight"]
               for cell in swept["cells"]]
    assert weights == [0, 0.5, 1]
    paths = [cell["image"]["path"] for cell in swept["cells"]]
    assert pixels(paths[0]) == pixels(plain["path"])  # weight 0 is the model's own picture
    assert len({pixels(path) for path in paths}) == 3
    assert "sweeps the weight of one LoRA, and loras has 0" in without
    assert "Invalid loras[0].weight=1.0: was given together with sweep_lora_weight" in given


def test_generate_takes_lora_flags_and_from_replays_them(tmp_path, tiny_cache):
    env = cli_env(tiny_cache, tmp_path)
    made = run_cli(["generate", "a lighthouse", "--seed", "3", "--no-rewrite", "--no-verify", "--lora",
                    "tiny-lora-a:0.5", "--lora", "tiny-lora-b", "--json"], env, tmp_path)
    assert made.returncode == 0, made.stderr[-2000:]
    first = json.loads(made.stdout)
    assert first["loras"] == [{"name": "tiny-lora-a", "weight": 0.5}, {"name": "tiny-lora-b", "weight": 0.8}]
    replayed = run_cli(["generate", "--from", first["id"], "--json"], env, tmp_path)
    assert replayed.returncode == 0, replayed.stderr[-2000:]
    second = json.loads(replayed.stdout)
    assert second["loras"] == first["loras"] and second["id"] != first["id"]
    assert pixels(second["path"]) == pixels(first["path"])
    bad = run_cli(["generate", "a", "--lora", "tiny-lora-a:nan"], env, tmp_path)
    assert bad.returncode == 2 and "--lora takes a finite number, not 'nan'" in bad.stderr


def header_only(path: Path, shapes: dict[str, list[int]]) -> Path:
    """A .safetensors file's header (what the family guess reads) for tensors of these shapes."""
    header, offset = {}, 0
    for key, shape in shapes.items():
        size = 2 * shape[0] * shape[1]
        header[key] = {"dtype": "F16", "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    data = json.dumps(header).encode()
    path.write_bytes(len(data).to_bytes(8, "little") + data + b"\0" * offset)
    return path


def test_a_lora_files_family_is_read_from_its_header(tmp_path):
    from pixelmcp.engine.loras import guess_family

    attn = "unet.down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.lora_A.weight"
    kohya = "lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn2_to_k.lora_down.weight"
    cases = {
        "sd15": {attn: [8, 768]},
        "sdxl": {kohya: [8, 2048]},
        "sdxl ": {"lora_te2_text_model_encoder_layers_0_mlp_fc1.lora_down.weight": [8, 1280]},
        "flux": {"transformer.single_transformer_blocks.0.attn.to_q.lora_A.weight": [16, 3072]},
        "sd3": {"transformer.joint_blocks.0.context_block.attn.qkv.lora_A.weight": [16, 1536]},
        None: {attn: [8, 32]},  # a width no real model has (the tiny ones): checked when it loads
    }
    for index, (family, tensors) in enumerate(cases.items()):
        path = header_only(tmp_path / f"{index}.safetensors", tensors)
        assert guess_family(path) == (family.strip() if family else None), tensors
    (tmp_path / "broken.safetensors").write_bytes(b"not a safetensors file")
    assert guess_family(tmp_path / "broken.safetensors") is None


async def test_a_lora_added_in_the_config_file_is_listed_and_applied(make_settings, tmp_path):
    settings = make_settings()
    folder = tmp_path / "my-style"
    lora_copy(settings, "sd15-lora-a", folder, "my_style.safetensors")
    settings = make_settings(models={"my-style": {"kind": "lora", "source": str(folder), "base": "sd15",
                                                  "weight_name": "my_style.safetensors", "default_weight": 0.7,
                                                  "trigger_words": ["mystyle"]}})
    async with Client(build_server(settings)) as client:
        listed = ok(await client.call_tool("list_models", {"task": "lora"}))
        made = ok(await client.call_tool("generate_image", {**PLAIN, "loras": [{"name": "my-style"}]}))
        refused = error_text(await client.call_tool("generate_image", {**PLAIN, "model": "tiny-sdxl",
                                                                       "loras": [{"name": "my-style"}]}))
    entry = next(e for e in listed["catalog"] if e["alias"] == "my-style")
    assert entry["base"] == "sd15" and entry["trigger_words"] == ["mystyle"] and entry["source"] == str(folder)
    assert made["loras"] == [{"name": "my-style", "weight": 0.7}]
    assert "was trained for SD 1.5 (sd15)" in refused


def test_the_readmes_family_refusal_is_the_one_users_get(make_settings):
    from pixelmcp.errors import InvalidArgument
    from pixelmcp.service.loras import LoraChoice, resolve_loras

    settings = make_settings(profile="default")
    with pytest.raises(InvalidArgument) as refused:
        resolve_loras(settings, settings.catalog["sd15"], [LoraChoice(name="pixel-art-xl")])
    readme = " ".join((Path(__file__).parents[1] / "README.md").read_text().split())
    assert " ".join(str(refused.value).split()) in readme


def test_the_models_command_lists_lora_files_with_their_own_size(tmp_path, tiny_cache, make_settings):
    copied = lora_copy(make_settings(), "sd15-lora-a", tmp_path / "loras", "ink.safetensors")
    (tmp_path / "loras" / "notes.bin").write_bytes(b"\0" * 4096)  # the folder's other files are not the LoRA's
    env = {**cli_env(tiny_cache, tmp_path), "PIXELMCP_LORA_DIRS": json.dumps([str(tmp_path / "loras")])}
    out = run_cli(["models", "--json"], env, tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    rows = {row["alias"]: row for row in json.loads(out.stdout)}
    assert rows["ink"]["task"] == "lora" and rows["ink"]["cached"] is True
    assert rows["ink"]["bytes_on_disk"] == copied.stat().st_size
    assert rows["tiny-lora-a"]["task"] == "lora"
