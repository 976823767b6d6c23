"""ImageStore: generated images on disk, each with a JSON sidecar of every parameter.

Layout under the output folder: `{id}.png` (full resolution, with an A1111-style
`parameters` text chunk readable by other tools) and `{id}.json` (the sidecar). The two are
one unit: both are written in full to temporary names first, then renamed into place, image
first and sidecar last, and a failure at any point removes whatever of the pair was written.
A sidecar therefore only ever names a complete image, and a crash (kill -9) can leave at most
temporary files and an image without its sidecar: `sweep` removes exactly those at start.
Ids are checked against a strict pattern before they touch the file system: no id can escape
the folder.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import secrets
import shutil
import tempfile
import time
import unicodedata
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from PIL import Image, PngImagePlugin
from pydantic import BaseModel, Field

from pixelmcp.errors import StoreError

logger = logging.getLogger(__name__)

URI_PREFIX = "pixelmcp://images/"
_ID_PATTERN = re.compile(r"^[0-9]{8}-[0-9]{6}-[0-9a-f]{8}$")
_TMP_PREFIX = ".pixelmcp-tmp-"
#: Temporary files of this store (and of earlier versions, which used ".tmp-" and mkstemp's 8 characters).
_TMP_PATTERN = re.compile(r"^(\.pixelmcp-tmp-[a-z0-9_]+|\.tmp-[a-z0-9_]{8})$")
#: Debris younger than this may belong to a write in progress (another server sharing the folder).
SWEEP_MIN_AGE_S = 60.0
#: Room kept free beyond the images themselves (sidecars, file system overhead).
_SPARE_BYTES = 1 << 20
_FIX = ("Free some space there, make the folder writable for the server's user, or point PIXELMCP_OUTPUT_DIR "
        "(--output-dir) at a folder that is.")


class ImageRef(BaseModel):
    """A stored image as results name it: how to address it and its size."""

    id: str
    uri: str = Field(description="pixelmcp://images/{id}: readable as a resource, usable as an image input")
    path: str
    width: int
    height: int


class StoredImage(ImageRef):
    """One stored image's full record: its reference, and when and with what it was made."""

    created: str
    params: dict[str, Any]

    def ref(self) -> ImageRef:
        return ImageRef(id=self.id, uri=self.uri, path=self.path, width=self.width, height=self.height)


class UnknownImageError(LookupError):
    """No stored image has this id (or the id is malformed)."""


def is_valid_id(image_id: str) -> bool:
    return bool(_ID_PATTERN.match(image_id))


#: Characters never written into PNG text: C0/C1 controls (NUL, ESC, BEL, ...), which viewers and
#: terminals may interpret, and bidirectional overrides, which make text read other than it is.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def clean_text(value: Any) -> str:
    """`value` as one line of text that is safe in a PNG text chunk.

    Line and paragraph breaks become spaces (a prompt containing "\\nNegative prompt: ..." must
    not forge fields of the A1111 format, which is line-based); other control characters and
    bidirectional overrides are dropped.
    """
    out = []
    for char in str(value):
        category = unicodedata.category(char)
        if char in "\n\r\t\v\f\x85" or category in ("Zl", "Zp"):
            out.append(" ")
        elif category != "Cc" and char not in _BIDI_CONTROLS:
            out.append(char)
    return "".join(out)


def a1111_parameters(params: dict[str, Any]) -> str:
    """The `parameters` text other tools (A1111, ComfyUI readers, civitai) show for a PNG.

    Every value is cleaned (`clean_text`): the only line breaks are the format's own.
    """
    prompt = clean_text(params.get("revised_prompt") or params.get("prompt", ""))
    # LoRAs as A1111 writes them into its prompt, `<lora:NAME:WEIGHT>` (a file: its name without the suffix).
    tags = [f"<lora:{clean_text(_lora_label(entry.get('name', '')))}:{clean_text(entry.get('weight'))}>"
            for entry in params.get("loras") or [] if isinstance(entry, dict)]
    lines = [" ".join([prompt, *tags]) if tags else prompt]
    if params.get("negative_prompt"):
        lines.append(f"Negative prompt: {clean_text(params['negative_prompt'])}")
    fields = {
        "Steps": params.get("steps"),
        "Sampler": params.get("scheduler"),
        "CFG scale": params.get("guidance_scale"),
        "Seed": params.get("seed"),
        "Size": f"{params.get('width')}x{params.get('height')}",
        "Model": params.get("model"),
        "Denoising strength": params.get("strength"),  # an edit: how much could change
    }
    lines.append(", ".join(f"{k}: {clean_text(v)}" for k, v in fields.items() if v is not None))
    return "\n".join(lines)


def _lora_label(name: str) -> str:
    stem = name.replace("\\", "/").rsplit("/", 1)[-1]
    return stem.removesuffix(".safetensors")


