"""Seeing: zero-shot classification (CLIP / SigLIP), image embeddings, and vision-language chat.

This module imports transformers at import time; only the engine imports it, lazily.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PIL import Image
from transformers import InternVLProcessor, Qwen2_5_VLProcessor, Qwen2VLProcessor

from pixelmcp.catalog import ModelSpec
from pixelmcp.engine.loading import loading
from pixelmcp.engine.queue import Job
from pixelmcp.errors import GenerationCancelled, ModelLoadError


class ImageOnlyQwen2VLProcessor(Qwen2VLProcessor):
    """Qwen2-VL's processor without its video processor, which needs torchvision (not installed)."""

    @classmethod
    def get_attributes(cls) -> list[str]:
        return ["image_processor", "tokenizer"]

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        super().__init__(image_processor, tokenizer, video_processor=None, chat_template=chat_template, **kwargs)


class ImageOnlyQwen2_5_VLProcessor(Qwen2_5_VLProcessor):  # (the model family's own spelling)
    """Qwen2.5-VL's processor without its video processor."""

    @classmethod
    def get_attributes(cls) -> list[str]:
        return ["image_processor", "tokenizer"]

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        super().__init__(image_processor, tokenizer, video_processor=None, chat_template=chat_template, **kwargs)


class ImageOnlyInternVLProcessor(InternVLProcessor):
    """InternVL's processor (the `-hf` checkpoints) without its video processor."""

    @classmethod
    def get_attributes(cls) -> list[str]:
        return ["image_processor", "tokenizer"]

    def __init__(self, image_processor=None, tokenizer=None, image_seq_length: int = 256, chat_template=None,
                 **kwargs):
        super().__init__(image_processor, tokenizer, video_processor=None, image_seq_length=image_seq_length,
                         chat_template=chat_template, **kwargs)


_IMAGE_ONLY_PROCESSORS = {"qwen2-vl": ImageOnlyQwen2VLProcessor, "qwen2.5-vl": ImageOnlyQwen2_5_VLProcessor,
                          "internvl": ImageOnlyInternVLProcessor}


# --------------------------------------------------------------------------- CLIP / SigLIP


@dataclass
class Classifier:
    model: Any
    processor: Any
    kind: str  # "clip" or "siglip"


def load_classifier(spec: ModelSpec) -> Callable[[str, str, Any], Classifier]:
    def load(source: str, device: str, dtype) -> Classifier:
        from transformers import AutoModel, AutoProcessor

        with loading(spec, source, dtype) as fetched:
            processor = AutoProcessor.from_pretrained(fetched.folder, local_files_only=True)
            model = AutoModel.from_pretrained(fetched.folder, dtype=dtype, local_files_only=True).to(device).eval()
        return Classifier(model, processor, spec.kind)

    return load


def _text_inputs(classifier: Classifier, texts: list[str]) -> dict:
    # SigLIP was trained on max-length padded text; CLIP pads to the longest.
    padding = "max_length" if classifier.kind == "siglip" else True
    return classifier.processor(text=texts, padding=padding, truncation=True, return_tensors="pt")


def _image_inputs(classifier: Classifier, images: list[Image.Image]) -> dict:
    inputs = classifier.processor(images=images, return_tensors="pt")
    return {"pixel_values": inputs["pixel_values"].to(classifier.model.device, classifier.model.dtype)}


def zero_shot_logits(classifier: Classifier, images: list[Image.Image], texts: list[str], job: Job):
    """logits[i][j]: how well image i matches text j (one forward pass for the whole batch)."""
    import torch

    job.check()
    inputs = {**_text_inputs(classifier, texts), **_image_inputs(classifier, images)}
    inputs = {k: v.to(classifier.model.device) for k, v in inputs.items()}
    with torch.inference_mode():
        return classifier.model(**inputs).logits_per_image.float().cpu()


