"""`pixelmcp models` and `pixelmcp pull`: what the catalog holds, what is on disk, and fetching it."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from pixelmcp.cli.common import add_settings_flags, fail, load


def add_commands(sub) -> None:
    models = sub.add_parser("models", help="the model catalog: what is cached locally and its size on disk")
    add_settings_flags(models)
    models.add_argument("--json", action="store_true", help="machine-readable output")
    models.add_argument("--server", metavar="URL",
                        help="also show what a running HTTP server has loaded now, e.g. http://127.0.0.1:8000/mcp")
    models.set_defaults(run=_models)

    pull = sub.add_parser("pull", help="download models ahead of time: exactly the files they load (resumable)")
    add_settings_flags(pull)
    pull.add_argument("aliases", nargs="+", metavar="MODEL", help="catalog aliases, e.g. sdxl qwen2.5-vl-3b")
    pull.add_argument("--dry-run", action="store_true", help="list what would be downloaded, and its size")
    pull.set_defaults(run=_pull)


def pulled_specs(spec, pool) -> list:
    """Every entry a model's tools load, as the server would load it: the model, its ControlNets and
    IP-Adapter, the models that make its ControlNets' maps (depth, segmentation, pose), its inpainting UNet and
    the segmenter (edit_image's mask_prompt) for a local image model, the similarity model that scores alignment
    for any image model, CLIP for a VLM (compare_images) and what checks its answers' claims (the similarity
    model, the local claims model, the detector that counts objects); and the person detector of every
    pose model among them."""
    from pixelmcp.engine.local import LocalRewriter
    from pixelmcp.router import Router

    router = Router(pool.settings, pool)
    found = [spec]
    found += [router.controlnet(spec, control_type) for control_type in sorted(spec.controlnets)]
    if spec.ip_adapter is not None:
        found.append(router.ip_adapter(spec))
    found += [maker for maker in map(router.map_maker, sorted(spec.controlnets)) if maker is not None]
    if spec.inpaint:
        found.append(spec.inpaint_entry())
    if spec.task == "generate" and not spec.remote:
        found.append(router.segmenter()[0])
    if spec.task == "generate" and pool.settings.alignment:
        found.append(router.aligner()[0])  # scores every image against its prompt
    if spec.task == "answer":
        found.append(router.classifier(None)[0])
        if pool.settings.claim_check != "off":
            found.append(router.aligner()[0])
            extractor = router.claim_extractor(spec)
            if isinstance(extractor, LocalRewriter):
                found.append(extractor.spec)
        detector = router.detector() if pool.settings.claim_check == "on" else None
        if detector is not None:
            found.append(detector[0])
    return [entry for item in found for entry in item.with_detector()]


def disk_state(source: str, settings) -> tuple[bool, int]:
    """(cached locally, bytes on disk) of a hub id, local folder or tiny model."""
    from pixelmcp.catalog import TINY_PREFIX

    if source.startswith(TINY_PREFIX):
        from pixelmcp.engine.tiny import TINY_VERSION

        folder = settings.tiny_dir / f"v{TINY_VERSION}" / source.removeprefix(TINY_PREFIX)
        return (folder / ".complete").exists(), _folder_bytes(folder)
    folder = Path(source).expanduser()
    if folder.is_dir():
        return True, _folder_bytes(folder)
    from pixelmcp.engine.hub import cached_snapshot

    snapshot = cached_snapshot(source)
    if snapshot is None:
        return False, 0
    return True, _folder_bytes(snapshot)


def _folder_bytes(folder: Path) -> int:
    if not folder.is_dir():
        return 0
    # Hub snapshots are symlinks into blobs: count each real file once.
    seen, total = set(), 0
    for path in folder.rglob("*"):
        if path.is_file():
            real = path.resolve()
            if real not in seen:
                seen.add(real)
                total += real.stat().st_size
    return total


def _models(args: argparse.Namespace) -> None:
    settings = load(args)
    if args.server:
        _served_models(args)
        return
    from pixelmcp.service.loras import folder_loras

    rows = []
    for spec in [*settings.catalog.values(), *folder_loras(settings)]:
        if spec.kind == "lora" and Path(spec.source).is_dir():  # a file of its own: its size, not its folder's
            path = Path(spec.source) / (spec.weight_name or "")
            cached, size = path.is_file(), path.stat().st_size if path.is_file() else 0
        else:
            cached, size = disk_state(spec.source, settings)
        rows.append(dict(alias=spec.alias, task=spec.task, kind=spec.kind, source=spec.source, cached=cached,
                         bytes_on_disk=size, description=spec.description, licence=spec.licence, tiny=spec.tiny,
                         controlnets=sorted(spec.controlnets), ip_adapter=spec.ip_adapter is not None))
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    where = ("tiny models are built on first use, in PIXELMCP_CACHE_DIR" if settings.profile == "tiny"
             else "cached = on this machine; `pixelmcp pull ALIAS` fetches one")
    print(f"profile: {settings.profile}   ({where})")
    for row in rows:
        if row["tiny"]:
            state = f"built {_size(row['bytes_on_disk'])}" if row["cached"] else "built on first use"
        else:
            state = f"cached {_size(row['bytes_on_disk'])}" if row["cached"] else "not downloaded"
        source = "(built locally)" if row["tiny"] else row["source"]
        licence = f"  [{row['licence']}]" if row["licence"] else ""
        print(f"  {row['alias']:24} {row['task']:10} {state:22} {source}{licence}")


def _served_models(args: argparse.Namespace) -> None:
    """The catalog of the server at `args.server` (its profile, not this machine's), and what it has loaded."""
    report = _report_of(args.server)
    if args.json:
        print(json.dumps(report, indent=2))
        return
    loaded = {entry["alias"]: entry for entry in report["loaded"]}
    print(f"server {args.server}: profile {report['profile']} on {report['device']}")
    for entry in report["catalog"]:
        now = loaded.get(entry["alias"])
        state = f"loaded on {now['device']}, {_size(now['bytes'])}" if now else "not loaded"
        licence = f"  [{entry['licence']}]" if entry["licence"] else ""
        print(f"  {entry['alias']:24} {entry['task']:10} {state:30} {entry['source']}{licence}")


def _size(count: int) -> str:
    return f"{count / 1e9:.2f} GB" if count >= 1e8 else f"{count / 1e6:.1f} MB"


def _report_of(url: str) -> dict:
    """A running server's list_models report, from its pixelmcp://models resource."""
    import anyio
    from mcp import Client

    async def read() -> dict:
        async with Client(url) as client:
            resource = await client.read_resource("pixelmcp://models")
            return json.loads(resource.contents[0].text)

    try:
        report = anyio.run(read)
    except (OSError, RuntimeError) as e:
        fail(f"could not read {url} ({e}); is `pixelmcp serve --transport http` running there?")
    return report


def _pull(args: argparse.Namespace) -> None:
    settings = load(args)
    unknown = [alias for alias in args.aliases if alias not in settings.catalog]
    if unknown:
        fail(f"not in the {settings.profile} catalog: {', '.join(unknown)}. `pixelmcp models` lists the aliases.", 2)
    from pixelmcp.engine.pool import ModelPool

    pool = ModelPool(settings)  # decides the dtype, hence the variant (fp16 on GPUs), as the server would
    wanted: dict[str, object] = {}
    for alias in args.aliases:
        for spec in pulled_specs(settings.catalog[alias], pool):
            wanted.setdefault(spec.alias, spec)
    failures, total = 0, 0
    for spec in wanted.values():
        done, size = _pull_one(spec, pool, settings, dry_run=args.dry_run)
        failures += not done
        total += size
    if args.dry_run:
        print(f"total: {total / 1e9:.2f} GB to fetch (files already in the cache are not fetched again)")
    if failures:
        fail(f"{failures} download(s) failed; see above", 1)


def _pull_one(spec, pool, settings, *, dry_run: bool) -> tuple[bool, int]:
    """Fetch what loading `spec` reads; (succeeded, bytes planned)."""
    from pixelmcp.catalog import TINY_PREFIX

    alias, source = spec.alias, spec.source
    if source.startswith(TINY_PREFIX):
        from pixelmcp.engine.tiny import ensure_built

        if not dry_run:
            print(f"{alias}: building {source} in {ensure_built(source.removeprefix(TINY_PREFIX), settings.tiny_dir)}")
        return True, 0
    if Path(source).expanduser().is_dir():
        print(f"{alias}: {source} is a local folder; nothing to download")
        return True, 0
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
    )

    from pixelmcp.engine.hub import UNREACHABLE, NotDownloaded, fetch
    from pixelmcp.engine.weights import wanted_variant

    variant = wanted_variant(spec.variant, pool.dtype_for(spec).itemsize)
    if not dry_run:
        print(f"{alias}: downloading {source} ...")
    try:
        fetched = fetch(source, preferred_variant=variant, paths=spec.weight_paths, download=not dry_run)
    except GatedRepoError:
        print(f"{alias}: {source} is gated. Accept its licence at https://huggingface.co/{source} while logged in, "
              "then set HF_TOKEN (a read token from https://huggingface.co/settings/tokens) and pull again.")
        return False, 0
    except RepositoryNotFoundError:
        print(f"{alias}: {source} does not exist on the hub (or is private: set HF_TOKEN). "
              f"Point the alias at another repo or a local folder with [models.{spec.config_alias}] source = ...")
        return False, 0
    except (LocalEntryNotFoundError, NotDownloaded, *UNREACHABLE):
        offline = " (HF_HUB_OFFLINE is set)" if os.environ.get("HF_HUB_OFFLINE") else ""
        print(f"{alias}: the hub cannot be reached for {source}{offline}. Check the network or proxy (HTTPS_PROXY), "
              f"or copy the model folder here and point [models.{spec.config_alias}] source at it. Downloads "
              "resume where they stopped.")
        return False, 0
    except (HfHubHTTPError, OSError) as e:
        print(f"{alias}: download of {source} failed: {e}. Run the same command again to resume.")
        return False, 0
    what = f"{len(fetched.plan.files)} files, {fetched.bytes / 1e9:.2f} GB" + (
        f", {fetched.variant} weights" if fetched.variant else "")
    if dry_run:
        print(f"{alias}: {source}: would fetch {what}")
        for name in fetched.plan.files:
            print(f"    {name}  ({(fetched.sizes.get(name) or 0) / 1e6:.1f} MB)")
    else:
        print(f"{alias}: {source} ready ({what}) in {fetched.folder}")
    return True, fetched.bytes
