"""The default model shipped in assets/ loads and produces outputs of the documented shapes."""

import json

import numpy as np
import pytest

from uvigu import UniViGUPipeline
from uvigu.data.shapes import make_example
from uvigu.eval.grammar import parse_caption, scene_mentions
from uvigu.eval.clips import EvalConfig, eval_example
from uvigu.models.presets import SHIPPED_MODEL_DIR, build_pipeline
from uvigu.training.config import TrainConfig, get_train_preset


@pytest.fixture(scope="module")
def pipe():
    return UniViGUPipeline.from_pretrained(SHIPPED_MODEL_DIR)


def test_it_is_small_safetensors_and_describes_itself():
    files = [p for p in SHIPPED_MODEL_DIR.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) <= 30 * 2**20
    assert not [p for p in files if p.suffix in (".bin", ".pt", ".pth", ".pkl")]
    assert (SHIPPED_MODEL_DIR / "transformer" / "diffusion_pytorch_model.safetensors").is_file()
    config = json.loads((SHIPPED_MODEL_DIR / "training_config.json").read_text())
    assert config["preset"] == "shapes"
    assert (SHIPPED_MODEL_DIR / "training_summary.json").is_file()


def test_the_documented_training_commands_are_the_ones_it_was_trained_with():
    # Two runs (assets/uvigu-shapes/README.md). First `uvigu train --preset shapes-gpu` from random
    # weights; fields added after it (absent from its file) read as their defaults, which it ran with.
    base = TrainConfig.load(SHIPPED_MODEL_DIR / "base_run" / "training_config.json")
    assert base == get_train_preset("shapes-gpu")
    assert base.init_from is None
    # Then that model continued with the settings docs/EVAL.md recommends.
    saved = TrainConfig.load(SHIPPED_MODEL_DIR / "training_config.json")
    assert saved == get_train_preset(
        "shapes-gpu", init_from="assets/uvigu-shapes", seed=5, steps_recall=0, steps_refine=2600,
        position_features=4, video_loss_cap=4.0, text_loss_weight=0.1, out_dir="runs/shapes-gpu-continued",
    )
    summary = json.loads((SHIPPED_MODEL_DIR / "training_summary.json").read_text())
    assert summary["steps"] == {"recall": 0, "refine": 2600}
    assert summary["examples_seen"] == 2600 * 256
    transformer = json.loads((SHIPPED_MODEL_DIR / "transformer" / "config.json").read_text())
    assert transformer["position_features"] == 4
    # Then a short CPU fine-tune of that model at the top of the noise alone, written into the
    # folder as its high-noise expert (`uvigu expert runs/bg99/pipeline --rank 16`); its position
    # features come along from the model it starts from.
    tuned = TrainConfig.load(SHIPPED_MODEL_DIR / "high_noise_expert" / "training_config.json")
    assert tuned == get_train_preset(
        "shapes", init_from="assets/uvigu-shapes", seed=14, steps_recall=0, steps_refine=300, lr=3e-4,
        warmup_steps=20, batch_size=16, task_probs=(0.8, 0.2, 0.0), video_sigma_min=0.99, sample_every=0,
        position_features=4, out_dir="runs/bg99",
    )
    summary = json.loads((SHIPPED_MODEL_DIR / "high_noise_expert" / "training_summary.json").read_text())
    assert summary["steps"] == {"recall": 0, "refine": 300} and summary["examples_seen"] == 300 * 16
    expert = json.loads((SHIPPED_MODEL_DIR / "high_noise_expert" / "config.json").read_text())
    assert expert == {"boundary": 0.99, "rank": 16}


