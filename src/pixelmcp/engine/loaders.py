"""Which pool loader makes each catalog entry (by its task), with the server's optimisation settings."""

from __future__ import annotations

from pixelmcp.catalog import ModelSpec
from pixelmcp.config import Settings
from pixelmcp.engine.pool import Loader


def loader_for(settings: Settings, spec: ModelSpec) -> Loader:
    """The pool loader for any catalog entry, by its task."""
    from pixelmcp.engine import control, pose, segment, text, vision

    if spec.component is not None:  # one part of a pipeline repo (an inpainting UNet)
        from pixelmcp.engine import diffusion

        return diffusion.load_unet(spec)
    if spec.task == "generate":
        return pipeline_loader(settings, spec)
    if spec.task == "preprocess":  # control maps: one loader per kind of map model
        makers = {"depth": control.load_depth_estimator, "semantic": control.load_semantic_segmenter,
                  "pose": pose.load_pose_estimator, "detector": pose.load_person_detector}
        return makers[spec.kind](spec)
    loaders = {"rewrite": text.load_chat_model, "classify": vision.load_classifier, "answer": vision.load_vlm,
               "segment": segment.load_segmenter}
    return loaders[spec.task](spec)


def pipeline_loader(settings: Settings, spec: ModelSpec) -> Loader:
    """The diffusion pipeline loader with the server's optimisation settings (compiling is not the loader's: it
    happens in the background, engine/compiling.py)."""
    from pixelmcp.engine import diffusion

    return diffusion.load_pipeline(spec, channels_last=settings.channels_last)
