"""uvigu probe: the denoiser's error with the clip's caption against one attribute changed."""

from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from uvigu.cli import main
from uvigu.data.shapes import (
    HELD_OUT_PAIRS,
    MOTION_DIRECTIONS,
    SHAPES,
    ShapesConfig,
    object_center,
    region_of,
    render_scene,
    reversed_prompt,
    reversed_scene,
    travel_px,
)
from uvigu.eval.analyzer import analyze_clip, match_objects
from uvigu.eval.grammar import parse_caption, scene_mentions
from uvigu.eval.layout_probe import (
    MEANS_SIGMA,
    MIRRORED_REGIONS,
    colour_centroids,
    expected_path,
    mirrored_caption,
    render_direction_probe,
    render_means_probe,
    render_placement_probe,
    run_direction_probe,
    run_means_probe,
    run_placement_probe,
)
from uvigu.eval.probe import (
    WORD_CONDITIONS,
    patch_floors,
    render_level_probe,
    render_patch_floors,
    render_probe,
    render_step_probe,
    render_word_probe,
    run_level_probe,
    run_probe,
    run_step_probe,
    run_word_probe,
)
from uvigu.eval.clips import EvalConfig, clip_config, eval_example
from uvigu.testing import tiny_pipeline

CONFIG = EvalConfig(num_clips=4, num_heldout=0)
SIGMAS = (0.5, 0.9)


@pytest.fixture(scope="module")
def pipe():
    return tiny_pipeline()  # pixel space, so the fake denoiser below works on pixels


def reads(attribute):
    """A fake denoiser that returns x_t as its estimate, or ±10 off it in a random sign per value
    wherever the text's ``attribute`` differs from the first text's (the clip's own caption) — it
    "uses" only that. Decoded, a wrong estimate is ±1 per value, (1 + x²) from the truth on average,
    against σ²(1 + x²) for the right one."""

    def denoise(x_t, texts, sigma):
        own = parse_caption(texts[0]).objects
        signs = torch.randn(x_t.shape[1:], generator=torch.Generator().manual_seed(0)).sign()
        out = []
        for x, text in zip(x_t, texts):
            said = parse_caption(text).objects
            differs = any(getattr(a, attribute) != getattr(b, attribute) for a, b in zip(own, said))
            out.append(x + 10.0 * signs if differs else x)
        return torch.stack(out)

    return denoise


def test_only_the_attribute_the_denoiser_reads_makes_a_difference(pipe):
    rows = run_probe(pipe, CONFIG, SIGMAS, denoise=reads("color"))
    assert [(r.sigma, r.attribute) for r in rows] == [(s, a) for s in SIGMAS for a in ("color", "shape", "motion")]
    for row in rows:
        assert 0 < row.clips <= CONFIG.num_clips
        if row.attribute == "color":
            assert row.ratio > 1 and row.right_better == row.clips
        else:
            assert row.error_wrong == pytest.approx(row.error_right) and row.right_better == 0


@pytest.mark.parametrize("preset", ["tiny", "tiny-latent"])  # errors on decoded pixels, whatever the codec
def test_the_real_denoiser_runs_and_the_table_has_a_line_per_row(preset):
    pipe = tiny_pipeline(preset=preset)
    rows = run_probe(pipe, CONFIG, SIGMAS)
    assert all(r.error_right > 0 and r.error_wrong > 0 for r in rows)
    lines = render_probe(rows).splitlines()
    assert len(lines) == 2 + len(rows) and lines[2].startswith("| 0.5 | color |")
    with pytest.raises(ValueError, match="noise levels"):
        run_probe(pipe, CONFIG, (0.0,))