def test_its_high_noise_expert_draws_the_background_the_prompt_names(pipe):
    # The sampler's first call (σ 1) decides the background; the expert makes it (model card).
    from uvigu.eval.analyzer import analyze_clip

    assert pipe.high_noise_expert[1] == 0.99
    prompt = "a blue square moving up on a white background"
    # the expert's own effect, on the usual starting noise: moving noise (on by default) costs a few
    # named backgrounds (docs/EVAL.md, its bullet), this prompt's at seed 1 among them
    def backgrounds(model):
        return [analyze_clip(model.generate(prompt, seed=s, motion_noise=0).frames).background for s in (0, 1)]

    assert backgrounds(pipe) == ["white", "white"]
    alone = UniViGUPipeline.from_pretrained(SHIPPED_MODEL_DIR)
    alone.use_high_noise_expert(None)  # the model alone falls back on the average background
    assert backgrounds(alone) == ["gray", "gray"]


def test_its_sampling_defaults_are_those_its_evaluation_ran_with(pipe):
    # docs/EVAL.md: captions with one re-read pass at temperature 1 (its notes compare reread=0).
    assert pipe.config.caption_reread == 1 and pipe.config.text_temperature == 1.0
    assert pipe.config.caption_reread_threshold == 1.0  # every word the pass reads differently changes
    assert pipe.config.caption_reread_period == 8  # one call on eight copies
    assert pipe.config.caption_verify_weight == 300.0  # then the video stream settles unsure words
    assert pipe.config.caption_verify_max_texts == 16  # judging up to 16 candidate captions (8 lost round trips)
    assert pipe.config.caption_verify_draws == 1  # on one noise draw of the clip each
    assert (pipe.config.num_inference_steps, pipe.config.guidance_scale, pipe.config.caption_steps) == (20, 3.0, 12)
    # plain edits start from the clip noised to 0.7 (chosen on clips the evaluation does not score)
    assert pipe.default_edit_strength == 0.7 and pipe.default_flow_edit_strength == 0.9
    # an edit given the text before the change guides the edited text at 3 (chosen the same way)
    assert pipe.default_flow_edit_guidance == 3.0
    # 0.35 of the starting noise's variance moves the way a prompt whose objects all go one way asks
    # (chosen on clips the evaluation does not score, then measured on its clips; docs/EVAL.md)
    assert (pipe.config.motion_noise, pipe.config.motion_noise_speed) == (0.35, 1.0)
    # ... and, for objects going different ways, all of it along each object's path, where a 6-step draft
    # puts the object, and each object's own prompt guiding its path down to σ 0.25 (chosen the same way)
    assert (pipe.config.motion_noise_paths, pipe.config.motion_noise_draft) == (1.0, 6)
    assert (pipe.config.object_guidance, pipe.config.object_guidance_to) == (1.0, 0.25)
    assert pipe.config.object_guidance_every == 1  # its folder, saved before the setting, calls at every step
    # the training preset writes the same sampling defaults into a new model's config
    fresh = build_pipeline("shapes", ["a", "red", "circle"]).config
    assert (fresh.caption_steps, fresh.caption_reread_period, fresh.caption_verify_weight) == (12, 8, 300.0)
    assert fresh.caption_verify_max_texts == 16 and fresh.caption_verify_draws == 1


def test_it_names_the_colours_of_unseen_clips(pipe):
    # Clips of the evaluation's main set (seeds no training item has); colour is the field the
    # model reads best (docs/EVAL.md), so a broken checkpoint or caption path fails here.
    config = EvalConfig()
    for index in range(3):
        example = eval_example(config, "main", index)
        named = {m.color for m in parse_caption(pipe.caption(example.frames, seed=index).text).objects}
        assert {m.color for m in scene_mentions(example.scene)} <= named



