"""Loading models from the hub or a folder: quiet libraries, and failures turned into advice."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pixelmcp.config import ModelSpec
from pixelmcp.errors import ModelLoadError


def local_kwargs(source: str) -> dict[str, Any]:
    """A local folder never touches the hub."""
    return {"local_files_only": True} if Path(source).is_dir() else {}


@contextmanager
def loading(spec: ModelSpec, source: str) -> Iterator[dict[str, Any]]:
    """Around a from_pretrained: yields the local-folder kwargs; a failure becomes a ModelLoadError saying what to do."""
    quiet_libraries()
    try:
        yield local_kwargs(source)
    except (OSError, ValueError, RuntimeError) as e:
        raise ModelLoadError(load_advice(spec, source, e)) from e


def quiet_libraries() -> None:
    """No progress bars or info chatter from the model libraries: logs are ours, on stderr."""
    import diffusers
    import transformers

    diffusers.utils.logging.disable_progress_bar()
    diffusers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()


def load_advice(spec: ModelSpec, source: str, error: BaseException) -> str:
    """A load failure explained, with what to do about it."""
    reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    text = f"Could not load model {spec.alias!r} from {source!r}: {reason}."
    if "out of memory" in str(error).lower():
        return text + " The GPU is out of memory: choose a smaller model or free memory."
    if Path(source).is_dir():
        return text + " The folder must hold a complete diffusers/transformers save (model_index.json or config.json)."
    return (
        text + f" If the machine is offline, download it first (`hf download {source}`) or point the alias at a "
        f"local folder in the config file ([models.{spec.alias}] source = \"/path\"). Gated models need their "
        "licence accepted on huggingface.co and HF_TOKEN set."
    )
