"""list_models: the catalog, what is loaded where, memory used, and the pool's counters."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from pixelmcp.catalog import IMAGE_KINDS, ModelSpec, Task
from pixelmcp.registry import ProviderInfo, provider_infos
from pixelmcp.service.loras import folder_loras
from pixelmcp.service.state import AppState
from pixelmcp.tools.context import AppContext, app_state
from pixelmcp.tools.gallery import APP_HOSTS, STUDIO_URI, UI_TOOLS


class CatalogEntry(BaseModel):
    alias: str
    task: str = Field(description="generate, lora, rewrite, preprocess, classify, answer or segment")
    kind: str
    source: str
    description: str
    licence: str = Field(description="the weights' licence (tiny and custom models: empty)")
    loaded: bool = Field(description="resident on the device now")
    controlnets: list[str] = Field(default_factory=list, description="control types with a ControlNet")
    ip_adapter: bool = False
    inpaint: Literal["dedicated", "base"] | None = Field(
        None, description="how it inpaints: with a dedicated inpainting UNet, or with the base model itself"
    )
    detector: str | None = Field(None, description="a pose model's person detector (repo id or folder)")
    base: str | None = Field(None, description="a LoRA: the image family it was trained for (its models: kind)")
    default_weight: float | None = Field(None, description="a LoRA: its weight when a call gives none")
    trigger_words: list[str] = Field(default_factory=list, description="a LoRA: words to put in the prompt")
    tools: list[str] = Field(default_factory=list, description="the tools this model can serve")


class LoadedEntry(BaseModel):
    alias: str
    kind: str
    tier: str = Field(description="device: ready; cpu: evicted to RAM, a quick copy away")
    device: str
    dtype: str = Field(description="the dtype it was loaded in")
    dtypes: dict[str, int] = Field(description="bytes it holds per dtype, measured after each job that used it (a "
                                               "deliberate mix, e.g. T5's float32 layers in float16, shows here)")
    loaded_dtypes: dict[str, int] = Field(description="bytes per dtype right after loading: `dtypes` stays equal")
    bytes: int = Field(description="bytes it holds on its device, measured after each job that used it")
    in_use: bool
    uses: int
    idle_seconds: float
    load_seconds: float
    loras: list[str] = Field(default_factory=list, description="LoRA adapters it holds (switched per call, not "
                                                               "reloaded)")


class DownloadEntry(BaseModel):
    alias: str
    source: str
    received_bytes: int
    total_bytes: int = Field(description="bytes of the files that were missing when it began")
    seconds: float


class DeviceEntry(BaseModel):
    device: str
    budget_bytes: int
    used_bytes: int
    busy: int = Field(description="jobs running or waiting on it")


class AppInfo(BaseModel):
    """The MCP Apps interface the image tools open in."""

    uri: str = Field(description="its ui:// resource (text/html;profile=mcp-app)")
    shown_by: list[str] = Field(description="hosts known to render MCP Apps; others show the same complete results "
                                            "as text, previews and links")
    tools: list[str] = Field(description="the tools whose results open in it")


class CompileInfo(BaseModel):
    backend: str
    compiled_calls: int = Field(description="text-to-image calls that ran a compiled denoiser")
    warm: list[list] = Field(description="[width, height, images, guided] shapes that run compiled")
    compiling: list[list] = Field(description="shapes being compiled in the background now")
    failed: int = Field(description="models whose compilation failed (they run uncompiled; see the server log)")


class ModelsReport(BaseModel):
    profile: str
    device: str = Field(description="the device models run on (several GPUs: each, comma-separated)")
    budget_bytes: int | None = Field(description="memory models may use, all devices together (null before first use)")
    used_bytes: int
    devices: list[DeviceEntry] = Field(default_factory=list, description="each device's budget, use and queue")
    queued: dict[str, int] = Field(description="requests waiting per device")
    stats: dict[str, int] = Field(description="hits, loads, tier_reloads, evictions, jobs, cancelled, ...")
    loaded: list[LoadedEntry]
    downloads: list[DownloadEntry] = Field(description="models being downloaded now")
    compile: CompileInfo | None = Field(None, description="with PIXELMCP_COMPILE: what is compiled (null: off)")
    catalog: list[CatalogEntry]
    providers: list[ProviderInfo] = Field(description="remote providers, used as provider:model in `model` arguments")
    app: AppInfo = Field(description="the viewer, gallery and mask painter that hosts with MCP Apps show")


def models_report(app: AppState, task: str | None = None) -> ModelsReport:
    snapshot: dict[str, Any] = app.pool.snapshot()
    resident = {m["alias"] for m in snapshot["loaded"] if m["tier"] == "device"}
    catalog = [
        CatalogEntry(alias=s.alias, task=s.task, kind=s.kind, source=s.source, description=s.description,
                     licence=s.licence,
                     loaded=s.alias in resident, controlnets=sorted(s.controlnets), ip_adapter=s.ip_adapter is not None,
                     inpaint=("dedicated" if s.inpaint else "base") if s.kind in IMAGE_KINDS else None,
                     detector=s.detector, tools=tools_of(s), **_lora_fields(s))
        for s in [*app.settings.catalog.values(), *folder_loras(app.settings)] if task is None or s.task == task
    ]
    return ModelsReport(profile=app.settings.profile, device=snapshot["device"], budget_bytes=snapshot["budget_bytes"],
                        used_bytes=snapshot["used_bytes"], devices=[DeviceEntry(**d) for d in snapshot["devices"]],
                        queued=snapshot["queued"], stats=snapshot["stats"],
                        loaded=[LoadedEntry(**m) for m in snapshot["loaded"]],
                        downloads=[DownloadEntry(**d) for d in snapshot["downloads"]], catalog=catalog,
                        compile=CompileInfo(**snapshot["compile"]) if snapshot["compile"] else None,
                        providers=provider_infos(app.settings),
                        app=AppInfo(uri=STUDIO_URI, shown_by=list(APP_HOSTS), tools=list(UI_TOOLS)))


def _lora_fields(spec: ModelSpec) -> dict[str, Any]:
    if spec.kind != "lora":
        return {}
    return dict(base=spec.base, default_weight=spec.default_weight, trigger_words=list(spec.trigger_words))


#: The tools each task's models serve (image models: also by their ControlNets and IP-Adapter).
_TOOLS = {"generate": ["generate_image", "edit_image", "extend_image", "upscale_image"],
          "lora": ["generate_image", "edit_image", "extend_image", "upscale_image", "controlnet_generate",
                   "style_transfer"],
          "rewrite": ["rewrite_prompt"], "preprocess": ["controlnet_generate"],
          "classify": ["classify_image", "compare_images"], "answer": ["ask_about_image", "compare_images"],
          "segment": ["edit_image", "remove_background"]}


def tools_of(spec: ModelSpec) -> list[str]:
    tools = list(_TOOLS[spec.task])
    if spec.controlnets:
        tools.append("controlnet_generate")
    if spec.ip_adapter is not None:
        tools.append("style_transfer")
    return tools


async def list_models(
    ctx: AppContext,
    task: Annotated[
        Task | None, Field(description="Only this task's catalog entries; omit for all.")
    ] = None,
) -> ModelsReport:
    """List the models this server can use (`model` aliases, provider:model), what is loaded where, and the
    memory used."""
    from pixelmcp.providers.health import check_endpoints

    app = app_state(ctx)
    report = models_report(app, task)
    await check_endpoints(report.providers, app.router.replica_states())
    return report
