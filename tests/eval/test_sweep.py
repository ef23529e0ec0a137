"""uvigu sweep: the evaluation's clips and counting under several settings."""

import dataclasses
from types import SimpleNamespace

import pytest

from uvigu.cli import main
from uvigu.data.shapes import COLORS, HELD_OUT_PAIRS, SHAPES, scene_caption
from uvigu.eval.grammar import corrected_caption, parse_prompt, scene_mentions
from uvigu.eval.clips import EvalConfig, clip_config, eval_example
from uvigu.eval.sweep import parse_setting, render_table, run_sweep
from uvigu.judge import prompt_motions
from uvigu.testing import tiny_pipeline

from .test_report import DrawsOtherBackgrounds, KeepsClip, OraclePipeline, WrongCaptions, _key

CONFIG = EvalConfig(num_clips=4, num_heldout=3)


class Recording:
    """An oracle that accepts the sweep's settings and records them."""

    def __init__(self, base: OraclePipeline):
        self.base, self.calls = base, []
        self.default_num_frames, self.default_height, self.default_width = 16, 64, 64

    def generate(self, prompt, *, seed, **kwargs):
        self.calls.append(("generate", seed, kwargs))
        return self.base.generate(prompt, seed=seed)

    def caption(self, frames, *, seed, **kwargs):
        self.calls.append(("caption", seed, kwargs))
        return self.base.caption(frames, seed=seed)

    def edit(self, frames, prompt, *, seed, **kwargs):
        self.calls.append(("edit", seed, kwargs))
        return self.base.edit(frames, prompt, seed=seed)

    def corrected_caption(self, prompt, caption):  # as the shipped model corrects one
        return corrected_caption(prompt, caption)


def _objects(set_name: str) -> int:
    mentions = [m for i in range(CONFIG.count(set_name)) for m in scene_mentions(eval_example(CONFIG, set_name, i).scene)]
    return len(mentions) if set_name == "main" else sum((m.color, m.shape) in HELD_OUT_PAIRS for m in mentions)


def _named_backgrounds(set_name: str) -> int:
    return sum(parse_prompt(eval_example(CONFIG, set_name, i).prompt).background is not None
               for i in range(CONFIG.count(set_name)))


@pytest.mark.parametrize("task", ["generate", "caption"])
def test_the_oracle_is_right_on_every_object_under_every_setting(task):
    pipe = Recording(OraclePipeline(CONFIG))
    settings = [{}, {"num_inference_steps": 7}]
    rows = run_sweep(pipe, task, settings, CONFIG)
    assert [(r.settings, r.set_name) for r in rows] == [(s, n) for s in settings for n in ("main", "heldout")]
    for row in rows:
        assert row.total == _objects(row.set_name) > 0
        assert row.right == row.total and row.fields == {f: row.total for f in ("color", "shape", "motion")}
        # a generated clip shows the background its prompt names; captions are not asked about it
        named = _named_backgrounds(row.set_name) if task == "generate" else 0
        assert row.backgrounds_named == row.backgrounds_right == named
    # each setting runs every clip once, with the evaluation's seeds and the setting's arguments
    seeds = [CONFIG.pipeline_seed(s, i) for s in ("main", "heldout") for i in range(CONFIG.count(s))]
    assert pipe.calls == [(task, seed, s) for s in settings for seed in seeds]


class DrawsOtherShapes(OraclePipeline):
    """The oracle, except that generate draws every prompted object in a shape the prompt does not
    name (its captions still say what a clip shows)."""

    def generate(self, prompt, *, seed):
        scene = self.by_prompt[prompt]
        unused = next(s for s in SHAPES if s not in {o.shape for o in scene.objects})
        objects = tuple(dataclasses.replace(o, shape=unused) for o in scene.objects)
        return SimpleNamespace(frames=self._clip(dataclasses.replace(scene, objects=objects)), caption=None)


class DrawsAnExtraObject(OraclePipeline):
    """The oracle, except that generate also draws the scene's first object again, still, in a colour
    the scene does not have, where the first one starts."""

    def generate(self, prompt, *, seed):
        scene = self.by_prompt[prompt]
        first = scene.objects[0]
        colour = next(c for c in COLORS if c not in {o.color for o in scene.objects})
        copy = dataclasses.replace(first, color=colour, motion="still", speed=None)
        return SimpleNamespace(frames=self._clip(dataclasses.replace(scene, objects=scene.objects + (copy,))),
                               caption=None)