def test_its_video_stream_corrects_a_held_out_shape_the_text_stream_misnames(pipe):
    # Held-out clip 38 of the evaluation (its seeds): a purple triangle — a pair no training clip
    # has — that the text stream calls a circle; the video stream's check names it (docs/EVAL.md).
    config = EvalConfig()
    example = eval_example(config, "heldout", 38)
    assert ("purple", "triangle") in {(m.color, m.shape) for m in scene_mentions(example.scene)}
    seed = config.pipeline_seed("heldout", 38)

    def pairs(**kwargs):
        return {(m.color, m.shape) for m in parse_caption(pipe.caption(example.frames, seed=seed, **kwargs).text).objects}

    unchecked = pairs(verify_weight=0)
    assert ("purple", "circle") in unchecked and ("purple", "triangle") not in unchecked
    assert ("purple", "triangle") in pairs()


def test_its_captions_check_tries_only_words_that_keep_the_grammar(pipe, monkeypatch):
    # The check judges each unsure word with the rest of the caption as written; a word the video
    # stream favours could break the sentence ("… on a a background."), so it is not tried.
    from uvigu import captioning
    from uvigu.models.tokenizer import encode_text

    def ids(text):
        return encode_text(pipe.tokenizer, [text], pipe.config.max_text_len)[0][0]

    written = "a small red circle moves slowly up from the left on a black background."
    accept = pipe._keeps_grammar(ids(written))
    assert accept(ids(written)) and accept(ids(written.replace("black", "white")))
    assert not accept(ids(written.replace("black", "a"))) and not accept(ids(written.replace("slowly", "still")))
    assert pipe._keeps_grammar(ids("a red a circle moves")) is None  # a caption off the grammar: every word tried
    seen = []

    def verify(error_fn, *, text, accept=None, **kwargs):
        seen.append(accept)
        return text

    monkeypatch.setattr(captioning, "verify_text", verify)
    before_check = pipe.caption(make_example(0).frames, seed=0).text  # the check left out: the caption before it
    assert pipe.follows_grammar(before_check) and callable(seen[-1])  # so the check keeps to the grammar


def test_outputs_have_the_documented_shapes(pipe):
    out = pipe.generate("a red circle moving right", seed=0, num_inference_steps=2)
    assert out.frames.shape == (16, 64, 64, 3) and out.frames.dtype == np.uint8
    example = make_example(0)
    cap = pipe.caption(example.frames, seed=0, num_inference_steps=2)
    assert isinstance(cap.text, str) and cap.text
    edited = pipe.edit(example.frames, example.caption, strength=0.5, seed=0, num_inference_steps=4)
    assert edited.frames.shape == (16, 64, 64, 3)
    assert pipe.unknown_words(example.caption) == []


def test_it_reads_a_caption_back_against_the_prompt_by_the_shapes_grammar(pipe):
    example = make_example(0)
    (obj, *_) = pipe.read_back(example.prompt, example.caption)  # the reference caption says all it asks
    assert obj.name and obj.agrees and [c.field for c in obj.checks] == ["color", "shape", "motion"]


def test_it_loads_with_the_denoiser_in_bfloat16_as_the_readme_shows():
    import torch

    from uvigu.models.wan_loading import cast_keeping_fp32_modules

    low = UniViGUPipeline.from_pretrained(SHIPPED_MODEL_DIR, dtype={"transformer": torch.bfloat16,
                                                                   "default": torch.float32})
    dtypes = {name: p.dtype for name, p in low.transformer.named_parameters()}
    assert low.transformer.dtype == torch.bfloat16 and next(low.text_encoder.parameters()).dtype == torch.float32
    # the same weights in the same dtypes as the CLI's and studio's --dtype bfloat16 cast
    cast = cast_keeping_fp32_modules(UniViGUPipeline.from_pretrained(SHIPPED_MODEL_DIR).transformer, torch.bfloat16)
    assert {name: p.dtype for name, p in cast.named_parameters()} == dtypes
    assert torch.float32 in dtypes.values()  # norms, modulation tables and the timestep embedder
    out = low.generate("a red circle moving right", seed=0, num_inference_steps=4)
    assert out.frames.shape == (16, 64, 64, 3) and out.frames.dtype == np.uint8


