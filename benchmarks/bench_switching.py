"""Switching: three models under a memory budget that fits two (real-size SD 1.5 pipelines under
three aliases). Reports cold loads, warm hits, CPU-tier reloads (accelerators only) and their ratio.

    python benchmarks/bench_switching.py

The last line is the ratio warm hit / cold load (lower is better).
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from realsize import build_sd15, catalog_env


def main() -> None:
    folder = build_sd15(Path(__file__).parent / ".cache" / "sd15-real")
    aliases = {name: folder for name in ("model-a", "model-b", "model-c")}
    os.environ.update(catalog_env(aliases, 128))
    from pixelmcp.config import load_settings
    from pixelmcp.engine.loaders import loader_for
    from pixelmcp.engine.memory import bytes_by_device
    from pixelmcp.engine.pool import ModelPool
    from pixelmcp.engine.queue import Job

    probe = ModelPool(load_settings(output_dir=tempfile.mkdtemp()))
    spec = probe.settings.catalog["model-a"]
    job = Job()
    size = sum(bytes_by_device(probe.get(spec, loader_for(probe.settings, spec), job)).values())
    del probe, job

    settings = load_settings(output_dir=tempfile.mkdtemp(), memory_budget_mb=2.5 * size / 2**20,
                             working_reserve_mb=0)
    pool = ModelPool(settings)
    timings: dict[str, list[float]] = {"cold": [], "warm": [], "tier": []}
    sequence = ["model-a", "model-b", "model-a", "model-c", "model-a", "model-b", "model-c", "model-b"]
    for alias in sequence:
        spec = settings.catalog[alias]
        before = (pool.stats.loads, pool.stats.hits, pool.stats.tier_reloads)
        job = Job()
        started = time.perf_counter()
        pool.get(spec, loader_for(pool.settings, spec), job)
        elapsed = time.perf_counter() - started
        pool._release_leases(job)
        kind = ("cold" if pool.stats.loads > before[0] else "warm" if pool.stats.hits > before[1] else "tier")
        timings[kind].append(elapsed)
        print(f"{alias}: {kind:4} {elapsed:7.3f}s  resident: {sorted(m.spec.alias for m in pool.loaded() if m.tier == 'device')}")
    cold, warm = statistics.median(timings["cold"]), statistics.median(timings["warm"])
    tier = f"{statistics.median(timings['tier']):.3f}s" if timings["tier"] else "n/a (no accelerator: evicted models are freed)"
    print(f"device {pool.device}, model {size / 1e9:.2f} GB, budget {pool.budget_bytes / 1e9:.2f} GB; "
          f"evictions {pool.stats.evictions}")
    print(f"cold load median {cold:.3f}s ({len(timings['cold'])}), warm hit median {warm * 1e3:.3f}ms "
          f"({len(timings['warm'])}), CPU-tier reload {tier}")
    print(f"ratio warm/cold: {warm / cold:.6f}")


if __name__ == "__main__":
    main()