def test_objects_drawn_beyond_the_scene_are_counted():
    rows = run_sweep(Recording(DrawsAnExtraObject(CONFIG)), "generate", [{}], CONFIG)
    assert [r.unasked for r in rows] == [CONFIG.count(r.set_name) for r in rows]  # one per clip
    assert all(r.unasked == 0 for r in run_sweep(Recording(OraclePipeline(CONFIG)), "generate", [{}], CONFIG))


class DrawsNothing(OraclePipeline):
    """The oracle, except that generate draws the scene's background alone on every other clip."""

    def generate(self, prompt, *, seed):
        scene = self.by_prompt[prompt]
        if list(self.by_prompt).index(prompt) % 2:
            scene = dataclasses.replace(scene, objects=())
        return SimpleNamespace(frames=self._clip(scene), caption=None)


def test_clips_in_which_no_object_is_found_are_counted():
    rows = run_sweep(Recording(DrawsNothing(CONFIG)), "generate", [{}], CONFIG)
    # the oracle numbers the prompts main set first: main clips 1 and 3 and held-out clip 1 are drawn empty
    assert [(r.set_name, r.empty) for r in rows] == [("main", 2), ("heldout", 1)]
    assert [r.unasked for r in rows] == [0, 0]
    assert all(r.empty == 0 for r in run_sweep(Recording(OraclePipeline(CONFIG)), "generate", [{}], CONFIG))


def test_generated_clips_are_counted_by_the_background_their_prompt_names():
    rows = run_sweep(Recording(DrawsOtherBackgrounds(CONFIG)), "generate", [{}], CONFIG)
    named = {s: _named_backgrounds(s) for s in ("main", "heldout")}
    assert named["main"] > 0 and sum(named.values()) < CONFIG.num_clips + CONFIG.num_heldout  # some name none
    for row in rows:  # the objects are right; no clip shows the background asked for
        assert row.right == row.total > 0
        assert (row.backgrounds_named, row.backgrounds_right) == (named[row.set_name], 0)
    table = render_table(rows, "generate").splitlines()
    assert table[0].endswith("| prompts going one way | going different ways | background as the prompt names it "
                             "| objects not asked for | clips with no object | s per clip |")
    assert f"| 0.000 (0/{named['main']}) | 0 | 0 |" in table[2]  # the oracle draws the scene's objects, no more
    assert all(line.count("|") == table[0].count("|") for line in table)
    # a sweep of captions has no such column
    assert "background" not in render_table(run_sweep(Recording(OraclePipeline(CONFIG)), "caption", [{}], CONFIG),
                                            "caption")


def test_the_round_trip_captions_the_generated_clip_made_once_per_clip():
    settings = [{}, {"verify_weight": 0.0}, {"num_inference_steps": 3}]
    pipe = Recording(OraclePipeline(CONFIG))
    rows = run_sweep(pipe, "round_trip", settings, CONFIG)
    assert [(r.settings, r.set_name) for r in rows] == [(s, n) for s in settings for n in ("main", "heldout")]
    for row in rows:
        assert row.right == row.total == _objects(row.set_name) > 0
    seeds = [CONFIG.pipeline_seed(s, i) for s in ("main", "heldout") for i in range(CONFIG.count(s))]
    # each clip generated once at the defaults, then captioned under every setting with its seed
    assert [c for c in pipe.calls if c[0] == "generate"] == [("generate", seed, {}) for seed in seeds]
    assert [c for c in pipe.calls if c[0] == "caption"] == [("caption", seed, s) for s in settings for seed in seeds]

    # Generated clips with the wrong shapes: the round trip sees them, the reference captions do not.
    rows = run_sweep(Recording(DrawsOtherShapes(CONFIG)), "round_trip", [{}], CONFIG)
    for row in rows:
        assert row.right == 0 and row.fields["shape"] == 0
        assert row.fields["color"] == row.fields["motion"] == row.total > 0
    assert all(r.right == r.total for r in run_sweep(Recording(DrawsOtherShapes(CONFIG)), "caption", [{}], CONFIG))
    assert render_table(rows, "round_trip").splitlines()[2].startswith("| defaults | main | 0.000 (0/")


