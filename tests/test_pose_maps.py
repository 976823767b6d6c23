"""OpenPose skeleton drawing (engine/pose.py): exact by construction, so pixels are compared exactly."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from pixelmcp.engine import pose
from pixelmcp.engine.pose import LIMB_SHADE, OPENPOSE_COLOURS, Person
from pixelmcp.errors import InvalidArgument

# A standing person in a 100 x 200 photo, COCO keypoint order: nose, eyes, ears, shoulders, elbows, wrists,
# hips, knees, ankles (left before right; the person faces the camera, so their left is at larger x).
STANDING = ((50, 20), (54, 16), (46, 16), (58, 18), (42, 18), (65, 40), (35, 40), (70, 70), (30, 70), (72, 100),
            (28, 100), (60, 110), (40, 110), (60, 150), (40, 150), (60, 190), (40, 190))


def person(scores=None, shift: float = 0.0) -> Person:
    return Person(keypoints=tuple((x + shift, y) for x, y in STANDING), scores=tuple(scores or [0.9] * 17))


def colour_at(image: Image.Image, x: float, y: float) -> tuple[int, ...]:
    return tuple(int(c) for c in np.asarray(image)[int(y), int(x)])


def test_joints_are_openpose_colours_at_their_places_scaled_to_the_map():
    drawn, shown = pose.pose_map([person()], (100, 200), (200, 400), keypoint_threshold=0.3)
    assert shown == 1 and drawn.size == (200, 400)
    joints = pose.openpose_joints(person(), 0.3)
    for joint, colour in zip(joints, OPENPOSE_COLOURS):
        assert colour_at(drawn, joint[0] * 2, joint[1] * 2) == colour
    # OpenPose's neck is the midpoint of the shoulders; its right shoulder is the person's right (COCO 6).
    assert joints[1] == (50.0, 40.0) and joints[2] == STANDING[6] and joints[5] == STANDING[5]
    # A limb between joints is drawn in 60% of its colour: the right upper arm (neck is not in it) halfway.
    (x1, y1), (x2, y2) = joints[2], joints[3]
    shade = tuple(int(c * LIMB_SHADE) for c in OPENPOSE_COLOURS[2])
    assert colour_at(drawn, x1 + x2, y1 + y2) == shade
    assert colour_at(drawn, 5, 5) == (0, 0, 0)


def test_unsure_joints_are_left_out_and_several_people_are_drawn():
    scores = [0.9] * 17
    scores[9] = 0.1  # the left wrist
    drawn, shown = pose.pose_map([person(scores), person(shift=200)], (300, 200), (300, 200), keypoint_threshold=0.3)
    assert shown == 2
    left_wrist = STANDING[9]
    assert colour_at(drawn, *left_wrist) == (0, 0, 0)
    assert colour_at(drawn, left_wrist[0] + 200, left_wrist[1]) == OPENPOSE_COLOURS[7]  # the other person's
    colours = {tuple(c) for c in np.asarray(drawn).reshape(-1, 3)}
    assert colours <= {(0, 0, 0), *OPENPOSE_COLOURS, *(tuple(int(c * LIMB_SHADE) for c in k) for k in OPENPOSE_COLOURS)}


def test_lines_scale_with_the_map_so_it_looks_the_same_at_any_size():
    maps = [pose.pose_map([person()], (100, 200), size, keypoint_threshold=0.3)[0]
            for size in ((512, 1024), (1024, 2048))]
    ink = [np.count_nonzero(np.asarray(image).any(-1)) / (image.width * image.height) for image in maps]
    assert ink[1] == pytest.approx(ink[0], rel=0.15)  # the same share of the map: lines twice as thick
    assert ink[0] > 0.01


def test_a_person_without_a_sure_joint_is_not_counted_and_an_empty_map_is_an_error(monkeypatch):
    unsure = person([0.2] * 17)
    drawn, shown = pose.pose_map([unsure], (100, 200), (100, 200), keypoint_threshold=0.3)
    assert shown == 0 and not np.asarray(drawn).any()
    monkeypatch.setattr(pose, "find_people", lambda *args: [unsure])
    with pytest.raises(InvalidArgument) as error:
        pose.skeleton_map(None, None, Image.new("RGB", (100, 200)), (100, 200), 0.5, 0.3, job=None)
    message = str(error.value)
    assert "Invalid keypoint_threshold=0.3" in message and "surest scored 0.20" in message
    assert "e.g. to 0.20" in message and "preprocess=false" in message
