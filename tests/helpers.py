"""Small helpers for reading tool results in tests."""

from __future__ import annotations

import base64
import io
import subprocess

from PIL import Image, ImageDraw


def error_text(result) -> str:
    assert result.is_error, f"expected a tool error, got {result.structured_content}"
    return result.content[0].text


def ok(result):
    assert not result.is_error, result.content[0].text if result.content else result
    return result.structured_content


def preview_of(result) -> Image.Image:
    block = next(b for b in result.content if b.type == "image")
    return Image.open(io.BytesIO(base64.b64decode(block.data)))


def pixels(path: str) -> bytes:
    with Image.open(path) as image:
        return image.convert("RGB").tobytes()


#: Levels of 255 by which two renderings of the same picture may differ when they were computed in
#: different batch shapes (batched and single kernels round differently on some CPUs and GPUs).
ROUNDING_LEVELS = 2


def assert_same_picture(path_a: str, path_b: str) -> None:
    """The two PNGs show the same picture: equal up to kernel rounding, never bit for bit by assumption."""
    import numpy as np

    with Image.open(path_a) as a, Image.open(path_b) as b:
        first = np.asarray(a.convert("RGB"), dtype=np.int16)
        second = np.asarray(b.convert("RGB"), dtype=np.int16)
    assert first.shape == second.shape
    difference = np.abs(first - second)
    assert difference.max() <= ROUNDING_LEVELS, f"differ by up to {difference.max()} levels"
    assert difference.mean() <= 0.05, f"differ by {difference.mean():.3f} levels on average"


def data_uri(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def shapes(size=(64, 64), offset=0) -> Image.Image:
    """A picture with clear edges: a dark square and a light circle on grey."""
    image = Image.new("RGB", size, (128, 128, 128))
    draw = ImageDraw.Draw(image)
    draw.rectangle((8 + offset, 8, 30 + offset, 30), fill=(20, 20, 20))
    draw.ellipse((34, 30 - offset, 58, 54 - offset), fill=(240, 240, 240))
    return image


def run_cli(args: tuple[str, ...] | list[str], env: dict[str, str], cwd) -> subprocess.CompletedProcess:
    """`pixelmcp ARGS` as the console script runs it, in this process: the same `main`, environment, working
    folder, output streams and exit codes, without a new interpreter importing torch each time (tests that need a
    real process, its signals or its start-up, spawn one). Runs in a thread of its own, so it also works inside a
    test's event loop."""
    import contextlib
    import os
    import threading
    import traceback

    from pixelmcp.cli import main

    out, err = io.StringIO(), io.StringIO()
    ended: dict[str, int] = {}

    def command() -> None:
        saved_env, saved_cwd = dict(os.environ), os.getcwd()
        os.environ.clear()
        os.environ.update(env)
        os.chdir(cwd)
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                try:
                    main(list(args))
                    ended["code"] = 0
                except SystemExit as e:  # as the interpreter ends: a message on stderr is exit code 1
                    if isinstance(e.code, str):
                        print(e.code, file=err)
                    ended["code"] = 1 if isinstance(e.code, str) else (e.code or 0)
                except BaseException:  # noqa: BLE001 (an uncaught error: a traceback and exit code 1)
                    traceback.print_exc(file=err)
                    ended["code"] = 1
        finally:
            os.chdir(saved_cwd)
            os.environ.clear()
            os.environ.update(saved_env)

    thread = threading.Thread(target=command, name=f"pixelmcp {' '.join(args)[:40]}")
    thread.start()
    thread.join(300)
    assert not thread.is_alive(), f"pixelmcp {' '.join(args)} did not end within 300 s"
    return subprocess.CompletedProcess(list(args), ended["code"], out.getvalue(), err.getvalue())


def cli_env(tiny_cache, tmp_path) -> dict[str, str]:
    """The environment of a `pixelmcp` command in a test: the tiny profile, offline, no provider keys."""
    import os

    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PIXELMCP_", "OPENAI_", "GEMINI_", "GOOGLE_", "HF_TOKEN"))}
    env.update(PIXELMCP_PROFILE="tiny", PIXELMCP_OUTPUT_DIR=str(tmp_path / "out"), PIXELMCP_CACHE_DIR=str(tiny_cache),
               HF_HUB_OFFLINE="1", CUDA_VISIBLE_DEVICES="")
    return env
