"""The evaluation report: scoring with oracle / wrong fake pipelines, the edits, the markdown, a tiny run."""

import dataclasses
import hashlib
import json
import shutil
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from uvigu.data.shapes import (
    BACKGROUNDS, HELD_OUT_PAIRS, SHAPES, ShapesConfig, ShapesDataset, render_scene, scene_caption,
)
from uvigu.eval.edits import ATTRIBUTES, edit_scene
from uvigu.eval.grammar import ObjectMention, parse_caption, parse_prompt, scene_mentions
from uvigu.eval.clips import EvalConfig, eval_example
from uvigu.eval.report import (
    TARGETS,
    RunInfo,
    edit_records,
    evaluate,
    pipeline_settings,
    read_results,
    render_markdown,
    shapes_as_generated,
    summarize,
    write_report,
)
from uvigu.eval.tasks import align_fields
from uvigu.models.codec import PixelCodec
from uvigu.testing import tiny_pipeline


def _key(frames: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(frames).tobytes()).hexdigest()


class OraclePipeline:
    """Returns the ground truth: the scene a prompt describes, the caption of a clip, the edited scene.

    It knows the evaluation clips (built with the same public `eval_example`) and renders edits by
    reading the edited caption back onto the clip's scene (objects keep their start positions).
    """

    default_num_frames, default_height, default_width = 16, 64, 64
    codec = PixelCodec()  # identity: the analyzer sees the clip itself
    device = torch.device("cpu")

    def __init__(self, config: EvalConfig):
        self.by_prompt, self.by_frames = {}, {}
        for set_name, count in (("main", config.num_clips), ("heldout", config.num_heldout)):
            for i in range(count):
                example = eval_example(config, set_name, i)
                self.by_prompt[example.prompt] = example.scene
                self.by_frames[_key(example.frames)] = example.scene

    def _clip(self, scene) -> np.ndarray:
        frames = render_scene(scene)
        self.by_frames[_key(frames)] = scene
        return frames

    def caption_of(self, scene) -> str:
        return scene_caption(scene)

    def generate(self, prompt, *, seed):
        return SimpleNamespace(frames=self._clip(self.by_prompt[prompt]), caption=None)

    def generate_with_caption(self, prompt, *, seed):
        scene = self.by_prompt[prompt]
        return SimpleNamespace(frames=self._clip(scene), caption=self.caption_of(scene))

    def caption(self, frames, *, seed):
        return SimpleNamespace(text=self.caption_of(self.by_frames[_key(frames)]))

    def edit(self, frames, prompt, *, strength=0.6, seed, source_prompt=None):
        scene = self.by_frames[_key(frames)]
        if source_prompt is not None:  # the caption before the change is the clip's own
            assert source_prompt == scene_caption(scene)
        said = parse_caption(prompt).objects
        assert len(said) == len(scene.objects)
        objects = tuple(
            dataclasses.replace(o, color=m.color, shape=m.shape, motion=m.motion, speed=m.speed)
            for o, m in zip(scene.objects, said)
        )
        return SimpleNamespace(frames=self._clip(dataclasses.replace(scene, objects=objects)))


class WrongCaptions(OraclePipeline):
    """The oracle, except that every caption names each object in a colour the scene lacks."""

    def caption_of(self, scene) -> str:
        used = {o.color for o in scene.objects}
        spare = [c for c in ("red", "green", "blue", "yellow", "purple", "orange") if c not in used]
        objects = tuple(dataclasses.replace(o, color=spare[i]) for i, o in enumerate(scene.objects))
        return scene_caption(dataclasses.replace(scene, objects=objects))


class KeepsClip(OraclePipeline):
    """The oracle, except that an edit returns the clip it was given unchanged."""

    def edit(self, frames, prompt, *, strength=0.6, seed, source_prompt=None):
        return SimpleNamespace(frames=frames)


class PlainEditKeepsClip(OraclePipeline):
    """The oracle, except that an edit given only the edited caption returns the clip unchanged."""

    def edit(self, frames, prompt, *, strength=0.6, seed, source_prompt=None):
        if source_prompt is None:
            return SimpleNamespace(frames=frames)
        return super().edit(frames, prompt, strength=strength, seed=seed, source_prompt=source_prompt)


CONFIG = EvalConfig(num_clips=6, num_heldout=3, num_examples=1)