def test_fix_edits_the_generated_clip_with_its_caption_corrected_to_the_prompt():
    settings = [{"rounds": 0}, {}, {"strength": 0.8}, {"with_source": 0}]
    pipe = Recording(DrawsOtherShapes(CONFIG))  # every generated object in a shape not asked for
    rows = run_sweep(pipe, "fix", settings, CONFIG)
    assert [(r.settings, r.set_name) for r in rows] == [(s, n) for s in settings for n in ("main", "heldout")]
    for row in rows[:2]:  # rounds=0: the generated clip as it is
        assert row.total == _objects(row.set_name) > 0 and row.right == row.fields["shape"] == 0
    for row in rows[2:]:  # corrected: every shape as asked, colour and motion kept
        assert row.right == row.total == _objects(row.set_name)
    seeds = [CONFIG.pipeline_seed(s, i) for s in ("main", "heldout") for i in range(CONFIG.count(s))]
    assert [c for c in pipe.calls if c[0] == "generate"] == [("generate", seed, {}) for seed in seeds]  # once each
    edits = [c for c in pipe.calls if c[0] == "edit"]
    assert [seed for _, seed, _ in edits] == seeds * 3  # the clip's seed; none with rounds=0
    assert all(set(k) == {"source_prompt"} for _, _, k in edits[:len(seeds)])  # keeping the rest
    assert all(k["strength"] == 0.8 for _, _, k in edits[len(seeds):2 * len(seeds)])
    assert all(k == {} for _, _, k in edits[2 * len(seeds):])  # with_source=0: a plain edit, at its defaults
    assert parse_setting("fix", "with_source=0") == {"with_source": 0}
    with pytest.raises(ValueError, match="fix's with_source is 0 \\(a plain edit\\) or 1"):
        parse_setting("fix", "with_source=2")  # the source of a fix is always the clip's own caption
    # clips whose caption says all that was asked are not edited
    pipe = Recording(OraclePipeline(CONFIG))
    assert all(r.right == r.total for r in run_sweep(pipe, "fix", [{}], CONFIG))
    assert not [c for c in pipe.calls if c[0] == "edit"]


class EditsInOtherColours(DrawsOtherShapes):
    """Draws every object in a shape not asked for, and an edit gives each the shape asked for but a
    colour the scene does not have: the edit's caption agrees with the prompt no better."""

    def edit(self, frames, prompt, *, seed, **kwargs):
        scene = self.by_frames[_key(super().edit(frames, prompt, seed=seed, **kwargs).frames)]
        unused = [c for c in COLORS if c not in {o.color for o in scene.objects}]
        objects = tuple(dataclasses.replace(o, color=c) for o, c in zip(scene.objects, unused))
        return SimpleNamespace(frames=self._clip(dataclasses.replace(scene, objects=objects)), caption=None)


def test_fix_keeps_the_edit_only_when_its_caption_reads_better_with_keep_better():
    for base, kept in ((DrawsOtherShapes(CONFIG), True), (EditsInOtherColours(CONFIG), False)):
        pipe = Recording(base)
        plain, better = run_sweep(pipe, "fix", [{}, {"keep_better": 1}], CONFIG)[::2]  # main-set rows
        captions = [c for c in pipe.calls if c[0] == "caption"]
        assert len(captions) == 3 * CONFIG.count("main") + 3 * CONFIG.count("heldout")  # + one of each edit
        if kept:  # every shape now as asked: the edit reads better, and is kept
            assert better.right == plain.right == better.total
        else:  # shapes as asked, colours lost: no better read, so the generated clip stays
            assert plain.fields["color"] == 0 and plain.fields["shape"] == plain.total
            assert better.fields["color"] == better.total and better.fields["shape"] == 0
    assert parse_setting("fix", "keep_better=1") == {"keep_better": 1}
    assert parse_setting("generate", "object_guidance_every=2") == {"object_guidance_every": 2}
    with pytest.raises(ValueError, match="object_guidance_every must be a whole number of steps from 1"):
        parse_setting("edit", "object_guidance_every=0")
    with pytest.raises(ValueError, match="keep_better is 0 or 1"):
        parse_setting("fix", "keep_better=2")
    with pytest.raises(ValueError, match="rounds is 0 or 1"):
        parse_setting("fix", "rounds=2")


