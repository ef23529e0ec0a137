"""The Shapes world, v1: procedural clips of coloured shapes with prompts and captions.

The grammar is fixed by DESIGN.md §4; evaluation code inside and outside the project parses it
(`uvigu.eval.grammar`), so wording changes go through an issue.

Coordinates: `(x, y)` in pixels with pixel centres at integers (OpenCV's convention), so a
frame of side `s` spans `[-0.5, s - 0.5]` on each axis. Frames are uint8 `(T, H, W, 3)` RGB.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

import cv2
import numpy as np
import torch

logger = logging.getLogger(__name__)

COLORS: dict[str, tuple[int, int, int]] = {
    "red": (230, 40, 40),
    "green": (40, 190, 70),
    "blue": (40, 90, 235),
    "yellow": (245, 215, 40),
    "purple": (150, 60, 210),
    "orange": (250, 140, 30),
}
BACKGROUNDS: dict[str, tuple[int, int, int]] = {
    "black": (0, 0, 0),
    "white": (255, 255, 255),
    "gray": (128, 128, 128),
}
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "diamond")
SIZES: tuple[str, ...] = ("small", "large")
MOTIONS: tuple[str, ...] = ("left", "right", "up", "down", "still")
SPEEDS: tuple[str, ...] = ("slowly", "quickly")
# The 3x3 grid of the frame, row-major from the top left: REGION_GRID[row][col].
REGION_GRID: tuple[tuple[str, str, str], ...] = (
    ("top left", "top", "top right"),
    ("left", "center", "right"),
    ("bottom left", "bottom", "bottom right"),
)
REGIONS: tuple[str, ...] = tuple(region for row in REGION_GRID for region in row)
HELD_OUT_PAIRS: frozenset[tuple[str, str]] = frozenset(
    {("purple", "triangle"), ("orange", "square"), ("green", "diamond")}
)

# Unit step per motion in image coordinates (y grows downwards).
MOTION_DIRECTIONS: dict[str, tuple[int, int]] = {
    "left": (-1, 0),
    "right": (1, 0),
    "up": (0, -1),
    "down": (0, 1),
    "still": (0, 0),
}
PROMPT_MOTION_PHRASES: dict[str, str] = {
    "left": "moving left",
    "right": "moving right",
    "up": "moving up",
    "down": "moving down",
    "still": "staying still",
}
CAPTION_MOTION_PHRASES: dict[str, str] = {
    "left": "to the left",
    "right": "to the right",
    "up": "up",
    "down": "down",
}

# §4 sizes in pixels at the 64 px reference frame; they scale with the frame side.
REFERENCE_SIDE = 64
BOX_PX: dict[str, float] = {"small": 12.0, "large": 20.0}  # bounding-box side
TRAVEL_PX: dict[str, float] = {"slowly": 16.0, "quickly": 32.0}  # distance over the whole clip

Split = Literal["train", "heldout", "all"]
SPLITS: tuple[str, ...] = ("train", "heldout", "all")

_SUBPIXEL_SHIFT = 4  # OpenCV fixed-point bits: positions drawn to 1/16 px
_MAX_SCENE_ATTEMPTS = 1000


@dataclass(frozen=True)
class ShapesConfig:
    """How Shapes clips are sampled; object sizes and travel follow §4 (BOX_PX, TRAVEL_PX), scaled."""

    size: int = 64  # frame side in pixels (square frames)
    num_frames: int = 16  # clip length
    fps: int = 8  # playback rate written with the clip
    min_objects: int = 1  # objects per clip, inclusive range (§4: one or two)
    max_objects: int = 2
    still_prob: float = 0.2  # probability an object stays still (else one of the 4 directions)
    border_px: float = 1.0  # keep boxes this far from the frame edge so anti-aliasing stays inside
    gap_px: float = 2.0  # minimum gap between two objects' boxes
    # §4 only requires objects not to *start* overlapping; keeping them apart for the whole clip
    # means no frame has an occluded shape, which keeps both training data and analysis clean.
    keep_apart: bool = True
    # Keep start centres this far from the 3x3 grid lines so the start region is unambiguous
    # to an analyzer that measures it from pixels (measurement error is below ~0.5 px).
    region_margin_px: float = 1.0

    def __post_init__(self) -> None:
        if self.size < 16:
            raise ValueError(f"ShapesConfig.size must be at least 16 pixels, got {self.size}")
        if self.num_frames < 2:
            raise ValueError(f"ShapesConfig.num_frames must be at least 2, got {self.num_frames}")
        if not 1 <= self.min_objects <= self.max_objects <= len(COLORS):
            raise ValueError(
                "ShapesConfig needs 1 <= min_objects <= max_objects <= "
                f"{len(COLORS)}, got {self.min_objects}..{self.max_objects}"
            )
        if not 0.0 <= self.still_prob <= 1.0:
            raise ValueError(f"ShapesConfig.still_prob must be in [0, 1], got {self.still_prob}")
        needed = box_px("large", self.size) + travel_px("quickly", self.size) + 2 * self.border_px
        if needed > self.size - 1:
            raise ValueError(
                f"a large object moving quickly needs {needed:.1f} px but the frame is {self.size} px"
            )


@dataclass(frozen=True)
class ShapeObject:
    """One object: what it is, how it moves, and where its box centre starts (pixels)."""

    color: str
    shape: str
    size: str
    motion: str
    speed: str | None  # None exactly when motion == 'still'
    start: tuple[float, float]  # (x, y) centre at frame 0
    region: str  # 3x3-grid cell of `start`


@dataclass(frozen=True)
class Scene:
    """A whole clip description: background and 1..n objects (drawn in order)."""

    background: str
    objects: tuple[ShapeObject, ...]
    size: int
    num_frames: int
    fps: int


@dataclass(frozen=True)
class ShapesExample:
    """A generated clip: frames uint8 (T, H, W, 3), its prompt and caption, and the scene."""

    frames: np.ndarray
    prompt: str
    caption: str
    scene: Scene = field(repr=False)


def region_of(x: float, y: float, width: int, height: int | None = None) -> str:
    """The 3x3-grid region of the point (x, y) in a frame of `width` x `height` (default square)."""
    height = width if height is None else height
    col = min(2, max(0, int((x + 0.5) * 3 // width)))
    row = min(2, max(0, int((y + 0.5) * 3 // height)))
    return REGION_GRID[row][col]


def box_px(size: str, frame_side: int) -> float:
    """Bounding-box side in pixels of a `size` word ('small' | 'large') in a frame of that side."""
    return BOX_PX[size] * frame_side / REFERENCE_SIDE


def travel_px(speed: str | None, frame_side: int) -> float:
    """Distance in pixels travelled over the clip at `speed` (None: still) in a frame of that side."""
    return 0.0 if speed is None else TRAVEL_PX[speed] * frame_side / REFERENCE_SIDE


def object_center(obj: ShapeObject, frame: int, num_frames: int, frame_side: int) -> tuple[float, float]:
    """Box centre (x, y) of `obj` at `frame`: straight line at constant speed from `start`."""
    travel = travel_px(obj.speed, frame_side)
    dx, dy = MOTION_DIRECTIONS[obj.motion]
    progress = frame / (num_frames - 1) if num_frames > 1 else 0.0
    return (obj.start[0] + dx * travel * progress, obj.start[1] + dy * travel * progress)


def _allowed_pairs(split: str) -> list[tuple[str, str]]:
    pairs = [(c, s) for c in COLORS for s in SHAPES]
    if split == "train":
        return [p for p in pairs if p not in HELD_OUT_PAIRS]
    if split == "heldout":
        return sorted(HELD_OUT_PAIRS)
    return pairs


def _sample_object(
    rng: np.random.Generator,
    config: ShapesConfig,
    color: str,
    shape: str,
) -> ShapeObject:
    size = SIZES[rng.integers(len(SIZES))]
    if rng.random() < config.still_prob:
        motion, speed = "still", None
    else:
        motion = MOTIONS[rng.integers(4)]
        speed = SPEEDS[rng.integers(len(SPEEDS))]
    x, y = (float(rng.uniform(a, b)) for a, b in start_ranges(size, motion, speed, config))
    return ShapeObject(color, shape, size, motion, speed, (x, y), region_of(x, y, config.size))


def start_ranges(
    size: str, motion: str, speed: str | None, config: ShapesConfig
) -> tuple[tuple[float, float], tuple[float, float]]:
    """The (low, high) ranges of an object's start centre in x and y: the box stays in frame,
    ``border_px`` from the edge, along its whole path. Starts are drawn uniformly over them."""
    half = box_px(size, config.size) / 2
    travel = travel_px(speed, config.size)
    lo = half + config.border_px - 0.5
    hi = config.size - 0.5 - half - config.border_px
    dx, dy = MOTION_DIRECTIONS[motion]
    x_range, y_range = ((lo, hi - travel) if d > 0 else (lo + travel, hi) if d < 0 else (lo, hi) for d in (dx, dy))
    return x_range, y_range


def possible_regions(size: str, motion: str, speed: str | None, config: ShapesConfig = ShapesConfig()) -> list[str]:
    """The start regions an object of this size, motion and speed can have: those whose cell of the
    3×3 grid meets its ``start_ranges`` (a quick object going right cannot start at the right)."""
    (x0, x1), (y0, y1) = start_ranges(size, motion, speed, config)
    third = config.size / 3
    return [name for row, names in enumerate(REGION_GRID) for col, name in enumerate(names)
            if x0 < (col + 1) * third - 0.5 and x1 >= col * third - 0.5
            and y0 < (row + 1) * third - 0.5 and y1 >= row * third - 0.5]


def _near_grid_line(obj: ShapeObject, config: ShapesConfig) -> bool:
    lines = [config.size * k / 3 - 0.5 for k in (1, 2)]
    return any(abs(v - line) < config.region_margin_px for v in obj.start for line in lines)


def _boxes_apart(a: ShapeObject, b: ShapeObject, config: ShapesConfig) -> bool:
    frames = range(config.num_frames) if config.keep_apart else range(1)
    reach = (box_px(a.size, config.size) + box_px(b.size, config.size)) / 2 + config.gap_px
    for t in frames:
        ax, ay = object_center(a, t, config.num_frames, config.size)
        bx, by = object_center(b, t, config.num_frames, config.size)
        if abs(ax - bx) < reach and abs(ay - by) < reach:
            return False
    return True


def sample_scene(rng: np.random.Generator, config: ShapesConfig = ShapesConfig(), split: Split = "train") -> Scene:
    """Draw a random scene.

    split: 'train' never contains a held-out (color, shape) pair, 'heldout' contains at least
    one in every scene, 'all' draws from every pair.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    for _ in range(_MAX_SCENE_ATTEMPTS):
        background = list(BACKGROUNDS)[rng.integers(len(BACKGROUNDS))]
        count = int(rng.integers(config.min_objects, config.max_objects + 1))
        objects: list[ShapeObject] = []
        for i in range(count):
            # The first object carries the held-out pair in the 'heldout' split; the rest may be
            # any pair the 'all' split allows.
            pool = _allowed_pairs(split if (split != "heldout" or i == 0) else "all")
            pool = [p for p in pool if p[0] not in {o.color for o in objects}]
            color, shape = pool[rng.integers(len(pool))]
            for _ in range(100):
                candidate = _sample_object(rng, config, color, shape)
                if _near_grid_line(candidate, config):
                    continue
                if all(_boxes_apart(candidate, other, config) for other in objects):
                    objects.append(candidate)
                    break
            else:
                break
        if len(objects) == count:
            order = rng.permutation(count)
            return Scene(
                background=background,
                objects=tuple(objects[j] for j in order),
                size=config.size,
                num_frames=config.num_frames,
                fps=config.fps,
            )
    raise RuntimeError(f"could not place {config.max_objects} objects in a {config.size} px frame")