@pytest.fixture(scope="module")
def oracle_records():
    return evaluate(OraclePipeline(CONFIG), CONFIG)


def test_oracle_scores_one(oracle_records):
    summary = summarize(oracle_records)
    for key in ("caption", "generation", "round_trip", "edit", "caption_color", "caption_shape", "caption_motion",
                "joint_generation", "joint_caption", "analyzer_reference", "analyzer_codec", "edit_changed",
                "edit_kept", "edit_plain", "edit_plain_changed", "edit_plain_kept"):
        row = summary.row(key)
        assert row.main.value == 1.0, key
        assert row.heldout.value == 1.0, key
    assert summary.row("edit_stale").main.value == summary.row("edit_plain_stale").main.value == 0.0
    assert summary.row("bleu4").main.value == pytest.approx(1.0)
    assert all(summary.target_status(t) for t in TARGETS)
    # Every edit attribute was exercised on the main set (6 clips cycle colour, shape, motion).
    assert {r["edit"]["attribute"] for r in oracle_records if r["set"] == "main"} == set(ATTRIBUTES)


def test_counts_and_heldout_column(oracle_records):
    summary = summarize(oracle_records)
    main_objects = sum(len(r["objects"]) for r in oracle_records if r["set"] == "main")
    heldout_pairs = sum(o["heldout_pair"] for r in oracle_records if r["set"] == "heldout" for o in r["objects"])
    assert summary.row("caption").main.count == main_objects
    assert summary.row("caption").heldout.count == heldout_pairs >= CONFIG.num_heldout
    assert summary.row("edit").main.count == CONFIG.num_clips
    assert summary.num_clips == {"main": CONFIG.num_clips, "heldout": CONFIG.num_heldout}


def test_wrong_captions_score_zero():
    config = EvalConfig(num_clips=3, num_heldout=2)
    summary = summarize(evaluate(WrongCaptions(config), config))
    for key in ("caption", "round_trip", "caption_color", "joint_caption"):
        assert summary.row(key).main.value == 0.0, key
        assert summary.row(key).heldout.value == 0.0, key
    # Shape and motion are still right: only the colour was wrong.
    assert summary.row("caption_shape").main.value == 1.0
    assert summary.row("caption_motion").main.value == 1.0
    assert summary.row("generation").main.value == 1.0
    assert summary.target_status(TARGETS[0]) is False


class DrawsOtherBackgrounds(OraclePipeline):
    """The oracle, except that generate draws every clip on a background other than the scene's."""

    def generate(self, prompt, *, seed):
        scene = self.by_prompt[prompt]
        other = next(b for b in BACKGROUNDS if b != scene.background)
        return SimpleNamespace(frames=self._clip(dataclasses.replace(scene, background=other)), caption=None)


def test_generated_clips_are_scored_on_the_background_their_prompt_names(oracle_records):
    named = [r for r in oracle_records if r["set"] == "main" and parse_prompt(r["prompt"]).background]
    assert 0 < len(named) < CONFIG.num_clips  # some prompts name a background, some do not
    row = summarize(oracle_records).row("generation_background")
    assert (row.main.value, row.main.count) == (1.0, len(named))
    assert all(r["generation_background"] == r["background"] for r in oracle_records)

    config = EvalConfig(num_clips=CONFIG.num_clips, num_heldout=0)
    records = evaluate(DrawsOtherBackgrounds(config), config)
    summary = summarize(records)
    assert (summary.row("generation_background").main.value, summary.row("generation").main.value) == (0.0, 1.0)
    assert "| generation: the background the prompt names (clips whose prompt names one) | 0.000 (0/" in \
        render_markdown(records, RunInfo("uvigu eval", "m", "2026-01-01", 1.0, config=config))
    # results written before the field: not measured, rather than wrong
    old = [{k: v for k, v in r.items() if k != "generation_background"} for r in records]
    assert summarize(old).row("generation_background").main.value is None


