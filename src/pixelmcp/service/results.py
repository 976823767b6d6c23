"""What image-making tools return: the result models every image tool's result extends."""

from __future__ import annotations

from pydantic import BaseModel, Field

from pixelmcp.media.store import ImageRef

# --------------------------------------------------------------------------- result shapes


class Alignment(BaseModel):
    """How well an image shows its prompt, by a similarity model: a check, not a proof."""

    score: float = Field(description="0..1: 0.6 or more matches the prompt well, under 0.3 weakly (README: "
                                     "'Reading alignment scores')")
    similarity: float = Field(description="the model's raw score: CLIP's cosine similarity, SigLIP's logit")
    model: str = Field(description="the similarity model (PIXELMCP_ALIGNMENT_MODEL)")


class ImageInfo(ImageRef):
    seed: int | None = Field(description="re-running the call gives the same pixels; this seed with n=1 gives the "
                                         "same picture (null: the provider takes no seed)")
    alignment: Alignment | None = Field(None, description="how well it shows the prompt (null: not scored)")
    caption: str | None = Field(None, description="verify='caption': what the vision model sees in it, in one "
                                                  "sentence")


class Timings(BaseModel):
    """Where a call's time went, in seconds."""

    queue_s: float = 0.0
    load_s: float = 0.0
    run_s: float = 0.0
    total_s: float = 0.0


class GenerationTimings(Timings):
    rewrite_s: float = 0.0


class LoraApplied(BaseModel):
    name: str = Field(description="as given: a LoRA alias, or a file's path")
    weight: float


class GenerateImageResult(BaseModel):
    id: str = Field(description="id of the first image (same as images[0].id)")
    uri: str
    path: str
    width: int
    height: int
    seed: int | None = Field(description="seed of the first image; image i used seed + i (null: no seed)")
    images: list[ImageInfo]
    model: str
    provider: str = Field(description="local (this server's GPU pool) or the remote provider that made the images")
    steps: int | None = Field(description="denoising steps (null: set by the provider)")
    guidance_scale: float | None = Field(description="null: set by the provider")
    scheduler: str | None
    prompt: str = Field(description="the prompt as given")
    revised_prompt: str | None = Field(description="the rewritten prompt the model received, or null if not rewritten")
    negative_prompt: str | None
    rewriter: str | None = Field(None, description="who rewrote the prompt (a model, sampling:MODEL, or the provider)")
    rewrite_note: str | None = Field(None, description="e.g. why another rewriter than the configured one answered")
    rewrite_error: str | None = Field(None, description="why a requested rewrite did not happen")
    batch_size: int = Field(1, description="requests whose images were made in the same pipeline call")
    loras: list[LoraApplied] = Field(default_factory=list, description="the LoRAs applied, in order")
    timings: GenerationTimings
    candidates: list[ImageInfo] = Field(
        default_factory=list, description="best_of: the images not chosen, with their alignment (stored and linked)"
    )
