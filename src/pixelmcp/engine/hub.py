"""Models from the Hugging Face hub: exactly the files their loader reads, by `pixelmcp pull` or on first use.

Both paths go through `fetch`: the repo's file listing (one API call) and, for pipelines, its
model_index.json give the plan (engine/weights.py); `snapshot_download` then fetches those files
and nothing else, resumably, into the usual hub cache; the loader reads the local snapshot. When
the hub cannot be reached (offline, HF_HUB_OFFLINE), a snapshot already in the cache is used.
"""

from __future__ import annotations

import glob
import json
from dataclasses import dataclass
from pathlib import Path

import httpx2
from huggingface_hub.errors import OfflineModeIsEnabled

from pixelmcp.engine import weights

#: The hub could not be asked (offline mode, no network, DNS, proxy): a cached snapshot is used instead.
UNREACHABLE = (OfflineModeIsEnabled, httpx2.TransportError, ConnectionError)


class NotDownloaded(OSError):
    """A hub model that is not in the local cache, while the hub cannot be reached."""


def cached_snapshot(repo_id: str) -> Path | None:
    """The folder of `repo_id`'s snapshot in the hub cache (the one `main` points at, else the newest), or None.

    Read from the cache's documented layout (models--ORG--NAME/refs, snapshots): a snapshot that holds
    only the files pixelmcp fetched is complete for pixelmcp, though not for a whole-repo download.
    """
    from huggingface_hub.constants import HF_HUB_CACHE

    folder = Path(HF_HUB_CACHE) / f"models--{repo_id.replace('/', '--')}"
    snapshots = folder / "snapshots"
    ref = folder / "refs" / "main"
    if ref.is_file():
        pinned = snapshots / ref.read_text().strip()
        if pinned.is_dir():
            return pinned
    found = sorted((p for p in snapshots.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime) \
        if snapshots.is_dir() else []
    return found[-1] if found else None


@dataclass(frozen=True)
class Fetched:
    """A model source on local disk, and the weights variant its loader must ask for (None: plain files)."""

    folder: str
    variant: str | None
    plan: weights.Plan
    sizes: dict[str, int | None]

    @property
    def bytes(self) -> int:
        """Bytes of the planned files (those with a known size)."""
        return sum(self.sizes.get(name) or 0 for name in self.plan.files)


def fetch(source: str, *, preferred_variant: str | None = None, paths: tuple[str, ...] | None = None,
          download: bool = True) -> Fetched:
    """`source` (a local folder or a hub repo id) on local disk, with only the files its loader reads.

    With `download=False` nothing is fetched: the plan and its sizes are computed from the hub
    listing (for `pull --dry-run`). Raises the hub's errors (gated, missing, unreachable) as they are.
    """
    folder = Path(source).expanduser()
    if folder.is_dir():
        listing = weights.folder_listing(folder)
        found = weights.plan(listing, model_index=weights.read_model_index(folder),
                             preferred_variant=preferred_variant, paths=paths)
        return Fetched(str(folder), found.variant, found, listing)
    from huggingface_hub import HfApi, hf_hub_download, snapshot_download

    try:
        info = HfApi().model_info(source, files_metadata=True)
    except UNREACHABLE as e:
        cached = cached_snapshot(source)
        if cached is None:
            raise NotDownloaded(f"{source} is not in the hub cache and the hub cannot be reached ({e})") from e
        return fetch(str(cached), preferred_variant=preferred_variant, paths=paths)
    listing = {sibling.rfilename: sibling.size for sibling in info.siblings or ()}
    index = None
    if "model_index.json" in listing and paths is None:  # (named paths need no pipeline index)
        index = json.loads(Path(hf_hub_download(source, "model_index.json")).read_text())
    found = weights.plan(listing, model_index=index, preferred_variant=preferred_variant, paths=paths)
    if not download:
        return Fetched(source, found.variant, found, listing)
    # By branch (not the listed commit) so the cache records it: a later offline load finds this snapshot.
    snapshot = snapshot_download(source, allow_patterns=[glob.escape(f) for f in found.files])
    return Fetched(snapshot, found.variant, found, listing)
