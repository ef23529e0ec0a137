import numpy as np
import pytest
import torch

from uvigu.data.shapes import (
    BACKGROUNDS,
    COLORS,
    HELD_OUT_PAIRS,
    REGIONS,
    SHAPES,
    ShapesConfig,
    ShapesDataset,
    box_px,
    make_example,
    object_center,
    region_of,
    render_scene,
    reversed_prompt,
    reversed_scene,
    sample_scene,
    scene_caption,
    scene_prompt,
    shapes_vocabulary,
    tokenize,
)
from uvigu.data.shapes import Scene, ShapeObject


def _scenes(split, count=300, config=ShapesConfig()):
    rng = np.random.default_rng(123)
    return [sample_scene(rng, config, split) for _ in range(count)]


def test_caption_matches_design_example():
    scene = Scene(
        background="black",
        objects=(
            ShapeObject("red", "circle", "large", "right", "quickly", (14.0, 31.5), "left"),
            ShapeObject("blue", "square", "small", "still", None, (31.5, 31.5), "center"),
        ),
        size=64,
        num_frames=16,
        fps=8,
    )
    assert scene_caption(scene) == (
        "a large red circle moves quickly to the right from the left, while a small blue "
        "square stays still near the center on a black background."
    )
    assert scene_prompt(scene) == (
        "a large red circle moving right and a small blue square staying still on a black background"
    )


@pytest.mark.parametrize("split", ["train", "heldout", "all"])
def test_scenes_follow_the_grammar_constraints(split):
    config = ShapesConfig()
    for scene in _scenes(split):
        assert scene.background in BACKGROUNDS
        assert 1 <= len(scene.objects) <= 2
        colors = [o.color for o in scene.objects]
        assert len(set(colors)) == len(colors)
        for obj in scene.objects:
            assert obj.color in COLORS and obj.shape in SHAPES
            assert (obj.speed is None) == (obj.motion == "still")
            assert obj.region == region_of(*obj.start, scene.size)
            half = box_px(obj.size, scene.size) / 2
            for t in range(scene.num_frames):
                x, y = object_center(obj, t, scene.num_frames, scene.size)
                assert -0.5 <= x - half and x + half <= scene.size - 0.5
                assert -0.5 <= y - half and y + half <= scene.size - 0.5
        if len(scene.objects) == 2:
            a, b = scene.objects
            reach = (box_px(a.size, scene.size) + box_px(b.size, scene.size)) / 2
            gap = max(abs(a.start[0] - b.start[0]), abs(a.start[1] - b.start[1]))
            assert gap >= reach + config.gap_px


def test_split_membership_of_held_out_pairs():
    for scene in _scenes("train", 600):
        assert not {(o.color, o.shape) for o in scene.objects} & HELD_OUT_PAIRS
    for scene in _scenes("heldout", 300):
        assert {(o.color, o.shape) for o in scene.objects} & HELD_OUT_PAIRS
    seen = {(o.color, o.shape) for s in _scenes("all", 600) for o in s.objects}
    assert HELD_OUT_PAIRS <= seen and len(seen) == len(COLORS) * len(SHAPES)


def test_sampling_covers_every_value():
    scenes = _scenes("train", 600)
    objects = [o for s in scenes for o in s.objects]
    assert {o.motion for o in objects} == {"left", "right", "up", "down", "still"}
    assert {o.speed for o in objects} == {None, "slowly", "quickly"}
    assert {o.size for o in objects} == {"small", "large"}
    assert {o.region for o in objects} == set(REGIONS)
    assert {s.background for s in scenes} == set(BACKGROUNDS)
    assert {len(s.objects) for s in scenes} == {1, 2}


def test_make_example_is_deterministic_per_seed():
    a, b, c = make_example(7), make_example(7), make_example(8)
    assert np.array_equal(a.frames, b.frames) and a.prompt == b.prompt and a.caption == b.caption
    assert a.scene == b.scene
    assert a.scene != c.scene


def test_render_draws_the_scene_with_moving_objects():
    ex = make_example(3)
    scene = ex.scene
    frames = ex.frames
    assert frames.dtype == np.uint8 and frames.shape == (16, 64, 64, 3)
    bg = np.array(BACKGROUNDS[scene.background])
    assert (frames[:, 0, 0] == bg).all()
    for obj in scene.objects:
        for t in (0, 15):
            x, y = object_center(obj, t, scene.num_frames, scene.size)
            # The box centre of circles, squares and diamonds is inside; a triangle's centre too.
            assert (frames[t, round(y), round(x)] == np.array(COLORS[obj.color])).all()
    # Anti-aliasing leaves in-between colours along the edges.
    palette = {tuple(bg)} | {COLORS[o.color] for o in scene.objects}
    assert any(tuple(p) not in palette for p in frames[0].reshape(-1, 3))


def test_shapes_have_their_nominal_size_and_form():
    for shape, fill in [("square", 1.0), ("circle", np.pi / 4), ("triangle", 0.5), ("diamond", 0.5)]:
        for size in ("small", "large"):
            obj = ShapeObject("red", shape, size, "still", None, (31.5, 31.5), "center")
            frame = render_scene(Scene("black", (obj,), 64, 2, 8))[0]
            coverage = frame[..., 0] / 230.0
            box = box_px(size, 64)
            # Anti-aliased edges add a fraction of a pixel around the outline.
            assert abs(coverage.sum() - fill * box**2) / (fill * box**2) < 0.2
            rows = np.flatnonzero((coverage > 0.5).any(axis=1))
            cols = np.flatnonzero((coverage > 0.5).any(axis=0))
            assert abs(len(rows) - box) <= 1 and abs(len(cols) - box) <= 1
            if shape == "triangle":  # apex up: narrow top row, wide bottom row
                widths = (coverage > 0.5).sum(axis=1)[rows]
                assert widths[0] < widths[-1] / 3


