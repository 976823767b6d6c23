"""The model catalog: what each alias is (its source, the pipeline kind that loads it), and the defaults
and limits every argument is checked against.

Image families (SD 1.5, SDXL, SD3, FLUX) share their facts through FAMILIES; an entry states only
what differs. The settings apply the config file's `[models.NAME]` tables on top (config.py).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

ModelKind = Literal["sd15", "sdxl", "sd3", "flux", "lora", "chat-llm", "depth", "semantic", "pose", "detector", "clip",
                    "siglip", "vlm", "segmenter",
                    "remote-image", "remote-chat", "remote-vision"]
Task = Literal["generate", "lora", "rewrite", "preprocess", "classify", "answer", "segment"]
ImageFamily = Literal["sd15", "sdxl", "sd3", "flux"]
VLMFamily = Literal["qwen2-vl", "qwen2.5-vl", "llava", "llava-next", "idefics3", "internvl"]

#: Sources with this prefix are built locally with tiny random weights (engine/tiny.py).
TINY_PREFIX = "tiny:"

#: What each image family's models have in common: the argument defaults and limits a model of that kind
#: gets unless its entry says otherwise (a `[models.NAME]` table with kind = "flux" gets FLUX's, not SD's).
FAMILIES: dict[str, dict[str, Any]] = {
    "sd15": dict(default_width=512, default_height=512, min_side=256, max_side=1024, default_steps=30,
                 default_guidance=7.5),
    "sdxl": dict(min_side=512, default_steps=30, default_guidance=5.0),
    "sd3": dict(multiple_of=16, min_side=512, default_steps=28, default_guidance=7.0),
    "flux": dict(multiple_of=16, default_steps=28, max_steps=100, default_guidance=3.5, max_guidance=20.0,
                 negative_prompt=False),
}
#: Pipeline kinds that make images.
IMAGE_KINDS: frozenset[str] = frozenset(FAMILIES)
_TASKS: dict[str, Task] = {"lora": "lora", "chat-llm": "rewrite", "depth": "preprocess", "semantic": "preprocess", "pose": "preprocess",
                           "detector": "preprocess",
                           "clip": "classify", "siglip": "classify",
                           "vlm": "answer", "segmenter": "segment", "remote-image": "generate",
                           "remote-chat": "rewrite",
                           "remote-vision": "answer"}

class IPAdapterSpec(BaseModel):
    """Where an IP-Adapter checkpoint lives, in the h94/IP-Adapter layout."""

    model_config = ConfigDict(frozen=True)

    source: str = Field(description="repo id or folder holding the adapter")
    subfolder: str = Field(description="folder of the weight file, e.g. models or sdxl_models")
    weight_name: str = Field(description="e.g. ip-adapter_sd15.safetensors")
    image_encoder_subfolder: str = Field("image_encoder", description="CLIP vision encoder, inside subfolder")


class ModelSpec(BaseModel):
    """One catalog entry: where a model comes from, how it loads, and the limits of its arguments."""

    model_config = ConfigDict(frozen=True)

    alias: str
    kind: ModelKind
    source: str = Field(description="Hugging Face repo id or local folder passed to from_pretrained")
    description: str = ""
    licence: str = Field("", description="the weights' licence, as the model's hub page states it")
    variant: str | None = Field(None, description="weights variant to prefer on GPU, e.g. fp16")
    min_memory_gb: float = Field(0.0, description="accelerator memory this model wants at its native dtype")
    # Image models only.
    default_width: int = 1024
    default_height: int = 1024
    min_side: int = 256
    max_side: int = 2048
    multiple_of: int = 8
    default_steps: int = 30
    max_steps: int = 150
    default_guidance: float = 7.5
    min_guidance: float = 0.0
    max_guidance: float = 30.0
    negative_prompt: bool = True
    default_strength: float = Field(
        0.75, gt=0.0, le=1.0, description="edit_image without a mask: how much of the image changes (0..1]"
    )
    inpaint: str | None = Field(
        None, description="a dedicated inpainting checkpoint (repo id or folder) whose UNet replaces the base's when "
                          "a mask is given; without one, the base model inpaints"
    )
    controlnets: dict[str, str] = Field(default_factory=dict, description="control type -> ControlNet source")
    detector: str | None = Field(
        None, description="for a pose model: the person detector (repo id or folder) whose boxes it reads joints in"
    )
    ip_adapter: IPAdapterSpec | None = None
    style_blocks: dict | None = Field(
        None, description="InstantStyle per-block IP-Adapter scales for style-only transfer (1.0 = the scale argument)"
    )
    family: VLMFamily | None = Field(None, description="vision-language model family (kind vlm)")
    # LoRAs only (kind lora).
    base: ImageFamily | None = Field(
        None, description="a LoRA: the image family it was trained for (unset: checked when it loads)"
    )
    weight_name: str | None = Field(
        None, description="a LoRA: its .safetensors file inside source (a repo or folder)"
    )
    default_weight: float = Field(1.0, ge=-4.0, le=4.0, description="a LoRA: its weight when a call gives none")
    trigger_words: tuple[str, ...] = Field((), description="a LoRA: words its training tied to its effect")
    alignment_range: tuple[float, float] = Field(
        (0.15, 0.35), description="a CLIP model's prompt-image cosine similarities that map to alignment 0 and 1 "
                                  "(SigLIP scores with its own sigmoid)"
    )
    offload: Literal["none", "model", "sequential"] = Field(
        "none", description="diffusers CPU offload on an accelerator: whole models, or layer by layer (slowest)"
    )
    part_of: str | None = Field(
        None, description="for a ControlNet, IP-Adapter, inpainting or person detector entry: the catalog alias whose "
                          "config table holds it"
    )
    component: str | None = Field(
        None, description="for an entry that loads one part of a pipeline repo (an inpainting UNet): its folder"
    )
    # Remote models: who serves them and which arguments they take.
    provider: str = Field("local", description="local (the model pool), openai, gemini, or an OpenAI-compatible endpoint")
    sizes: tuple[tuple[int, int], ...] = Field((), description="the only (width, height) pairs accepted, if limited")
    takes_seed: bool = True
    takes_steps: bool = True
    takes_guidance: bool = True
    max_n: int | None = Field(None, description="most images per call, when the model limits it")
    takes_reference: bool = Field(False, description="a provider model that edits from reference images itself")
    engine_defaults: bool = Field(
        False, description="an image engine's model: steps and guidance the caller omits are the engine's own"
    )

    @model_validator(mode="before")
    @classmethod
    def _family_defaults(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("kind") in FAMILIES:
            return {**FAMILIES[data["kind"]], **data}
        return data

    @model_validator(mode="after")
    def _lora_fields(self) -> ModelSpec:
        if self.kind == "lora" and not self.weight_name:
            raise ValueError(f"LoRA {self.alias!r} needs weight_name (its .safetensors file inside source) and should "
                             "say its base (the image family it was trained for: sd15, sdxl, sd3 or flux)")
        return self

    @property
    def remote(self) -> bool:
        return self.provider != "local"

    @property
    def config_alias(self) -> str:
        """The alias whose `[models.NAME]` table configures this entry."""
        return self.part_of or self.alias

    def controlnet_entry(self, control_type: str) -> ModelSpec:
        """This model's ControlNet for `control_type`, as a loadable entry (the caller checks it exists). The
        base's preferred variant (fp16) is used where the ControlNet's repo has it (engine/weights.py)."""
        return ModelSpec(alias=f"{self.alias}+controlnet-{control_type}", kind=self.kind,
                         source=self.controlnets[control_type], variant=self.variant, part_of=self.alias)

    def ip_adapter_entry(self) -> ModelSpec:
        """This model's IP-Adapter, as a loadable entry (the caller checks it has one)."""
        return ModelSpec(alias=f"{self.alias}+ip-adapter", kind=self.kind, source=self.ip_adapter.source,
                         ip_adapter=self.ip_adapter, part_of=self.alias)

    def inpaint_entry(self) -> ModelSpec:
        """This model's dedicated inpainting UNet, as a loadable entry (the caller checks it has one): only the
        UNet loads; the text encoders and VAE stay the base pipeline's own."""
        return ModelSpec(alias=f"{self.alias}+inpaint", kind=self.kind, source=self.inpaint, variant=self.variant,
                         component="unet", part_of=self.alias)

    def detector_entry(self) -> ModelSpec:
        """This pose model's person detector, as a loadable entry (the caller checks it has one)."""
        return ModelSpec(alias=f"{self.alias}+detector", kind="detector", source=self.detector, part_of=self.alias)

    def with_detector(self) -> tuple[ModelSpec, ...]:
        """This entry and, for a pose model, its person detector: every entry that loading it for a map reads."""
        return (self, self.detector_entry()) if self.detector else (self,)

    @property
    def weight_paths(self) -> tuple[str, ...] | None:
        """The paths inside `source` that loading this entry reads, when not its whole layout: an IP-Adapter
        repo holds adapters for several base models, of which one weight file and its image encoder load; an
        inpainting entry reads the UNet of its checkpoint."""
        if self.component is not None:
            return (self.component,)
        if self.kind == "lora":
            return (self.weight_name,)
        adapter = self.ip_adapter
        if adapter is None or adapter.source != self.source:
            return None
        return (f"{adapter.subfolder}/{adapter.weight_name}", f"{adapter.subfolder}/{adapter.image_encoder_subfolder}")

    @property
    def task(self) -> Task:
        return "generate" if self.kind in IMAGE_KINDS else _TASKS[self.kind]

    @property
    def tiny(self) -> bool:
        """Built locally with tiny random weights (the tiny profile)."""
        return self.source.startswith(TINY_PREFIX)


