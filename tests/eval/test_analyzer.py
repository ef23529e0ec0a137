import cv2
import numpy as np
import pytest

from uvigu.data.shapes import BACKGROUNDS, COLORS, Scene, ShapeObject, ShapesConfig, draw_shape, make_example, render_scene
from uvigu.eval.analyzer import DetectedObject, analyze_clip, match_objects
from uvigu.eval.grammar import ObjectMention, scene_mentions

ALL_FIELDS = ("color", "shape", "size", "motion", "speed", "region")


def _agreement(examples, degrade=None):
    core = full = total = backgrounds = 0
    for i, ex in enumerate(examples):
        frames = ex.frames if degrade is None else degrade(ex.frames, np.random.default_rng(i))
        analysis = analyze_clip(frames)
        truth = scene_mentions(ex.scene)
        core += sum(match_objects(truth, analysis.objects))
        full += sum(match_objects(truth, analysis.objects, ALL_FIELDS))
        total += len(truth)
        backgrounds += analysis.background == ex.scene.background
    return core / total, full / total, backgrounds / len(examples)


def _blur_noise_shift(frames, rng):
    """What a generative model might do: soft edges, grain, a global colour drift."""
    out = np.stack([cv2.GaussianBlur(f, (5, 5), 1.0) for f in frames.astype(np.float32)])
    out += rng.normal(0.0, 8.0, out.shape) + rng.uniform(-15, 15, size=(1, 1, 1, 3))
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def test_agrees_with_generator_ground_truth():
    examples = [make_example(10_000 + i, split=split) for split in ("train", "heldout") for i in range(120)]
    core, full, background = _agreement(examples)
    # Measured: 1.0 / 1.0 / 1.0 here and on 600 other scenes.
    assert core >= 0.98
    assert full >= 0.97
    assert background == 1.0


def test_agrees_on_degraded_clips():
    examples = [make_example(20_000 + i, split=split) for split in ("train", "heldout") for i in range(50)]
    core, full, background = _agreement(examples, _blur_noise_shift)
    # Measured: 1.0 / 1.0 / 1.0 here and on 600 other scenes.
    assert core >= 0.97
    assert full >= 0.95
    assert background == 1.0


def test_sizes_and_distances_scale_with_the_frame():
    config = ShapesConfig(size=128, num_frames=8)
    examples = [make_example(30_000 + i, config, split="all") for i in range(25)]
    core, full, _ = _agreement(examples)
    assert core >= 0.98 and full >= 0.95


def test_non_square_frames_use_the_shorter_side_and_their_own_grid():
    frames = np.zeros((16, 48, 96, 3), dtype=np.uint8)  # black, 48 high, 96 wide: scale 0.75
    for t in range(16):
        draw_shape(frames[t], "square", (80.0, 10.0), 9.0, COLORS["red"])  # small, top right
        draw_shape(frames[t], "circle", (60.0 - 12.0 * t / 15, 36.0), 15.0, COLORS["blue"])  # slow travel: 12 px
    found = {o.color: o for o in analyze_clip(frames).objects}
    assert (found["red"].shape, found["red"].size, found["red"].motion, found["red"].region) == (
        "square", "small", "still", "top right"
    )
    assert (found["blue"].shape, found["blue"].size, found["blue"].motion, found["blue"].speed, found["blue"].region) == (
        "circle", "large", "left", "slowly", "bottom"
    )


def test_reads_a_known_scene_exactly():
    scene = Scene(
        background="white",
        objects=(
            ShapeObject("purple", "triangle", "large", "right", "quickly", (14.0, 12.0), "top left"),
            ShapeObject("orange", "diamond", "small", "still", None, (50.0, 50.0), "bottom right"),
            ShapeObject("green", "square", "small", "up", "slowly", (32.0, 50.0), "bottom"),
        ),
        size=64,
        num_frames=16,
        fps=8,
    )
    analysis = analyze_clip(render_scene(scene))
    assert analysis.background == "white"
    found = {o.color: o for o in analysis.objects}
    assert set(found) == {"purple", "orange", "green"}
    for truth in scene.objects:
        got = found[truth.color]
        assert (got.shape, got.size, got.motion, got.speed, got.region) == (
            truth.shape, truth.size, truth.motion, truth.speed, truth.region
        )
        assert len(got.track) == 16
        assert got.track[0] == pytest.approx(truth.start, abs=1.0)
    dx = found["purple"].track[-1][0] - found["purple"].track[0][0]
    assert dx == pytest.approx(32, abs=1.5)


@pytest.mark.parametrize("background", list(BACKGROUNDS))
def test_empty_clip_and_specks_give_no_objects(background):
    frames = np.empty((8, 64, 64, 3), dtype=np.uint8)
    frames[:] = BACKGROUNDS[background]
    assert analyze_clip(frames).objects == []
    frames[:, 10:12, 10:12] = (230, 40, 40)  # 2x2 red speck: noise, not a shape
    frames[3, 40:43, 30:60] = (40, 90, 235)  # a one-frame blue streak
    analysis = analyze_clip(frames)
    assert analysis.background == background
    assert analysis.objects == []


def test_unknown_background_is_none_and_no_object():
    frames = np.full((4, 32, 32, 3), (40, 190, 70), dtype=np.uint8)  # all green: a backdrop, not a shape
    analysis = analyze_clip(frames)
    assert analysis.background is None
    assert analysis.objects == []


@pytest.mark.parametrize(
    "frames",
    [np.zeros((64, 64, 3), np.uint8), np.zeros((4, 64, 64), np.uint8), np.zeros((4, 64, 64, 3), np.float32), np.zeros((0, 64, 64, 3), np.uint8)],
)
def test_rejects_malformed_input(frames):
    with pytest.raises(ValueError, match="uint8 frames"):
        analyze_clip(frames)


def _found(color, shape, motion, size="small"):
    return DetectedObject(color, shape, size, motion, None if motion == "still" else "slowly", "center", [])


def test_match_objects_is_one_to_one_and_field_selective():
    expected = [ObjectMention("red", "circle", motion="left"), ObjectMention("red", "circle", motion="left")]
    assert match_objects(expected, [_found("red", "circle", "left")]) == [True, False]
    assert match_objects(expected, [_found("red", "circle", "left")] * 2) == [True, True]
    wrong_motion = [_found("red", "circle", "right")]
    assert match_objects(expected[:1], wrong_motion) == [False]
    assert match_objects(expected[:1], wrong_motion, fields=("color", "shape")) == [True]
    assert match_objects([], wrong_motion) == []
    assert match_objects(expected, []) == [False, False]


def test_match_objects_skips_unstated_fields_and_finds_the_best_pairing():
    # The prompt did not say the motion of the first object: any motion is accepted for it.
    loose = ObjectMention("blue", "square", motion=None)
    strict = ObjectMention("blue", "square", motion="up")
    found = [_found("blue", "square", "up"), _found("blue", "square", "down")]
    # Taking the first found object for `loose` would starve `strict`; the pairing is re-done.
    assert match_objects([loose, strict], found) == [True, True]
    # Mentions match mentions too (caption vs prompt).
    assert match_objects([strict], [ObjectMention("blue", "square", "large", "up", "quickly", "top")]) == [True]
    assert match_objects([ObjectMention("blue", "square", size="large")], found, fields=("size",)) == [False]