def test_clips_with_objects_not_asked_for_are_counted_beside_generation_accuracy(oracle_records):
    summary = summarize(oracle_records)
    row = summary.row("generation_unasked")
    assert (row.main.value, row.main.count, row.heldout.count) == (0.0, CONFIG.num_clips, CONFIG.num_heldout)
    # one clip in which the analyzer also found a copy of its first object: generation accuracy does not
    # change, this row does
    records = [dict(r) for r in oracle_records]
    records[1]["generation_found"] = [*records[1]["generation_found"], records[1]["generation_found"][0]]
    summary = summarize(records)
    assert summary.row("generation").main.value == 1.0
    assert summary.row("generation_unasked").main.hits == 1
    assert "| generation: clips with an object not asked for (lower is better) | 0.167 (1/6) |" in \
        render_markdown(records, RunInfo("uvigu eval", "m", "2026-01-01", 1.0, config=CONFIG))
    old = [{k: v for k, v in r.items() if k != "generation_found"} for r in records]  # not measured
    assert summarize(old).row("generation_unasked").main.value is None


def test_generation_is_also_split_by_whether_the_prompts_objects_go_one_way(oracle_records):
    template = next(r for r in oracle_records if r["set"] == "main")

    def record(prompt: str, right: list[bool]) -> dict:  # a main-set record with this prompt and these objects
        return dict(template, prompt=prompt, objects=[dict(template["objects"][0], generation=ok) for ok in right])

    records = [
        record("a red circle moving left", [True]),
        record("a red circle moving up and a blue square moving up", [True, False]),
        record("a red circle staying still and a blue square staying still", [True, True]),
        record("a red circle moving left and a blue square moving right", [False, False]),
        record("a red circle moving left and a blue square staying still", [True, False]),
    ]
    summary = summarize(records)
    one, different = summary.row("generation_one_way").main, summary.row("generation_different_ways").main
    assert (one.hits, one.count) == (4, 5) and (different.hits, different.count) == (1, 4)
    assert summary.row("generation").main.hits == one.hits + different.hits
    assert summary.row("generation_one_way").group == "joint"


def test_generation_is_scored_field_by_field_and_shape_by_shape(oracle_records):
    summary = summarize(oracle_records)
    main = [o for r in oracle_records if r["set"] == "main" for o in r["objects"]]
    for f in ("color", "shape", "motion"):
        assert summary.row(f"generation_{f}").main.value == 1.0 and summary.row(f"generation_{f}").group == "joint"
    asked = {shape: summary.row(f"generation_{shape}").main for shape in SHAPES}
    assert sum(score.count for score in asked.values()) == len(main)
    assert all(score.count == sum(o["shape"] == shape for o in main) for shape, score in asked.items())
    table = shapes_as_generated(oracle_records)
    assert all(table[shape][drawn] == (asked[shape].count if drawn == shape else 0) for shape in SHAPES
               for drawn in (*SHAPES, None))

    # the first main-set clip's first object comes out as another shape; the second clip's first object not at all
    records = [json.loads(json.dumps(r)) for r in oracle_records]
    first, second = [r for r in records if r["set"] == "main"][:2]
    asked_for = first["objects"][0]["shape"]
    drawn_as = next(shape for shape in SHAPES if shape != asked_for)
    first["generation_found"][0]["shape"] = drawn_as
    first["objects"][0]["generation"] = False
    lost = second["objects"][0]
    second["generation_found"] = [f for f in second["generation_found"]
                                  if (f["color"], f["shape"]) != (lost["color"], lost["shape"])]
    second["objects"][0]["generation"] = False
    summary = summarize(records)
    assert summary.row("generation_shape").main.hits == len(main) - 2
    assert summary.row("generation_color").main.hits == summary.row("generation_motion").main.hits == len(main) - 1
    assert summary.row(f"generation_{asked_for}").main.hits == asked[asked_for].hits - 1 - (lost["shape"] == asked_for)
    table = shapes_as_generated(records)
    assert table[asked_for][drawn_as] == 1 and table[lost["shape"]][None] == 1
    text = render_markdown(records, RunInfo("uvigu eval", "m", "2026-01-01", 1.0, config=CONFIG))
    assert "| set | asked for, drawn as | circle | square | triangle | diamond | nothing paired |" in text
    held_out = shapes_as_generated(records, "heldout")  # the held-out pairs' objects only
    assert sum(map(sum, (d.values() for d in held_out.values()))) == summary.row("generation").heldout.count
    for shape, drawn in held_out.items():  # a row for each shape the held-out pairs ask for
        row = f"| held-out pairs | {shape} | " + " | ".join(str(n) for n in drawn.values()) + " |"
        assert (row in text) == any(drawn.values())
    old = [{k: v for k, v in r.items() if k != "generation_found"} for r in records]  # not measured
    assert summarize(old).row("generation_shape").main.value is None and summarize(old).row("generation").main.count