def _sd(alias: str, source: str, **kw) -> ModelSpec:
    return ModelSpec(alias=alias, source=source, **kw)


#: Fields only remote providers' entries set (a config file cannot make a local model remote).
REMOTE_ONLY = ("provider", "sizes", "takes_seed", "takes_steps", "takes_guidance", "max_n", "takes_reference",
               "engine_defaults")


SDXL_CONTROLNETS = {
    "canny": "diffusers/controlnet-canny-sdxl-1.0",
    "depth": "diffusers/controlnet-depth-sdxl-1.0",
    "pose": "thibaud/controlnet-openpose-sdxl-1.0",
}
SDXL_IP_ADAPTER = IPAdapterSpec(source="h94/IP-Adapter", subfolder="sdxl_models", weight_name="ip-adapter_sdxl.safetensors")
#: InstantStyle: up_blocks.0.attentions.1 carries style in SDXL.
SDXL_STYLE_BLOCKS = {"up": {"block_0": [0.0, 1.0, 0.0]}}

DEFAULT_CATALOG: tuple[ModelSpec, ...] = (
    _sd("sd15", "stable-diffusion-v1-5/stable-diffusion-v1-5", kind="sd15", variant="fp16",
        licence="CreativeML Open RAIL-M",
        description="Stable Diffusion 1.5: small, fast, huge ecosystem of fine-tunes and ControlNets.",
        default_width=512, default_height=512, min_side=256, max_side=1024,
        default_steps=30, default_guidance=7.5, min_memory_gb=3,
        controlnets={"canny": "lllyasviel/control_v11p_sd15_canny", "depth": "lllyasviel/control_v11f1p_sd15_depth",
                     "pose": "lllyasviel/control_v11p_sd15_openpose",
                     "segmentation": "lllyasviel/control_v11p_sd15_seg"},
        ip_adapter=IPAdapterSpec(source="h94/IP-Adapter", subfolder="models", weight_name="ip-adapter_sd15.safetensors"),
        inpaint="stable-diffusion-v1-5/stable-diffusion-inpainting",
        # SD 1.5's lowest-resolution cross-attention up block, the counterpart of SDXL's up_blocks.0.
        style_blocks={"up": {"block_1": [0.0, 1.0, 0.0]}}),
    _sd("sdxl", "stabilityai/stable-diffusion-xl-base-1.0", kind="sdxl", variant="fp16",
        licence="CreativeML Open RAIL++-M",
        description="SDXL base 1.0: strong general-purpose 1024 px model.",
        default_steps=30, default_guidance=5.0, min_side=512, min_memory_gb=8,
        controlnets=SDXL_CONTROLNETS, ip_adapter=SDXL_IP_ADAPTER, style_blocks=SDXL_STYLE_BLOCKS,
        inpaint="diffusers/stable-diffusion-xl-1.0-inpainting-0.1"),
    _sd("sdxl-turbo", "stabilityai/sdxl-turbo", kind="sdxl", variant="fp16",
        licence="Stability AI Non-Commercial Research Community License (non-commercial)",
        description="SDXL-Turbo: 1-4 step distilled SDXL at 512 px; guidance off.",
        default_width=512, default_height=512, min_side=256, max_side=1024,
        default_steps=1, max_steps=10, default_guidance=0.0, max_guidance=2.0, min_memory_gb=8,
        controlnets=SDXL_CONTROLNETS, ip_adapter=SDXL_IP_ADAPTER, style_blocks=SDXL_STYLE_BLOCKS),
    _sd("sd3-medium", "stabilityai/stable-diffusion-3-medium-diffusers", kind="sd3",
        licence="Stability AI Community License (gated)",
        description="Stable Diffusion 3 Medium (gated: accept the licence on the hub, set HF_TOKEN).",
        multiple_of=16, default_steps=28, default_guidance=7.0, min_side=512, min_memory_gb=16),
    _sd("flux-schnell", "black-forest-labs/FLUX.1-schnell", kind="flux", licence="Apache-2.0",
        description="FLUX.1 [schnell]: 1-4 step, Apache-2.0, excellent prompt following; no guidance.",
        multiple_of=16, default_steps=4, max_steps=16, default_guidance=0.0, max_guidance=0.0,
        negative_prompt=False, min_memory_gb=32),
    _sd("flux-dev", "black-forest-labs/FLUX.1-dev", kind="flux",
        licence="FLUX.1 [dev] Non-Commercial License (gated, non-commercial)",
        description="FLUX.1 [dev]: guidance-distilled, 28 steps, non-commercial licence (gated).",
        multiple_of=16, default_steps=28, max_steps=100, default_guidance=3.5, max_guidance=20.0,
        negative_prompt=False, min_memory_gb=32),
    _sd("qwen2.5-0.5b-instruct", "Qwen/Qwen2.5-0.5B-Instruct", kind="chat-llm", licence="Apache-2.0",
        description="Smallest Qwen2.5 instruct model; prompt rewriting on CPU or tiny GPUs."),
    _sd("qwen2.5-1.5b-instruct", "Qwen/Qwen2.5-1.5B-Instruct", kind="chat-llm", licence="Apache-2.0",
        description="Default prompt rewriter: good detail for its size, ~3 GB in bf16."),
    _sd("qwen2.5-3b-instruct", "Qwen/Qwen2.5-3B-Instruct", kind="chat-llm",
        licence="Qwen Research License (non-commercial)",
        description="Larger rewriter for GPUs with memory to spare."),
    _sd("depth-anything-v2-small", "depth-anything/Depth-Anything-V2-Small-hf", kind="depth", licence="Apache-2.0",
        description="Monocular depth estimator that makes depth maps for ControlNet."),
    _sd("upernet-convnext-small", "openmmlab/upernet-convnext-small", kind="semantic", licence="MIT",
        description="UperNet (ConvNeXt-S) on ADE20K: segmentation maps for segmentation ControlNets."),
    _sd("vitpose-base", "usyd-community/vitpose-base-simple", kind="pose", licence="Apache-2.0",
        detector="PekingU/rtdetr_r50vd_coco_o365",
        description="ViTPose-B (COCO keypoints) on RT-DETR person boxes: OpenPose skeleton maps for pose ControlNets."),
    _sd("clip-vit-large", "openai/clip-vit-large-patch14", kind="clip", licence="MIT",
        description="CLIP ViT-L/14: zero-shot labels (softmax over the labels) and image similarity."),
    _sd("clip-vit-base", "openai/clip-vit-base-patch32", kind="clip", licence="MIT",
        description="CLIP ViT-B/32: smaller, faster."),
    _sd("siglip-so400m", "google/siglip-so400m-patch14-384", kind="siglip", licence="Apache-2.0",
        description="SigLIP so400m: stronger zero-shot, independent sigmoid score per label."),
    _sd("clipseg", "CIDAS/clipseg-rd64-refined", kind="segmenter", licence="Apache-2.0",
        description="CLIPSeg (rd64, refined): masks from words, for edit_image's mask_prompt and remove_background; "
                    "~0.6 GB."),
    _sd("qwen2.5-vl-3b", "Qwen/Qwen2.5-VL-3B-Instruct", kind="vlm", family="qwen2.5-vl",
        licence="Qwen Research License (non-commercial)",
        description="Qwen2.5-VL 3B: default VLM; multi-image, good at text in images; ~8 GB in bf16."),
    _sd("qwen2.5-vl-7b", "Qwen/Qwen2.5-VL-7B-Instruct", kind="vlm", family="qwen2.5-vl", licence="Apache-2.0",
        description="Qwen2.5-VL 7B: stronger answers; ~17 GB in bf16."),
    _sd("qwen2-vl-2b", "Qwen/Qwen2-VL-2B-Instruct", kind="vlm", family="qwen2-vl", licence="Apache-2.0",
        description="Qwen2-VL 2B: small multi-image VLM."),
    _sd("llava-1.5-7b", "llava-hf/llava-1.5-7b-hf", kind="vlm", family="llava", licence="Llama 2 Community License",
        description="LLaVA 1.5 7B (336 px, one image works best)."),
    _sd("llava-next-mistral-7b", "llava-hf/llava-v1.6-mistral-7b-hf", kind="vlm", family="llava-next",
        licence="Apache-2.0",
        description="LLaVA-NeXT (1.6) Mistral 7B: dynamic high resolution."),
    _sd("internvl3-1b", "OpenGVLab/InternVL3-1B-hf", kind="vlm", family="internvl", licence="Qwen License",
        description="InternVL3 1B (transformers-native -hf checkpoint): small, multi-image, documents and charts."),
    _sd("internvl3-8b", "OpenGVLab/InternVL3-8B-hf", kind="vlm", family="internvl", licence="Qwen License",
        description="InternVL3 8B (-hf): strong open VLM for documents, charts and multi-image; ~16 GB in bf16."),
    _sd("smolvlm", "HuggingFaceTB/SmolVLM-Instruct", kind="vlm", family="idefics3", licence="Apache-2.0",
        description="SmolVLM 2B (Idefics3 architecture): small, multi-image."),
    _sd("pixel-art-xl", "nerijs/pixel-art-xl", kind="lora", base="sdxl", weight_name="pixel-art-xl.safetensors",
        default_weight=1.0, trigger_words=("pixel art",), licence="CreativeML Open RAIL-M",
        description="SDXL LoRA: pixel art (works best at 1024 px, downscaled 8x with nearest-neighbour)."),
    _sd("toy-face", "CiroN2022/toy-face", kind="lora", base="sdxl", weight_name="toy_face_sdxl.safetensors",
        default_weight=0.9, trigger_words=("toy_face",),
        description="SDXL LoRA: faces as 3D toy figures (its hub page states its licence)."),
)