def _shape_polygon(shape: str, cx: float, cy: float, half: float) -> np.ndarray:
    if shape == "square":
        pts = [(-1, -1), (1, -1), (1, 1), (-1, 1)]
    elif shape == "triangle":  # apex up, base at the bottom of the box
        pts = [(0, -1), (1, 1), (-1, 1)]
    else:  # diamond: a square turned 45 degrees, corners on the box's edge midpoints
        pts = [(0, -1), (1, 0), (0, 1), (-1, 0)]
    poly = np.array([(cx + half * px, cy + half * py) for px, py in pts], dtype=np.float64)
    return np.round(poly * (1 << _SUBPIXEL_SHIFT)).astype(np.int32)


def draw_shape(canvas: np.ndarray, shape: str, center: tuple[float, float], box: float, rgb: tuple[int, int, int]) -> None:
    """Draw one anti-aliased shape in place on an (H, W, 3) uint8 canvas.

    OpenCV's anti-aliased fill covers about half a pixel beyond the outline, so outlines use a
    half-side of (box - 1) / 2 to make the visible box about `box` pixels.
    """
    half = (box - 1) / 2
    scale = 1 << _SUBPIXEL_SHIFT
    if shape == "circle":
        c = (int(round(center[0] * scale)), int(round(center[1] * scale)))
        cv2.circle(canvas, c, int(round(half * scale)), rgb, -1, cv2.LINE_AA, _SUBPIXEL_SHIFT)
    elif shape in SHAPES:
        cv2.fillPoly(canvas, [_shape_polygon(shape, center[0], center[1], half)], rgb, cv2.LINE_AA, _SUBPIXEL_SHIFT)
    else:
        raise ValueError(f"unknown shape {shape!r}; expected one of {SHAPES}")