def text_alignment(classifier: Classifier, images: list[Image.Image], texts: list[str], low: float, high: float,
                   job: Job) -> list[list[tuple[float, float]]]:
    """[image][text]: (score 0..1, raw) for how well each image shows each text, in one forward pass: CLIP's cosine
    similarity mapped linearly from `low`..`high` to 0..1 (clamped); SigLIP's sigmoid probability, which is
    calibrated by its training."""
    import torch

    logits = zero_shot_logits(classifier, images, texts, job)
    if classifier.kind == "siglip":
        raw, scores = logits, torch.sigmoid(logits)
    else:
        raw = logits / float(classifier.model.logit_scale.detach().exp())
        scores = ((raw - low) / (high - low)).clamp(0.0, 1.0)
    return [[(round(float(p), 4), round(float(v), 4)) for p, v in zip(row_scores, row_raw, strict=True)]
            for row_scores, row_raw in zip(scores, raw, strict=True)]


def image_embeddings(classifier: Classifier, images: list[Image.Image], job: Job):
    """Unit-length image embeddings, one row per image."""
    import torch

    job.check()
    with torch.inference_mode():
        features = classifier.model.get_image_features(**_image_inputs(classifier, images))
    if not isinstance(features, torch.Tensor):  # some versions return a model output
        features = features.pooler_output
    return torch.nn.functional.normalize(features.float(), dim=-1).cpu()


# --------------------------------------------------------------------------- vision-language models


@dataclass
class VisionLanguageModel:
    model: Any
    processor: Any
    family: str


def load_vlm(spec: ModelSpec) -> Callable[[str, str, Any], VisionLanguageModel]:
    def load(source: str, device: str, dtype) -> VisionLanguageModel:
        from transformers import AutoModelForImageTextToText, AutoProcessor

        processor_class = _IMAGE_ONLY_PROCESSORS.get(spec.family or "", AutoProcessor)
        with loading(spec, source, dtype) as fetched:
            processor = processor_class.from_pretrained(fetched.folder, local_files_only=True)
            model = AutoModelForImageTextToText.from_pretrained(fetched.folder, dtype=dtype,
                                                                local_files_only=True).to(device).eval()
        if getattr(processor, "chat_template", None) is None:
            raise ModelLoadError(f"Model {spec.alias!r} ({source}) has no chat template; use an instruct/chat VLM.")
        return VisionLanguageModel(model, processor, spec.family or "")

    return load


def chat_about_images(
    vlm: VisionLanguageModel,
    images: list[Image.Image],
    text: str,
    *,
    max_new_tokens: int,
    job: Job,
    on_tokens: Callable[[int], None],
    chunk: int = 16,
) -> tuple[str, int]:
    """Greedy-decode the answer to `text` about `images`; returns (answer, tokens generated).

    `on_tokens(count)` is called every `chunk` generated tokens; generation stops at the next
    token once `job.cancel` is set.
    """
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    content = [*({"type": "image"} for _ in images), {"type": "text", "text": text}]
    prompt = vlm.processor.apply_chat_template([{"role": "user", "content": content}], add_generation_prompt=True)
    inputs = vlm.processor(text=[prompt], images=images, return_tensors="pt").to(vlm.model.device)
    if "pixel_values" in inputs:
        inputs["pixel_values"] = inputs["pixel_values"].to(vlm.model.dtype)
    prompt_length = inputs["input_ids"].shape[1]

    class ReportAndStop(StoppingCriteria):
        def __call__(self, input_ids, scores, **kwargs) -> bool:
            generated = input_ids.shape[1] - prompt_length
            if generated and generated % chunk == 0:
                on_tokens(generated)
            return job.cancel.is_set()

    job.check()
    with torch.inference_mode():
        output = vlm.model.generate(
            **inputs, do_sample=False, max_new_tokens=max_new_tokens,
            stopping_criteria=StoppingCriteriaList([ReportAndStop()]),
        )
    if job.cancel.is_set():
        raise GenerationCancelled()
    new_tokens = output[0, prompt_length:]
    answer = vlm.processor.decode(new_tokens, skip_special_tokens=True).strip()
    return answer, int(new_tokens.shape[0])