def test_the_command_prints_the_table(tmp_path, capsys):
    tiny_pipeline().save_pretrained(tmp_path)
    assert main(["probe", "--model", str(tmp_path), "--num", "2", "--sigma", "0.8"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 5 and lines[2].startswith("| 0.8 | color | 2 |")


WORD_CONFIG = EvalConfig(num_clips=3, num_heldout=3)


def test_the_word_probe_separates_reading_the_clip_from_reading_the_colour(pipe, monkeypatch):
    """A fake captioner that names the true shape when the colour word is noise and a wrong one
    when the colour word is written: the table must show none right, then all right."""
    from uvigu.data.shapes import SHAPES

    vocab = pipe.tokenizer.get_vocab()
    shape_ids = {vocab[s] for s in SHAPES}
    colour_ids = {vocab[c] for c in vocab if c in ("red", "orange", "yellow", "green", "blue", "purple")}
    sigmas = []

    def predict(frames, ids, sigma):
        sigmas.extend(sigma.tolist())
        out = ids.clone()
        truth = truth_ids[0]
        for row in range(ids.shape[0]):
            for j in range(1, ids.shape[1]):
                if int(truth[j]) in shape_ids and int(truth[j - 1]) in colour_ids:
                    colour_written = int(ids[row, j - 1]) == int(truth[j - 1])
                    wrong = next(i for i in sorted(shape_ids) if i != int(truth[j]))
                    out[row, j] = wrong if colour_written else truth[j]
        return out

    import uvigu.eval.probe as probe

    truth_ids = None  # the reference caption's ids, as the probe encodes them
    original = probe.encode_text

    def remember(tokenizer, texts, length):
        nonlocal truth_ids
        truth_ids, mask = original(tokenizer, texts, length)
        return truth_ids, mask

    monkeypatch.setattr(probe, "encode_text", remember)
    rows = run_word_probe(pipe, WORD_CONFIG, predict=predict)
    by = {(r.set_name, r.condition): r for r in rows}
    assert set(by) == {(s, c) for s in ("main", "heldout") for c in WORD_CONDITIONS}
    for s in ("main", "heldout"):
        written, noised = by[(s, "colour written")], by[(s, "colour noised")]
        assert written.total == noised.total > 0
        assert written.right == 0 and noised.right == noised.total
    assert min(sigmas) > 0 and max(sigmas) < 0.2  # one or two noised words of the stream
    table = render_word_probe(rows).splitlines()
    assert len(table) == 4 and table[3].startswith("| heldout |") and "0.000 (0/" in table[3]


def test_the_word_probe_runs_on_the_real_model_and_the_command(tmp_path, capsys):
    pipe = tiny_pipeline()
    rows = run_word_probe(pipe, WORD_CONFIG)
    assert all(0 <= r.right <= r.total for r in rows) and rows[0].total > 0
    pipe.save_pretrained(tmp_path)
    assert main(["probe", "--words", "--model", str(tmp_path), "--num", "2", "--num-heldout", "1"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("| set | shape words |") and lines[2].startswith("| main |")
    assert main(["probe", "--words", "--sigma", "0.5", "--model", str(tmp_path)]) == 2


# --- the level probe ----------------------------------------------------------------------------

LEVEL_CONFIG = EvalConfig(num_clips=3, num_heldout=0)


def _match(example, frames):
    truth, found = scene_mentions(example.scene), analyze_clip(frames).objects
    counts = {f: sum(match_objects(truth, found, (f,))) for f in ("color", "shape", "motion")}
    counts["all"] = sum(match_objects(truth, found))
    return counts


def test_an_exact_denoiser_reads_every_object_and_strength_1_is_generation(pipe):
    one = EvalConfig(num_clips=1, num_heldout=0)
    example = eval_example(one, "main", 0, clip_config(pipe))
    clean = pipe.codec.encode(torch.from_numpy(example.frames)[None]).float()
    levels = []

    def oracle(x_t, texts, sigma):  # knows the clip: its estimate is the clean clip itself
        levels.append(sigma)
        assert list(texts) == [example.prompt] and x_t.shape == clean.shape
        return clean

    rows = run_level_probe(pipe, one, (0.05, 1.0), denoise=oracle)
    assert levels == [r.sigma for r in rows] and 0 < rows[0].sigma < 1.0 == rows[1].sigma
    for row in rows:
        assert row.objects == len(example.scene.objects) > 0
        assert row.estimate_right["all"] == row.objects and row.estimate_error == 0.0
    # strength 1 samples from pure noise with the clip's seed: exactly pipe.generate's clip
    generated = pipe.generate(example.prompt, seed=one.pipeline_seed("main", 0)).frames
    assert rows[1].sampled_right == _match(example, generated)
    assert rows[0].sampled_right != {} and rows[0].sampled_right["color"] <= rows[0].objects


def test_the_level_probe_on_the_real_denoiser_and_its_table(pipe):
    rows = run_level_probe(pipe, LEVEL_CONFIG, (0.3, 1.0))
    assert [r.strength for r in rows] == [0.3, 1.0] and rows[0].sigma < rows[1].sigma == 1.0
    for r in rows:
        assert r.objects > 0 and r.estimate_error > 0
        assert all(0 <= r.estimate_right[k] <= r.objects and 0 <= r.sampled_right[k] <= r.objects
                   for k in ("color", "shape", "motion", "all"))
    lines = render_level_probe(rows).splitlines()
    assert len(lines) == 4 and lines[2].startswith("| 0.3 |") and lines[3].startswith("| 1 | 1.000 |")
    with pytest.raises(ValueError, match="strengths"):
        run_level_probe(pipe, LEVEL_CONFIG, (0.0,))


def _clean_patches(pipe, config):
    x = torch.cat([pipe.codec.encode(torch.from_numpy(eval_example(config, "main", i, clip_config(pipe)).frames)[None])
                   for i in range(config.num_clips)]).float()
    c, (pt, ph, pw) = x.shape[1], pipe.transformer.config.patch_size
    return x, x.reshape(x.shape[0], c, -1, pt, x.shape[3] // ph, ph, x.shape[4] // pw, pw)


def test_patch_floors_measure_what_the_embedding_and_the_head_cannot_carry():
    pipe = tiny_pipeline()
    model, config = pipe.transformer, EvalConfig(num_clips=2, num_heldout=0)
    x, patches = _clean_patches(pipe, config)
    floors = patch_floors(pipe, config)
    assert floors.patch_values == model.patch_embedding.weight[0].numel() and floors.width == model.config.num_attention_heads * model.config.attention_head_dim
    assert 0 < floors.embedding < float((x ** 2).mean()) and floors.head is not None and floors.head > 0
    with torch.no_grad():
        # an embedding that reads one value of each patch (channel 0 of its first voxel) misses the rest
        model.patch_embedding.weight.zero_()
        model.patch_embedding.weight[0, 0, 0, 0, 0] = 2.0
        # a head that can draw only channel 1 of each patch's first voxel, on top of a bias of 0.5
        model.proj_out.weight.zero_()
        model.proj_out.weight[1, 3] = 1.0
        model.proj_out.bias.fill_(0.5)
        narrow = patch_floors(pipe, config)
    seen = patches[:, 0, :, 0, :, 0, :, 0]
    assert narrow.embedding == pytest.approx(float((x ** 2).sum() - (seen ** 2).sum()) / x.numel(), rel=1e-4)
    drawn = patches[:, 1, :, 0, :, 0, :, 0] - 0.5
    assert narrow.head == pytest.approx(float(((x - 0.5) ** 2).sum() - (drawn ** 2).sum()) / x.numel(), rel=1e-4)
    text = render_patch_floors(narrow)
    assert f"{floors.patch_values} values per patch" in text and "unseen by the patch embedding" in text


def test_a_velocity_model_has_no_head_floor():
    pipe = tiny_pipeline()
    pipe.transformer.register_to_config(prediction_type="velocity")
    floors = patch_floors(pipe, EvalConfig(num_clips=1, num_heldout=0))
    assert floors.head is None and "predicts a velocity" in render_patch_floors(floors)


def test_the_level_probe_command(tmp_path, capsys):
    tiny_pipeline().save_pretrained(tmp_path)
    assert main(["probe", "--levels", "--model", str(tmp_path), "--num", "1", "--strength", "0.5"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[0].startswith("| strength | starts at σ |") and out[2].startswith("| 0.5 |")
    assert out[-1].startswith("Linear floors on the clean clips")
    assert main(["probe", "--levels", "--sigma", "0.5", "--model", str(tmp_path)]) == 2
    assert main(["probe", "--strength", "0.5", "--model", str(tmp_path)]) == 2


STEP_CONFIG = EvalConfig(num_clips=3, num_heldout=2)


class _TrajectoryPipe:
    """Generates the evaluation clip of each prompt in ``steps`` steps, its clean estimates showing
    every object in a shape none of the clip's objects has at the steps ``wrong_at`` (and the
    finished clip too when ``wrong_at_end``), and right elsewhere."""

    # the Shapes world's own clip size, where the analyzer reads every shape (the tiny model's is too small)
    default_height = default_width = ShapesConfig().size
    default_num_frames = ShapesConfig().num_frames

    def __init__(self, wrong_at, steps=5, wrong_at_end=False):
        self.scenes = {e.prompt: e.scene for s in ("main", "heldout")
                       for e in (eval_example(STEP_CONFIG, s, i, clip_config(self)) for i in range(STEP_CONFIG.count(s)))}
        self.wrong_at, self.steps, self.wrong_at_end, self.seeds = set(wrong_at), steps, wrong_at_end, []

    def generate(self, prompt, seed, return_trajectory):
        assert return_trajectory
        self.seeds.append(seed)
        scene = self.scenes[prompt]
        other = next(shape for shape in SHAPES if shape not in {o.shape for o in scene.objects})
        wrong = render_scene(replace(scene, objects=tuple(replace(o, shape=other) for o in scene.objects)))
        right = render_scene(scene)
        trajectory = [SimpleNamespace(sigma=1.0 - i / self.steps, frames=wrong if i in self.wrong_at else right)
                      for i in range(self.steps)]
        return SimpleNamespace(frames=wrong if self.wrong_at_end else right, trajectory=trajectory)


def test_the_step_probe_finds_the_step_that_decides_the_shapes():
    fake = _TrajectoryPipe(wrong_at=(0, 1))  # shapes come right at step 2 and stay
    rows = run_step_probe(fake, STEP_CONFIG)
    assert fake.seeds == [STEP_CONFIG.pipeline_seed(s, i) for s in ("main", "heldout") for i in range(STEP_CONFIG.count(s))]
    assert [(r.set_name, r.step) for r in rows] == [(s, i) for s in ("main", "heldout") for i in range(6)]
    assert [r.sigma for r in rows[:6]] == pytest.approx([1.0, 0.8, 0.6, 0.4, 0.2, 0.0])
    examples = {s: [eval_example(STEP_CONFIG, s, i, clip_config(fake)) for i in range(STEP_CONFIG.count(s))]
                for s in ("main", "heldout")}
    # every object of the main set counts; on the held-out set, those of a held-out colour–shape pair
    assert rows[0].objects == sum(len(e.scene.objects) for e in examples["main"])
    assert rows[6].objects == sum((o.color, o.shape) in HELD_OUT_PAIRS for e in examples["heldout"]
                                  for o in e.scene.objects) > 0
    for r in rows:
        n, early = r.objects, r.step < 2
        assert r.right["shape"] == (0 if early else n) and r.right["all"] == (0 if early else n)
        assert r.right["color"] == r.right["motion"] == n  # only the shapes were ever wrong
        assert r.gained == {"all": n if early else 0, "shape": n if early else 0, "color": 0, "motion": 0}
        assert r.lost == dict.fromkeys(("all", "color", "shape", "motion"), 0)
    # shapes right in the middle of sampling and wrong at the end: lost, not gained
    late = run_step_probe(_TrajectoryPipe(wrong_at=(0, 4), wrong_at_end=True), STEP_CONFIG)
    assert [r.lost["shape"] for r in late[:6]] == [0, late[0].objects, late[0].objects, late[0].objects, 0, 0]
    assert all(r.gained["shape"] == 0 for r in late)
    lines = render_step_probe(rows).splitlines()
    assert lines[0].startswith("| set | step | σ | objects right (colour, shape, motion) |") and len(lines) == 2 + 12
    assert lines[2].startswith(f"| main | 0 | 1.000 | 0.000 (0/{rows[0].objects}) | 1.000 | 0.000 | 1.000 | 0 / 0 / 0 | ")
    assert lines[7].startswith("| main | end | 0.000 | 1.000 ")


def test_the_step_probe_on_the_real_pipeline_ends_with_the_evaluations_clip(pipe):
    one = EvalConfig(num_clips=1, num_heldout=1)
    rows = run_step_probe(pipe, one)
    steps = pipe.config.num_inference_steps
    assert [(r.set_name, r.step) for r in rows] == [(s, i) for s in ("main", "heldout") for i in range(steps + 1)]
    assert rows[0].sigma == 1.0 and rows[steps].sigma == 0.0
    assert all(rows[i].sigma > rows[i + 1].sigma for i in range(steps))
    # the last row is the clip the evaluation generates for this prompt and seed, compared with itself
    example = eval_example(one, "main", 0, clip_config(pipe))
    generated = pipe.generate(example.prompt, seed=one.pipeline_seed("main", 0)).frames
    assert rows[steps].right == _match(example, generated)
    assert rows[steps].lost == rows[steps].gained == dict.fromkeys(("all", "color", "shape", "motion"), 0)


def test_the_step_probe_command(tmp_path, capsys):
    tiny_pipeline().save_pretrained(tmp_path)
    assert main(["probe", "--steps", "--model", str(tmp_path), "--num", "1", "--num-heldout", "1"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[0].startswith("| set | step | σ |") and out[2].startswith("| main | 0 | 1.000 |")
    assert out[-1].startswith("| heldout | end | 0.000 |")
    assert main(["probe", "--steps", "--levels", "--model", str(tmp_path)]) == 2
    assert main(["probe", "--steps", "--sigma", "0.5", "--model", str(tmp_path)]) == 2


class _FakePipe:
    """A generator the probes can call: the real pipeline's clip size, and a record of its calls."""

    def __init__(self, pipe):
        self.calls = []
        self.default_height, self.default_width = pipe.default_height, pipe.default_width
        self.default_num_frames = pipe.default_num_frames

    @staticmethod
    def examples(pipe, config):
        shapes = clip_config(pipe)
        return [eval_example(config, "main", index, shapes) for index in range(config.num_clips)]


class _ScenePipe(_FakePipe):
    """Generates the evaluation clip whose prompt it is given (reversed in time for the turned-round
    prompt when ``follows``; the clip as it is for both when not: the seed decides)."""

    def __init__(self, pipe, config, follows):
        super().__init__(pipe)
        self.scenes = {}
        for example in self.examples(pipe, config):
            self.scenes[example.prompt] = example.scene
            back = reversed_prompt(example.prompt)
            if back is not None:
                self.scenes[back] = reversed_scene(example.scene) if follows else example.scene

    def generate(self, prompt, seed):
        self.calls.append((prompt, seed))
        return SimpleNamespace(frames=render_scene(self.scenes[prompt]))


DIRECTION_CONFIG = EvalConfig(num_clips=12, num_heldout=0)


def test_the_direction_probe_tells_following_the_words_from_the_seed_deciding(pipe):
    follows = _ScenePipe(pipe, DIRECTION_CONFIG, follows=True)
    row = run_direction_probe(follows, DIRECTION_CONFIG)
    examples = _FakePipe.examples(pipe, DIRECTION_CONFIG)
    moving = sum(m.motion != "still" for e in examples for m in scene_mentions(e.scene))
    assert row.clips == sum(reversed_prompt(e.prompt) is not None for e in examples) > 0
    assert row.objects == moving > 0
    assert row.as_prompted == row.as_reversed == row.both == moving and row.same_way == 0
    # the colour centroids: clips that follow the words go the world's way, there and back
    assert row.centroid_objects == moving
    assert row.contrast == pytest.approx(row.world_contrast, rel=0.1) and row.world_contrast > 1
    # every prompt with motion is generated twice, as written and turned round, on the clip's seed
    expected = [(p, DIRECTION_CONFIG.pipeline_seed("main", i))
                for i, e in enumerate(examples) if reversed_prompt(e.prompt) is not None
                for p in (e.prompt, reversed_prompt(e.prompt))]
    assert follows.calls == expected

    ignores = run_direction_probe(_ScenePipe(pipe, DIRECTION_CONFIG, follows=False), DIRECTION_CONFIG)
    assert ignores.as_prompted == ignores.same_way == moving
    assert ignores.as_reversed == ignores.both == 0
    assert ignores.centroid_objects == moving and ignores.contrast == pytest.approx(0, abs=1e-9)  # the same clip twice
    assert ignores.world_contrast == row.world_contrast
    table = render_direction_probe(ignores).splitlines()
    assert table[0].startswith("| clips | moving objects |")
    assert table[2] == f"| {row.clips} | {moving} | 1.000 ({moving}/{moving}) | 0.000 (0/{moving}) | 0.000 (0/{moving}) | 1.000 ({moving}/{moving}) |"
    assert table[3] == "" and table[4].startswith("| moving objects whose colour shows in both clips |")
    assert ignores.contrast_error == pytest.approx(0, abs=1e-9) and row.contrast_error > 0
    assert table[6] == f"| {moving} | +0.00 ± 0.00 | {row.world_contrast:.2f} |"


def test_the_direction_probe_command(tmp_path, capsys):
    tiny_pipeline().save_pretrained(tmp_path)
    assert main(["probe", "--directions", "--model", str(tmp_path), "--num", "2"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[0].startswith("| clips | moving objects |") and len(out) == 7
    assert out[4].startswith("| moving objects whose colour shows in both clips |")
    assert main(["probe", "--directions", "--levels", "--model", str(tmp_path)]) == 2
    assert main(["probe", "--directions", "--words", "--model", str(tmp_path)]) == 2


def test_a_mirrored_caption_moves_every_start_region_and_nothing_else(pipe):
    assert MIRRORED_REGIONS["top left"] == "bottom right" and MIRRORED_REGIONS["left"] == "right"
    assert MIRRORED_REGIONS["top"] == "bottom" and MIRRORED_REGIONS["center"] == "center"
    assert all(MIRRORED_REGIONS[MIRRORED_REGIONS[r]] == r for r in MIRRORED_REGIONS)
    for example in _FakePipe.examples(pipe, DIRECTION_CONFIG):
        scene = example.scene
        parsed = parse_caption(mirrored_caption(scene))
        expected = [replace(m, region=MIRRORED_REGIONS[m.region]) for m in scene_mentions(scene)]
        assert list(parsed.objects) == expected


class _PlacingPipe(_FakePipe):
    """Generates the evaluation clip of the caption it is given; for the mirrored caption the clip
    turned half round (every start in the mirror cell) when ``follows``, the same clip when not."""

    def __init__(self, pipe, config, follows):
        super().__init__(pipe)
        self.clips = {}
        for example in self.examples(pipe, config):
            frames = render_scene(example.scene)
            self.clips[example.caption] = frames
            self.clips[mirrored_caption(example.scene)] = frames[:, ::-1, ::-1].copy() if follows else frames

    def generate(self, caption, seed):
        self.calls.append((caption, seed))
        return SimpleNamespace(frames=self.clips[caption])


def test_the_placement_probe_tells_following_the_words_from_the_seed_deciding(pipe):
    follows = _PlacingPipe(pipe, DIRECTION_CONFIG, follows=True)
    row = run_placement_probe(follows, DIRECTION_CONFIG)
    examples = _FakePipe.examples(pipe, DIRECTION_CONFIG)
    placed = sum(o.region != "center" for e in examples for o in e.scene.objects)
    assert row.clips == DIRECTION_CONFIG.num_clips and row.objects == placed > 0
    assert row.as_captioned == row.as_mirrored == row.both == placed and row.same_cell == 0
    # every caption is generated twice, as written and mirrored, on the clip's seed
    assert follows.calls == [(c, DIRECTION_CONFIG.pipeline_seed("main", i)) for i, e in enumerate(examples)
                             for c in (e.caption, mirrored_caption(e.scene))]

    ignores = run_placement_probe(_PlacingPipe(pipe, DIRECTION_CONFIG, follows=False), DIRECTION_CONFIG)
    assert ignores.as_captioned == ignores.same_cell == placed
    assert ignores.as_mirrored == ignores.both == 0
    table = render_placement_probe(ignores).splitlines()
    assert table[0].startswith("| clips | objects not starting in the centre |")
    assert table[2] == (f"| {row.clips} | {placed} | 1.000 ({placed}/{placed}) | 0.000 (0/{placed}) | "
                        f"0.000 (0/{placed}) | 1.000 ({placed}/{placed}) |")


def test_the_placement_probe_command(tmp_path, capsys):
    tiny_pipeline().save_pretrained(tmp_path)
    assert main(["probe", "--placement", "--model", str(tmp_path), "--num", "1"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[0].startswith("| clips | objects not starting in the centre |") and len(out) == 3
    for other in ("--directions", "--words", "--levels"):
        assert main(["probe", "--placement", other, "--model", str(tmp_path)]) == 2
    assert main(["probe", "--placement", "--sigma", "0.5", "--model", str(tmp_path)]) == 2


def _path_scene(scene, shapes, shift=None):
    """``scene`` with each object starting at the world's expected start for its caption (or its
    true start moved to the frame's centre and kept still, with ``shift="centre"``)."""
    objects = []
    for k, obj in enumerate(scene.objects):
        if shift == "centre":
            objects.append(replace(obj, start=((shapes.size - 1) / 2, (shapes.size - 1) / 2), motion="still", speed=None))
        else:
            objects.append(replace(obj, start=tuple(expected_path(obj, shapes, seed=k)[0])))
    return replace(scene, objects=tuple(objects))


class _MeanPipe(_FakePipe):
    """A clean estimate from pure noise: the clip of the caption's objects on the world's expected
    paths (a denoiser that has learned where a caption puts things), or each object still at the
    centre of the frame (one that cannot tell places apart)."""

    def __init__(self, pipe, config, knows):
        super().__init__(pipe)
        self.codec = pipe.codec
        shapes = clip_config(pipe)
        self.scenes = {e.caption: _path_scene(e.scene, shapes, None if knows else "centre")
                       for e in self.examples(pipe, config)}

    def clean_estimate(self, noise, captions, sigma):
        self.calls.append((tuple(noise.shape), len(set(captions)), sigma))
        frames = torch.from_numpy(render_scene(self.scenes[captions[0]]))[None]
        return self.codec.encode(frames).expand(len(captions), *noise.shape[1:])


def test_the_means_probe_tells_a_denoiser_that_places_objects_from_one_that_cannot(pipe):
    examples = _FakePipe.examples(pipe, DIRECTION_CONFIG)
    objects = [o for e in examples for o in e.scene.objects]
    off_centre = sum(o.region != "center" for o in objects)
    moving = [o for o in objects if o.motion != "still"]

    knows = _MeanPipe(pipe, DIRECTION_CONFIG, knows=True)
    row = run_means_probe(knows, DIRECTION_CONFIG, draws=2)
    assert knows.calls and all(call[1:] == (1, MEANS_SIGMA) and call[0][0] == 2 for call in knows.calls)
    assert row.clips == DIRECTION_CONFIG.num_clips and row.objects == len(objects)
    assert row.off_centre == off_centre > 0 and row.moving == len(moving) > 0
    assert row.start_error < 1.0 < row.start_error_centre  # the drawn shape's centroid is its box's centre
    assert row.start_cell >= off_centre - 1  # (a start near a cell's edge may land a pixel across)
    assert row.travel_world == pytest.approx(
        np.mean([travel_px(o.speed, clip_config(pipe).size) for o in moving]))
    assert abs(row.travel_along - row.travel_world) < 1.0 and row.travel_across < 1.0

    lost = run_means_probe(_MeanPipe(pipe, DIRECTION_CONFIG, knows=False), DIRECTION_CONFIG, sigma=1.0)
    assert lost.start_error == pytest.approx(lost.start_error_centre, abs=1.0)
    assert lost.start_cell == 0 and abs(lost.travel_along) < 0.5
    table = render_means_probe(lost).splitlines()
    assert table[0].startswith("| clips | objects | first frame:") and len(table) == 3
    assert table[2].startswith(f"| {lost.clips} | {lost.objects} | ")


def test_the_expected_path_starts_in_the_captioned_cell_and_moves_as_captioned(pipe):
    shapes = clip_config(pipe)
    for example in _FakePipe.examples(pipe, DIRECTION_CONFIG):
        for obj in example.scene.objects:
            path = expected_path(obj, shapes)
            assert path.shape == (shapes.num_frames, 2)
            assert region_of(*path[0], shapes.size) == obj.region
            dx, dy = MOTION_DIRECTIONS[obj.motion]
            travel = travel_px(obj.speed, shapes.size)
            np.testing.assert_allclose(path[-1] - path[0], (dx * travel, dy * travel), atol=1e-9)


def test_colour_centroids_find_each_object_of_a_rendered_clip(pipe):
    shapes = clip_config(pipe)
    for example in _FakePipe.examples(pipe, DIRECTION_CONFIG):
        for obj in example.scene.objects:
            found = colour_centroids(example.frames, obj.color, example.scene.background)
            truth = [object_center(obj, t, shapes.num_frames, shapes.size) for t in range(shapes.num_frames)]
            np.testing.assert_allclose(found, truth, atol=1.0)
    blank = np.zeros((2, 8, 8, 3), np.uint8)
    assert np.isnan(colour_centroids(blank, "red", "black")).all()


def test_the_means_probe_command(tmp_path, capsys):
    tiny_pipeline().save_pretrained(tmp_path)
    assert main(["probe", "--means", "--model", str(tmp_path), "--num", "2"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[0].startswith("| clips | objects | first frame:") and len(out) == 3
    for other in ("--directions", "--placement", "--words", "--levels"):
        assert main(["probe", "--means", other, "--model", str(tmp_path)]) == 2
    assert main(["probe", "--means", "--sigma", "1", "--model", str(tmp_path), "--num", "1"]) == 0
    assert main(["probe", "--means", "--sigma", "1", "--sigma", "0.9", "--model", str(tmp_path)]) == 2
    assert main(["probe", "--means", "--sigma", "1.5", "--model", str(tmp_path), "--num", "1"]) == 2