def test_edit_success_is_split_by_the_clips_objects(oracle_records):
    # the oracle's edits all land; here those of clips of two or more objects fail
    records = [{**r, "edit": {**r["edit"], "success": len(r["objects"]) == 1}} for r in oracle_records]
    summary = summarize(records)
    one, many = summary.row("edit_one_object"), summary.row("edit_objects")
    assert one.main.value == 1.0 and many.main.hits == 0 and one.main.count and many.main.count
    assert one.main.count + many.main.count == summary.row("edit").main.count
    assert one.main.hits == summary.row("edit").main.hits and one.group == many.group == "edit"


def test_edit_that_changes_nothing_fails():
    config = EvalConfig(num_clips=3, num_heldout=0)
    records = evaluate(KeepsClip(config), config)
    for r in records:
        for edit in (r["edit"], r["edit_plain"]):
            # The unchanged clip keeps the other objects but shows the old version, not the new one.
            assert edit["kept"] and not edit["changed"] and edit["stale"] and not edit["success"]
    assert summarize(records).row("edit").main.value == summarize(records).row("edit_plain").main.value == 0.0


def test_both_kinds_of_edit_are_scored_apart():
    config = EvalConfig(num_clips=3, num_heldout=1)
    records = evaluate(PlainEditKeepsClip(config), config)
    assert all(r["edit"]["with_source"] and not r["edit_plain"]["with_source"] for r in records)
    summary = summarize(records)
    # the target row scores the edit the studio makes (keeping the rest), the plain rows the other
    assert (summary.row("edit").main.value, summary.row("edit").heldout.value) == (1.0, 1.0)
    assert (summary.row("edit_plain").main.value, summary.row("edit_plain").heldout.value) == (0.0, 0.0)
    assert summary.row("edit_plain_stale").main.value == 1.0 and summary.row("edit_stale").main.value == 0.0
    assert all(summary.target_status(t) for t in TARGETS if t.metric == "edit")


def test_results_from_before_both_edits_were_scored_read_as_plain_edits():
    config = EvalConfig(num_clips=2, num_heldout=0)
    records = evaluate(PlainEditKeepsClip(config), config)
    old = []  # a record of that time: one plain edit under "edit", without "with_source" or "edit_plain"
    for r in records:
        plain = {k: v for k, v in r["edit_plain"].items() if k != "with_source"}
        old.append({k: v for k, v in r.items() if k != "edit_plain"} | {"edit": plain})
    assert edit_records(old[0]) == {"keep_rest": None, "plain": old[0]["edit"]}
    summary = summarize(old)
    assert summary.row("edit_plain").main.value == 0.0 and summary.row("edit_plain").main.count == 2
    assert summary.row("edit").main.value is None  # not measured, rather than the plain edit's figure
    assert summary.target_status(next(t for t in TARGETS if t.metric == "edit")) is None


def test_edit_scene_changes_one_attribute_validly():
    rng = np.random.default_rng(0)
    for i in range(60):
        scene = eval_example(CONFIG, "main", i).scene
        attribute = ATTRIBUTES[i % 3]
        change = edit_scene(scene, attribute, rng)
        assert change is not None
        before, after = scene_mentions(change.scene), scene_mentions(change.edited)
        for j, (b, a) in enumerate(zip(before, after)):
            differing = {f for f in ("color", "shape", "size", "motion", "region") if getattr(a, f) != getattr(b, f)}
            assert differing == ({attribute} if j == change.object_index else set())
            assert (a.color, a.shape) not in HELD_OUT_PAIRS
        assert len({o.color for o in change.edited.objects}) == len(change.edited.objects)
        # The edited scene is drawable inside the frame and reads back from its caption.
        assert parse_caption(scene_caption(change.edited)).objects == after
        frames = render_scene(change.edited)
        assert frames.shape == (16, 64, 64, 3)


def test_align_fields_pairs_by_most_agreement():
    truth = [ObjectMention("red", "circle", motion="left"), ObjectMention("blue", "square", motion="up")]
    said = [ObjectMention("blue", "circle", motion="up"), ObjectMention("red", "square", motion="left")]
    fields = align_fields(truth, said)
    assert fields == {"color": [True, True], "shape": [False, False], "motion": [True, True]}
    assert align_fields(truth, []) == {f: [False, False] for f in ("color", "shape", "motion")}


