"""The GPU benchmark script stays runnable: a smoke run at tiny size on the CPU."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu.py"


def test_gpu_benchmark_runs_at_tiny_size_on_cpu():
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, str(SCRIPT), "--tiny", "--runs", "1", "--models", "sd15,sdxl,flux-schnell"],
                         capture_output=True, text=True, timeout=300, env=env, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.strip().splitlines()
    assert lines[0].startswith("device: cpu")
    assert [line.split("|")[1].strip() for line in lines[3:6]] == ["sd15", "sdxl", "flux-schnell"]
    assert lines[-1].startswith("median ratio pixelmcp/plain: ")
    float(lines[-1].rsplit(" ", 1)[1])


def test_encode_benchmark_runs_and_prints_its_ratios(tmp_path):
    script = SCRIPT.with_name("bench_encode.py")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PIXELMCP_CACHE_DIR": str(tmp_path)}
    out = subprocess.run([sys.executable, str(script), "2", "128"], capture_output=True, text=True, timeout=300,
                         env=env, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    last = out.stdout.strip().splitlines()[-1]
    assert last.startswith("per-image time before/now ") and "stall before/now" in last


def test_served_benchmark_runs_at_tiny_size_on_cpu():
    # pixelmcp serve over stdio against direct diffusers, alternating, and 4 concurrent requests against 4 in a row.
    script = SCRIPT.with_name("bench_served.py")
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, str(script), "--tiny", "--runs", "1", "--batch", "4"], capture_output=True,
                         text=True, timeout=300, env=env, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.strip().splitlines()
    assert lines[0].startswith("device: cpu")
    assert [line.split("|")[1].strip() for line in lines[3:6]] == ["sd15", "sdxl", "flux-schnell"]
    assert all(float(line.split("|")[7]) > 0 for line in lines[3:6])  # a ratio for each model
    assert any(line.startswith("4 SD 1.5 requests: ") and "throughput ratio" in line for line in lines)
    assert lines[-1].startswith("median ratio served/direct: ")
    float(lines[-1].rsplit(" ", 1)[1])


def test_lora_benchmark_runs_and_prints_its_switch_ratio(tmp_path, tiny_cache):
    script = SCRIPT.with_name("bench_loras.py")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PIXELMCP_CACHE_DIR": str(tiny_cache)}
    out = subprocess.run([sys.executable, str(script), "2"], capture_output=True, text=True, timeout=300, env=env,
                         check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.strip().splitlines()
    assert "LoRA loads 2" in lines[-2]
    assert lines[-1].startswith("switch ") and "ratio" in lines[-1]
    float(lines[-1].rsplit(" ", 1)[1])
