"""ImageStore: generated images on disk, each with a JSON sidecar of every parameter.

Layout under the output folder: `{id}.png` (full resolution, with an A1111-style
`parameters` text chunk readable by other tools) and `{id}.json` (the sidecar). Files are
written to a temporary name and renamed into place, image first and sidecar last, so a
sidecar only ever names a complete image. Ids are checked against a strict pattern before
they touch the file system: no id can escape the folder.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from PIL import Image, PngImagePlugin
from pydantic import BaseModel

URI_PREFIX = "pixelmcp://images/"
_ID_PATTERN = re.compile(r"^[0-9]{8}-[0-9]{6}-[0-9a-f]{8}$")


class StoredImage(BaseModel):
    """One stored image: where it is, how to address it, and what made it."""

    id: str
    uri: str
    path: str
    width: int
    height: int
    created: str
    params: dict[str, Any]


class UnknownImageError(LookupError):
    """No stored image has this id (or the id is malformed)."""


def is_valid_id(image_id: str) -> bool:
    return bool(_ID_PATTERN.match(image_id))


def a1111_parameters(params: dict[str, Any]) -> str:
    """The `parameters` text other tools (A1111, ComfyUI readers, civitai) show for a PNG."""
    lines = [str(params.get("revised_prompt") or params.get("prompt", ""))]
    if params.get("negative_prompt"):
        lines.append(f"Negative prompt: {params['negative_prompt']}")
    fields = {
        "Steps": params.get("steps"),
        "Sampler": params.get("scheduler"),
        "CFG scale": params.get("guidance_scale"),
        "Seed": params.get("seed"),
        "Size": f"{params.get('width')}x{params.get('height')}",
        "Model": params.get("model"),
    }
    lines.append(", ".join(f"{k}: {v}" for k, v in fields.items() if v is not None))
    return "\n".join(lines)


class ImageStore:
    """Stores images under `root` and finds them again by id."""

    def __init__(self, root: Path):
        self.root = Path(root).expanduser().resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    # ------------------------------------------------------------------ writing

    def new_id(self) -> str:
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        return f"{stamp}-{secrets.token_hex(4)}"

    def save(self, image: Image.Image, params: dict[str, Any]) -> StoredImage:
        """Write `image` as PNG with its parameters; return the stored record."""
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
        info.add_text("pixelmcp", json.dumps(params, sort_keys=True))
        self._atomic_write(png_path, lambda f: image.save(f, format="PNG", pnginfo=info))
        sidecar = record.model_dump_json(indent=2).encode()
        self._atomic_write(self.root / f"{image_id}.json", lambda f: f.write(sidecar))
        return record

    def _atomic_write(self, target: Path, write) -> None:
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=self.root)
        try:
            with os.fdopen(fd, "wb") as f:
                write(f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

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

    def list(self, limit: int = 100) -> list[StoredImage]:
        """The newest `limit` images, newest first."""
        ids = sorted((p.stem for p in self.root.glob("*.json") if is_valid_id(p.stem)), reverse=True)
        records = []
        for image_id in ids[:limit]:
            try:
                records.append(self.get(image_id))
            except (UnknownImageError, ValueError):
                continue  # removed meanwhile, or a sidecar edited by hand
        return records