def test_eval_seeds_are_not_training_seeds():
    config = EvalConfig()
    train = ShapesDataset(10_000, seed=0)
    seeds = {train.seed_for(i) for i in range(len(train))}
    assert max(seeds) < 2**64 <= config.shapes_seed("main", 0)
    assert config.shapes_seed("main", config.num_clips) <= config.shapes_seed("heldout", 0)
    assert all(not seeds & {config.shapes_seed(s, i) for i in range(300)} for s in ("main", "heldout"))
    main = eval_example(config, "main", 0)
    assert all((o.color, o.shape) not in HELD_OUT_PAIRS for o in main.scene.objects)
    heldout = eval_example(config, "heldout", 0)
    assert any((o.color, o.shape) in HELD_OUT_PAIRS for o in heldout.scene.objects)


def test_markdown_marks_targets(oracle_records):
    info = RunInfo(command="uvigu eval --num 6", model="assets/uvigu-shapes", date="2025-01-01", elapsed_s=12.0, config=CONFIG)
    text = render_markdown(oracle_records, info)
    assert "`uvigu eval --num 6`" in text and "assets/uvigu-shapes" in text and "2025-01-01" in text
    assert "| caption object accuracy (colour, shape, motion) | 1.000 (" in text
    assert "main ≥ 0.95; held-out ≥ 0.85" in text
    assert "**not met**" not in text and "Targets not met: none." in text
    assert "| edit success (keeping the rest, as the studio edits) | 1.000 (6/6) | 1.000 (3/3) |" in text
    assert "| plain edit (the edited caption alone): success | 1.000 (6/6) | 1.000 (3/3) |" in text

    broken = [dict(r, objects=[dict(o, generation=False) for o in r["objects"]]) for r in oracle_records]
    text = render_markdown(broken, info, notes="the model is small")
    line = next(x for x in text.splitlines() if x.startswith("| generation object accuracy"))
    assert "0.000" in line and "main: **not met**; held-out: **not met**" in line
    assert "| round trip" in text and "main: met" in text
    assert "## Notes\n\nthe model is small" in text


def test_tiny_pipeline_run_writes_report(tmp_path):
    from uvigu.testing import tiny_pipeline

    pipe = tiny_pipeline()
    calls = []
    report = write_report(
        pipe, tmp_path / "docs" / "EVAL.md", EvalConfig(num_clips=1, num_heldout=1, num_examples=1),
        command="uvigu eval --num 1 --num-heldout 1", progress=lambda done, total: calls.append((done, total)),
    )
    assert calls == [(1, 2), (2, 2)]
    text = report.report_path.read_text()
    assert "## Targets" in text and "![generated from the prompt](eval/main-000-generated.png)" in text
    assert (tmp_path / "docs" / "eval" / "main-000-edited.png").is_file()
    assert "* edit, keeping the rest (" in text and "* edit, plain (" in text  # the examples show both
    assert "![edited reference clip, keeping the rest](eval/main-000-edited.png)" in text
    records = read_results(report.results_path)
    assert [r["set"] for r in records] == ["main", "heldout"]
    assert summarize(records).rows == report.summary.rows
    assert set(records[0]["seconds"]) == {"caption", "generate", "caption_generated", "edit", "edit_plain", "joint"}
    # the header names the settings the tasks ran at, the caption's re-read among them
    c = pipe.config
    assert (f"caption_steps {c.caption_steps}, caption_reread {c.caption_reread}, "
            f"caption_reread_period {c.caption_reread_period}, caption_reread_threshold {c.caption_reread_threshold}") in text