class ImageStore:
    """Stores images under `root` and finds them again by id.

    The folder is created if needed; when it cannot be, the store still opens (the tools that only
    read images keep working) and `check_writable` and every write report why, naming the folder.
    """

    def __init__(self, root: Path, png_compress_level: int = 1):
        self.root = Path(root).expanduser().resolve()
        self.png_compress_level = png_compress_level
        with contextlib.suppress(OSError):  # reported by check_writable (the server runs it at start)
            self.root.mkdir(parents=True, exist_ok=True)

    # ------------------------------------------------------------------ health

    def check_writable(self, needed_bytes: int = 0) -> None:
        """Raise StoreError unless `needed_bytes` more can be written here now.

        Tried for real (a probe file is created and removed): permission bits, read-only mounts
        and the running user's rights are all answered by the file system itself.
        """
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            fd, probe = tempfile.mkstemp(prefix=_TMP_PREFIX, dir=self.root)
            os.close(fd)
            os.unlink(probe)
            free = shutil.disk_usage(self.root).free
        except OSError as e:
            raise StoreError(f"The output folder {self.root} is not writable ({e.strerror or e}). {_FIX}") from e
        if free < needed_bytes + _SPARE_BYTES:
            raise StoreError(
                f"The output folder {self.root} has {free / 2**20:.1f} MB free; the images of this call need up to "
                f"{(needed_bytes + _SPARE_BYTES) / 2**20:.1f} MB. Nothing was generated. {_FIX}"
            )

    def sweep(self) -> list[str]:
        """Remove debris of interrupted writes: this store's temporary files, and images without a sidecar.

        Only names this store makes are touched, and only files older than SWEEP_MIN_AGE_S (a
        younger one may be a write in progress by another server sharing the folder).
        """
        removed = []
        now = time.time()
        try:
            entries = list(os.scandir(self.root))
        except OSError:
            return removed
        for entry in entries:
            name = entry.name
            orphan = name.endswith(".png") and is_valid_id(name[:-4]) and not (self.root / f"{name[:-4]}.json").exists()
            if not (orphan or _TMP_PATTERN.match(name)):
                continue
            try:
                if not entry.is_file(follow_symlinks=False) or now - entry.stat().st_mtime < SWEEP_MIN_AGE_S:
                    continue
                os.unlink(entry.path)
                removed.append(name)
            except OSError as e:
                logger.warning("could not remove leftover %s: %s", entry.path, e.strerror or e)
        if removed:
            logger.info("removed %d leftover file(s) of interrupted writes from %s: %s", len(removed), self.root,
                        ", ".join(sorted(removed)))
        return removed

    # ------------------------------------------------------------------ writing

    def new_id(self) -> str:
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        return f"{stamp}-{secrets.token_hex(4)}"

    def save(self, image: Image.Image, params: dict[str, Any]) -> StoredImage:
        """Write `image` as PNG with its parameters; return the stored record.

        Raises StoreError (naming the folder) when the pair cannot be written; nothing of it is left.
        """
        image_id = self.new_id()
        png_path = self.root / f"{image_id}.png"
        record = StoredImage(
            id=image_id,
            uri=URI_PREFIX + image_id,
            path=str(png_path),
            width=image.width,
            height=image.height,
            created=datetime.now(UTC).isoformat(timespec="seconds"),
            params=params,
        )
        info = PngImagePlugin.PngInfo()
        info.add_text("parameters", a1111_parameters(params))
        info.add_text("pixelmcp", json.dumps(params, sort_keys=True))  # JSON escapes every control character
        sidecar = record.model_dump_json(indent=2).encode()
        json_path = self.root / f"{image_id}.json"
        written: list[Path] = []
        try:
            png_tmp = self._write_temporary(
                lambda f: image.save(f, format="PNG", pnginfo=info, compress_level=self.png_compress_level), written)
            json_tmp = self._write_temporary(lambda f: f.write(sidecar), written)
            os.replace(png_tmp, png_path)
            written[0] = png_path
            os.replace(json_tmp, json_path)
            written[1] = json_path
        except BaseException as e:
            for path in written:
                path.unlink(missing_ok=True)
            if isinstance(e, OSError):
                raise StoreError(f"Could not save the image in {self.root} ({e.strerror or e}). {_FIX}") from e
            raise
        return record

    def _write_temporary(self, write, written: list[Path]) -> Path:
        """A new temporary file in the folder holding what `write` wrote, synced to disk."""
        fd, tmp = tempfile.mkstemp(prefix=_TMP_PREFIX, dir=self.root)
        written.append(Path(tmp))
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        return Path(tmp)

    # ------------------------------------------------------------------ reading

    def _checked(self, image_id: str, suffix: str) -> Path:
        if not is_valid_id(image_id):
            raise UnknownImageError(
                f"{image_id!r} is not a pixelmcp image id (expected YYYYMMDD-HHMMSS-xxxxxxxx, "
                f"as in the uri {URI_PREFIX}<id> that a tool returned)"
            )
        path = self.root / f"{image_id}{suffix}"
        if not path.is_file() or not (self.root / f"{image_id}.json").is_file():
            raise UnknownImageError(f"no stored image with id {image_id!r} in {self.root}")
        return path

    def png_path(self, image_id: str) -> Path:
        return self._checked(image_id, ".png")

    def get(self, image_id: str) -> StoredImage:
        return StoredImage.model_validate_json(self._checked(image_id, ".json").read_bytes())

    def id_from_uri(self, uri: str) -> str:
        if not uri.startswith(URI_PREFIX):
            raise UnknownImageError(f"{uri!r} is not a {URI_PREFIX}<id> uri")
        return uri[len(URI_PREFIX):]

    def ids(self) -> list[str]:
        """Every stored image's id, newest first."""
        return sorted((p.stem for p in self.root.glob("*.json") if is_valid_id(p.stem)), reverse=True)

    def list(self, limit: int = 100, offset: int = 0, ids: list[str] | None = None) -> list[StoredImage]:
        """The newest `limit` images after the newest `offset`, newest first (of `ids`, when the caller has
        already listed them)."""
        records = []
        for image_id in (self.ids() if ids is None else ids)[offset:offset + limit]:
            try:
                records.append(self.get(image_id))
            except (UnknownImageError, ValueError):
                continue  # removed meanwhile, or a sidecar edited by hand
        return records