_TINY_IMAGE = dict(default_width=64, default_height=64, min_side=16, max_side=512, default_steps=4, max_steps=50)


def _tiny_controlnets(family: str) -> dict[str, str]:
    return {control: f"tiny:{family}-controlnet-{control}" for control in ("canny", "depth", "pose", "segmentation")}


TINY_CATALOG: tuple[ModelSpec, ...] = (
    _sd("tiny-sd15", "tiny:sd15", kind="sd15", description="Tiny random-weight SD 1.5 architecture (offline tests).",
        default_guidance=7.5, controlnets=_tiny_controlnets("sd15"),
        ip_adapter=IPAdapterSpec(source="tiny:sd15-ip-adapter", subfolder="models",
                                 weight_name="ip-adapter_sd15.safetensors"),
        style_blocks={"up": {"block_0": [0.0, 1.0]}}, inpaint="tiny:sd15-inpaint", **_TINY_IMAGE),
    _sd("tiny-sdxl", "tiny:sdxl", kind="sdxl", description="Tiny random-weight SDXL architecture.",
        default_guidance=5.0, controlnets=_tiny_controlnets("sdxl"),
        ip_adapter=IPAdapterSpec(source="tiny:sdxl-ip-adapter", subfolder="sdxl_models",
                                 weight_name="ip-adapter_sdxl.safetensors"),
        style_blocks={"up": {"block_0": [0.0, 1.0]}}, **_TINY_IMAGE),
    _sd("tiny-sd3", "tiny:sd3", kind="sd3", description="Tiny random-weight SD3 architecture.",
        multiple_of=16, default_guidance=7.0, **_TINY_IMAGE),
    _sd("tiny-flux", "tiny:flux", kind="flux", description="Tiny random-weight FLUX.1-schnell architecture.",
        multiple_of=16, default_guidance=0.0, max_guidance=0.0, negative_prompt=False, **_TINY_IMAGE),
    _sd("tiny-lora-a", "tiny:sd15-lora-a", kind="lora", base="sd15", weight_name="pytorch_lora_weights.safetensors",
        description="Tiny random LoRA for tiny-sd15: UNet attention layers (diffusers' saving, peft layout)."),
    _sd("tiny-lora-b", "tiny:sd15-lora-b", kind="lora", base="sd15", weight_name="pytorch_lora_weights.safetensors",
        default_weight=0.8, trigger_words=("tinyb",),
        description="Tiny random LoRA for tiny-sd15: UNet and text encoder."),
    _sd("tiny-lora-xl", "tiny:sdxl-lora", kind="lora", base="sdxl", weight_name="pytorch_lora_weights.safetensors",
        description="Tiny random LoRA for tiny-sdxl: UNet attention layers."),
    _sd("tiny-llm", "tiny:chat-llm", kind="chat-llm",
        description="Tiny random-weight Qwen2 chat LM (rewrites into gibberish; for tests)."),
    _sd("tiny-depth", "tiny:depth-anything", kind="depth", description="Tiny random-weight Depth Anything."),
    _sd("tiny-vitpose", "tiny:vitpose", kind="pose", detector="tiny:rtdetr",
        description="Tiny random-weight ViTPose with a tiny RT-DETR person detector."),
    _sd("tiny-upernet", "tiny:upernet", kind="semantic",
        description="Tiny random-weight UperNet (ConvNeXt backbone, 150 ADE20K classes)."),
    _sd("tiny-clip", "tiny:clip", kind="clip", alignment_range=(-0.5, 0.5),
        description="Tiny random-weight CLIP (its alignment range is wide: random embeddings are near orthogonal)."),
    _sd("tiny-siglip", "tiny:siglip", kind="siglip", description="Tiny random-weight SigLIP."),
    _sd("tiny-clipseg", "tiny:clipseg", kind="segmenter", description="Tiny random-weight CLIPSeg."),
    _sd("tiny-qwen2-vl", "tiny:qwen2-vl", kind="vlm", family="qwen2-vl", description="Tiny random-weight Qwen2-VL."),
    _sd("tiny-qwen2.5-vl", "tiny:qwen2.5-vl", kind="vlm", family="qwen2.5-vl",
        description="Tiny random-weight Qwen2.5-VL (the default VLM's family)."),
    _sd("tiny-llava", "tiny:llava", kind="vlm", family="llava", description="Tiny random-weight LLaVA 1.5."),
    _sd("tiny-llava-next", "tiny:llava-next", kind="vlm", family="llava-next",
        description="Tiny random-weight LLaVA-NeXT (dynamic high resolution)."),
    _sd("tiny-internvl", "tiny:internvl", kind="vlm", family="internvl",
        description="Tiny random-weight InternVL (the -hf architecture: InternViT, pixel shuffle, Qwen2)."),
    _sd("tiny-idefics3", "tiny:idefics3", kind="vlm", family="idefics3",
        description="Tiny random-weight Idefics3 (SmolVLM's architecture)."),
)

#: Each profile's model for each task when the settings name none (the default profile's generator is chosen
#: by accelerator memory, from AUTO_GENERATORS).
DEFAULT_MODELS: dict[str, dict[str, str]] = {
    "default": {"rewrite": "qwen2.5-1.5b-instruct", "depth": "depth-anything-v2-small",
                "segmentation": "upernet-convnext-small", "pose": "vitpose-base",
                "classify": "clip-vit-large", "answer": "qwen2.5-vl-3b", "segment": "clipseg"},
    "tiny": {"generate": "tiny-sd15", "rewrite": "tiny-llm", "depth": "tiny-depth",
             "segmentation": "tiny-upernet", "pose": "tiny-vitpose", "classify": "tiny-clip",
             "answer": "tiny-qwen2-vl", "segment": "tiny-clipseg"},
}
#: Default-profile generator chosen by accelerator memory (GiB), best first.
AUTO_GENERATORS: tuple[tuple[float, str], ...] = ((40.0, "flux-schnell"), (12.0, "sdxl"), (0.0, "sd15"))
