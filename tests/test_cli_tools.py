"""The CLI for people: tool commands, --json, --from, models, pull, doctor, config, prompts."""

from __future__ import annotations

import json
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from helpers import cli_env, run_cli
from mcp import Client
from PIL import Image


@pytest.fixture
def cli(tiny_cache, tmp_path):
    """`pixelmcp ARGS` as a user types it, in this process (tests/helpers.py `run_cli`)."""
    env = cli_env(tiny_cache, tmp_path)

    def run(*args: str, check: bool = True, **extra_env) -> subprocess.CompletedProcess:
        out = run_cli(args, {**env, **extra_env}, tmp_path)
        if check:
            assert out.returncode == 0, out.stderr[-3000:]
        return out

    return run


@pytest.fixture
def cli_process(tiny_cache, tmp_path):
    """`pixelmcp ARGS` in a process of its own, as the console script starts (for what only a process shows)."""
    env = cli_env(tiny_cache, tmp_path)

    def run(*args: str, check: bool = True, **extra_env) -> subprocess.CompletedProcess:
        out = subprocess.run([sys.executable, "-m", "pixelmcp.cli", *args], capture_output=True, text=True,
                             timeout=300, cwd=tmp_path, env={**env, **extra_env}, check=False)
        if check:
            assert out.returncode == 0, out.stderr[-3000:]
        return out

    return run


def pixels(path: Path) -> bytes:
    with Image.open(path) as image:
        return image.convert("RGB").tobytes()


def test_generate_saves_the_image_and_prints_json(cli_process, tmp_path):
    out = cli_process("generate", "a red kite", "--seed", "3", "--steps", "2", "--no-rewrite", "-o", "kite.png",
                      "--json")
    data = json.loads(out.stdout)
    assert data["seed"] == 3 and data["steps"] == 2 and data["saved"] == ["kite.png"]
    assert pixels(tmp_path / "kite.png") == pixels(Path(data["path"]))
    assert out.stderr.count("INFO") == 0  # a terminal command prints the result, not the server's logs


def test_a_sweep_from_the_command_line_saves_every_cell_and_a_cell_is_made_again_alone(cli, tmp_path):
    data = json.loads(cli("generate", "a kite", "--sweep-steps", "2", "3", "--seed", "4", "--no-rewrite",
                          "-o", "kite.png", "--json").stdout)
    assert data["axes"] == {"steps": [2, 3]} and data["saved"] == ["kite-1.png", "kite-2.png"]
    again = json.loads(cli("generate", "--from", "kite-2.png", "--json").stdout)
    assert again["steps"] == 3 and pixels(Path(again["path"])) == pixels(tmp_path / "kite-2.png")


def test_generate_from_a_png_or_an_id_gives_the_same_pixels(cli, tmp_path):
    first = json.loads(cli("generate", "a lantern", "--seed", "9", "-o", "first.png", "--json").stdout)
    assert first["revised_prompt"]  # rewritten: --from must reuse the revised prompt
    by_png = json.loads(cli("generate", "--from", "first.png", "--json").stdout)
    by_id = json.loads(cli("generate", "--from", first["uri"], "--json").stdout)
    for again in (by_png, by_id):
        assert pixels(Path(again["path"])) == pixels(tmp_path / "first.png")
        assert again["prompt"] == first["prompt"] and again["revised_prompt"] == first["revised_prompt"]
        assert again["seed"] == 9 and again["rewriter"] == "given"  # the user's words kept, the model's prompt reused


def test_from_remakes_image_i_of_an_n_image_call_exactly_by_replaying_the_call(cli, tmp_path):
    first = json.loads(cli("generate", "a kite", "--seed", "20", "--n", "3", "--no-rewrite", "-o", "k.png",
                           "--json").stdout)
    second = first["images"][1]
    again = json.loads(cli("generate", "--from", second["uri"], "-o", "again.png", "--json").stdout)
    assert again["reproduced"]["seed"] == again["seed"] == 21 and len(again["images"]) == 3
    assert pixels(Path(again["path"])) == pixels(Path(second["path"]))  # the same batch: bit for bit
    assert pixels(tmp_path / "again.png") == pixels(tmp_path / "k-2.png") and again["saved"] == ["again.png"]
    human = cli("generate", "--from", "k-3.png").stdout
    assert "Reproduced: image 3 of this 3-image call" in human


