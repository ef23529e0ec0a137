"""One-attribute edits of a Shapes scene, for the edit-success metric (DESIGN §5).

An edit changes the colour, the shape or the motion of one object and leaves everything else as
it was (start position, size, speed, the other objects, the background). The edited scene is
written back as a caption with the generator's own `scene_caption`, so the edited text is in the
grammar exactly, and its objects are the expectation the analyzer checks the edited clip against.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

import numpy as np

from uvigu.data.shapes import (
    COLORS,
    HELD_OUT_PAIRS,
    MOTIONS,
    SHAPES,
    Scene,
    ShapeObject,
    box_px,
    object_center,
)

Attribute = Literal["color", "shape", "motion"]
ATTRIBUTES: tuple[Attribute, ...] = ("color", "shape", "motion")

# An edited moving object keeps its speed; one that starts moving from still gets this one.
_SPEED_FROM_STILL = "slowly"


@dataclass(frozen=True)
class SceneEdit:
    """One attribute of one object changed: `scene` is the original, `edited` the result."""

    scene: Scene
    edited: Scene
    object_index: int  # which object of `scene.objects` changed
    attribute: Attribute
    old: str
    new: str


def _inside(obj: ShapeObject, scene: Scene) -> bool:
    half = box_px(obj.size, scene.size) / 2
    lo, hi = half - 0.5, scene.size - 0.5 - half
    # Straight-line motion: the first and last frame bound the whole track.
    ends = (object_center(obj, t, scene.num_frames, scene.size) for t in (0, scene.num_frames - 1))
    return all(lo <= v <= hi for center in ends for v in center)


def _apart(a: ShapeObject, b: ShapeObject, scene: Scene) -> bool:
    reach = (box_px(a.size, scene.size) + box_px(b.size, scene.size)) / 2
    for t in range(scene.num_frames):
        ax, ay = object_center(a, t, scene.num_frames, scene.size)
        bx, by = object_center(b, t, scene.num_frames, scene.size)
        if abs(ax - bx) < reach and abs(ay - by) < reach:
            return False
    return True


def _candidates(scene: Scene, index: int, attribute: Attribute, allow_heldout: bool) -> list[ShapeObject]:
    obj = scene.objects[index]
    others = [o for i, o in enumerate(scene.objects) if i != index]
    if attribute == "color":
        used = {o.color for o in others}
        options = [dataclasses.replace(obj, color=c) for c in COLORS if c != obj.color and c not in used]
    elif attribute == "shape":
        options = [dataclasses.replace(obj, shape=s) for s in SHAPES if s != obj.shape]
    else:
        options = []
        for motion in MOTIONS:
            if motion == obj.motion:
                continue
            speed = None if motion == "still" else (obj.speed or _SPEED_FROM_STILL)
            options.append(dataclasses.replace(obj, motion=motion, speed=speed))
    return [
        o for o in options
        if (allow_heldout or (o.color, o.shape) not in HELD_OUT_PAIRS)
        and _inside(o, scene)
        and all(_apart(o, other, scene) for other in others)
    ]


def edit_scene(
    scene: Scene,
    attribute: Attribute,
    rng: np.random.Generator,
    *,
    allow_heldout: bool = False,
) -> SceneEdit | None:
    """Change `attribute` of one object of `scene`, both drawn with `rng`.

    The new value keeps the scene valid: colours stay distinct, a new motion keeps the object
    inside the frame and apart from the others. Without `allow_heldout` no edited object is a
    held-out colour–shape pair (so edits on the training distribution stay in it). Returns None
    when no object admits such an edit.
    """
    if attribute not in ATTRIBUTES:
        raise ValueError(f"attribute must be one of {ATTRIBUTES}, got {attribute!r}")
    order = rng.permutation(len(scene.objects))
    for index in (int(i) for i in order):
        options = _candidates(scene, index, attribute, allow_heldout)
        if not options:
            continue
        new_obj = options[rng.integers(len(options))]
        objects = tuple(new_obj if i == index else o for i, o in enumerate(scene.objects))
        old_obj = scene.objects[index]
        return SceneEdit(
            scene=scene,
            edited=dataclasses.replace(scene, objects=objects),
            object_index=index,
            attribute=attribute,
            old=getattr(old_obj, attribute),
            new=getattr(new_obj, attribute),
        )
    return None


__all__ = ["ATTRIBUTES", "Attribute", "SceneEdit", "edit_scene"]
