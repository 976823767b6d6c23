"""`pixelmcp doctor`: check this machine for pixelmcp, and say what to fix."""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from pixelmcp.cli.common import add_settings_flags, load


@dataclass
class Check:
    name: str
    status: str  # "ok", "info", "warn" or "fail"
    detail: str
    fix: str = ""


def add_commands(sub) -> None:
    doctor = sub.add_parser("doctor", help="check Python, torch, GPU, disk, output folder, keys and models")
    add_settings_flags(doctor)
    doctor.add_argument("--json", action="store_true", help="machine-readable output")
    doctor.set_defaults(run=_doctor)


def run_checks(settings) -> list[Check]:
    checks = [_python(), *_torch(settings.profile),
              _output(settings), _disk(settings), *_keys(settings), *_models(settings)]
    return checks


def _python() -> Check:
    version = platform.python_version()
    ok = sys.version_info >= (3, 11)
    return Check("python", "ok" if ok else "fail", f"Python {version} ({sys.executable})",
                 "" if ok else "Install Python 3.11 or newer.")


def _torch(profile: str) -> list[Check]:
    try:
        import torch
    except ImportError:
        return [Check("torch", "fail", "torch is not installed",
                      "Install PyTorch for your machine from https://pytorch.org/get-started/locally/")]
    checks = [Check("torch", "ok", f"torch {torch.__version__}")]
    if torch.cuda.is_available():
        for index in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(index)
            free, total = torch.cuda.mem_get_info(index)
            checks.append(Check(f"gpu {index}", "ok", f"{props.name}: {total / 2**30:.1f} GiB, {free / 2**30:.1f} GiB free "
                                f"(CUDA {torch.version.cuda})"))
    elif torch.backends.mps.is_available():
        checks.append(Check("gpu", "ok", "Apple MPS available (unified memory)"))
    else:
        cuda_build = torch.version.cuda is not None
        checks.append(Check(
            "gpu", "warn", "no CUDA or MPS device: models run on the CPU (minutes per image for real models)",
            "Use a machine with an NVIDIA GPU and a CUDA build of torch" + (
                "" if cuda_build else " (this torch is a CPU-only build)")
            + (", or try PIXELMCP_PROFILE=tiny." if profile != "tiny" else "."),
        ))
    return checks


def _output(settings) -> Check:
    folder = Path(settings.output_dir).expanduser()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".doctor-"):
            pass
    except OSError as e:
        return Check("output folder", "fail", f"{folder} is not writable ({e.strerror or e})",
                     "Set PIXELMCP_OUTPUT_DIR to a folder you can write to.")
    return Check("output folder", "ok", f"{folder} is writable")