def test_from_says_when_an_image_shared_its_batch_with_other_requests(cli, tmp_path):
    made = json.loads(cli("generate", "a kite", "--seed", "2", "--no-rewrite", "--json").stdout)
    sidecar = Path(made["path"]).with_suffix(".json")
    record = json.loads(sidecar.read_text())
    record["params"]["batch_size"] = 3  # as if two other clients' requests had joined its pipeline call
    sidecar.write_text(json.dumps(record))
    out = cli("generate", "--from", made["id"])
    assert "note: it was made in one pipeline call with 2 other request(s)" in out.stderr


@pytest.mark.parametrize("damage", ["truncated", "text chunk over the limit", "not json"])
def test_from_refuses_an_unreadable_png_with_the_arguments_error(cli, tmp_path, damage):
    from test_input_decoding import png_with_chunk

    source = tmp_path / "made.png"
    if damage == "truncated":
        cli("generate", "a kite", "--seed", "2", "--no-rewrite", "-o", "made.png")
        source.write_bytes(source.read_bytes()[:200])
    elif damage == "text chunk over the limit":
        source.write_bytes(png_with_chunk(b"zTXt", b"pixelmcp\x00\x00" + zlib.compress(b"x" * (2 << 20))))
    else:
        source.write_bytes(png_with_chunk(b"tEXt", b"pixelmcp\x00{not json"))
    out = cli("generate", "--from", "made.png", check=False)
    assert out.returncode == 2 and "Invalid --from='made.png'" in out.stderr and "Traceback" not in out.stderr


def test_from_refuses_files_without_parameters(cli, tmp_path):
    Image.new("RGB", (8, 8)).save(tmp_path / "plain.png")
    out = cli("generate", "--from", "plain.png", check=False)
    assert out.returncode == 2 and "no pixelmcp parameters" in out.stderr and "Traceback" not in out.stderr


def test_tool_errors_exit_non_zero_with_the_tools_message(cli_process):
    out = cli_process("generate", "a", "--width", "65", check=False)
    assert out.returncode == 1
    assert "Invalid width=65: not a multiple of 8" in out.stderr and "Traceback" not in out.stderr


def test_understanding_commands_on_a_generated_image(cli, tmp_path):
    cli("generate", "a cat", "--seed", "1", "--no-rewrite", "-o", "cat.png")
    labels = json.loads(cli("classify", "cat.png", "cat", "dog", "--json").stdout)
    answer = json.loads(cli("ask", "cat.png", "What is it?", "--max-tokens", "6", "--json").stdout)
    compared = json.loads(cli("compare", "cat.png", "cat.png", "--no-check-claims", "--json").stdout)
    human = cli("classify", "cat.png", "cat", "dog").stdout
    assert labels["results"][0]["top_label"] in {"cat", "dog"}
    assert answer["tokens_generated"] > 0 and answer["claim_check"]["note"].startswith("A check, not a proof")
    assert compared["pairs"][0]["ssim"] == 1.0 and compared["claim_check"] is None
    assert "softmax" in human and "cat" in human


def test_control_and_style_commands_and_their_reproduction(cli, tmp_path):
    cli("generate", "a cat", "--seed", "1", "--no-rewrite", "-o", "cat.png")
    control = json.loads(cli("control", "a dog", "cat.png", "--control-type", "pose", "--person-threshold", "0.4",
                             "--keypoint-threshold", "0.2", "--seed", "2", "-o", "dog.png", "--json").stdout)
    style = json.loads(cli("style", "a fox", "cat.png", "--image", "cat.png", "--seed", "4", "-o", "fox.png",
                           "--json").stdout)
    assert control["control_map"]["uri"].startswith("pixelmcp://") and style["control_map"] is not None
    assert control["control_type"] == "pose" and control["people"] >= 1
    for saved in ("dog.png", "fox.png"):
        again = json.loads(cli("generate", "--from", saved, "--json").stdout)
        assert pixels(Path(again["path"])) == pixels(tmp_path / saved)


def test_models_lists_cache_state_as_json_and_as_a_table(cli):
    rows = {row["alias"]: row for row in json.loads(cli("models", "--json").stdout)}
    assert rows["tiny-sd15"]["cached"] is True and rows["tiny-sd15"]["bytes_on_disk"] > 0
    assert rows["tiny-sd15"]["controlnets"] == ["canny", "depth", "pose", "segmentation"]
    lines = {line.split()[0]: line for line in cli("models").stdout.splitlines() if line.startswith("  ")}
    assert " built " in lines["tiny-sd15"] and " MB" in lines["tiny-sd15"]  # (tiny models are built, not fetched)
    assert "not downloaded" not in "".join(lines.values())


