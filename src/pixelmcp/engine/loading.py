"""Loading models from the hub or a folder: quiet libraries, and failures turned into advice."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pixelmcp.catalog import ModelSpec
from pixelmcp.engine.hub import Fetched, fetch
from pixelmcp.engine.weights import wanted_variant
from pixelmcp.errors import GenerationCancelled, ModelLoadError, PixelError, first_line


@contextmanager
def loading(spec: ModelSpec, source: str, dtype: Any = None, *,
            paths: tuple[str, ...] | None = None, download: bool = True) -> Iterator[Fetched]:
    """Around a from_pretrained: yields `source` on local disk with only the files its loader reads (a hub
    model is downloaded on first use, as `pixelmcp pull` would), and the weights variant to ask for.
    Load from `fetched.folder` with `local_files_only=True`. A failure becomes a ModelLoadError saying
    what to do. With `download=False`, only the plan is made (files and sizes, from the hub's listing)."""
    if download:  # (a plan reads the hub's listing only: no model library needs importing, which takes seconds)
        quiet_libraries()
    dtype_bytes = getattr(dtype, "itemsize", 4)
    try:
        yield fetch(source, preferred_variant=wanted_variant(spec.variant, dtype_bytes), paths=paths, download=download)
    except ImportError as e:
        raise ModelLoadError(import_advice(spec, e)) from e
    except (PixelError, GenerationCancelled):
        raise
    except Exception as e:  # the load boundary: libraries fail with many types, e.g. a damaged
        # .safetensors header as safetensors' SafetensorError, a damaged tokenizer file as a bare Exception
        # from tokenizers; every one is a model that could not be loaded)
        raise ModelLoadError(load_advice(spec, source, e)) from e


def pretrained_pair(spec: ModelSpec, source: str, device: str, dtype: Any, processor_class: Any,
                    model_class: Any) -> tuple[Any, Any]:
    """A transformers processor (or tokenizer) and model from `source`, fetched first if needed; the model on
    `device`, in `dtype`, in eval mode."""
    with loading(spec, source, dtype) as fetched:
        processor = processor_class.from_pretrained(fetched.folder, local_files_only=True)
        model = model_class.from_pretrained(fetched.folder, dtype=dtype, local_files_only=True)
        return processor, model.to(device).eval()


def import_advice(spec: ModelSpec, error: ImportError) -> str:
    """A library the model's code needs is missing: name it and the command that installs it."""
    module = (getattr(error, "name", None) or "").split(".")[0]
    package = {"sentencepiece": "sentencepiece", "google": "protobuf", "cv2": "opencv-python-headless",
               "timm": "timm", "torchvision": "torchvision", "einops": "einops"}.get(module, module)
    install = f"`pip install {package}`" if package else "the missing package"
    reason = first_line(error) or type(error).__name__
    return (f"Could not load model {spec.alias!r}: it needs a Python package that is not installed ({reason}). "
            f"Install it with {install} in pixelmcp's environment and try again.")


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
    reason = first_line(error) or type(error).__name__
    text = f"Could not load model {spec.alias!r} from {source!r}: {reason}."
    if "out of memory" in str(error).lower():
        return text + " The GPU is out of memory: choose a smaller model or free memory."
    if Path(source).is_dir():
        return text + " The folder must hold a complete diffusers/transformers save (model_index.json or config.json)."
    return (
        text + f" If the machine is offline, download it first (`pixelmcp pull {spec.config_alias}`) or point "
        "the alias at a "
        f"local folder in the config file ([models.{spec.alias}] source = \"/path\"). Gated models need their "
        "licence accepted on huggingface.co and HF_TOKEN set."
    )