def _disk(settings) -> Check:
    hub_cache = Path(os.environ.get("HF_HUB_CACHE") or os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface"))
    probe = hub_cache if hub_cache.exists() else Path(settings.output_dir).expanduser()
    while not probe.exists():
        probe = probe.parent
    free = shutil.disk_usage(probe).free / 2**30
    status = "ok" if free >= 20 else "warn"
    return Check("disk", status, f"{free:.0f} GiB free at {probe}",
                 "" if status == "ok" else "Real models take 2-35 GB each: free disk space or set HF_HOME elsewhere.")


def _keys(settings) -> list[Check]:
    """Keys and endpoints, by name only: a key's value is never printed."""
    from pixelmcp.registry import provider_infos, provider_rows, split_model

    checks = [Check("key huggingface", "ok", "HF_TOKEN is set") if os.environ.get("HF_TOKEN") else
              Check("key huggingface", "info", "HF_TOKEN not set", "Only needed for gated models (SD3, FLUX.1-dev).")]
    infos = provider_infos(settings)
    for info in infos:
        where = f" at {info.base_url}" if info.base_url else ""
        if info.ready:
            key = next((k for k in info.key_env if os.environ.get(k, "").strip()), None)
            detail = f"{key} is set" if key else "no key needed"
            checks.append(Check(f"provider {info.name}", "ok", f"{detail}{where}; serves {', '.join(info.serves)}"))
        else:
            checks.append(Check(f"provider {info.name}", "info", f"not configured{where}", f"To use it, {info.fix}."))
    rows = provider_rows(settings)
    named = [split_model(value, settings.catalog) for value in (settings.generate_model, settings.vision_model)
             if value]
    used = {remote[0] for remote in named if remote and remote[0] in rows}
    used.add(settings.rewriter)
    for info in infos:
        if info.name in used and not info.ready:
            checks.append(Check(f"config uses {info.name}", "fail", "the config names this provider, which is not "
                                "ready", f"{info.fix[0].upper()}{info.fix[1:]}, or change the config."))
    return checks + _endpoints(infos, used)


def _endpoints(infos, used: set[str]) -> list[Check]:
    """Whether each configured OpenAI-compatible endpoint answers, replica by replica."""
    import anyio

    from pixelmcp.providers.health import check_endpoints

    probed = [info for info in infos if info.ready and info.replicas]
    if not probed:
        return []
    anyio.run(check_endpoints, probed)
    checks = []
    for info in probed:
        down = [replica for replica in info.replicas if not replica.answers]
        count = len(info.replicas)
        detail = (f"{count - len(down)} of {count} server(s) answer" if count > 1 else
                  "answers" if not down else "does not answer")
        detail += "".join(f"; {replica.url}: {replica.detail}" for replica in down)
        status = "ok" if not down else "fail" if len(down) == count and info.name in used else "warn"
        checks.append(Check(f"endpoint {info.name}", status, f"{detail} ({info.engine} image API)" if
                            "generate_image" in info.serves else detail,
                            "" if not down else "Start the server, or fix its base URL in the config."))
    return checks


def _models(settings) -> list[Check]:
    from pixelmcp.catalog import AUTO_GENERATORS, DEFAULT_MODELS
    from pixelmcp.cli.catalog import disk_state
    from pixelmcp.router import MAP_MAKERS

    named = {"generate": settings.generate_model, "rewrite": settings.rewrite_model,
             "classify": settings.classify_model, "answer": settings.vision_model, "segment": settings.segment_model,
             **{control_type: getattr(settings, setting) for control_type, (setting, _) in MAP_MAKERS.items()}}
    fallback = DEFAULT_MODELS[settings.profile]
    if settings.profile != "tiny":
        fallback = {**fallback, "generate": " / ".join(reversed([alias for _, alias in AUTO_GENERATORS]))}
    checks = []
    for task, name in named.items():
        alias = name or fallback[task]
        candidates = [a for a in alias.split(" / ") if a in settings.catalog]
        if task in MAP_MAKERS and candidates and settings.catalog[alias].kind != MAP_MAKERS[task][1]:
            setting, kind = MAP_MAKERS[task]
            right = sorted(a for a, spec in settings.catalog.items() if spec.kind == kind)
            checks.append(Check(f"model for {task}", "fail", f"{alias} is a {settings.catalog[alias].kind} model, "
                                f"which cannot make {task} maps", f"Set PIXELMCP_{setting.upper()} to one of: "
                                f"{', '.join(right) or 'none configured'}."))
            continue
        cached = [a for a in candidates
                  if all(disk_state(entry.source, settings)[0] for entry in settings.catalog[a].with_detector())]
        if cached or settings.profile == "tiny":
            checks.append(Check(f"model for {task}", "ok", f"{alias}: {'cached' if cached else 'built on first use'}"))
        else:
            checks.append(Check(f"model for {task}", "warn", f"{alias}: not downloaded yet (downloads on first use)",
                                f"Run `pixelmcp pull {candidates[0] if candidates else alias}` ahead of time."))
    return checks


def _doctor(args: argparse.Namespace) -> None:
    settings = load(args)
    checks = run_checks(settings)
    if args.json:
        print(json.dumps([asdict(c) for c in checks], indent=2))
    else:
        marks = {"ok": "ok  ", "info": "info", "warn": "warn", "fail": "FAIL"}
        for check in checks:
            print(f"[{marks[check.status]}] {check.name}: {check.detail}")
            if check.fix:
                print(f"       fix: {check.fix}")
        counts = {status: sum(c.status == status for c in checks) for status in ("ok", "warn", "fail")}
        print(f"\n{counts['ok']} ok, {_count(counts['warn'], 'warning')}, {_count(counts['fail'], 'failure')}")
    if any(c.status == "fail" for c in checks):
        sys.exit(1)


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" + ("" if number == 1 else "s")