def test_pull_builds_tiny_models_and_explains_an_unreachable_hub(cli):
    built = cli("pull", "tiny-clip")
    assert "tiny-clip: building" in built.stdout
    offline = cli("pull", "sd15", check=False, PIXELMCP_PROFILE="default")
    assert offline.returncode == 1
    assert "cannot be reached" in offline.stdout and "HF_HUB_OFFLINE" in offline.stdout
    unknown = cli("pull", "nope", check=False)
    assert unknown.returncode == 2 and "pixelmcp models" in unknown.stderr


def test_doctor_on_a_machine_without_gpu_or_keys(cli):
    out = cli("doctor", "--json", OPENAI_API_KEY="sk-secret-value")
    checks = {c["name"]: c for c in json.loads(out.stdout)}
    assert checks["python"]["status"] == "ok" and checks["torch"]["status"] == "ok"
    assert checks["gpu"]["status"] == "warn" and "CPU" in checks["gpu"]["detail"]
    assert checks["output folder"]["status"] == "ok"
    assert checks["provider openai"]["status"] == "ok" and "sk-secret-value" not in out.stdout
    assert "OPENAI_API_KEY is set" in checks["provider openai"]["detail"]
    assert checks["provider gemini"]["status"] == "info" and "GEMINI_API_KEY" in checks["provider gemini"]["fix"]
    assert checks["key huggingface"]["status"] == "info"
    human = cli("doctor")
    assert "fix:" in human.stdout and "1 warning, 0 failures" in human.stdout
    assert "PIXELMCP_PROFILE=tiny" not in human.stdout  # (it is the tiny profile already)


def test_doctor_fails_when_the_config_names_a_provider_that_is_not_ready_or_a_model_of_the_wrong_kind(cli):
    from fake_providers import FakeEngine

    with FakeEngine() as engine:
        endpoints = {"gpu": {"base_urls": [f"http://127.0.0.1:{engine.port}/v1", "http://127.0.0.1:9/v1"],
                             "serves": ["images"], "engine": "sglang"}}
        out = cli("doctor", "--json", check=False, PIXELMCP_GENERATE_MODEL="gemini:gemini-2.5-flash-image",
                  GEMINI_API_KEY="", GOOGLE_API_KEY="", PIXELMCP_POSE_MODEL="tiny-depth",
                  PIXELMCP_ENDPOINTS=json.dumps(endpoints))
    checks = {c["name"]: c for c in json.loads(out.stdout)}
    # An endpoint with one of its two servers down: a warning naming the one that does not answer.
    assert checks["endpoint gpu"]["status"] == "warn" and "1 of 2 server(s) answer" in checks["endpoint gpu"]["detail"]
    assert "127.0.0.1:9" in checks["endpoint gpu"]["detail"] and "sglang" in checks["endpoint gpu"]["detail"]
    assert checks["config uses gemini"]["status"] == "fail"
    assert "GEMINI_API_KEY or GOOGLE_API_KEY" in checks["config uses gemini"]["fix"]
    assert checks["model for pose"]["status"] == "fail" and "PIXELMCP_POSE_MODEL" in checks["model for pose"]["fix"]
    assert checks["model for depth"]["status"] == checks["model for segmentation"]["status"] == "ok"


def test_doctor_fails_on_an_unwritable_output_folder(cli, tmp_path):
    blocker = tmp_path / "file-not-folder"
    blocker.write_text("x")
    out = cli("doctor", check=False, PIXELMCP_OUTPUT_DIR=str(blocker / "sub"))
    assert out.returncode == 1 and "[FAIL] output folder" in out.stdout


@pytest.mark.parametrize("client", ["claude-desktop", "cursor", "vscode"])
def test_config_snippets_are_valid_json_with_an_absolute_command(cli, client):
    out = cli("config", client, "--profile", "tiny")
    data = json.loads(out.stdout)
    server = data["servers" if client == "vscode" else "mcpServers"]["pixelmcp"]
    assert Path(server["command"]).is_absolute() and server["args"] == ["serve"]
    assert server["env"] == {"PIXELMCP_PROFILE": "tiny"}
    assert client.split("-")[0] in out.stderr.lower() or ".json" in out.stderr


