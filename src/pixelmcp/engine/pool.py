"""ModelPool: lazy loading, memory budgets, LRU eviction, leases, placement over several GPUs.

The pool is the only owner of loaded models. A tool's backend asks it to `run` a job
(engine/queue.py: one job per device, queued, cancellable); inside the job, `get` hands out
models, loading them on first use and telling the client so.

Devices: one, or several GPUs (PIXELMCP_DEVICES, or every CUDA GPU with device=auto). Each has its
own budget, its own models and its own queue. A job is placed before it queues: on a device that
holds its models (most of their bytes; then the least busy); else on the one with the most free
budget. When the device holding them is busy and another is idle with room, the models may be
copied there (PIXELMCP_MODEL_REPLICAS copies at most), so two requests for one hot model run at
once; the micro-batcher's next batch then goes to the other copy.

Memory: every loaded model's bytes are measured (storages shared between models are counted
once), again after each job that used it, and kept within the device budget. Models a job uses
are leased (pinned) for the job; to make room, unpinned models are evicted least-recently-used
first, to CPU RAM when there is an accelerator and RAM to spare (the next use is a device copy,
not a disk read), else freed. A job that runs out of device memory anyway is retried once after
every model not in use is freed.

LoRAs: adapters loaded into a model are its parameters, counted in its bytes (engine/loras.py).

Dtypes: a model keeps the dtypes it was loaded with. After each job the pool checks; a part that a
library cast behind its back is cast back, logged as a bug and counted (`dtype_repairs`; the tests
hold it at 0). A library's exception inside a job becomes an EngineFailure naming the models, the
step and what to do; the traceback goes to the log.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pixelmcp.backends import Progress
from pixelmcp.catalog import TINY_PREFIX, ModelSpec
from pixelmcp.config import Settings
from pixelmcp.engine import devices, memory, weights
from pixelmcp.engine.compiling import BackgroundCompiler
from pixelmcp.engine.downloads import Downloads
from pixelmcp.engine.loading import quiet_libraries
from pixelmcp.engine.loras import LoraBank, adapters_of
from pixelmcp.engine.queue import DeviceQueue, Job, QueueStats
from pixelmcp.errors import EngineFailure, GenerationCancelled, ModelLoadError, OutOfMemory, PixelError, first_line

logger = logging.getLogger(__name__)

T = TypeVar("T")

Loader = Callable[[str, str, Any], Any]
_GIB = 2**30


@dataclass
class LoadedModel:
    """A model in memory, where it is, and what it costs."""

    spec: ModelSpec
    value: Any
    device: str
    dtype: str
    load_seconds: float
    bytes: int = 0  # on its device (or in RAM, for the CPU tier), measured after every job that used it
    layout: dict[str, tuple[str, ...]] = field(default_factory=dict)  # each part's dtypes as loaded
    loaded_dtypes: dict[str, int] = field(default_factory=dict)  # bytes per dtype as loaded
    dtypes: dict[str, int] = field(default_factory=dict)  # bytes per dtype, measured after each job that used it
    tier: str = "device"  # "device", or "cpu" once evicted to RAM
    pins: int = 0
    uses: int = 0
    last_used: float = field(default_factory=time.monotonic)


@dataclass
class PoolStats(QueueStats):
    loads: int = 0
    hits: int = 0
    tier_reloads: int = 0
    evictions: int = 0
    oom_retries: int = 0
    dtype_repairs: int = 0  # jobs after which a model's dtypes were not the ones it was loaded with (a bug)
    lora_loads: int = 0  # LoRAs loaded into a model (a switch between loaded ones loads nothing)
    lora_evictions: int = 0  # adapters deleted to stay within PIXELMCP_LORA_CACHE


class ModelPool:
    """Loads models lazily, keeps them within the memory budget, runs their jobs on the device queue."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.stats = PoolStats()
        self.queue = DeviceQueue(settings.max_queue, settings.call_timeout_s, self.stats)
        self.downloads = Downloads()
        self._models: dict[tuple[str, str], LoadedModel] = {}  # (alias, device) -> model
        self._load_lock = threading.RLock()
        self._devices: list[str] | None = None
        self._accelerator_gb: float | None = None
        #: Compiled denoisers, made in the background (PIXELMCP_COMPILE; engine/compiling.py).
        self.compiler = BackgroundCompiler(settings.compile_backend, settings.cache_dir) if settings.compile else None
        #: LoRA adapters loaded into the pooled models (engine/loras.py).
        self.loras = LoraBank(settings.lora_cache, self.stats)
        #: Task groups that outlive single requests (lent by the server's lifespan); micro-batches run in them.
        self.background_groups: list[Any] = []

    @property
    def background(self) -> Any:
        """The newest task group lent by a running server, or None outside one."""
        return self.background_groups[-1] if self.background_groups else None

    # ------------------------------------------------------------------ devices

    @property
    def devices(self) -> list[str]:
        """The devices jobs run on (imports torch on first use)."""
        if self._devices is None:
            self._devices = devices.pick_devices(self.settings.device, self.settings.devices)
            logger.info("pixelmcp device%s: %s", "s" if len(self._devices) > 1 else "", ", ".join(self._devices))
        return self._devices

    @property
    def device(self) -> str:
        """The first device (the only one, unless several GPUs are in use)."""
        return self.devices[0]

    def dtype_for(self, spec: ModelSpec):
        """The dtype `spec` runs in on this pool's devices (engine/devices.py)."""
        return devices.dtype_for(self.settings.dtype, self.device, spec.kind)

    def accelerator_memory_gb(self) -> float:
        """Memory of the largest accelerator in GiB (0 on CPU): what one model may take (asked once)."""
        if self._accelerator_gb is None:
            self._accelerator_gb = max(0.0 if device == "cpu" else memory.device_capacity(device) / _GIB
                                       for device in self.devices)
        return self._accelerator_gb

    @property
    def measured(self) -> bool:
        """The devices' memory is known (accelerator_memory_gb answers without touching torch)."""
        return self._accelerator_gb is not None

    @property
    def budget_bytes(self) -> int:
        """Bytes models may use on the first device (`budget_for` another)."""
        return self.budget_for(self.device)

    def budget_for(self, device: str) -> int:
        """Bytes models may use on `device`: the configured budget, or capacity minus the working reserve."""
        if self.settings.memory_budget_mb is not None:
            return int(self.settings.memory_budget_mb * 2**20)
        return max(0, memory.device_capacity(device) - self.reserve_for(device))

    @property
    def reserve_bytes(self) -> int:
        return self.reserve_for(self.device)

    def reserve_for(self, device: str) -> int:
        """Memory kept free for activations (latents, attention, decoding)."""
        if self.settings.working_reserve_mb is not None:
            return int(self.settings.working_reserve_mb * 2**20)
        return 2 * _GIB if device.startswith("cuda") else _GIB

    # ------------------------------------------------------------------ models

    def source_of(self, spec: ModelSpec) -> str:
        """Where from_pretrained loads `spec` from: a built tiny folder, a local folder, or a hub id."""
        return resolve_source(spec, self.settings)

    def get(self, spec: ModelSpec, loader: Loader, job: Job) -> Any:
        """The loaded model for `spec`, leased to `job` until it ends (pinned: never evicted meanwhile).

        Loads it with `loader(source, device, dtype)` if needed, after making room for it, and tells
        the client (a load can take minutes). Runs in a worker thread; adds the time spent loading
        to `job.load_seconds`.
        """
        device = job.device or self.device
        with self._load_lock:
            loaded = self._models.get((spec.alias, device))
            if loaded is not None and loaded.tier == "device":
                self.stats.hits += 1
            elif loaded is not None:
                job.check()
                job.report(0, None, f"moving {spec.alias} back to {device}")
                started = time.perf_counter()
                self._make_room(loaded.bytes, spec, device)
                memory.move(loaded.value, device)
                loaded.tier, loaded.bytes = "device", self._measure(loaded.value, device)
                job.load_seconds += time.perf_counter() - started
                self.stats.tier_reloads += 1
            else:
                loaded = self._load(spec, loader, job, device)
            loaded.pins += 1
            loaded.uses += 1
            loaded.last_used = time.monotonic()
            job.leases.append(loaded)
            return loaded.value

    def _load(self, spec: ModelSpec, loader: Loader, job: Job, device: str) -> LoadedModel:
        job.check()
        job.report(0, None, f"loading {spec.alias}" + (f" on {device}" if len(self.devices) > 1 else ""))
        started = time.perf_counter()
        dtype = self.dtype_for(spec)
        source = self.source_of(spec)
        self._make_room(self._estimate(spec, source), spec, device)
        logger.info("loading %s from %s on %s (%s)", spec.alias, source, device, dtype)
        quiet_libraries()  # before the loader's first import, whose fallbacks would warn on stderr
        value = loader(source, device, dtype)
        counted = memory.census(value)
        loaded = LoadedModel(spec, value, device, str(dtype).removeprefix("torch."), 0.0,
                             self._measure(value, device), counted.layout, counted.by_dtype, dict(counted.by_dtype))
        self._models[spec.alias, device] = loaded
        if self._used_bytes(device) > self.budget_for(device):
            loaded.pins += 1  # the new model stays; only others may make way
            try:
                self._make_room(0, spec, device)
            except ModelLoadError:
                self._drop(loaded)
                raise
            finally:
                loaded.pins -= 1
        loaded.load_seconds = time.perf_counter() - started
        job.load_seconds += loaded.load_seconds
        self.stats.loads += 1
        logger.info("loaded %s in %.1fs (%.2f GB)", spec.alias, loaded.load_seconds, loaded.bytes / 1e9)
        return loaded

    def _estimate(self, spec: ModelSpec, source: str | None = None) -> int:
        """Bytes `spec` will take once loaded, from its weight files (or its catalog's min_memory_gb)."""
        dtype = self.dtype_for(spec)
        variant = weights.wanted_variant(spec.variant, dtype.itemsize)
        return (memory.estimate_bytes(source or self.source_of(spec), dtype.itemsize, preferred_variant=variant,
                                      paths=spec.weight_paths) or int(spec.min_memory_gb * _GIB))

    def _measure(self, value: Any, device: str) -> int:
        return memory.bytes_by_device(value).get(devices.device_key(device), 0)

    def _used_bytes(self, device: str | None = None) -> int:
        device = device or self.device
        counted: set = set()
        key = devices.device_key(device)
        return sum(memory.bytes_by_device(m.value, counted).get(key, 0)
                   for m in self._on(device) if m.tier == "device")

    def _on(self, device: str) -> list[LoadedModel]:
        return [m for m in self._models.values() if m.device == device]

    def _make_room(self, needed: int, spec: ModelSpec, device: str) -> None:
        """Evict unpinned models of `device`, least recently used first, until `needed` more bytes fit its budget."""
        budget = self.budget_for(device)
        while self._used_bytes(device) + needed > budget or not self._device_has_room(needed, device):
            victims = [m for m in self._on(device) if m.tier == "device" and m.pins == 0]
            if not victims:
                raise ModelLoadError(self._no_room_message(spec, needed, budget, device))
            self._evict(min(victims, key=lambda m: m.last_used))

    def _device_has_room(self, needed: int, device: str) -> bool:
        """On CUDA, also ask the driver: other processes may hold memory our budget knows nothing of."""
        if not device.startswith("cuda") or needed == 0:
            return True
        return memory.device_available(device) >= needed + self.reserve_for(device)

    def _no_room_message(self, spec: ModelSpec, needed: int, budget: int, device: str) -> str:
        resident = ", ".join(
            f"{m.spec.alias} {m.bytes / 1e9:.2f} GB{' (in use)' if m.pins else ''}"
            for m in self._on(device) if m.tier == "device"
        ) or "nothing"
        return (
            f"Not enough memory on {device} for {spec.alias}: it needs about {needed / 1e9:.2f} GB more, the "
            f"budget is {budget / 1e9:.2f} GB, and loaded now is {resident}. Use a smaller model or a lower-precision variant, "
            f"set offload = \"model\" for it under [models.{spec.config_alias}], wait for the models in use to be "
            "released, or raise PIXELMCP_MEMORY_BUDGET_MB if the device has memory to spare."
        )

    def _evict(self, victim: LoadedModel) -> None:
        self.stats.evictions += 1
        if self.settings.cpu_tier and victim.device != "cpu" and self._ram_allows(victim.bytes):
            logger.info("moving %s to CPU RAM to free %.2f GB on %s", victim.spec.alias, victim.bytes / 1e9,
                        victim.device)
            memory.move(victim.value, "cpu")
            victim.tier = "cpu"
        else:
            logger.info("unloading %s to free %.2f GB on %s", victim.spec.alias, victim.bytes / 1e9, victim.device)
            self._models.pop((victim.spec.alias, victim.device), None)
            victim.value = None
        memory.release(victim.device)

    def _drop(self, loaded: LoadedModel) -> None:
        self._models.pop((loaded.spec.alias, loaded.device), None)
        loaded.value = None
        memory.release(loaded.device)

    def _ram_allows(self, size: int) -> bool:
        return memory.device_available("cpu") - size > 2 * _GIB

    def evict_idle(self, idle_seconds: float) -> list[str]:
        """Unload unpinned models unused for `idle_seconds` (keep-alive); returns their aliases."""
        now = time.monotonic()
        with self._load_lock:
            idle = [m for m in self._models.values() if m.pins == 0 and now - m.last_used >= idle_seconds]
            for loaded in idle:
                self.stats.evictions += 1
                self._drop(loaded)
        return [m.spec.alias for m in idle]

    def close(self) -> list[str]:
        """Release every model (the server stops); returns their aliases."""
        if self.compiler is not None:
            self.compiler.wait(timeout=10.0)  # a compilation cannot be stopped half-way; it is given a moment
        with self._load_lock:
            released = [m.spec.alias for m in self._models.values()]
            for loaded in list(self._models.values()):
                self._drop(loaded)
        return released

    def evict_unpinned(self, device: str | None = None) -> None:
        """Free every model not in use on `device` (all devices: None), the response to an out-of-memory error."""
        with self._load_lock:
            for loaded in [m for m in self._models.values()
                           if m.pins == 0 and m.tier == "device" and device in (None, m.device)]:
                self._evict(loaded)

    async def preload(self, spec: ModelSpec, loader: Loader) -> None:
        """Load `spec` now (a background warm-up), without keeping it pinned."""
        def work(job: Job) -> None:
            self.get(spec, loader, job)

        await self.run(work)

    def loaded(self) -> list[LoadedModel]:
        return list(self._models.values())

    def is_resident(self, alias: str) -> bool:
        """On some device now (not evicted to RAM)."""
        return any(m.spec.alias == alias and m.tier == "device" for m in self._models.values())

    def snapshot(self) -> dict[str, Any]:
        """What is loaded where, bytes used, and the counters (for list_models)."""
        with self._load_lock:
            now = time.monotonic()
            chosen = self._devices or []
            device = ", ".join(chosen) or "not chosen yet (no model loaded)"
            models = [
                dict(alias=m.spec.alias, kind=m.spec.kind, tier=m.tier, device=m.device if m.tier == "device" else "cpu",
                     dtype=m.dtype, dtypes=m.dtypes, loaded_dtypes=m.loaded_dtypes,
                     bytes=m.bytes, in_use=m.pins > 0, uses=m.uses, idle_seconds=round(now - m.last_used, 1),
                     load_seconds=round(m.load_seconds, 3), loras=adapters_of(m.value) if m.value is not None else [])
                for m in self._models.values()
            ]
            budget = sum(self.budget_for(d) for d in chosen) if chosen else None
            used = sum(self._used_bytes(d) for d in chosen)
            per_device = [dict(device=d, budget_bytes=self.budget_for(d), used_bytes=self._used_bytes(d),
                               busy=self.queue.load(d)) for d in chosen]
        return dict(device=device, budget_bytes=budget, used_bytes=used, loaded=models, stats=vars(self.stats).copy(),
                    queued={k: v for k, v in self.queue.waiting.items() if v}, devices=per_device,
                    compile=self.compiler.report() if self.compiler is not None else None,
                    downloads=self.downloads.in_progress())

    # ------------------------------------------------------------------ jobs

    async def ready(self, specs: list[ModelSpec | None], progress: Progress | None = None) -> None:
        """The models a job will need, on disk: hub models not downloaded yet are fetched now, before the job
        queues for the device (engine/downloads.py)."""
        await self.downloads.ensure(specs, self.dtype_for, progress, self.background)

    async def run(self, work: Callable[[Job], T], progress: Progress | None = None,
                  models: list[ModelSpec | None] = ()) -> tuple[T, float]:
        """Run `work(job)` on the device queue (engine/queue.py); returns (result, queue seconds).

        `models` (the ones the job will load) are made `ready` first, before the job queues.
        `progress` hears the downloads, the loads, the worker's reports, and a heartbeat while the
        job waits or runs.
        """
        if models:
            await self.ready(models, progress)
        device = self.place([spec for spec in models if spec is not None])  # (no await until it queues there)
        return await self.queue.run(device, lambda job: self._run_job(work, job, device), progress)

    def place(self, specs: list[ModelSpec]) -> str:
        """The device a job for `specs` should run on (see the module's docstring)."""
        choices = self.devices
        if len(choices) == 1:
            return choices[0]
        with self._load_lock:
            def resident(device: str) -> int:
                return sum(m.bytes for spec in specs
                           if (m := self._models.get((spec.alias, device))) is not None and m.tier == "device")

            def free(device: str) -> int:
                return self.budget_for(device) - self._used_bytes(device)

            holders = sorted((d for d in choices if resident(d)), key=lambda d: (-resident(d), self.queue.load(d)))
            if not holders:
                return max(choices, key=lambda d: (free(d), -self.queue.load(d)))
            idle_holder = next((d for d in holders if self.queue.load(d) == 0), None)
            if idle_holder is not None:
                return idle_holder
            copies = sum(1 for d in choices if specs and (specs[0].alias, d) in self._models)
            if copies < self.settings.model_replicas:
                need = sum(self._estimate(spec) for spec in specs)
                spare = [d for d in choices if d not in holders and self.queue.load(d) == 0 and free(d) >= need]
                if spare:
                    return max(spare, key=free)
            return holders[0]

    def _run_job(self, work: Callable[[Job], T], job: Job, device: str | None = None) -> T:
        """In the worker: run the job on `device`; on out-of-memory, free every model not in use there and retry
        once."""
        job.device = device or self.device
        try:
            return self._run_retrying(work, job)
        except (PixelError, GenerationCancelled):
            raise
        except Exception as e:  # the engine's boundary: libraries fail with any type
            logger.exception("job failed at %r on %s", job.status, job.device)
            raise self._failure(job, e) from e
        finally:
            self._release_leases(job)

    def _run_retrying(self, work: Callable[[Job], T], job: Job) -> T:
        """`work(job)`; on out-of-memory, once more after every model not in use on the device is freed."""
        try:
            return work(job)
        except Exception as e:
            if not devices.is_out_of_memory(e):
                raise
            logger.warning("out of memory on %s (%s); freeing unused models and retrying once", job.device, e)
            self.stats.oom_retries += 1
            self.evict_unpinned(job.device)  # the job's own models stay leased; everything else makes way
        try:
            return work(job)
        except Exception as e:
            if not devices.is_out_of_memory(e):
                raise
            raise OutOfMemory(
                f"{job.device} ran out of memory even after freeing every model not in use ({e}). "
                "Ask for fewer or smaller images (n, width, height), use a smaller model, or set "
                "offload = \"model\" for it in the config file."
            ) from e

    def _release_leases(self, job: Job) -> None:
        with self._load_lock:
            for loaded in job.leases:
                loaded.pins -= 1
                loaded.last_used = time.monotonic()
            for loaded in _distinct(job.leases):
                self._settle(loaded)
            job.leases.clear()

    def _settle(self, loaded: LoadedModel) -> None:
        """After a job: the model in the dtypes it was loaded with, and its bytes as the device holds them now."""
        if loaded.value is None or loaded.tier != "device":
            return
        counted = memory.census(loaded.value)
        now = counted.layout
        if now != loaded.layout:
            self.stats.dtype_repairs += 1
            changed = ", ".join(f"{name or 'the model'} {'/'.join(loaded.layout.get(name, ('-',)))} -> "
                                f"{'/'.join(dtypes)}" for name, dtypes in now.items()
                                if loaded.layout.get(name) != dtypes)
            restored = memory.restore_dtypes(loaded.value, loaded.layout, now)
            logger.error("%s changed dtype during a job (%s); cast back: %s. This is a bug: please report it.",
                         loaded.spec.alias, changed, ", ".join(restored) or "nothing (mixed parts)")
            counted = memory.census(loaded.value)  # as it is after the repair
        loaded.bytes = self._measure(loaded.value, loaded.device)
        loaded.dtypes = counted.by_dtype

    def _failure(self, job: Job, error: Exception) -> EngineFailure:
        """A library's exception inside a job, as a tool error naming the models, the step and what to do."""
        models = ", ".join(_described(m) for m in _distinct(job.leases))
        reason = first_line(error)
        text = (f"The work failed inside the model library at '{job.status}'" + (f" with {models}" if models else "")
                + f": {type(error).__name__}" + (f": {reason}" if reason else "")
                + ". This is not caused by the arguments; the traceback is in the server log. ")
        if "dtype" in reason.lower() or "same type" in reason.lower():
            text += ("The models of this call disagree on their precision: try the call again (the pool restores "
                     "each model's dtype after every job), or set PIXELMCP_DTYPE=float32 to run everything in one "
                     "precision, and report it with the log.")
        else:
            text += ("Try the call again; if it fails again, try another model or PIXELMCP_DTYPE=float32, and "
                     "report it with the log.")
        return EngineFailure(text)