def test_eval_command_writes_report(tmp_path, monkeypatch):
    from uvigu import cli, loading

    config = EvalConfig(num_clips=2, num_heldout=1)
    loaded = []
    monkeypatch.setattr(loading, "load_pipeline", lambda model, device, dtype: loaded.append(device) or OraclePipeline(config))
    monkeypatch.chdir(tmp_path)
    model = tmp_path / "model"
    assert cli.main(["eval", "--model", str(model), "--num", "2", "--num-heldout", "1", "--out", "docs/EVAL.md"]) == 0
    text = (tmp_path / "docs" / "EVAL.md").read_text()
    assert "`uvigu eval --model model --num 2 --num-heldout 1 --out docs/EVAL.md`" in text  # on the CPU: as typed
    assert str(tmp_path) not in text and "Targets not met: none." in text
    assert len(read_results(tmp_path / "docs" / "eval" / "results.jsonl")) == 3
    assert cli.main(["eval", "--model", str(model), "--num", "0", "--num-heldout", "0"]) == 2
    # a report made on a GPU says so in its command, so that a re-run on the CPU knows why digits differ
    monkeypatch.setattr(OraclePipeline, "device", torch.device("cuda", 0))
    assert cli.main(["eval", "--model", str(model), "--num", "2", "--num-heldout", "1", "--device", "cuda:0"]) == 0
    assert "--out docs/EVAL.md --device cuda:0`" in (tmp_path / "docs" / "EVAL.md").read_text()
    # and one made in another precision says that too
    assert cli.main(["eval", "--model", str(model), "--num", "2", "--num-heldout", "1", "--device", "cuda:0",
                     "--dtype", "bf16"]) == 0
    assert "--device cuda:0 --dtype bfloat16`" in (tmp_path / "docs" / "EVAL.md").read_text()
    assert loaded == ["auto", "cuda:0", "cuda:0"]


def test_a_new_report_keeps_the_notes_below_the_old_ones_end(tmp_path, monkeypatch, capsys):
    from uvigu import cli, loading
    from uvigu.eval.report import NOTES_MARKER

    monkeypatch.setattr(loading, "load_pipeline", lambda model, device, dtype: OraclePipeline(EvalConfig(num_clips=2, num_heldout=1)))
    monkeypatch.chdir(tmp_path)
    report = tmp_path / "docs" / "EVAL.md"
    # a report from before the marker: its notes cannot be told from its tables, so it is backed up whole
    report.parent.mkdir()
    report.write_text("# Evaluation report\n\nold tables\n\n## Notes\n\nhand-written, no marker\n")
    args = ["eval", "--num", "2", "--num-heldout", "1", "--out", "docs/EVAL.md"]
    assert cli.main(args) == 0
    assert "hand-written, no marker" in (tmp_path / "docs" / "EVAL.md.bak").read_text()
    first = report.read_text()
    assert "old tables" not in first and "hand-written" not in first
    assert first.rstrip().endswith(NOTES_MARKER)  # the generated report ends with the marker
    assert "kept the" not in capsys.readouterr().out

    notes = "## Notes: this model\n\nWritten after the run: captions are fine.\n"
    report.write_text(first.replace("Targets not met: none.", "Targets not met: edited by hand.") + "\n" + notes)
    assert cli.main(args) == 0
    second = report.read_text()
    tables, kept = second.split(NOTES_MARKER)
    assert "Targets not met: none." in tables and "by hand" not in tables  # the tables are made again
    assert kept == "\n\n" + notes  # the notes below the marker kept as they were
    assert "kept the 3 lines of notes" in capsys.readouterr().out
    assert cli.main(args) == 0 and report.read_text().split(NOTES_MARKER)[1] == kept  # and again: nothing doubles


def test_clip_config_follows_the_pipeline():
    from uvigu.eval.clips import clip_config

    assert clip_config(OraclePipeline(EvalConfig(num_clips=0, num_heldout=1))) == ShapesConfig()


def test_the_codec_row_shows_what_the_codec_loses():
    class Blurring(PixelCodec):  # a lossy codec: every object dissolves into the background
        def decode(self, latents):
            frames = super().decode(latents)
            return frames.float().mean(dim=(2, 3), keepdim=True).expand_as(frames).to(frames.dtype)

    config = EvalConfig(num_clips=2, num_heldout=0, num_examples=0)
    pipe = OraclePipeline(config)
    pipe.codec = Blurring()
    summary = summarize(evaluate(pipe, config))
    assert summary.row("analyzer_reference").main.value == 1.0
    assert summary.row("analyzer_codec").main.value == 0.0


