"""Rule-based Shapes-world clip analyzer, independent of the generator's drawing code.

Pipeline per clip uint8 (T, H, W, 3):
1. background: median border colour → nearest `BACKGROUNDS` entry;
2. per pixel, the nearest reference colour (object colours and backgrounds); an object pixel is
   one whose nearest reference is an object colour within `color_tolerance` (so blur, noise and
   the colour drift of a generative model are tolerated, and anti-aliased edges mostly are not);
3. per frame and colour, connected components; tiny or stringy blobs are ignored;
4. per component, a shape from the orientation of its edges, measured on its coverage map
   (the blend weight of its colour over the background; see `classify_shape`);
5. components of one colour are linked frame to frame into tracks of box centres; a line fit
   gives the displacement over the clip → motion ('still' below half the slow travel) and speed
   (split between slow and fast travel); region is the 3x3 cell of the fitted start.

Sizes and distances are the §4 figures scaled by the frame's shorter side.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Sequence

import cv2
import numpy as np

from uvigu.data.shapes import BACKGROUNDS, BOX_PX, COLORS, REFERENCE_SIDE, TRAVEL_PX, region_of
from uvigu.eval.grammar import ObjectMention

logger = logging.getLogger(__name__)

_COLOR_NAMES = list(COLORS)
_REFERENCE_RGB = np.array([COLORS[c] for c in _COLOR_NAMES] + [BACKGROUNDS[b] for b in BACKGROUNDS], dtype=np.float32)


@dataclass(frozen=True)
class AnalyzerConfig:
    """Thresholds of the analyzer; distances in RGB units, pixel figures at a 64 px frame."""

    color_tolerance: float = 90.0  # max RGB distance from the palette colour for an object pixel
    background_tolerance: float = 80.0  # max distance of the border colour from a background
    min_area_px: float = 30.0  # smaller blobs are noise (a small diamond covers ~72 px)
    min_fill: float = 0.3  # area / box area below this is an edge artefact, not a shape
    max_box_px: float = 40.0  # twice a large object: bigger blobs are backdrop, not a shape
    max_jump_px: float = 12.0  # largest centre move between consecutive frames of one track
    min_track_fraction: float = 0.5  # tracks seen in fewer frames than this are dropped


@dataclass(frozen=True)
class DetectedObject:
    """One tracked object; `track` holds its box centres (x, y) in the frames it was seen."""

    color: str
    shape: str
    size: str
    motion: str
    speed: str | None
    region: str
    track: list[tuple[float, float]] = field(default_factory=list)


@dataclass(frozen=True)
class ClipAnalysis:
    """What the analyzer sees in a clip: background (None if no known one) and objects."""

    background: str | None
    objects: list[DetectedObject]


@dataclass(frozen=True)
class _Blob:
    frame: int
    center: tuple[float, float]
    box: float  # larger side of the bounding box
    area: int
    shape: str


def classify_shape(coverage: np.ndarray) -> str:
    """Shape of one blob from its coverage map (h, w) in [0, 1], cropped with a margin of >= 2 px.

    Moments of the edge orientation θ (direction of the coverage gradient, pointing inwards);
    blur softens edges but keeps their direction. Ranges over 300 generated scenes, clean and
    degraded (5x5 gaussian blur, noise sigma 8, colour shift 15):
    * E[sin 3θ]: triangles (apex up: inward normals at -90°, ~27°, ~153°) 0.66..0.88,
      every other shape -0.24..0.22;
    * E[cos 4θ]: +1 for axis-aligned edges, -1 for diagonal ones: squares 0.59..0.86,
      circles -0.19..0.00, diamonds -0.84..-0.53.
    """
    sin3, cos4 = edge_moments(coverage)
    if sin3 > 0.4:
        return "triangle"
    if cos4 > 0.3:
        return "square"
    if cos4 < -0.35:
        return "diamond"
    return "circle"


def edge_moments(coverage: np.ndarray) -> tuple[float, float]:
    """(E[sin 3θ], E[cos 4θ]) of the edge orientation of a coverage map (h, w), 0 if it has no edge.

    A light blur and squared-magnitude weights keep pixel noise (weak, randomly oriented
    gradients) from diluting the moments: with noise sigma 20 and colour shift 40, shape
    agreement rose from 0.75 to 0.94 (150 scenes).
    """
    smooth = cv2.GaussianBlur(coverage.astype(np.float32), (3, 3), 0.8)
    gx = cv2.Sobel(smooth, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(smooth, cv2.CV_32F, 0, 1, ksize=3)
    weight = gx**2 + gy**2
    total = float(weight.sum())
    if total < 1e-12:
        return 0.0, 0.0
    theta = np.arctan2(gy, gx)
    return float((weight * np.sin(3 * theta)).sum()) / total, float((weight * np.cos(4 * theta)).sum()) / total


def _label_pixels(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nearest reference index and its distance per pixel, both (T, H, W)."""
    channels = [frames[..., k].astype(np.float32) for k in range(3)]
    best = np.full(frames.shape[:-1], np.inf, dtype=np.float32)
    nearest = np.zeros(frames.shape[:-1], dtype=np.int64)
    for index, reference in enumerate(_REFERENCE_RGB):
        squared = sum((channel - value) ** 2 for channel, value in zip(channels, reference))
        closer = squared < best
        best[closer] = squared[closer]
        nearest[closer] = index
    return nearest, np.sqrt(best)


