"""Pose maps from photos: people found by a detector, their joints by a top-down keypoint model, drawn as the
OpenPose skeletons pose ControlNets were trained on.

Two models, both loaded by transformers' own classes (no remote code, no torchvision):

- a person detector (RT-DETR, COCO classes; `PekingU/rtdetr_r50vd_coco_o365` by default) gives a box
  per person, so any number of people is found, each at its own scale;
- ViTPose (`usyd-community/vitpose-base-simple` by default) reads the 17 COCO keypoints inside each box.

A single-stage multi-person model would need one network, but transformers has none that loads
natively; this pair is the one its documentation runs. The 17 COCO keypoints become OpenPose's
18 body joints (the neck is the midpoint of the shoulders) and are drawn in the OpenPose format:
limbs as ellipses in 60% of their colour, joints as full-colour dots, on black. Hands and faces are
not drawn (body-only maps, which the OpenPose ControlNets accept).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PIL import Image

from pixelmcp.catalog import ModelSpec
from pixelmcp.engine.loading import pretrained_pair
from pixelmcp.engine.queue import Job
from pixelmcp.errors import InvalidArgument

#: OpenPose body joints, in the format's order, as indices into COCO's 17 keypoints (None: the neck, made from
#: the shoulders). OpenPose: nose, neck, right shoulder, elbow, wrist, left shoulder, elbow, wrist, right hip,
#: knee, ankle, left hip, knee, ankle, right eye, left eye, right ear, left ear.
OPENPOSE_FROM_COCO: tuple[int | None, ...] = (0, None, 6, 8, 10, 5, 7, 9, 12, 14, 16, 11, 13, 15, 2, 1, 4, 3)
COCO_SHOULDERS = (5, 6)
#: The limbs OpenPose maps draw, as pairs of OpenPose joints.
OPENPOSE_LIMBS: tuple[tuple[int, int], ...] = (
    (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10), (1, 11), (11, 12), (12, 13),
    (1, 0), (0, 14), (14, 16), (0, 15), (15, 17),
)
#: One colour per joint, and per limb in OPENPOSE_LIMBS order (limbs in 60% of theirs).
OPENPOSE_COLOURS: tuple[tuple[int, int, int], ...] = (
    (255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0), (0, 255, 0),
    (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255), (0, 0, 255), (85, 0, 255),
    (170, 0, 255), (255, 0, 255), (255, 0, 170), (255, 0, 85),
)
LIMB_SHADE = 0.6
#: OpenPose's stick half-width and joint radius at 512 px on the short side; maps scale them to their size.
LINE_AT_512 = 4


@dataclass
class PersonDetector:
    processor: Any
    model: Any


@dataclass
class PoseEstimator:
    processor: Any
    model: Any


@dataclass(frozen=True)
class Person:
    """One person's 17 COCO keypoints, as (x, y) pixels of the photo, with the model's confidence in each."""

    keypoints: tuple[tuple[float, float], ...]
    scores: tuple[float, ...]


def load_person_detector(spec: ModelSpec) -> Callable[[str, str, Any], PersonDetector]:
    def load(source: str, device: str, dtype) -> PersonDetector:
        import transformers

        return PersonDetector(*pretrained_pair(spec, source, device, dtype, transformers.AutoImageProcessor,
                                               transformers.AutoModelForObjectDetection))

    return load


def load_pose_estimator(spec: ModelSpec) -> Callable[[str, str, Any], PoseEstimator]:
    def load(source: str, device: str, dtype) -> PoseEstimator:
        import transformers

        return PoseEstimator(*pretrained_pair(spec, source, device, dtype, transformers.AutoImageProcessor,
                                              transformers.VitPoseForPoseEstimation))

    return load


def find_people(detector: PersonDetector, estimator: PoseEstimator, image: Image.Image, person_threshold: float,
                job: Job) -> list[Person]:
    """Everyone the detector finds in `image` with at least `person_threshold` confidence, with their keypoints;
    a clear error when nobody is found (a pose map without a person would steer nothing)."""
    import torch

    job.check()
    image = image.convert("RGB")
    boxes, best = _person_boxes(detector, image, person_threshold)
    if not len(boxes):
        found = f"the most likely person scored {best:.2f}" if best is not None else "the detector found no person"
        raise InvalidArgument(
            "person_threshold", person_threshold, f"no person in the image reaches this confidence ({found})",
            "Use a photo where people are clearly visible, lower person_threshold"
            + (f" (e.g. to {math.floor(best * 100) / 100:.2f})" if best else "")
            + ", or pass a ready OpenPose skeleton image with preprocess=false.",
        )
    job.check()
    model = estimator.model
    inputs = estimator.processor(image, boxes=[boxes], return_tensors="pt").to(model.device)
    inputs["pixel_values"] = inputs["pixel_values"].to(model.dtype)
    if getattr(model.config.backbone_config, "num_experts", 1) > 1:  # ViTPose+: experts per dataset, 0 is COCO
        inputs["dataset_index"] = torch.zeros(len(boxes), dtype=torch.long, device=model.device)
    with torch.inference_mode():
        outputs = model(**inputs)
    outputs.heatmaps = outputs.heatmaps.float()
    poses = estimator.processor.post_process_pose_estimation(outputs, boxes=[boxes])[0]
    return [Person(keypoints=tuple((float(x), float(y)) for x, y in pose["keypoints"].tolist()),
                   scores=tuple(float(s) for s in pose["scores"].tolist())) for pose in poses]


def _person_boxes(detector: PersonDetector, image: Image.Image, threshold: float) -> tuple[Any, float | None]:
    """People's boxes as (x, y, width, height) pixels (COCO format, what ViTPose reads), and the best person
    score seen below the threshold (None if no box was a person at all)."""
    import numpy as np

    found = _detections(detector, image)
    people = found["labels"] == _person_label(detector.model.config)
    scores, boxes = found["scores"][people].cpu(), found["boxes"][people].cpu().numpy()
    kept = (scores >= threshold).numpy()
    best = float(scores.max()) if len(scores) else None
    boxes = boxes[kept].astype(np.float32)
    boxes[:, 2:] -= boxes[:, :2]  # (x1, y1, x2, y2) -> (x, y, width, height)
    return boxes, best


def _detections(detector: PersonDetector, image: Image.Image) -> dict[str, Any]:
    """Every box the detector proposes for `image` (scores, labels, boxes as x1, y1, x2, y2 pixels)."""
    import torch

    model = detector.model
    inputs = detector.processor(images=image.convert("RGB"), return_tensors="pt").to(model.device)
    inputs["pixel_values"] = inputs["pixel_values"].to(model.dtype)
    with torch.inference_mode():
        outputs = model(**inputs)
    outputs.logits, outputs.pred_boxes = outputs.logits.float(), outputs.pred_boxes.float()
    return detector.processor.post_process_object_detection(outputs, threshold=0.0,
                                                            target_sizes=[(image.height, image.width)])[0]


def class_names(detector: PersonDetector) -> set[str]:
    """The classes the detector knows: its config's labels, lower-case (COCO's for RT-DETR)."""
    return {str(name).lower() for name in detector.model.config.id2label.values()}


def count_objects(detector: PersonDetector, images: list[Image.Image], threshold: float,
                  job: Job) -> list[dict[str, int]]:
    """For each image, how many boxes of each of the detector's classes (class_names) reach `threshold` (every
    class listed, 0 where none does)."""
    names = {int(label): str(name).lower() for label, name in detector.model.config.id2label.items()}
    classes = sorted(set(names.values()))
    counted = []
    for image in images:
        job.check()
        found = _detections(detector, image)
        counts = dict.fromkeys(classes, 0)
        for label in found["labels"][found["scores"] >= threshold].tolist():
            counts[names[int(label)]] += 1
        counted.append(counts)
    return counted


def _person_label(config: Any) -> int:
    for label, name in config.id2label.items():
        if str(name).lower() == "person":
            return int(label)
    raise InvalidArgument("pose_model", getattr(config, "name_or_path", "?"),
                          "its person detector has no 'person' class", "Use a COCO-trained detector.")


def openpose_joints(person: Person, keypoint_threshold: float) -> list[tuple[float, float] | None]:
    """The 18 OpenPose body joints of `person` (None where the model is less sure than `keypoint_threshold`)."""
    seen = [point if score >= keypoint_threshold else None for point, score in zip(person.keypoints, person.scores)]
    joints: list[tuple[float, float] | None] = []
    for coco in OPENPOSE_FROM_COCO:
        if coco is not None:
            joints.append(seen[coco])
            continue
        left, right = (seen[index] for index in COCO_SHOULDERS)
        joints.append(((left[0] + right[0]) / 2, (left[1] + right[1]) / 2) if left and right else None)
    return joints


def pose_map(people: list[Person], photo_size: tuple[int, int], size: tuple[int, int],
             keypoint_threshold: float) -> tuple[Image.Image, int]:
    """OpenPose skeletons of `people` (found in a photo of `photo_size`) on black, at `size`; and how many people
    it shows (those with at least one joint at or above `keypoint_threshold`)."""
    import cv2
    import numpy as np

    width, height = size
    canvas = np.zeros((height, width, 3), dtype=np.uint8)
    scale_x, scale_y = width / photo_size[0], height / photo_size[1]
    line = max(1, round(LINE_AT_512 * min(width, height) / 512))
    shown = 0
    skeletons = []
    for person in people:
        joints = [None if joint is None else (joint[0] * scale_x, joint[1] * scale_y)
                  for joint in openpose_joints(person, keypoint_threshold)]
        if any(joints):
            shown += 1
            skeletons.append(joints)
    for joints in skeletons:
        for (start, end), colour in zip(OPENPOSE_LIMBS, OPENPOSE_COLOURS):
            a, b = joints[start], joints[end]
            if a is None or b is None:
                continue
            centre = (int((a[0] + b[0]) / 2), int((a[1] + b[1]) / 2))
            length = math.hypot(a[0] - b[0], a[1] - b[1])
            angle = int(math.degrees(math.atan2(b[1] - a[1], b[0] - a[0])))
            polygon = cv2.ellipse2Poly(centre, (int(length / 2), line), angle, 0, 360, 1)
            cv2.fillConvexPoly(canvas, polygon, [int(c * LIMB_SHADE) for c in colour])
    for joints in skeletons:
        for joint, colour in zip(joints, OPENPOSE_COLOURS):
            if joint is not None:
                cv2.circle(canvas, (int(joint[0]), int(joint[1])), line, colour, thickness=-1)
    return Image.fromarray(canvas), shown


def skeleton_map(detector: PersonDetector, estimator: PoseEstimator, image: Image.Image, size: tuple[int, int],
                 person_threshold: float, keypoint_threshold: float, job: Job) -> tuple[Image.Image, int]:
    """The OpenPose map of everyone in `image`, at `size`, and how many people it shows; a clear error when it
    would show nobody."""
    people = find_people(detector, estimator, image, person_threshold, job)
    drawn, shown = pose_map(people, image.size, size, keypoint_threshold)
    if not shown:
        surest = max(max(person.scores) for person in people)
        raise InvalidArgument(
            "keypoint_threshold", keypoint_threshold,
            f"none of the {len(people)} people found has a joint this certain (the surest scored {surest:.2f})",
            f"Lower keypoint_threshold (e.g. to {math.floor(surest * 100) / 100:.2f}), use a clearer photo, or pass "
            "a ready OpenPose skeleton image with preprocess=false.",
        )
    return drawn, shown