def test_the_evaluation_clips_written_as_files_are_captioned_as_the_evaluation_captioned_them(pipe, tmp_path):
    """`uvigu shapes` then `uvigu eval --data`: the files, decoded and shrunk to the model's size,
    read as the clips do (the README's 20 of 20; here the first four, allowing for a host's float
    arithmetic to move one sampled word)."""
    from uvigu.cli import main
    from uvigu.eval.folder import caption_folder, folder_scores
    from uvigu.eval.report import read_results

    assert main(["shapes", str(tmp_path / "s4"), "--num", "4", "--scale", "4"]) == 0
    records = caption_folder(pipe, tmp_path / "s4")
    evaluated = [r for r in read_results(SHIPPED_MODEL_DIR.parents[1] / "docs" / "eval" / "results.jsonl")
                 if r["set"] == "main"][:4]
    assert [r["prompt"] for r in records] == [r["prompt"] for r in evaluated]
    assert [r["reference"] for r in records] == [r["reference"] for r in evaluated]
    assert sum(a["caption"] == b["caption"] for a, b in zip(records, evaluated)) >= 3
    assert folder_scores(records)[0] > 0.85


def test_it_knows_the_38_words_the_readme_says(pipe):
    words = pipe.known_words()
    assert len(words) == 38 and {"red", "circle", "moving", "left", "background"} <= set(words)


def test_the_readmes_count_of_captions_that_follow_the_grammar_is_the_evaluations():
    """The README says how many of the evaluation's captions of reference clips follow the Shapes
    grammar word for word (what Understand's warning rests on): counted here from its records."""
    import re
    from pathlib import Path

    from uvigu.eval.grammar import follows_grammar
    from uvigu.eval.report import read_results

    root = Path(SHIPPED_MODEL_DIR).resolve().parents[1]
    captions = [r["caption"] for r in read_results(root / "docs" / "eval" / "results.jsonl")]
    stated = re.search(r"(\d+) of its (\d+) captions in the evaluation do", (root / "README.md").read_text())
    assert stated is not None
    assert (int(stated.group(1)), int(stated.group(2))) == (sum(map(follows_grammar, captions)), len(captions))


def test_the_evaluation_reports_tables_are_recomputed_from_its_per_clip_results():
    """Each metric `summarize` computes from docs/eval/results.jsonl stands in docs/EVAL.md with the
    same figures, as the report says anyone can recompute them."""
    from pathlib import Path

    from uvigu.eval.report import read_results, summarize

    root = Path(SHIPPED_MODEL_DIR).resolve().parents[1]
    report = (root / "docs" / "EVAL.md").read_text(encoding="utf-8")
    summary = summarize(read_results(root / "docs" / "eval" / "results.jsonl"))
    for row in summary.rows:
        assert f"| {row.label} | {row.main.text()} | {row.heldout.text()} |" in report, row.key


def test_the_readme_tells_what_to_type_as_the_grammar_has_it():
    """The README's *What to type* names the Shapes world's words and held-out pairs as the code has them."""
    import re
    from pathlib import Path

    from uvigu.data.shapes import BACKGROUNDS, COLORS, HELD_OUT_PAIRS, SHAPES, SIZES

    readme = " ".join((Path(__file__).resolve().parents[1] / "README.md").read_text().split())
    section = readme[readme.index("**What to type.**"):readme.index("(`pipe.prompt_notes`)")]
    listed = re.search(r"Colours: ([a-z, ]+); shapes: ([a-z, ]+);", section)
    assert listed is not None
    assert listed.group(1).split(", ") == list(COLORS) and listed.group(2).split(", ") == list(SHAPES)
    assert f"[{'|'.join(SIZES)}]" in section and f"on a {'|'.join(BACKGROUNDS)} background" in section
    held = re.search(r"only seen apart: ([a-z, ]+)\.", section)
    assert held is not None and set(held.group(1).split(", ")) == {f"{c} {s}" for c, s in HELD_OUT_PAIRS}
