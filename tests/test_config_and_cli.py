"""Settings, the catalog, and the `pixelmcp` command."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from pydantic import ValidationError

from pixelmcp.cli.serve import is_loopback
from pixelmcp.config import load_settings


def test_environment_variables_configure_settings(monkeypatch, tmp_path):
    monkeypatch.setenv("PIXELMCP_PROFILE", "tiny")
    monkeypatch.setenv("PIXELMCP_OUTPUT_DIR", str(tmp_path / "imgs"))
    monkeypatch.setenv("PIXELMCP_PREVIEW_MAX_SIDE", "512")
    settings = load_settings()
    assert settings.profile == "tiny" and settings.output_dir == tmp_path / "imgs"
    assert settings.preview_max_side == 512
    assert "tiny-sd15" in settings.catalog and "sdxl" not in settings.catalog


def test_toml_file_points_an_alias_at_a_local_folder_and_adds_a_model(monkeypatch, tmp_path):
    toml = tmp_path / "pixelmcp.toml"
    toml.write_text(
        'preview_format = "jpeg"\n'
        '[models.sdxl]\nsource = "/models/sdxl"\n'
        '[models.my-anime]\nsource = "/models/anime"\nkind = "sd15"\ndefault_steps = 20\n'
        '[models.my-flux]\nsource = "/models/flux"\nkind = "flux"\nlicence = "Apache-2.0"\n'
    )
    monkeypatch.setenv("PIXELMCP_CONFIG", str(toml))
    monkeypatch.setenv("PIXELMCP_PREVIEW_FORMAT", "webp")  # the environment wins over the file
    settings = load_settings()
    assert settings.preview_format == "webp"
    assert settings.catalog["sdxl"].source == "/models/sdxl" and settings.catalog["sdxl"].kind == "sdxl"
    anime = settings.catalog["my-anime"]
    assert (anime.kind, anime.default_steps, anime.default_width) == ("sd15", 20, 512)  # SD 1.5's size, not SDXL's
    flux = settings.catalog["my-flux"]  # a new model gets its family's facts, not SD's
    assert (flux.multiple_of, flux.negative_prompt, flux.default_guidance) == (16, False, 3.5)
    assert flux.licence == "Apache-2.0"


def test_a_new_model_without_kind_is_a_clear_configuration_error(monkeypatch):
    monkeypatch.delenv("PIXELMCP_CONFIG", raising=False)
    with pytest.raises(ValidationError, match="needs kind"):
        load_settings(models={"mine": {"source": "/x"}})


def test_a_default_model_outside_the_catalog_is_refused():
    with pytest.raises(ValidationError, match="not in the tiny catalog"):
        load_settings(profile="tiny", generate_model="sdxl")


@pytest.mark.parametrize("where", [{}, {"base_url": "http://a/v1", "base_urls": ["http://b/v1"]}])
def test_an_endpoint_needs_one_address_or_a_list_of_replicas(where):
    with pytest.raises(ValidationError, match="base_url .one server. or base_urls .replicas."):
        load_settings(profile="tiny", endpoints={"gpu": where})
    replicas = load_settings(profile="tiny", endpoints={"gpu": {"base_urls": ["http://a/v1", "http://b/v1"]}})
    assert replicas.endpoints["gpu"].urls == ("http://a/v1", "http://b/v1")


def test_a_missing_config_file_is_named(monkeypatch, tmp_path):
    monkeypatch.setenv("PIXELMCP_CONFIG", str(tmp_path / "missing.toml"))
    with pytest.raises(ValueError, match="missing.toml"):
        load_settings()


def run_cli(*args: str, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("PIXELMCP_")}
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "pixelmcp.cli", *args], capture_output=True, text=True,
                          timeout=60, env=env, check=False)


def test_models_command_lists_the_catalog_as_json():
    out = run_cli("models", "--profile", "tiny", "--json")
    assert out.returncode == 0, out.stderr
    aliases = {entry["alias"]: entry["task"] for entry in json.loads(out.stdout)}
    assert aliases == {"tiny-sd15": "generate", "tiny-sdxl": "generate", "tiny-sd3": "generate",
                       "tiny-flux": "generate", "tiny-llm": "rewrite", "tiny-depth": "preprocess",
                       "tiny-upernet": "preprocess", "tiny-vitpose": "preprocess",
                       "tiny-clip": "classify", "tiny-siglip": "classify", "tiny-qwen2-vl": "answer",
                       "tiny-qwen2.5-vl": "answer", "tiny-llava": "answer", "tiny-llava-next": "answer",
                       "tiny-idefics3": "answer", "tiny-internvl": "answer", "tiny-clipseg": "segment",
                       "tiny-lora-a": "lora", "tiny-lora-b": "lora", "tiny-lora-xl": "lora"}


def test_models_command_prints_a_table_for_people():
    out = run_cli("models")
    assert out.returncode == 0 and "flux-schnell" in out.stdout and "black-forest-labs/FLUX.1-schnell" in out.stdout


def test_serve_refuses_a_non_loopback_address_without_the_insecure_flag():
    out = run_cli("serve", "--transport", "http", "--host", "0.0.0.0", "--profile", "tiny")
    assert out.returncode != 0
    assert "refusing to bind 0.0.0.0" in out.stderr and "--insecure-allow-remote" in out.stderr
    assert out.stdout == ""


def test_a_bad_setting_exits_with_a_message_not_a_traceback():
    out = run_cli("models", env_extra={"PIXELMCP_PREVIEW_MAX_SIDE": "tiny"})
    assert out.returncode != 0 and "preview_max_side" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.parametrize(("host", "loopback"), [("127.0.0.1", True), ("localhost", True), ("::1", True),
                                                ("[::1]", True), ("0.0.0.0", False), ("192.168.1.5", False)])
def test_loopback_detection(host, loopback):
    assert is_loopback(host) is loopback


@pytest.mark.parametrize("start", ["root", "home"])
def test_the_working_directory_is_not_readable_when_it_is_root_or_home(monkeypatch, tmp_path, start):
    from pathlib import Path

    folder = Path("/") if start == "root" else Path.home()
    monkeypatch.chdir(folder)
    settings = load_settings(output_dir=tmp_path / "out")
    assert folder.resolve() not in settings.read_roots()
    assert (tmp_path / "out").resolve() in settings.read_roots()


def test_a_project_working_directory_is_readable(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    assert tmp_path.resolve() in load_settings(output_dir=tmp_path / "out").read_roots()


def test_settings_flags_work_before_or_after_the_command_and_abbreviations_are_refused():
    before = run_cli("--profile", "tiny", "models", "--json")
    after = run_cli("models", "--json", "--profile", "tiny")
    assert before.returncode == after.returncode == 0 and before.stdout == after.stdout
    assert "tiny-sd15" in before.stdout
    abbreviated = run_cli("generate", "a", "--guid", "5", "--profile", "tiny")
    assert abbreviated.returncode == 2
    assert abbreviated.stderr.startswith("usage: pixelmcp generate") and "unrecognized arguments: --guid 5" in \
        abbreviated.stderr


def test_logs_off_a_terminal_are_one_plain_line_per_record():
    import logging

    from pixelmcp.server.logs import OneLine

    record = logging.LogRecord("pixelmcp.x", logging.WARNING, __file__, 1, "first line\nsecond line %s", ("x" * 200,),
                               None)
    line = OneLine().format(record)
    assert "\n" not in line and "WARNING pixelmcp.x: first line\\nsecond line " + "x" * 200 in line


def test_every_tool_argument_is_a_flag_of_its_command_with_the_tools_default():
    import argparse
    import inspect

    from pixelmcp.cli import parser
    from pixelmcp.cli.tools import COMMANDS, NOT_FLAGS

    commands = next(a for a in parser()._actions if isinstance(a, argparse._SubParsersAction)).choices
    for command, (module, tool, _, positionals, left_out) in COMMANDS.items():
        command_parser = commands[command]
        args, _ = command_parser.parse_known_args([value for name, nargs in positionals
                                                  for value in (["x"] * (nargs == "+" or 1))])
        fn = getattr(__import__(f"pixelmcp.tools.{module}", fromlist=[tool]), tool)
        wanted = set(inspect.signature(fn).parameters) - NOT_FLAGS - {name for name, _ in positionals} - set(left_out)
        assert set(args.flags) == wanted, command
        # No default of the command's own: a flag left out is left out of the call, and the tool's default holds.
        assert all(getattr(args, name) is None for name in args.flags), command
        for name in args.flags:
            default = inspect.signature(fn).parameters[name].default
            if default not in (None, inspect.Parameter.empty, False, True):
                assert " ".join(json.dumps(default).split()) in " ".join(command_parser.format_help().split()), \
                    (command, name)


def test_the_serve_command_does_not_import_the_tools():
    code = ("import sys; from pixelmcp.cli import parser; parser().parse_known_args(['serve']); "
            "print(sorted(m for m in sys.modules if m.startswith('pixelmcp.tools')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("value", ["nan", "inf", "-Infinity"])
def test_a_number_flag_refuses_nan_and_infinities_naming_the_flag(value, tmp_path):
    out = run_cli("generate", "a", f"--guidance-scale={value}", "--profile", "tiny", "--output-dir", str(tmp_path))
    assert out.returncode == 2 and "--guidance-scale takes a finite number" in out.stderr and value in out.stderr
    assert not list(tmp_path.iterdir())  # nothing was made