def _border_color(frames: np.ndarray) -> np.ndarray:
    edges = [frames[:, 0], frames[:, -1], frames[:, :, 0], frames[:, :, -1]]
    return np.median(np.concatenate([e.reshape(-1, 3) for e in edges]).astype(np.float32), axis=0)


def _nearest_background(rgb: np.ndarray, config: AnalyzerConfig) -> str | None:
    names = list(BACKGROUNDS)
    dist = [float(np.linalg.norm(rgb - np.array(BACKGROUNDS[b], dtype=np.float32))) for b in names]
    best = int(np.argmin(dist))
    return names[best] if dist[best] <= config.background_tolerance else None


def _coverage(frame: np.ndarray, color: np.ndarray, background: np.ndarray) -> np.ndarray:
    """Per pixel, the blend weight of `color` over `background`, (H, W) in [0, 1]."""
    direction = color - background
    weight = (frame.astype(np.float32) - background) @ direction / max(float(direction @ direction), 1.0)
    return np.clip(weight, 0.0, 1.0)


def _blobs(mask: np.ndarray, coverage: np.ndarray, frame: int, scale: float, config: AnalyzerConfig) -> list[_Blob]:
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    height, width = mask.shape
    blobs = []
    for i in range(1, count):
        x, y, w, h, area = (int(v) for v in stats[i])
        if area < config.min_area_px * scale**2 or area < config.min_fill * w * h or max(w, h) > config.max_box_px * scale:
            continue
        # This blob's coverage plus a 2 px ring for its blurred edge; everything else zeroed.
        x0, y0, x1, y1 = max(0, x - 3), max(0, y - 3), min(width, x + w + 3), min(height, y + h + 3)
        own = (labels[y0:y1, x0:x1] == i).astype(np.uint8)
        near = cv2.dilate(own, np.ones((5, 5), np.uint8)).astype(bool)
        crop = np.where(near, coverage[y0:y1, x0:x1], 0.0).astype(np.float32)
        center = (x + (w - 1) / 2, y + (h - 1) / 2)
        blobs.append(_Blob(frame, center, float(max(w, h)), area, classify_shape(crop)))
    return blobs


def _link(blobs_per_frame: list[list[_Blob]], max_jump: float) -> list[list[_Blob]]:
    tracks: list[list[_Blob]] = []
    for blobs in blobs_per_frame:
        free = list(blobs)
        # Extend the longest tracks first with their nearest blob in this frame.
        for track in sorted(tracks, key=len, reverse=True):
            if not free:
                break
            last = track[-1]
            gaps = [np.hypot(b.center[0] - last.center[0], b.center[1] - last.center[1]) for b in free]
            j = int(np.argmin(gaps))
            if gaps[j] <= max_jump * (free[j].frame - last.frame):
                track.append(free.pop(j))
        tracks.extend([b] for b in free)
    return tracks