def test_still_and_moving_objects_travel_the_stated_distance():
    for motion, speed, (dx, dy) in [("right", "quickly", (32, 0)), ("up", "slowly", (0, -16)), ("still", None, (0, 0))]:
        obj = ShapeObject("red", "square", "small", motion, speed, (20.0, 40.0), "left")
        x0, y0 = object_center(obj, 0, 16, 64)
        x1, y1 = object_center(obj, 15, 16, 64)
        assert (x1 - x0, y1 - y0) == pytest.approx((dx, dy))
        xm, ym = object_center(obj, 5, 16, 64)
        assert (xm - x0, ym - y0) == pytest.approx((dx / 3, dy / 3))


def test_config_scales_sizes_and_validates():
    config = ShapesConfig(size=128, num_frames=8)
    ex = make_example(0, config)
    assert ex.frames.shape == (8, 128, 128, 3)
    assert box_px("small", 128) == 24 and box_px("large", 128) == 40
    with pytest.raises(ValueError):
        ShapesConfig(size=8)
    with pytest.raises(ValueError):
        sample_scene(np.random.default_rng(0), ShapesConfig(), "test")


def test_prompt_wording_varies_within_the_grammar():
    prompts = {make_example(i).prompt for i in range(200)}
    assert any(p.endswith("background") for p in prompts)
    assert any(not p.endswith("background") for p in prompts)
    assert any(" small " in f" {p} " or " large " in f" {p} " for p in prompts)
    scene = make_example(0).scene
    assert scene_prompt(scene) == scene_prompt(scene)


def test_vocabulary_covers_every_prompt_and_caption_token():
    vocab = set(shapes_vocabulary())
    assert len(vocab) == len(shapes_vocabulary())
    assert {",", ".", "while", "purple", "triangle", "top"} <= vocab
    used = set()
    for split in ("train", "heldout"):
        for i in range(300):
            ex = make_example(i, split=split)
            used |= set(tokenize(ex.prompt)) | set(tokenize(ex.caption))
    assert used == vocab  # nothing missing, nothing unused


def test_dataset_items_are_deterministic_and_distinct():
    data = ShapesDataset(10, seed=5)
    assert len(data) == 10
    item = data[3]
    assert set(item) == {"frames", "prompt", "caption"}
    again = ShapesDataset(10, seed=5)[3]
    assert np.array_equal(item["frames"], again["frames"]) and item["caption"] == again["caption"]
    assert data[3]["caption"] != data[4]["caption"] or data[3]["prompt"] != data[4]["prompt"]
    other = ShapesDataset(10, seed=6)
    assert all(data[i]["caption"] != other[i]["caption"] or not np.array_equal(data[i]["frames"], other[i]["frames"]) for i in range(10))
    with pytest.raises(IndexError):
        data[10]


def test_dataset_is_reproducible_across_dataloader_workers():
    data = ShapesDataset(6, seed=1, config=ShapesConfig(size=32, num_frames=4))
    collate = lambda batch: batch  # noqa: E731 - keep numpy arrays and strings as they are
    serial = [x for b in torch.utils.data.DataLoader(data, batch_size=2, collate_fn=collate) for x in b]
    parallel = [
        x for b in torch.utils.data.DataLoader(data, batch_size=2, num_workers=2, collate_fn=collate) for x in b
    ]
    assert [x["prompt"] for x in serial] == [x["prompt"] for x in parallel]
    assert all(np.array_equal(a["frames"], b["frames"]) for a, b in zip(serial, parallel))


def test_reversed_prompt_turns_every_motion_round_and_skips_still_scenes():
    assert (reversed_prompt("a red circle moving right and a large blue square moving up on a gray background")
            == "a red circle moving left and a large blue square moving down on a gray background")
    assert reversed_prompt("a small green triangle moving down and a purple square moving left") == (
        "a small green triangle moving up and a purple square moving right")
    assert reversed_prompt("a red circle staying still and a blue square staying still") is None
    assert reversed_prompt("a red circle moving right and a blue square staying still") == (
        "a red circle moving left and a blue square staying still")


def test_a_clip_played_backwards_is_the_clip_of_its_reversed_scene_and_prompt():
    """What turning a prompt round rests on: frames reversed in time are exactly the render of
    the scene whose objects start where they ended and move the other way, and that scene's prompt
    (same wording draws) is reversed_prompt of the original's."""
    config = ShapesConfig()
    checked = 0
    for seed in range(40):
        rng = np.random.default_rng(seed)
        scene = sample_scene(rng, config)
        wording = int(rng.integers(2**32))
        prompt = scene_prompt(scene, np.random.default_rng(wording))
        back = reversed_scene(scene)
        np.testing.assert_array_equal(render_scene(back), render_scene(scene)[::-1])
        turned = {"left": "right", "right": "left", "up": "down", "down": "up", "still": "still"}
        assert [o.motion for o in back.objects] == [turned[o.motion] for o in scene.objects]
        np.testing.assert_array_equal(render_scene(reversed_scene(back)), render_scene(scene))
        if all(obj.motion == "still" for obj in scene.objects):
            assert reversed_prompt(prompt) is None
        else:
            assert reversed_prompt(prompt) == scene_prompt(back, np.random.default_rng(wording))
            checked += 1
    assert checked >= 20
