"""End-to-end generation time on an accelerator: pixelmcp's engine against a plain diffusers call,
in the same run, for the real-size SD 1.5, SDXL and FLUX.1-schnell architectures (random weights,
fp16 / bf16, configs from shared/model-configs).

pixelmcp's path is the engine's per-request path (private scheduler, `from_pipe` view, step
callback, one generator per image) with SDPA attention (diffusers' default), channels_last and,
with --compile, `torch.compile` of the denoiser. The plain path is `pipe(...)` as a script would
call it, timed first (the optimisations change the weights' layout in place).

    python benchmarks/gpu.py                       # real sizes, on the GPU
    python benchmarks/gpu.py --tiny --runs 2       # tiny architectures on CPU (a smoke test)

The last line is the median ratio pixelmcp / plain over all models.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from realsize import build_pipeline

REAL = {"sd15": (512, 25), "sdxl": (1024, 25), "flux-schnell": (1024, 4)}
TINY = {"sd15": "sd15", "sdxl": "sdxl", "flux-schnell": "flux"}
KINDS = {"sd15": "sd15", "sdxl": "sdxl", "flux-schnell": "flux"}


def load_tiny(name: str, device: str, dtype):
    import diffusers

    from pixelmcp.engine.tiny import ensure_built

    folder = ensure_built(TINY[name], Path(tempfile.gettempdir()) / "pixelmcp-gpu-bench")
    return diffusers.DiffusionPipeline.from_pretrained(folder, local_files_only=True, dtype=dtype).to(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="tiny architectures (CPU smoke test)")
    parser.add_argument("--models", default="sd15,sdxl,flux-schnell")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--steps", type=int, help="denoising steps (default per model)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the denoiser in pixelmcp's path")
    args = parser.parse_args()

    import torch

    from pixelmcp.catalog import ModelSpec
    from pixelmcp.engine import diffusion
    from pixelmcp.engine.devices import pick_device
    from pixelmcp.engine.queue import Job

    device = pick_device("auto")
    rows = []
    for name in args.models.split(","):
        side, steps = (64, 2) if args.tiny else REAL[name]
        steps = args.steps or steps
        dtype = torch.float32 if device == "cpu" else (torch.bfloat16 if name == "flux-schnell" else torch.float16)
        started = time.perf_counter()
        pipe = load_tiny(name, device, dtype) if args.tiny else build_pipeline(name, device, dtype)
        pipe.set_progress_bar_config(disable=True)
        build_s = time.perf_counter() - started
        guidance = 0.0 if name == "flux-schnell" else 7.0
        spec = ModelSpec(alias=name, kind=KINDS[name], source="(benchmark)")
        call = diffusion.DiffusionCall("a lighthouse on a cliff at dusk", None, side, side, steps, guidance, (7,))

        def plain(pipe=pipe, side=side, steps=steps, guidance=guidance) -> None:
            generator = torch.Generator("cpu").manual_seed(7)
            pipe("a lighthouse on a cliff at dusk", width=side, height=side, num_inference_steps=steps,
                 guidance_scale=guidance, generator=generator, output_type="pil")

        def engine(pipe=pipe, call=call) -> None:
            diffusion.denoise(pipe, call, Job(), lambda done, total: None)

        def timed(fn) -> float:
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            t = time.perf_counter()
            fn()
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            return time.perf_counter() - t

        # The optimisations change the shared weights in place, so the plain runs come first.
        plain()  # warm-up
        plain_times = [timed(plain) for _ in range(args.runs)]
        diffusion.optimize_pipeline(pipe, spec, channels_last=True, compile=args.compile)
        engine()  # warm-up (and compilation)
        engine_times = [timed(engine) for _ in range(args.runs)]
        rows.append((name, side, steps, str(dtype).removeprefix("torch."), build_s,
                     statistics.median(plain_times), statistics.median(engine_times)))
        pipe = None  # free the model before building the next one
        if device.startswith("cuda"):
            torch.cuda.empty_cache()

    label = torch.cuda.get_device_name() if device.startswith("cuda") else device
    print(f"device: {label}; torch {torch.__version__}; runs per path: {args.runs}; compile: {args.compile}")
    print("| model | size | steps | dtype | build s | plain diffusers s | pixelmcp engine s | ratio |")
    print("|---|---|---|---|---|---|---|---|")
    for name, side, steps, dtype, build_s, plain_s, engine_s in rows:
        print(f"| {name} | {side} | {steps} | {dtype} | {build_s:.1f} | {plain_s:.3f} | {engine_s:.3f} | "
              f"{engine_s / plain_s:.3f} |")
    print(f"median ratio pixelmcp/plain: {statistics.median(r[6] / r[5] for r in rows):.3f}")


if __name__ == "__main__":
    main()