def render_scene(scene: Scene) -> np.ndarray:
    """Draw the scene: uint8 (T, H, W, 3) RGB, objects moving in straight lines at constant speed."""
    frames = np.empty((scene.num_frames, scene.size, scene.size, 3), dtype=np.uint8)
    background = np.array(BACKGROUNDS[scene.background], dtype=np.uint8)
    for t in range(scene.num_frames):
        canvas = np.empty((scene.size, scene.size, 3), dtype=np.uint8)
        canvas[:] = background
        for obj in scene.objects:
            center = object_center(obj, t, scene.num_frames, scene.size)
            draw_shape(canvas, obj.shape, center, box_px(obj.size, scene.size), COLORS[obj.color])
        frames[t] = canvas
    return frames


def object_phrase(color: str, shape: str, motion: str, size: str | None = None) -> str:
    """One object as the prompt grammar names it, e.g. 'a small red circle moving up' (no size word
    when ``size`` is None)."""
    return f"a {size + ' ' if size else ''}{color} {shape} {PROMPT_MOTION_PHRASES[motion]}"


def scene_prompt(scene: Scene, rng: np.random.Generator | None = None) -> str:
    """The short prompt, e.g. 'a red circle moving right and a large blue square staying still'.

    With `rng`, each size word and the background phrase are included at random (wording varies
    within the grammar); without it the full form with every size and the background is used.
    """
    phrases = []
    for obj in scene.objects:
        with_size = rng is None or rng.random() < 0.5
        phrases.append(object_phrase(obj.color, obj.shape, obj.motion, obj.size if with_size else None))
    return prompt_text(phrases, scene.background if rng is None or rng.random() < 0.5 else None)


