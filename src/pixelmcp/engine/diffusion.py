"""Denoising on diffusers pipelines (SD 1.5, SDXL, SD3, FLUX): text-to-image, image-to-image and inpainting.

Loaded pipelines are shared by every request, but their schedulers hold per-run state and
are not thread-safe, so each request gets its own scheduler and a light pipeline view (`view`:
the components are the same objects, not copies). Image-to-image, inpainting and ControlNet are
such views too, over the base model's weights; a dedicated inpainting checkpoint contributes
only its UNet.

Views are built here, not with diffusers' `from_pipe`: diffusers 0.42's `from_pipe` ends with
`new_pipeline.to(dtype=dtype or torch.float32)` (huggingface/diffusers#12754, fix #12762 not
released), which casts the *shared* components to float32 in place when no dtype is given, and to
one dtype when one is (undoing a deliberate mix such as T5's float32 `wo` layers). A view never
casts, moves or copies anything.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pixelmcp.backends import ImageRequest
from pixelmcp.catalog import ModelSpec
from pixelmcp.engine.loading import loading
from pixelmcp.engine.queue import Job
from pixelmcp.errors import GenerationCancelled

logger = logging.getLogger(__name__)

_PIPELINES = {
    "sd15": "StableDiffusionPipeline",
    "sdxl": "StableDiffusionXLPipeline",
    "sd3": "StableDiffusion3Pipeline",
    "flux": "FluxPipeline",
}
#: The view classes per base pipeline class: ControlNet, image-to-image, inpainting.
CONTROLNET_PIPELINES = {
    "StableDiffusionPipeline": "StableDiffusionControlNetPipeline",
    "StableDiffusionXLPipeline": "StableDiffusionXLControlNetPipeline",
}
IMAGE_TO_IMAGE_PIPELINES = {
    "StableDiffusionPipeline": "StableDiffusionImg2ImgPipeline",
    "StableDiffusionXLPipeline": "StableDiffusionXLImg2ImgPipeline",
    "StableDiffusion3Pipeline": "StableDiffusion3Img2ImgPipeline",
    "FluxPipeline": "FluxImg2ImgPipeline",
}
INPAINTING_PIPELINES = {
    "StableDiffusionPipeline": "StableDiffusionInpaintPipeline",
    "StableDiffusionXLPipeline": "StableDiffusionXLInpaintPipeline",
    "StableDiffusion3Pipeline": "StableDiffusion3InpaintPipeline",
    "FluxPipeline": "FluxInpaintPipeline",
}


@dataclass(frozen=True)
class DiffusionCall:
    """Arguments of one text-to-image call, already validated against the model's limits.

    `prompt` is one prompt for every seed, or (a micro-batch) one prompt per seed.
    """

    prompt: str | tuple[str, ...]
    negative_prompt: str | None
    width: int
    height: int
    steps: int
    guidance_scale: float
    seeds: tuple[int, ...]
    control_image: Any = None  # PIL image: the control map, already at width x height
    conditioning_scale: float = 1.0
    ip_image: Any = None  # PIL image: the IP-Adapter reference
    ip_scale: float | dict = 1.0  # set_ip_adapter_scale's argument: one number, or per-block scales
    image: Any = None  # PIL image to start from (image-to-image, inpainting), already at width x height
    mask: Any = None  # PIL L image, white = repaint (inpainting), already at width x height
    strength: float = 1.0  # with `image`: how much changes (the share of the steps that run)

    @classmethod
    def of(cls, requests: list[ImageRequest], *, control_image: Any = None,
           ip_scale: float | dict = 1.0, image: Any = None, mask: Any = None) -> DiffusionCall:
        """The call for one request, or for a micro-batch of plain requests that agree on everything but prompt
        and seeds (then one prompt per seed)."""
        first = requests[0]
        if len(requests) == 1:
            prompt: str | tuple[str, ...] = first.model_prompt
        else:
            prompt = tuple(r.model_prompt for r in requests for _ in r.seeds)
        return cls(
            prompt=prompt,
            negative_prompt=first.negative_prompt,
            width=first.width,
            height=first.height,
            steps=first.steps,
            guidance_scale=first.guidance_scale,
            seeds=tuple(seed for r in requests for seed in r.seeds),
            control_image=control_image,
            conditioning_scale=first.control.conditioning_scale if first.control else 1.0,
            ip_image=first.style.image if first.style else None,
            ip_scale=ip_scale,
            image=image,
            mask=mask,
            strength=first.edit.strength if first.edit and first.edit.strength is not None else 1.0,
        )


def load_pipeline(spec: ModelSpec, *, channels_last: bool = False) -> Callable[[str, str, Any], Any]:
    """A loader for the pool: `from_pretrained` of the pipeline class of `spec.kind`, optionally optimised."""

    def load(source: str, device: str, dtype) -> Any:
        import diffusers

        pipeline_class = getattr(diffusers, _PIPELINES[spec.kind])
        kwargs: dict[str, Any] = {"dtype": dtype}
        if spec.kind == "sd15":
            # The SD 1.5 safety checker is a 1.2 GB CLIP model that blacks out images; not loaded.
            kwargs.update(safety_checker=None, requires_safety_checker=False)
        with loading(spec, source, dtype) as fetched:
            if fetched.variant:
                kwargs["variant"] = fetched.variant
            pipe = pipeline_class.from_pretrained(fetched.folder, local_files_only=True, **kwargs)
            place_pipeline(pipe, spec, device)
        pipe.set_progress_bar_config(disable=True)
        # (no compile here: the server compiles in the background, engine/compiling.py)
        return optimize_pipeline(pipe, spec, channels_last=channels_last, compile=False)

    return load


def load_unet(spec: ModelSpec) -> Callable[[str, str, Any], Any]:
    """A loader for the pool: the UNet folder (`spec.component`) of a pipeline repo, e.g. an inpainting UNet."""

    def load(source: str, device: str, dtype) -> Any:
        from diffusers import UNet2DConditionModel

        with loading(spec, source, dtype, paths=spec.weight_paths) as fetched:
            variant = {"variant": fetched.variant} if fetched.variant else {}
            return UNet2DConditionModel.from_pretrained(fetched.folder, subfolder=spec.component, dtype=dtype,
                                                        local_files_only=True, **variant).to(device).eval()

    return load


def optimize_pipeline(pipe: Any, spec: ModelSpec, *, channels_last: bool, compile: bool) -> Any:
    """channels_last memory layout for the convolutional parts, and `torch.compile` of the denoiser.

    Attention already uses PyTorch's scaled-dot-product kernels (diffusers' default processors).
    Both options change the pipeline in place and return it.
    """
    import torch

    if channels_last:
        for module in (getattr(pipe, "unet", None), getattr(pipe, "vae", None)):
            if module is not None:
                module.to(memory_format=torch.channels_last)
    denoiser = getattr(pipe, "unet", None) or getattr(pipe, "transformer", None)
    if compile and denoiser is not None:
        logger.info("compiling the denoiser of %s (the first generation will be slow)", spec.alias)
        denoiser.compile()
    return pipe


def place_pipeline(pipe: Any, spec: ModelSpec, device: str) -> None:
    """Put the pipeline on `device`, or let diffusers offload it there piece by piece when asked to."""
    if spec.offload == "none" or device in ("cpu", "mps"):
        if spec.offload != "none":
            logger.warning("offload=%s for %s needs a CUDA device; running fully on %s", spec.offload, spec.alias,
                           device)
        pipe.to(device)
    elif spec.offload == "model":
        pipe.enable_model_cpu_offload(device=device)
    else:
        pipe.enable_sequential_cpu_offload(device=device)


def view(view_class: type, pipe: Any, **overrides: Any) -> Any:
    """A `view_class` pipeline over `pipe`'s components (and its settings such as
    `requires_safety_checker`), with `overrides` in place of some: what `from_pipe` builds, without its cast.

    Nothing is cast, moved or copied: the view holds the very modules `pipe` holds, in the dtypes and on the
    devices they have, so a deliberate mix of dtypes survives and the shared model never changes.
    """
    parameters = inspect.signature(view_class.__init__).parameters
    components, config = pipe.components, pipe.config
    arguments: dict[str, Any] = {}
    for name, parameter in parameters.items():
        if name == "self" or parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        if name in overrides:
            arguments[name] = overrides[name]
        elif name in components:
            arguments[name] = components[name]
        elif name in config:
            arguments[name] = config[name]
        elif parameter.default is parameter.empty:
            raise TypeError(f"{view_class.__name__} needs {name!r}, which {type(pipe).__name__} does not have")
    built = view_class(**arguments)
    if config.get("_name_or_path"):
        built.register_to_config(_name_or_path=config["_name_or_path"])
    built.set_progress_bar_config(disable=True)
    return built


def denoiser_name(pipe: Any) -> str:
    """The component that denoises: `unet` (SD 1.5, SDXL) or `transformer` (SD3, FLUX)."""
    return "unet" if getattr(pipe, "unet", None) is not None else "transformer"


def view_class_for(pipe: Any, *, controlnet: bool = False, image: bool = False, mask: bool = False) -> type:
    """The diffusers class of the view a call needs over `pipe`: ControlNet, inpainting, image-to-image or
    `pipe`'s own (text-to-image)."""
    import diffusers

    base = type(pipe).__name__
    table = (CONTROLNET_PIPELINES if controlnet else INPAINTING_PIPELINES if mask
             else IMAGE_TO_IMAGE_PIPELINES if image else None)
    if table is None:
        return type(pipe)
    if base not in table:
        raise ValueError(f"{base} has no {'ControlNet' if controlnet else 'inpainting' if mask else 'image-to-image'} "
                         "pipeline")  # the tools check the model's family first
    return getattr(diffusers, table[base])