def test_the_report_names_the_settings_its_calls_ran_at():
    pipe = tiny_pipeline()
    settings = pipeline_settings(pipe)
    # the evaluation's edits give no strength or guidance, so each kind of edit ran at its defaults
    assert settings["plain edit strength"] == 0.6 == pipe.default_edit_strength
    assert settings["keep-the-rest edit strength"] == 0.9 == pipe.default_flow_edit_strength
    assert settings["keep-the-rest edit guidance"] == pipe.default_flow_edit_guidance
    assert settings["guidance_scale"] == pipe.config.guidance_scale
    assert settings["caption_verify_draws"] == pipe.config.caption_verify_draws
    assert not {"high-noise expert from σ", "read_guidance", "motion_noise"} & settings.keys()  # off: unsaid
    pipe.use_high_noise_expert(tiny_pipeline(seed=1), 0.99)
    pipe.register_to_config(read_guidance=2.0, read_guidance_from=0.7, motion_noise=0.2, motion_noise_speed=1.0)
    settings = pipeline_settings(pipe)
    assert settings["high-noise expert from σ"] == 0.99
    assert (settings["read_guidance"], settings["read_guidance_from"]) == (2.0, 0.7)
    assert (settings["motion_noise"], settings["motion_noise_speed"]) == (0.2, 1.0)
    assert "motion_noise_paths" not in settings  # objects going different ways: plain noise, unsaid
    pipe.register_to_config(motion_noise_paths=1.0, motion_noise_draft=6)
    settings = pipeline_settings(pipe)
    assert (settings["motion_noise_paths"], settings["motion_noise_draft"]) == (1.0, 6)
    assert "object_guidance" not in settings
    pipe.register_to_config(motion_noise_paths=0.0, object_guidance=1.0, object_guidance_to=0.5)  # guidance alone
    settings = pipeline_settings(pipe)
    assert [settings[k] for k in ("object_guidance", "object_guidance_to", "motion_noise_draft")] == [1.0, 0.5, 6]
    assert "motion_noise_paths" not in settings


# --- an interrupted run goes on from its journal --------------------------------------------------


class Interrupted(OraclePipeline):
    """The oracle, counting the clips it generates, stopped (as by Ctrl-C) at the ``stop_at``-th one."""

    def __init__(self, config, stop_at=None):
        super().__init__(config)
        self.generated, self.stop_at = 0, stop_at

    def generate(self, prompt, *, seed):
        self.generated += 1
        if self.generated == self.stop_at:
            raise KeyboardInterrupt
        return super().generate(prompt, seed=seed)


def _without_seconds(records):
    """The records as results.jsonl holds them, less the time each call took."""
    return [json.loads(json.dumps({k: v for k, v in r.items() if k != "seconds"})) for r in records]