def _distinct(leases: list[LoadedModel]) -> list[LoadedModel]:
    """A job's leased models, each once (a job may lease one model several times)."""
    return list({id(m): m for m in leases}.values())


def _described(loaded: LoadedModel) -> str:
    """'alias (bfloat16 on cuda:0)', or with the dtypes it holds now when a part no longer has its own."""
    now = memory.census(loaded.value).layout if loaded.value is not None else loaded.layout
    changed = sorted({dtype for name, dtypes in now.items() if loaded.layout.get(name) != dtypes for dtype in dtypes})
    held = f", holding {'/'.join(changed)} now" if changed else ""
    return f"{loaded.spec.alias} ({loaded.dtype} on {loaded.device}{held})"


def resolve_source(spec: ModelSpec, settings: Settings) -> str:
    """A `tiny:` source built (once) into the cache, a local folder checked, or a hub id as given."""
    source = spec.source
    if source.startswith(TINY_PREFIX):
        from pixelmcp.engine.tiny import ensure_built

        return str(ensure_built(source.removeprefix(TINY_PREFIX), settings.tiny_dir))
    folder = Path(source).expanduser()
    if folder.is_dir():
        return str(folder)
    if source.startswith(("/", "~", ".", "\\\\")) or (len(source) > 1 and source[1] == ":"):
        raise ModelLoadError(
            f"Model {spec.alias!r} points at the folder {source!r}, which does not exist. "
            f"Fix its source under [models.{spec.config_alias}] in the config file, or download the model there."
        )
    return source