def test_edits_are_counted_per_clip_with_their_parts():
    settings = [{}, {"strength": 0.8, "guidance_scale": 2.0}]
    pipe = Recording(OraclePipeline(CONFIG))
    rows = run_sweep(pipe, "edit", settings, CONFIG)
    assert [(r.settings, r.set_name) for r in rows] == [(s, n) for s in settings for n in ("main", "heldout")]
    for row in rows:
        assert 0 < row.total <= CONFIG.count(row.set_name)  # clips whose scene has a valid edit
        assert row.right == row.total and row.fields == {"changed": row.total, "kept": row.total, "stale": 0}
    assert [kwargs for task, _, kwargs in pipe.calls if task == "edit"][-1] == settings[-1]

    # An edit that returns the clip unchanged: nothing shows, the rest is kept, the old version stays.
    rows = run_sweep(Recording(KeepsClip(CONFIG)), "edit", [{}], CONFIG)
    for row in rows:
        assert row.right == 0 and row.fields == {"changed": 0, "kept": row.total, "stale": row.total}
    table = render_table(rows, "edit")
    assert table.splitlines()[0].startswith("| edit settings | set | edits right")
    assert table.splitlines()[2].startswith("| defaults | main | 0.000 (0/")


def test_with_source_gives_each_edit_the_caption_before_its_change():
    pipe = Recording(OraclePipeline(CONFIG))
    rows = run_sweep(pipe, "edit", [{"with_source": 1}, {"with_source": 0}], CONFIG)
    assert all(r.right == r.total > 0 for r in rows)
    edits = [kwargs for task, _, kwargs in pipe.calls if task == "edit"]
    references = {scene_caption(eval_example(CONFIG, s, i).scene)
                  for s in ("main", "heldout") for i in range(CONFIG.count(s))}
    given, plain = edits[: len(edits) // 2], edits[len(edits) // 2:]
    assert given and all(k["source_prompt"] in references and set(k) == {"source_prompt"} for k in given)
    assert all(k == {} for k in plain)  # with_source=0: the plain edit, as the defaults


def test_with_source_2_gives_each_edit_the_models_own_caption():
    pipe = Recording(WrongCaptions(CONFIG))  # its captions name every object in a colour it is not
    rows = run_sweep(pipe, "edit", [{"with_source": 2}], CONFIG)
    assert sum(r.total for r in rows) > 0
    captions = [task for task, _, _ in pipe.calls if task == "caption"]
    edits = [kwargs for task, _, kwargs in pipe.calls if task == "edit"]
    assert len(captions) == len(edits) > 0  # one caption of the clip per edit, made first
    references = {scene_caption(eval_example(CONFIG, s, i).scene)
                  for s in ("main", "heldout") for i in range(CONFIG.count(s))}
    wrong = {WrongCaptions.caption_of(None, eval_example(CONFIG, s, i).scene)
             for s in ("main", "heldout") for i in range(CONFIG.count(s))}
    assert all(k["source_prompt"] in wrong and k["source_prompt"] not in references for k in edits)


def test_wrong_colours_are_counted_per_field():
    rows = run_sweep(Recording(WrongCaptions(CONFIG)), "caption", [{}], CONFIG)
    for row in rows:
        assert row.right == 0 and row.fields["color"] == 0
        assert row.fields["shape"] == row.fields["motion"] == row.total
    table = render_table(rows, "caption")
    assert table.splitlines()[2].startswith("| defaults | main | 0.000 (0/")


def test_settings_parse_and_bad_ones_are_named():
    assert parse_setting("generate", "guidance_scale=6, num_inference_steps=40") == {
        "guidance_scale": 6.0, "num_inference_steps": 40}
    assert parse_setting("generate", "best_of=4,judge_at=0.5,judge_steps=6") == {
        "best_of": 4, "judge_at": 0.5, "judge_steps": 6}
    assert parse_setting("edit", "best_of=2,judge_at=0.5") == {"best_of": 2, "judge_at": 0.5}
    assert parse_setting("generate", "read_guidance=2") == {"read_guidance": 2.0}
    assert parse_setting("generate", "read_guidance=4,read_guidance_from=0.7") == {"read_guidance": 4.0,
                                                                                   "read_guidance_from": 0.7}
    assert parse_setting("generate", "motion_noise=0.5") == {"motion_noise": 0.5}
    assert parse_setting("caption", "defaults") == parse_setting("caption", "") == {}
    assert parse_setting("caption", "temperature=0.5,num_inference_steps=24") == {
        "temperature": 0.5, "num_inference_steps": 24}
    assert parse_setting("caption", "reread=0") == {"reread": 0}
    assert parse_setting("caption", "verify_weight=300") == {"verify_weight": 300.0}
    assert parse_setting("caption", "reread_threshold=0.1,reread=2") == {"reread_threshold": 0.1, "reread": 2}
    assert parse_setting("caption", "reread_period=8") == {"reread_period": 8}
    assert parse_setting("caption", "verify_max_texts=8") == {"verify_max_texts": 8}
    assert parse_setting("caption", "verify_draws=1") == {"verify_draws": 1}
    assert parse_setting("round_trip", "verify_weight=0,reread=2") == {"verify_weight": 0.0, "reread": 2}
    with pytest.raises(ValueError, match="not a setting of round_trip"):
        parse_setting("round_trip", "guidance_scale=2")
    with pytest.raises(ValueError, match="not a setting of caption"):
        parse_setting("caption", "guidance_scale=2")
    with pytest.raises(ValueError, match="needs a number"):
        parse_setting("generate", "num_inference_steps=many")
    assert parse_setting("edit", "strength=0.7,guidance_scale=4") == {"strength": 0.7, "guidance_scale": 4.0}
    assert parse_setting("edit", "with_source=1,strength=0.8") == {"with_source": 1, "strength": 0.8}
    assert parse_setting("edit", "with_source=2") == {"with_source": 2}
    with pytest.raises(ValueError, match="with_source is 0, 1 or 2"):
        parse_setting("edit", "with_source=3")
    assert parse_setting("generate", "shift=6") == {"shift": 6.0}
    assert parse_setting("edit", "shift=1.5,with_source=1") == {"shift": 1.5, "with_source": 1}
    with pytest.raises(ValueError, match="shift must be above 0, got '0'"):
        parse_setting("generate", "shift=0")
    with pytest.raises(ValueError, match="not a setting of caption"):
        parse_setting("caption", "shift=6")
    assert parse_setting("generate", "expert=0") == parse_setting("fix", "expert=0") == {"expert": 0}
    with pytest.raises(ValueError, match="expert is 0"):
        parse_setting("edit", "expert=2")
    with pytest.raises(ValueError, match="not a setting of caption"):
        parse_setting("caption", "expert=0")


@pytest.mark.parametrize("task", ["generate", "edit"])
def test_a_shift_row_samples_under_that_shift_and_puts_the_models_back(task, monkeypatch):
    from uvigu.flows.video import inference_sigmas

    pipe = tiny_pipeline()
    own = pipe.scheduler
    seen = []
    call = getattr(pipe, task)

    def recording(*args, **kwargs):
        assert "shift" not in kwargs  # a setting of the sampler, not an argument of the task
        seen.append((pipe.scheduler.config.shift, inference_sigmas(pipe.scheduler, 4)[1].item()))
        return call(*args, **kwargs)

    monkeypatch.setattr(pipe, task, recording)
    config = EvalConfig(num_clips=2, num_heldout=0)
    rows = run_sweep(pipe, task, [{}, {"shift": 9.0}], config)
    assert [r.settings for r in rows] == [{}, {"shift": 9.0}]
    assert pipe.scheduler is own
    (default_shift, default_sigma), (shift, sigma) = seen[0], seen[-1]
    assert default_shift == own.config.shift and shift == 9.0
    assert sigma > default_sigma  # a larger shift keeps the second step's noise higher


def test_a_motion_noise_speed_row_moves_the_noise_that_far_and_puts_the_models_setting_back(monkeypatch):
    import uvigu.object_paths

    pipe = tiny_pipeline()
    pipe.register_to_config(motion_noise=0.5)
    steps, original = [], uvigu.object_paths.moving_noise

    def recording(noise, step, share, generator=None):
        steps.append(step)
        return original(noise, step, share, generator)

    monkeypatch.setattr(uvigu.object_paths, "moving_noise", recording)
    config = EvalConfig(num_clips=4, num_heldout=0)
    prompts = [eval_example(config, "main", i, clip_config(pipe)).prompt for i in range(4)]
    one_way = [set(prompt_motions(pipe.config.take_judge, p)) for p in prompts]
    moving = sum(len(m) == 1 and m != {"still"} for m in one_way)
    assert moving  # the clips include prompts whose objects all go one way
    run_sweep(pipe, "generate", [{}, {"motion_noise_speed": 3.0}], config)
    assert [max(map(abs, step)) for step in steps] == [1.0] * moving + [3.0] * moving
    assert pipe.config.motion_noise_speed == 1.0
    assert parse_setting("generate", "motion_noise_speed=1.5") == {"motion_noise_speed": 1.5}
    with pytest.raises(ValueError, match="motion_noise_speed must be more than 0"):
        parse_setting("generate", "motion_noise_speed=0")


def test_a_motion_noise_paths_row_drafts_objects_going_different_ways_and_puts_the_models_settings_back(
        monkeypatch):
    import uvigu.object_paths

    pipe = tiny_pipeline()
    pipe.register_to_config(motion_noise=0.5)
    shares, original = [], uvigu.object_paths.path_noise

    def recording(noise, paths, share, generator=None):
        shares.append((share, pipe.config.motion_noise_draft))
        return original(noise, paths, share, generator)

    monkeypatch.setattr(uvigu.object_paths, "path_noise", recording)
    config = EvalConfig(num_clips=6, num_heldout=0)
    prompts = [eval_example(config, "main", i, clip_config(pipe)).prompt for i in range(6)]
    different = sum(len(set(prompt_motions(pipe.config.take_judge, p))) > 1 for p in prompts)
    assert different  # the clips include prompts whose objects go different ways
    rows = run_sweep(pipe, "generate", [{}, {"motion_noise_paths": 0.7, "motion_noise_draft": 2}], config)
    assert shares == [(0.7, 2)] * different  # the default row (paths 0) drafts nothing
    assert (pipe.config.motion_noise_paths, pipe.config.motion_noise_draft) == (0.0, 6)
    assert parse_setting("generate", "motion_noise_paths=1,motion_noise_draft=4") == {
        "motion_noise_paths": 1.0, "motion_noise_draft": 4}
    with pytest.raises(ValueError, match="motion_noise_paths must be a share of the noise from 0 to 1"):
        parse_setting("generate", "motion_noise_paths=2")
    with pytest.raises(ValueError, match="motion_noise_draft must be a whole number"):
        parse_setting("generate", "motion_noise_draft=0")
    # the table splits the objects by whether their prompt's objects go one way
    one_way = [len(set(prompt_motions("shapes", p))) <= 1 for p in prompts]
    objects = [len(parse_prompt(p).objects) for p in prompts]
    assert rows[0].one_way_total == sum(n for n, one in zip(objects, one_way) if one)
    assert rows[0].total - rows[0].one_way_total == sum(n for n, one in zip(objects, one_way) if not one) > 0
    line = render_table(rows, "generate").splitlines()[2]
    assert f"/{rows[0].one_way_total}) | " in line and f"/{rows[0].total - rows[0].one_way_total}) | " in line


def test_an_object_guidance_row_guides_each_path_as_it_says_and_puts_the_models_settings_back(monkeypatch):
    from uvigu.object_guidance import OBJECT_GUIDANCE_TO, ObjectGuidance

    pipe = tiny_pipeline()
    pipe.register_to_config(motion_noise=0.5)
    seen, original = set(), ObjectGuidance.__call__

    def recording(self, net, x, sv, st, v_cond):
        seen.add((self.weight, self.to, pipe.config.motion_noise_paths))
        return original(self, net, x, sv, st, v_cond)

    monkeypatch.setattr(ObjectGuidance, "__call__", recording)
    config = EvalConfig(num_clips=6, num_heldout=0)
    run_sweep(pipe, "generate", [{}, {"object_guidance": 0.6, "object_guidance_to": 0.7}], config)
    assert seen == {(0.6, 0.7, 0.0)}  # the default row (object_guidance 0) guides nothing
    assert (pipe.config.object_guidance, pipe.config.object_guidance_to) == (0.0, OBJECT_GUIDANCE_TO)
    assert parse_setting("generate", "object_guidance=1,object_guidance_to=0.25") == {
        "object_guidance": 1.0, "object_guidance_to": 0.25}
    with pytest.raises(ValueError, match="object_guidance must be .* from 0 to 1"):
        parse_setting("generate", "object_guidance=2")
    with pytest.raises(ValueError, match="object_guidance_to must be a noise level"):
        parse_setting("generate", "object_guidance_to=1")


def _with_counted_expert(tmp_path):
    """A pipeline loaded from a folder with a high-noise expert, and the list its expert's calls go to."""
    from uvigu import UniViGUPipeline
    from uvigu.models.expert import write_expert

    base, top = tiny_pipeline(seed=0), tiny_pipeline(seed=1)
    base.save_pretrained(tmp_path / "model")
    write_expert(base, top, tmp_path / "model" / "high_noise_expert", boundary=0.99, rank=10_000)
    pipe = UniViGUPipeline.from_pretrained(tmp_path / "model")
    calls = []
    top_forward = pipe.high_noise_expert[0].transformer.forward

    def counting(*args, **kwargs):
        calls.append(len(calls))
        return top_forward(*args, **kwargs)

    pipe.high_noise_expert[0].transformer.forward = counting
    return pipe, calls


def test_an_expert_0_row_samples_without_the_models_high_noise_expert_and_leaves_it_attached(tmp_path):
    pipe, calls = _with_counted_expert(tmp_path)
    config = EvalConfig(num_clips=2, num_heldout=0)
    rows = [{"num_inference_steps": 3}, {"num_inference_steps": 3, "expert": 0}]
    with_it, without_it = run_sweep(pipe, "generate", rows, config)
    assert with_it.settings == {"num_inference_steps": 3} and without_it.settings["expert"] == 0
    assert len(calls) == 2  # one call at σ 1 per clip, in the first row only
    plain = run_sweep(tiny_pipeline(seed=0), "generate", [{"num_inference_steps": 3}], config)[0]
    assert (without_it.right, without_it.fields) == (plain.right, plain.fields)
    # still attached, as it was loaded: saving the model keeps it
    assert pipe.high_noise_expert[1] == 0.99
    pipe.save_pretrained(tmp_path / "saved")
    assert (tmp_path / "saved" / "high_noise_expert" / "difference.safetensors").is_file()


def test_fix_makes_each_rows_clip_with_or_without_the_expert_as_that_row_says(tmp_path):
    # fix edits the clip generated from the prompt; a row without the expert must not reuse the clip
    # another row made with it (nor the other way round), whichever row comes first
    pipe, calls = _with_counted_expert(tmp_path)
    config = EvalConfig(num_clips=2, num_heldout=0)
    run_sweep(pipe, "fix", [{"expert": 0, "rounds": 0}, {"rounds": 0}], config)
    assert len(calls) == 2  # the second row's two clips, made with the expert at σ 1
    calls.clear()
    run_sweep(pipe, "fix", [{"rounds": 0}, {"expert": 0, "rounds": 0}], config)
    assert len(calls) == 2  # the first row's; the second makes its own clips without it


def test_the_command_prints_a_table(tmp_path, capsys):
    tiny_pipeline().save_pretrained(tmp_path)
    assert main(["sweep", "caption", "--model", str(tmp_path), "--num", "1",
                 "--setting", "num_inference_steps=2", "--setting", "num_inference_steps=3"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 4 and lines[2].startswith("| num_inference_steps=2 | main |")
    assert main(["sweep", "edit", "--model", str(tmp_path), "--num", "2", "--setting", "strength=0.5"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3 and lines[2].startswith("| strength=0.5 | main |") and "/2)" in lines[2]
    assert main(["sweep", "generate", "--model", str(tmp_path), "--setting", "strength=1"]) == 2
    assert "not a setting of generate" in capsys.readouterr().err
    assert main(["sweep", "caption", "--model", str(tmp_path), "--num", "1", "--num-heldout", "1",
                 "--first-clip", "10000", "--setting", "verify_weight=100"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 4 and lines[2].startswith("| verify_weight=100 | main |") and "heldout" in lines[3]
    assert main(["sweep", "round_trip", "--model", str(tmp_path), "--num", "2", "--setting", "defaults",
                 "--setting", "reread=0"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("| round_trip settings |") and len(lines) == 4
    assert lines[2].startswith("| defaults | main |") and lines[3].startswith("| reread=0 | main |")
    assert main(["sweep", "caption", "--model", str(tmp_path), "--num", "1", "--first-clip", "-1"]) == 2
    assert "first clip" in capsys.readouterr().err


def test_a_later_first_clip_sweeps_the_clips_after_the_evaluations():
    later = CONFIG.starting_at(10)
    for set_name in ("main", "heldout"):
        assert later.count(set_name) == CONFIG.count(set_name)
        assert later.shapes_seed(set_name, 0) == CONFIG.shapes_seed(set_name, 10)
        assert later.pipeline_seed(set_name, 2) == CONFIG.pipeline_seed(set_name, 12)
        assert eval_example(later, set_name, 1).caption == eval_example(CONFIG, set_name, 11).caption
    pipe = Recording(OraclePipeline(later))
    run_sweep(pipe, "caption", [{}], later)
    assert [seed for _, seed, _ in pipe.calls] == [CONFIG.pipeline_seed(s, 10 + i) for s in ("main", "heldout")
                                                   for i in range(CONFIG.count(s))]
    assert CONFIG.starting_at(0) == CONFIG
    with pytest.raises(ValueError, match="first clip"):
        CONFIG.starting_at(2**31)


def test_the_command_hands_the_top_of_the_noise_to_a_high_noise_model(tmp_path, capsys, monkeypatch):
    from uvigu import UniViGUPipeline

    tiny_pipeline(seed=0).save_pretrained(tmp_path / "base")
    tiny_pipeline(seed=1).save_pretrained(tmp_path / "top")
    used, original = [], UniViGUPipeline.use_high_noise_expert

    def recording(self, expert, boundary=0.99):
        used.append((str(expert.name_or_path), boundary))
        return original(self, expert, boundary)

    monkeypatch.setattr(UniViGUPipeline, "use_high_noise_expert", recording)
    common = ["sweep", "generate", "--model", str(tmp_path / "base"), "--num", "1", "--setting", "num_inference_steps=2"]
    assert main([*common, "--high-noise-model", str(tmp_path / "top")]) == 0
    assert main([*common, "--high-noise-model", str(tmp_path / "top"), "--high-noise-boundary", "0.5"]) == 0
    assert used == [(str(tmp_path / "top"), 0.99), (str(tmp_path / "top"), 0.5)]
    assert "| num_inference_steps=2 | main |" in capsys.readouterr().out
    assert main([*common, "--high-noise-boundary", "0.5"]) == 2
    assert "give that too" in capsys.readouterr().err


def test_a_renoise_row_makes_stochastic_steps_and_puts_the_models_settings_back(monkeypatch):
    import uvigu.pipeline

    pipe = tiny_pipeline()
    seen, original = [], uvigu.pipeline.sample

    def recording(model_fn, *, renoise=None, **kwargs):
        seen.append(None if renoise is None else (renoise.share, renoise.start))
        return original(model_fn, renoise=renoise, **kwargs)

    monkeypatch.setattr(uvigu.pipeline, "sample", recording)
    config = EvalConfig(num_clips=2, num_heldout=0)
    run_sweep(pipe, "generate", [{}, parse_setting("generate", "renoise=0.5,renoise_from=0.9")], config)
    assert seen == [None, None, (0.5, 0.9), (0.5, 0.9)]
    assert (pipe.config.renoise, pipe.config.renoise_from) == (0.0, 0.7)
    with pytest.raises(ValueError, match="renoise must be a share of the noise from 0 to 1"):
        parse_setting("generate", "renoise=2")
    with pytest.raises(ValueError, match="renoise_from must be a noise level from 0 to 1"):
        parse_setting("generate", "renoise_from=1.5")