def test_an_interrupted_evaluation_goes_on_from_where_it_stopped(tmp_path):
    from uvigu.eval.report import JOURNAL_NAME

    whole = read_results(write_report(Interrupted(CONFIG), tmp_path / "whole" / "EVAL.md", CONFIG).results_path)
    out = tmp_path / "docs" / "EVAL.md"
    journal = out.parent / "eval" / JOURNAL_NAME
    with pytest.raises(KeyboardInterrupt):
        write_report(Interrupted(CONFIG, stop_at=5), out, CONFIG)  # stopped in the fifth clip
    assert not out.exists() and not (out.parent / "eval" / "results.jsonl").exists()
    assert len(journal.read_text().splitlines()) == 1 + 4  # the run's key, and the four clips it finished

    again = Interrupted(CONFIG)
    report = write_report(again, out, CONFIG)
    assert again.generated == 9 - 4  # only the clips the first run had not finished
    assert _without_seconds(read_results(report.results_path)) == _without_seconds(whole)  # the uninterrupted run's
    assert not journal.exists()  # finished: the journal goes

    # Stopped again, with the last line cut short as an interruption can leave it: that clip is made again.
    with pytest.raises(KeyboardInterrupt):
        write_report(Interrupted(CONFIG, stop_at=4), out, CONFIG)
    lines = journal.read_text().splitlines()
    journal.write_text("\n".join(lines[:-1] + [lines[-1][: len(lines[-1]) // 2]]))
    again = Interrupted(CONFIG)
    write_report(again, out, CONFIG)
    assert again.generated == 9 - 2


def test_an_example_clips_record_is_kept_only_with_the_strips_its_run_made(tmp_path):
    # Strips of the same names from another run (a finished report's, say) do not pass for the
    # interrupted run's: that clip is made again, its strips with it.
    from uvigu.eval.report import JOURNAL_NAME

    out = tmp_path / "EVAL.md"
    with pytest.raises(KeyboardInterrupt):
        write_report(Interrupted(CONFIG, stop_at=3), out, CONFIG)  # main clips 0 and 1 done, 0 an example
    strip = tmp_path / "eval" / "main-000-generated.png"
    made = strip.read_bytes()
    strip.write_bytes(b"another run's strip")
    again = Interrupted(CONFIG)
    write_report(again, out, CONFIG)
    assert again.generated == 9 - 1  # main clip 0 again, not clip 1
    assert strip.read_bytes() == made

    with pytest.raises(KeyboardInterrupt):  # the strips as the run left them: both clips kept
        write_report(Interrupted(CONFIG, stop_at=3), out, CONFIG)
    again = Interrupted(CONFIG)
    write_report(again, out, CONFIG)
    assert again.generated == 9 - 2
    assert not (tmp_path / "eval" / JOURNAL_NAME).exists()


def test_a_journal_of_another_run_is_set_aside_not_mixed_in(tmp_path):
    from uvigu.eval.report import JOURNAL_NAME

    out = tmp_path / "EVAL.md"
    with pytest.raises(KeyboardInterrupt):
        write_report(Interrupted(CONFIG, stop_at=3), out, CONFIG)
    other = dataclasses.replace(CONFIG, main_pipeline_seed=7)  # other seeds: other records
    again = Interrupted(other)
    write_report(again, out, other)
    assert again.generated == 9
    assert (tmp_path / "eval" / (JOURNAL_NAME + ".other")).is_file()


def test_the_run_key_follows_the_weights_the_settings_and_the_seeds():
    from uvigu.eval.journal import run_key
    from uvigu.eval.report import journal_fields

    fields = journal_fields(CONFIG)
    pipe, same = tiny_pipeline(), tiny_pipeline()
    assert run_key(pipe, fields) == run_key(same, fields)
    assert run_key(pipe, fields) != run_key(pipe, journal_fields(dataclasses.replace(CONFIG, heldout_seed_start=5)))
    assert run_key(pipe, fields) == run_key(pipe, journal_fields(dataclasses.replace(CONFIG, num_clips=50)))
    with torch.no_grad():
        next(same.transformer.parameters()).view(-1)[0] += 1e-3
    assert run_key(pipe, fields) != run_key(same, fields)
    same = tiny_pipeline()
    same.register_to_config(guidance_scale=same.config.guidance_scale + 1)
    assert run_key(pipe, fields) != run_key(same, fields)
    # a high-noise expert makes some of the steps: its weights and boundary count too
    same = tiny_pipeline()
    same.use_high_noise_expert(tiny_pipeline(seed=1), 0.99)
    assert run_key(pipe, fields) != run_key(same, fields)
    other = tiny_pipeline()
    other.use_high_noise_expert(tiny_pipeline(seed=1), 0.9)
    assert run_key(same, fields) != run_key(other, fields)
    other.use_high_noise_expert(tiny_pipeline(seed=1), 0.99)
    assert run_key(same, fields) == run_key(other, fields)
    other.use_high_noise_expert(tiny_pipeline(seed=2), 0.99)
    assert run_key(same, fields) != run_key(other, fields)


def test_the_run_key_does_not_follow_the_folder_a_model_was_loaded_from(tmp_path):
    from uvigu import UniViGUPipeline
    from uvigu.eval.journal import run_key
    from uvigu.eval.report import journal_fields

    fields = journal_fields(CONFIG)
    tiny_pipeline().save_pretrained(tmp_path / "a")
    shutil.copytree(tmp_path / "a", tmp_path / "copy")
    first, copied = UniViGUPipeline.from_pretrained(tmp_path / "a"), UniViGUPipeline.from_pretrained(tmp_path / "copy")
    assert first.config._name_or_path != copied.config._name_or_path
    assert run_key(first, fields) == run_key(copied, fields)
    tiny_pipeline(seed=1).save_pretrained(tmp_path / "b")
    assert run_key(first, fields) != run_key(UniViGUPipeline.from_pretrained(tmp_path / "b"), fields)


def test_a_second_run_writing_the_same_report_is_refused_not_interleaved(tmp_path):
    from uvigu.eval.journal import RunJournal

    first = RunJournal(tmp_path / "results.partial.jsonl", "run")
    with pytest.raises(ValueError, match="another run is writing .*results.partial.jsonl"):
        RunJournal(tmp_path / "results.partial.jsonl", "run")
    first.close()
    RunJournal(tmp_path / "results.partial.jsonl", "run").finish()  # once the first has stopped
    assert not (tmp_path / "results.partial.jsonl").exists()