def prompt_text(phrases: Sequence[str], background: str | None = None) -> str:
    """Objects as the prompt grammar names them (``object_phrase``) in one prompt, on ``background``
    when one is given."""
    text = " and ".join(phrases)
    return f"{text} on a {background} background" if background else text


def scene_caption(scene: Scene) -> str:
    """The detailed caption, e.g. 'a large red circle moves quickly to the right from the left,
    while a small blue square stays still near the center on a black background.'"""
    return caption_text(scene.objects, scene.background)


def caption_text(objects, background: str) -> str:
    """The detailed caption of ``objects`` — anything with the fields size, color, shape, motion,
    speed (for a moving one) and region, such as ``ShapeObject`` or a parsed caption's mentions —
    on ``background``."""
    clauses = []
    for obj in objects:
        subject = f"a {obj.size} {obj.color} {obj.shape}"
        if obj.motion == "still":
            clauses.append(f"{subject} stays still near the {obj.region}")
        else:
            clauses.append(f"{subject} moves {obj.speed} {CAPTION_MOTION_PHRASES[obj.motion]} from the {obj.region}")
    return ", while ".join(clauses) + f" on a {background} background."


def make_example(seed: int, config: ShapesConfig = ShapesConfig(), split: Split = "train") -> ShapesExample:
    """A clip with its (randomly worded) prompt and caption, fully determined by `seed`."""
    rng = np.random.default_rng(seed)
    scene = sample_scene(rng, config, split)
    return ShapesExample(
        frames=render_scene(scene),
        prompt=scene_prompt(scene, rng),
        caption=scene_caption(scene),
        scene=scene,
    )