def denoise(
    pipe: Any,
    call: DiffusionCall,
    job: Job,
    on_step: Callable[[int, int], None],
    *,
    controlnet: Any = None,
    ip_adapter: Any = None,
    unet: Any = None,
    denoiser: Any = None,
) -> tuple[list, str]:
    """Run one pipeline call; returns (PIL images, scheduler name).

    From noise, or from `call.image` (image-to-image; inpainting within `call.mask`, with `unet`
    standing in for the base's when the model has a dedicated inpainting one). With `controlnet`,
    the call is steered by `call.control_image`; with `ip_adapter` (an engine.control.IPAdapter),
    by `call.ip_image`. `denoiser` (a compiled one, engine/compiling.py) runs in place of the pipeline's
    UNet or transformer. Either way the shared base pipeline is left exactly as it was. Raises
    GenerationCancelled at the first step boundary after `job.cancel` is set, so no partial image
    ever leaves this function.
    """
    import torch

    # 1. A private scheduler and pipeline view over the shared components (never cast: see `view`).
    scheduler = pipe.scheduler.from_config(pipe.scheduler.config)
    components: dict[str, Any] = {"scheduler": scheduler}
    if ip_adapter is not None:
        components.update(image_encoder=ip_adapter.image_encoder, feature_extractor=ip_adapter.feature_extractor)
    if unet is not None:
        components["unet"] = unet
    if denoiser is not None:
        components[denoiser_name(pipe)] = denoiser
    if controlnet is not None:
        components["controlnet"] = controlnet
    view_class = view_class_for(pipe, controlnet=controlnet is not None, image=call.image is not None,
                                mask=call.mask is not None)
    run = view(view_class, pipe, **components)

    # 2. One CPU generator per image: image i is reproducible alone from seeds[i].
    generators = [torch.Generator("cpu").manual_seed(seed) for seed in call.seeds]

    # 3. Step callback: progress out, cancellation in. Counted in the steps asked for (from an image: the share
    # `strength` runs), which PNDM's extra warm-up evaluation would otherwise exceed by one.
    asked = call.steps if call.image is None else max(1, int(call.steps * call.strength))

    def on_step_end(pipeline, step: int, timestep, callback_kwargs: dict) -> dict:
        if job.cancel.is_set():
            raise GenerationCancelled()
        total = min(getattr(pipeline, "num_timesteps", asked), asked)
        on_step(min(step + 1, total), total)
        return callback_kwargs

    # 4. Arguments.
    per_seed = not isinstance(call.prompt, str)
    kwargs: dict[str, Any] = dict(
        prompt=list(call.prompt) if per_seed else call.prompt,
        num_images_per_prompt=1 if per_seed else len(call.seeds),
        width=call.width,
        height=call.height,
        num_inference_steps=call.steps,
        guidance_scale=call.guidance_scale,
        generator=generators,
        callback_on_step_end=on_step_end,
        output_type="pil",
    )
    if call.negative_prompt is not None:
        kwargs["negative_prompt"] = [call.negative_prompt] * len(call.seeds) if per_seed else call.negative_prompt
    if controlnet is not None:
        kwargs.update(image=call.control_image, controlnet_conditioning_scale=call.conditioning_scale)
    if ip_adapter is not None:
        kwargs["ip_adapter_image"] = call.ip_image
    if call.image is not None:
        kwargs.update(image=call.image, strength=call.strength)
    if call.mask is not None:
        kwargs["mask_image"] = call.mask

    # 5. Denoise and decode; adapters attached to the shared UNet come off again whatever happens.
    job.check()
    job.status = f"denoising with {view_class.__name__}"  # what a failure names until the first step reports
    if ip_adapter is not None:
        run.load_ip_adapter(ip_adapter.state_dict, subfolder=None, weight_name=None, image_encoder_folder=None)
    try:
        if ip_adapter is not None:
            run.set_ip_adapter_scale(call.ip_scale)
        with torch.inference_mode():
            output = run(**kwargs)
    finally:
        if ip_adapter is not None:
            run.unload_ip_adapter()
    return list(output.images), type(scheduler).__name__