def test_config_for_claude_code_is_a_command_line(cli):
    out = cli("config", "claude-code", "--env", "PIXELMCP_PROFILE=tiny")
    assert out.stdout.startswith("claude mcp add pixelmcp -e PIXELMCP_PROFILE=tiny -- /")
    assert out.stdout.rstrip().endswith(" serve")


@pytest.mark.anyio
async def test_prompt_templates_are_listed_and_name_the_tools_to_use(server):
    async with Client(server) as client:
        prompts = {p.name: p for p in (await client.list_prompts()).prompts}
        sheet = await client.get_prompt("character_sheet", {"character": "a robot knight",
                                                             "reference_image": "pixelmcp://images/x"})
        shot = await client.get_prompt("product_shot", {"product": "a ceramic mug"})
        loop = await client.get_prompt("refine_loop", {"goal": "a sharper logo", "rounds": "2"})
    assert set(prompts) == {"product_shot", "character_sheet", "refine_loop"}
    text = sheet.messages[0].content.text
    assert "robot knight" in text and "style_transfer" in text and "mode='subject'" in text
    assert "pixelmcp://images/x" in text
    assert "a ceramic mug" in shot.messages[0].content.text and "compare_images" in shot.messages[0].content.text
    assert "up to 2 times" in loop.messages[0].content.text


@pytest.mark.anyio
async def test_models_shows_what_a_running_server_has_loaded(cli, tiny_cache, tmp_path):
    from test_e2e import start_http

    process, port = await start_http(tiny_cache, tmp_path)
    url = f"http://127.0.0.1:{port}/mcp"
    try:
        async with Client(url) as client:
            await client.call_tool("generate_image", {"prompt": "a", "rewrite": False})
        # This machine's profile is not the server's: the server's catalog is what is listed.
        report = json.loads(cli("models", "--json", "--server", url, "--profile", "default").stdout)
        text = cli("--profile", "default", "models", "--server", url).stdout
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert report["profile"] == "tiny" and "tiny-sdxl" in {entry["alias"] for entry in report["catalog"]}
    assert sorted(entry["alias"] for entry in report["loaded"]) == ["tiny-clip", "tiny-sd15"]  # (CLIP: alignment)
    assert "profile tiny" in text and "loaded on cpu" in text and "sdxl-turbo" not in text


def test_edit_extend_upscale_and_cutout_commands_chain_and_reproduce(cli, tmp_path):
    cli("generate", "a cat", "--seed", "1", "--no-rewrite", "-o", "cat.png")
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (0, 0, 32, 64))
    mask.save(tmp_path / "mask.png")
    edited = json.loads(cli("edit", "cat.png", "a dog", "--mask", "mask.png", "--seed", "2", "-o", "dog.png",
                            "--json").stdout)
    wider = json.loads(cli("extend", edited["uri"], "a garden", "--right", "24", "--seed", "4", "-o", "wide.png",
                           "--json").stdout)
    bigger = json.loads(cli("upscale", wider["uri"], "--seed", "5", "--steps", "4", "-o", "big.png", "--json").stdout)
    cut = cli("cutout", bigger["uri"], "--subject", "the fox", "-o", "fox.png")
    assert edited["mode"] == "inpaint"
    assert (wider["width"], wider["height"]) == (88, 64) and (bigger["width"], bigger["height"]) == (176, 128)
    with Image.open(tmp_path / "fox.png") as fox:
        assert fox.mode == "RGBA" and fox.size == (176, 128)
    assert "saved fox.png" in cut.stdout and "RGBA" in cut.stdout
    assert "torchvision" not in cut.stderr and "warn" not in cut.stderr.lower()  # the libraries stay quiet
    # Each edit is made again from its stored parameters: the stored input, the mask used, the seed.
    for saved in ("big.png",):  # (the last of the chain: its input is the stored extend, whose input the edit)
        again = json.loads(cli("generate", "--from", saved, "--json").stdout)
        assert pixels(Path(again["path"])) == pixels(tmp_path / saved), saved
    # A variation of the edit, image 2 of 2, is made again exactly from its stored seed and parent.
    varied = json.loads(cli("vary", edited["uri"], "--n", "2", "--seed", "8", "--strength", "0.5", "--json").stdout)
    assert varied["source_image"]["uri"] == edited["uri"] and varied["strength"] == 0.5
    again = json.loads(cli("generate", "--from", varied["images"][1]["uri"], "--json").stdout)
    assert pixels(Path(again["path"])) == pixels(Path(varied["images"][1]["path"]))