class ShapesDataset(torch.utils.data.Dataset):
    """`length` Shapes examples; item i is dict(frames=uint8 (T, H, W, 3), prompt=str, caption=str).

    Item i is `make_example(seed_for(i))`, a seed mixed from (seed, i), so items do not depend on
    which dataloader worker builds them, and datasets with nearby base seeds do not overlap.
    """

    def __init__(self, length: int, seed: int = 0, config: ShapesConfig = ShapesConfig(), split: Split = "train") -> None:
        if length < 0:
            raise ValueError(f"dataset length must be >= 0, got {length}")
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        self.length = length
        self.seed = seed
        self.config = config
        self.split = split

    def __len__(self) -> int:
        return self.length

    def seed_for(self, index: int) -> int:
        """The `make_example` seed of item `index`."""
        return int(np.random.SeedSequence([self.seed, index]).generate_state(1, dtype=np.uint64)[0])

    def example(self, index: int) -> ShapesExample:
        """Item `index` with its scene."""
        if not -self.length <= index < self.length:
            raise IndexError(f"index {index} out of range for a dataset of {self.length}")
        return make_example(self.seed_for(index % self.length), self.config, self.split)

    def __getitem__(self, index: int) -> dict:
        ex = self.example(index)
        return {"frames": ex.frames, "prompt": ex.prompt, "caption": ex.caption}


def shapes_vocabulary() -> list[str]:
    """Every token a prompt or caption can contain (lowercase words, ',' and '.'), sorted."""
    words = {"a", "and", "on", "background", "while", "moving", "staying", "moves", "stays", "still",
             "to", "the", "from", "near", ",", "."}
    words.update(COLORS, BACKGROUNDS, SHAPES, SIZES, SPEEDS)
    words.update(m for m in MOTIONS)
    for region in REGIONS:
        words.update(region.split())
    return sorted(words)


REVERSED_MOTIONS: dict[str, str] = {"left": "right", "right": "left", "up": "down", "down": "up"}
# the prompt grammar's phrase of each direction, and the phrase of the opposite one
_REVERSED_PHRASES = {PROMPT_MOTION_PHRASES[m]: PROMPT_MOTION_PHRASES[r] for m, r in REVERSED_MOTIONS.items()}
_PROMPT_MOTION = re.compile(r"\b(" + "|".join(map(re.escape, _REVERSED_PHRASES)) + r")\b")


def reversed_scene(scene: Scene) -> Scene:
    """The scene played backwards: each object starts where it ended and moves the other way, at
    the same speed; its render is the scene's render reversed in time."""
    objects = []
    for obj in scene.objects:
        end = object_center(obj, scene.num_frames - 1, scene.num_frames, scene.size)
        motion = REVERSED_MOTIONS.get(obj.motion, obj.motion)
        objects.append(replace(obj, motion=motion, start=end, region=region_of(*end, scene.size)))
    return replace(scene, objects=tuple(objects))


def reversed_prompt(prompt: str) -> str | None:
    """The prompt of the same clip played backwards: every 'moving left / right / up / down' of the
    prompt grammar turned round ('a red circle moving right' → 'a red circle moving left'); None
    when the prompt names no moving object, so that backwards it would say the same.

    A Shapes clip reversed in time is exactly the clip of its reversed scene (straight lines at
    constant speed, ``reversed_scene``), and a prompt names no start position, so this is that
    clip's prompt. A caption is not reversed this way: its 'from the left' would have to become
    where each object ends."""
    if not _PROMPT_MOTION.search(prompt):
        return None
    return _PROMPT_MOTION.sub(lambda m: _REVERSED_PHRASES[m.group(1)], prompt)


def tokenize(text: str) -> list[str]:
    """Split text the way the vocabulary assumes: lowercase words, ',' and '.' as tokens."""
    return text.lower().replace(",", " , ").replace(".", " . ").split()


__all__ = [
    "BACKGROUNDS", "CAPTION_MOTION_PHRASES", "COLORS", "HELD_OUT_PAIRS", "PROMPT_MOTION_PHRASES", "MOTIONS", "REGIONS", "SHAPES", "SIZES", "SPEEDS",
    "BOX_PX", "REFERENCE_SIDE", "TRAVEL_PX", "Scene", "ShapeObject", "ShapesConfig", "ShapesDataset", "ShapesExample", "make_example",
    "box_px", "caption_text", "draw_shape", "object_center", "possible_regions", "region_of", "render_scene", "reversed_prompt", "reversed_scene", "sample_scene", "scene_caption", "scene_prompt", "shapes_vocabulary",
    "tokenize", "travel_px",
]