def _describe(color: str, track: list[_Blob], num_frames: int, height: int, width: int) -> DetectedObject:
    side = min(height, width)
    scale = side / REFERENCE_SIDE
    t = np.array([b.frame for b in track], dtype=np.float64)
    xy = np.array([b.center for b in track], dtype=np.float64)
    if len(track) >= 2 and np.ptp(t) > 0:
        slope, intercept = np.polyfit(t, xy, 1)  # each (2,): per-frame velocity, position at t=0
    else:
        slope, intercept = np.zeros(2), xy[0]
    dx, dy = slope * (num_frames - 1)
    travel = max(abs(dx), abs(dy))
    if travel < TRAVEL_PX["slowly"] / 2 * scale:
        motion, speed = "still", None
    else:
        motion = ("right" if dx > 0 else "left") if abs(dx) >= abs(dy) else ("down" if dy > 0 else "up")
        speed = "slowly" if travel < (TRAVEL_PX["slowly"] + TRAVEL_PX["quickly"]) / 2 * scale else "quickly"
    box = float(np.median([b.box for b in track]))
    size = "small" if box < (BOX_PX["small"] + BOX_PX["large"]) / 2 * scale else "large"
    shape = Counter(b.shape for b in track).most_common(1)[0][0]
    region = region_of(float(intercept[0]), float(intercept[1]), width, height)
    return DetectedObject(color, shape, size, motion, speed, region, [(float(x), float(y)) for x, y in xy])


def analyze_clip(frames: np.ndarray, config: AnalyzerConfig = AnalyzerConfig()) -> ClipAnalysis:
    """Find the background and the moving / still objects of a clip uint8 (T, H, W, 3) RGB."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or 0 in frames.shape:
        raise ValueError(f"expected uint8 frames (T, H, W, 3), got {frames.dtype} {frames.shape}")
    num_frames, height, width, _ = frames.shape
    scale = min(height, width) / REFERENCE_SIDE
    nearest, dist = _label_pixels(frames)
    background_rgb = _border_color(frames)
    # Pixels of another object colour never count towards this colour's coverage.
    claimed = (nearest < len(_COLOR_NAMES)) & (dist <= config.color_tolerance)
    objects = []
    for ci, color in enumerate(_COLOR_NAMES):
        mask = claimed & (nearest == ci)
        if not mask.any():
            continue
        rgb = np.array(COLORS[color], dtype=np.float32)
        per_frame = []
        for t in range(num_frames):
            coverage = np.where(claimed[t] & ~mask[t], 0.0, _coverage(frames[t], rgb, background_rgb))
            per_frame.append(_blobs(mask[t], coverage, t, scale, config))
        for track in _link(per_frame, config.max_jump_px * scale):
            if len(track) < max(1, config.min_track_fraction * num_frames):
                logger.debug("dropped a %s track seen in %d of %d frames", color, len(track), num_frames)
                continue
            objects.append(_describe(color, track, num_frames, height, width))
    # Longest-lived objects first.
    objects.sort(key=lambda o: -len(o.track))
    return ClipAnalysis(_nearest_background(background_rgb, config), objects)


def match_objects(
    expected: Sequence[ObjectMention],
    found: Sequence[DetectedObject | ObjectMention],
    fields: Sequence[str] = ("color", "shape", "motion"),
) -> list[bool]:
    """Per expected object, whether a distinct found object agrees with it on `fields`.

    One-to-one: each found object serves at most one expected object. Expected objects are
    taken in order and each grabs an agreeing found object, re-assigning earlier grabs when
    that frees one (augmenting paths), so the number of matches is the largest possible and
    does not depend on order. A field that is None in the expected mention (the text did not
    say) is not checked.
    """
    agrees = [
        [all(getattr(want, f) is None or getattr(want, f) == getattr(got, f, None) for f in fields) for got in found]
        for want in expected
    ]
    owner: list[int | None] = [None] * len(found)  # found index -> expected index

    def grab(i: int, seen: set[int]) -> bool:
        for j, ok in enumerate(agrees[i]):
            if ok and j not in seen:
                seen.add(j)
                if owner[j] is None or grab(owner[j], seen):
                    owner[j] = i
                    return True
        return False

    for i in range(len(expected)):
        grab(i, set())
    matched = {i for i in owner if i is not None}
    return [i in matched for i in range(len(expected))]


__all__ = ["AnalyzerConfig", "ClipAnalysis", "DetectedObject", "analyze_clip", "classify_shape", "match_objects"]
