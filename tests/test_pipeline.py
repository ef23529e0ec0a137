import json

import numpy as np
import pytest
import torch

from uvigu import Cancelled, UniViGUPipeline
from uvigu import object_paths, pipeline as pipeline_module
from uvigu.flows import inference_sigmas
from uvigu.flows.moving_noise import NoisePath, moving_noise, path_discs, path_noise
from uvigu.read_guidance import READ_GUIDANCE_FROM, READ_GUIDANCE_TOP, ReadGuidance
from uvigu.data.shapes import ShapesConfig, make_example, shapes_vocabulary
from uvigu.judge import JUDGES, ObjectPlace
from uvigu.models.autoencoder import reconstruction_loss
from uvigu.models.presets import build_pipeline
from uvigu.models.tokenizer import count_tokens, decode_text
from uvigu.object_guidance import OBJECT_GUIDANCE_TO, ObjectGuidance
from uvigu.testing import tiny_pipeline
from uvigu.training.objective import ObjectiveConfig, compute_loss
from uvigu.videoio import write_mp4

PROMPT = "a red circle moving right"


@pytest.fixture(scope="module", params=["tiny", "tiny-latent"])
def pipe(request):
    return tiny_pipeline(preset=request.param)  # pixel space, and on a learned codec's latents


def test_outputs_have_the_documented_shapes(pipe):
    out = pipe.generate(PROMPT, seed=0)
    assert out.frames.shape == (4, 16, 16, 3) and out.frames.dtype == np.uint8
    assert out.seed == 0 and out.caption is None
    cap = pipe.caption(out.frames, seed=0)
    assert isinstance(cap.text, str)
    both = pipe.generate_with_caption("a blue square moving up", seed=0)
    assert both.frames.shape == (4, 16, 16, 3) and isinstance(both.caption, str)
    new = pipe.edit(out.frames, "a green circle moving right", strength=0.6, seed=0)
    assert new.frames.shape == (4, 16, 16, 3)


def test_same_seed_same_output(pipe):
    a, b = pipe.generate(PROMPT, seed=3), pipe.generate(PROMPT, seed=3)
    assert np.array_equal(a.frames, b.frames)
    assert not np.array_equal(a.frames, pipe.generate(PROMPT, seed=4).frames)
    clip = a.frames
    assert pipe.caption(clip, seed=1).text == pipe.caption(clip, seed=1).text
    j1, j2 = pipe.generate_with_caption(PROMPT, seed=2), pipe.generate_with_caption(PROMPT, seed=2)
    assert np.array_equal(j1.frames, j2.frames) and j1.caption == j2.caption
    assert np.array_equal(pipe.edit(clip, PROMPT, seed=5).frames, pipe.edit(clip, PROMPT, seed=5).frames)


def test_random_seed_is_reported_and_reproduces(pipe):
    out = pipe.generate(PROMPT)
    assert 0 <= out.seed < 2**31
    assert np.array_equal(out.frames, pipe.generate(PROMPT, seed=out.seed).frames)


def test_save_and_load_round_trip_exactly(pipe, tmp_path):
    pipe.save_pretrained(tmp_path)
    loaded = UniViGUPipeline.from_pretrained(tmp_path)
    assert type(loaded.codec) is type(pipe.codec)
    for name in ("transformer", "text_encoder", "codec"):
        ours, theirs = getattr(pipe, name).state_dict(), getattr(loaded, name).state_dict()
        assert ours.keys() == theirs.keys()
        assert all(torch.equal(ours[k], theirs[k]) for k in ours)
    assert loaded.config.max_text_len == pipe.config.max_text_len
    assert np.array_equal(loaded.generate(PROMPT, seed=0).frames, pipe.generate(PROMPT, seed=0).frames)
    clip = pipe.generate(PROMPT, seed=0).frames
    assert loaded.caption(clip, seed=0).text == pipe.caption(clip, seed=0).text


def test_guidance_one_is_the_conditional_prediction(pipe):
    calls = []
    original = pipe.transformer.forward

    def spy(*args, **kwargs):
        out = original(*args, **kwargs)
        calls.append((args[0].shape[0], out.video_velocity.detach().clone()))
        return out

    pipe.transformer.forward = spy
    try:
        plain = pipe.generate(PROMPT, seed=0, guidance_scale=1.0, num_inference_steps=2)
        guided = pipe.generate(PROMPT, seed=0, guidance_scale=1.0 + 1e-6, num_inference_steps=2)
    finally:
        del pipe.transformer.forward
    assert [c[0] for c in calls] == [1, 1, 2, 2]  # g = 1 runs the conditional branch alone
    assert np.abs(plain.frames.astype(int) - guided.frames.astype(int)).max() <= 1


def test_generate_drops_the_clean_text_padding_without_changing_the_prediction(pipe):
    from uvigu.models.tokenizer import encode_text

    calls = []
    original = pipe.transformer.forward

    def spy(*args, **kwargs):
        calls.append((args, kwargs, original(*args, **kwargs)))
        return calls[-1][2]

    pipe.transformer.forward = spy
    try:
        pipe.generate(PROMPT, seed=0, num_inference_steps=2)
    finally:
        del pipe.transformer.forward
    ids, valid = encode_text(pipe.tokenizer, [PROMPT], pipe.config.max_text_len)
    n = int(valid.sum())
    assert n < pipe.config.max_text_len
    for (x, text, sv, st, context, mask), _, out in calls:
        assert text.shape == (2, n) and mask is None  # prompt tokens + [END], CFG batch of two
        assert torch.equal(text[0], ids[0, :n])
        with torch.no_grad():
            padded = original(x, ids.repeat(2, 1), sv, st, context, valid.repeat(2, 1))
        torch.testing.assert_close(out.video_velocity, padded.video_velocity, atol=1e-5, rtol=1e-5)


def test_guidance_changes_the_result(pipe):
    a = pipe.generate(PROMPT, seed=0, guidance_scale=1.0)
    b = pipe.generate(PROMPT, seed=0, guidance_scale=6.0)
    assert not np.array_equal(a.frames, b.frames)


def test_callback_reports_progress_text_and_previews(pipe):
    steps = []
    pipe.generate_with_caption(PROMPT, seed=0, num_inference_steps=3, callback=steps.append)
    assert [s.index for s in steps] == [0, 1, 2] and all(s.num_steps == 3 for s in steps)
    assert steps[0].sigma == 1.0 and steps[-1].sigma < steps[0].sigma
    assert all(isinstance(s.text, str) for s in steps)
    assert steps[-1].preview().shape == (4, 16, 16, 3)


def test_progress_counts_the_calls_after_the_steps(pipe):
    clip = pipe.generate(PROMPT, seed=0, num_inference_steps=2).frames
    steps = []
    cap = pipe.caption(clip, seed=1, num_inference_steps=3, reread=2, verify_weight=1.0, callback=steps.append)
    # three steps, two re-read passes, the check: six calls, each reported when done
    assert [s.index for s in steps] == list(range(6)) and all(s.num_steps == 6 for s in steps)
    assert [s.sigma for s in steps[3:]] == [0.0] * 3 and steps[-1].text == cap.text
    assert np.array_equal(steps[-1].preview(), clip)
    steps.clear()
    pipe.caption(clip, seed=1, num_inference_steps=3, reread=0, callback=steps.append)
    assert [(s.index, s.num_steps) for s in steps] == [(0, 3), (1, 3), (2, 3)]

    # a stop asked for during the passes stops the caption there
    def stop_after_the_first_pass(step):
        if step.index == 3:
            raise Cancelled()

    with pytest.raises(Cancelled):
        pipe.caption(clip, seed=1, num_inference_steps=3, reread=2, callback=stop_after_the_first_pass)


def test_trajectory_holds_frames_and_text_per_step(pipe):
    out = pipe.generate_with_caption(PROMPT, seed=0, num_inference_steps=3, return_trajectory=True)
    assert len(out.trajectory) == 3
    assert all(t.frames.shape == (4, 16, 16, 3) for t in out.trajectory)
    assert all(isinstance(t.text, str) for t in out.trajectory)
    gen = pipe.generate(PROMPT, seed=0, num_inference_steps=3, return_trajectory=True)
    assert all(t.text is None for t in gen.trajectory)
    cap = pipe.caption(gen.frames, seed=0, num_inference_steps=3, return_trajectory=True)
    # the steps, then the re-read pass on the finished caption (σ = 0)
    assert [t.sigma for t in cap.trajectory] == pytest.approx([1.0, 2 / 3, 1 / 3, 0.0])


def stop_at(index, seen):
    """A step callback that records each step's index and cancels the run at ``index``."""

    def callback(step):
        seen.append(step.index)
        if step.index == index:
            raise Cancelled()

    return callback


def test_cancel_stops_between_steps(pipe):
    seen = []
    with pytest.raises(Cancelled):
        pipe.generate(PROMPT, seed=0, num_inference_steps=4, callback=stop_at(1, seen))
    assert seen == [0, 1]


def test_caption_accepts_a_video_file_and_reports_changes(pipe, tmp_path):
    frames = np.random.default_rng(0).integers(0, 255, (8, 32, 48, 3), dtype=np.uint8)
    path = write_mp4(frames, tmp_path / "clip.mp4", fps=8)
    cap = pipe.caption(path, seed=0)
    assert isinstance(cap.text, str) and cap.input_notes  # resized and trimmed to the model's size


def test_caption_temperature_reaches_the_token_draws(pipe, monkeypatch):
    clip = pipe.generate(PROMPT, seed=0).frames
    flow = type(pipe.text_flow)
    seen = []
    original = flow.jump_step

    def recording(self, *args, temperature=1.0, **kwargs):
        seen.append(temperature)
        return original(self, *args, temperature=temperature, **kwargs)

    monkeypatch.setattr(flow, "jump_step", recording)
    pipe.caption(clip, seed=0, num_inference_steps=3)
    pipe.caption(clip, seed=0, num_inference_steps=3, temperature=0)
    assert seen == [pipe.config.text_temperature] * 3 + [0.0] * 3
    monkeypatch.undo()
    # same seed, other temperature: other draws; same temperature: the same caption
    assert pipe.caption(clip, seed=1, temperature=0.5).text == pipe.caption(clip, seed=1, temperature=0.5).text
    assert any(pipe.caption(clip, seed=s).text != pipe.caption(clip, seed=s, temperature=0).text for s in range(4))


def _record_batches(pipe, monkeypatch) -> list[int]:
    """The batch of every transformer call from now on, in order."""
    batches = []
    original = type(pipe.transformer).forward

    def counting(self, video, text, *args, **kwargs):
        batches.append(text.shape[0])
        return original(self, video, text, *args, **kwargs)

    monkeypatch.setattr(type(pipe.transformer), "forward", counting)
    return batches


def test_caption_reread_passes_run_after_the_steps(pipe, monkeypatch):
    clip = pipe.generate(PROMPT, seed=0).frames
    assert pipe.config.caption_reread == 1  # on by default
    batches = _record_batches(pipe, monkeypatch)
    plain = pipe.caption(clip, seed=2, num_inference_steps=3, reread=0, return_trajectory=True)
    assert batches == [1, 1, 1] and len(plain.trajectory) == 3
    batches.clear()
    twice = pipe.caption(clip, seed=2, num_inference_steps=3, reread=2, return_trajectory=True)
    assert batches == [1, 1, 1, 4, 4]  # each pass: one call on four copies of the caption
    assert len(twice.trajectory) == 5 and twice.trajectory[-1].text == twice.text
    assert all(step.sigma == 0.0 for step in twice.trajectory[3:])
    # the passes start from the caption the steps made: the same seed draws it the same way
    assert twice.trajectory[2].text == plain.trajectory[2].text
    batches.clear()
    assert pipe.caption(clip, seed=2, num_inference_steps=3).text == pipe.caption(
        clip, seed=2, num_inference_steps=3, reread=1).text
    assert batches == [1, 1, 1, 4] * 2
    # a threshold of 0 keeps every word: the caption the steps made, still at the cost of the pass
    assert pipe.config.caption_reread_threshold == 1.0
    batches.clear()
    kept = pipe.caption(clip, seed=2, num_inference_steps=3, reread=2, reread_threshold=0.0, return_trajectory=True)
    assert kept.text == plain.text and batches == [1, 1, 1, 4, 4]
    assert [step.text for step in kept.trajectory[3:]] == [plain.trajectory[2].text] * 2
    # the period sets the copies of each pass (its batch)
    assert pipe.config.caption_reread_period == 4
    batches.clear()
    pipe.caption(clip, seed=2, num_inference_steps=3, reread_period=8)
    assert batches == [1, 1, 1, 8]



def test_caption_verification_lets_the_video_stream_pick_among_likely_words(pipe, monkeypatch):
    clip = pipe.generate(PROMPT, seed=0).frames
    assert pipe.config.caption_verify_weight == 0.0  # off unless a model's config turns it on
    plain = pipe.caption(clip, seed=2, num_inference_steps=3, return_trajectory=True)
    assert pipe.caption(clip, seed=2, num_inference_steps=3, verify_weight=0.0).text == plain.text
    batches = _record_batches(pipe, monkeypatch)
    checked = pipe.caption(clip, seed=2, num_inference_steps=3, verify_weight=1.0, return_trajectory=True)
    # the steps and the re-read as before, then one call judging candidate captions, two noise draws each
    assert batches[:4] == [1, 1, 1, 4] and len(batches) == 5 and batches[4] % 2 == 0 and 2 <= batches[4] <= 32
    judged = batches[4]
    assert [t.text for t in checked.trajectory[:4]] == [t.text for t in plain.trajectory]
    assert len(checked.trajectory) == 5 and checked.trajectory[-1].text == checked.text
    assert pipe.caption(clip, seed=2, num_inference_steps=3, verify_weight=1.0).text == checked.text
    # the cap on candidate captions sets the judging call's batch: two noise draws per caption
    assert pipe.config.caption_verify_max_texts == 16
    batches.clear()
    pipe.caption(clip, seed=2, num_inference_steps=3, verify_weight=1.0, verify_max_texts=4)
    assert batches[:4] == [1, 1, 1, 4] and len(batches) == 5 and 4 <= batches[4] <= min(8, judged)
    # the noise draws per candidate caption set it too: one draw, half the batch, the same captions judged
    assert pipe.config.caption_verify_draws == 2
    batches.clear()
    pipe.caption(clip, seed=2, num_inference_steps=3, verify_weight=1.0, verify_draws=1)
    assert batches[:4] == [1, 1, 1, 4] and len(batches) == 5 and batches[4] == judged // 2
    batches.clear()
    pipe.caption(clip, seed=2, num_inference_steps=3, verify_weight=1.0, verify_draws=3)
    assert batches[4] == judged // 2 * 3
    # without a re-read pass the check reads the probabilities from one that changes nothing
    batches.clear()
    pipe.caption(clip, seed=2, num_inference_steps=3, reread=0, verify_weight=1.0)
    assert batches[:4] == [1, 1, 1, 4] and len(batches) == 5
    monkeypatch.undo()

    # The judge is the clean-clip estimate: a caption whose estimate is exact wins when it weighs enough.
    asked = []

    def estimate(favoured):
        def clean_estimate(x_t, ids, mask, context, sigma):
            prompts = [pipe._decode_ids(t) for t in ids]
            asked.extend(prompts)
            exact = torch.tensor([p == favoured for p in prompts]).view(-1, *([1] * (x_t.ndim - 1)))
            return torch.where(exact, 0.0, 100.0).expand(x_t.shape).float()
        return clean_estimate

    monkeypatch.setattr(pipe, "_clean_estimate", estimate(None))
    pipe.caption(clip, seed=2, num_inference_steps=3)  # the pipeline's default: no check, no judge
    assert asked == []
    written = pipe.caption(clip, seed=2, num_inference_steps=3, verify_weight=1.0).text
    assert len(asked) == judged and asked[0] == asked[1]  # each candidate twice: two noise draws

    def as_written(text):  # a caption is cut to max_text_tokens (see test_a_caption_always_fits_as_a_prompt)
        ids = pipe.tokenizer(text, add_special_tokens=False)["input_ids"]
        return decode_text(pipe.tokenizer, ids, max_tokens=pipe.max_text_tokens)

    others = sorted({p for p in asked if as_written(p) != written})
    assert others  # the tiny model is unsure of many words
    monkeypatch.setattr(pipe, "_clean_estimate", estimate(others[-1]))
    assert pipe.caption(clip, seed=2, num_inference_steps=3, verify_weight=1e6).text == as_written(others[-1])

def test_a_caption_always_fits_as_a_prompt(pipe):
    # The untrained model fills the whole text stream, with no end token: the caption is cut so
    # that it can be edited and given back, as the studio does (and as the text before an edit).
    clip = pipe.generate(PROMPT, seed=0).frames
    for text in (pipe.caption(clip, seed=0).text, pipe.generate_with_caption(PROMPT, seed=0).caption):
        assert 0 < count_tokens(pipe.tokenizer, text) <= pipe.max_text_tokens
        pipe.edit(clip, text, source_prompt=text, num_inference_steps=2, seed=0)


def test_unknown_words_are_reported(pipe):
    assert pipe.unknown_words("a red zebra moving sideways") == ["zebra", "sideways"]
    assert pipe.generate("a red zebra moving right", seed=0).unknown_words == ["zebra"]


def test_each_call_warns_of_unknown_words_once_however_many_takes_it_makes(pipe, caplog):
    def warned() -> list[str]:
        found = [record.getMessage().rpartition(": ")[2] for record in caplog.records
                 if "does not know" in record.getMessage()]
        assert all(record.unknown_words for record in caplog.records if "does not know" in record.getMessage())
        caplog.clear()
        return found

    clip = pipe.generate(PROMPT, seed=0, num_inference_steps=2).frames
    assert warned() == []
    pipe.generate("a red zebra moving right", seed=0, num_inference_steps=2, best_of=3)
    assert warned() == ["zebra"]
    pipe.generate_with_caption("a red zebra moving right", seed=0, num_inference_steps=2)
    assert warned() == ["zebra"]
    pipe.edit(clip, "a red zebra moving right", seed=0, num_inference_steps=2, best_of=2)
    assert warned() == ["zebra"]
    pipe.edit(clip, "a red zebra moving right", source_prompt="a red okapi moving right", seed=0,
              num_inference_steps=2, best_of=2)
    assert warned() == ["zebra", "okapi"]


def test_an_edit_given_the_same_text_before_and_after_keeps_the_clip(pipe):
    clip = pipe.generate(PROMPT, seed=1).frames
    # the same text, guided alike on both sides: no difference between the flows
    kept = pipe.edit(clip, PROMPT, source_prompt=PROMPT, guidance_scale=pipe.config.guidance_scale, seed=2).frames
    plain = pipe.edit(clip, PROMPT, seed=2).frames  # noised and redrawn
    source = pipe._decode(pipe.codec.encode(torch.from_numpy(clip)[None]))  # the clip through the codec
    assert np.abs(kept.astype(int) - source).max() <= 2  # nothing moves
    assert np.abs(plain.astype(int) - source).max() > 10
    changed = pipe.edit(clip, "a blue square moving up", source_prompt=PROMPT, seed=2)
    assert changed.frames.shape == clip.shape and np.abs(changed.frames.astype(int) - source).max() > 2
    assert changed.seed == 2 and changed.caption is None


def test_every_task_runs_the_network_without_building_a_graph(pipe, monkeypatch):
    # an autograd graph kept across the steps holds every step's activations: memory and time grow
    grad_enabled = []
    original = pipe.transformer.forward

    def recording(*args, **kwargs):
        grad_enabled.append(torch.is_grad_enabled())
        return original(*args, **kwargs)

    monkeypatch.setattr(pipe.transformer, "forward", recording)
    clip = pipe.generate(PROMPT, seed=0, num_inference_steps=2).frames
    pipe.generate_with_caption(PROMPT, seed=0, num_inference_steps=2)
    pipe.caption(clip, seed=0, num_inference_steps=2, verify_weight=1.0)
    pipe.edit(clip, "a blue square", seed=0, num_inference_steps=2)
    pipe.edit(clip, "a blue square", source_prompt=PROMPT, seed=0, num_inference_steps=2)
    assert len(grad_enabled) >= 9 and not any(grad_enabled)


@pytest.mark.parametrize("key, value, fallback, bad, message", [
    ("edit_strength", 0.75, 0.6, 1.5, "strength must be in"),
    ("flow_edit_guidance", 3.0, 6.0, -1.0, "flow_edit_guidance must be between"),
])
def test_an_edit_default_is_a_setting_of_the_saved_model(tmp_path, key, value, fallback, bad, message):
    # The shipped model's model_index.json sets its own (docs/EVAL.md); a folder without the key,
    # as saved before it existed, gets the fallback. The edit reads it (here for the plain edit's
    # strength; test_an_edit_with_a_source_text_... for the guidance).
    pipe = tiny_pipeline()
    pipe.register_to_config(**{key: value})
    pipe.save_pretrained(tmp_path / "set")
    loaded = UniViGUPipeline.from_pretrained(tmp_path / "set")
    assert getattr(loaded, f"default_{key}") == value
    if key == "edit_strength":
        clip = np.zeros((4, 16, 16, 3), np.uint8)
        steps = loaded.config.num_inference_steps
        assert len(loaded.edit(clip, "a blue square", seed=0, return_trajectory=True).trajectory) == int(steps * value)
    index = json.loads((tmp_path / "set" / "model_index.json").read_text())
    del index[key]
    (tmp_path / "set" / "model_index.json").write_text(json.dumps(index))
    assert getattr(UniViGUPipeline.from_pretrained(tmp_path / "set"), f"default_{key}") == fallback
    with pytest.raises(ValueError, match=message):
        UniViGUPipeline(**{**loaded.components, key: bad})


def test_an_edit_with_a_source_text_starts_later_and_guides_harder_by_default(pipe, monkeypatch):
    clip = np.zeros((4, 16, 16, 3), np.uint8)
    out = pipe.edit(clip, "a blue square", source_prompt=PROMPT, seed=0, return_trajectory=True)
    assert len(out.trajectory) == int(pipe.config.num_inference_steps * 0.9)  # strength 0.9
    assert (pipe.default_flow_edit_strength, pipe.default_edit_strength) == (0.9, 0.6)  # what the studio offers
    assert len(pipe.edit(clip, "a blue square", seed=0, return_trajectory=True).trajectory) == int(
        pipe.config.num_inference_steps * 0.6)
    out = pipe.edit(clip, "a blue square", source_prompt=PROMPT, strength=0.5, num_inference_steps=8, seed=0,
                    return_trajectory=True)
    assert len(out.trajectory) == 4 and out.trajectory[0].sigma < 0.9
    # guidance: the edited text's is 6 unless given, the source text's the pipeline's
    calls = []
    original = pipe.transformer.forward

    def recording(x, ids, sv, st, context, mask=None):
        v, logits = original(x, ids, sv, st, context, mask)
        calls.append(v)
        return v, logits

    monkeypatch.setattr(pipe.transformer, "forward", recording)
    deltas = []

    def keep_delta(delta_fn, **kwargs):
        x = kwargs["source"]
        deltas.append(delta_fn(x, x, torch.full((1,), 0.5))[0])
        return x

    monkeypatch.setattr("uvigu.flow_editing.flow_edit", keep_delta)
    # (the model's flow_edit_guidance, when it sets one; the given guidance_scale wins over both)
    found = pipe.config.flow_edit_guidance
    for model_setting, guidance, expected in ((None, None, 6.0), (None, 2.0, 2.0), (4.0, None, 4.0), (4.0, 2.0, 2.0)):
        if model_setting is not None:
            pipe.register_to_config(flow_edit_guidance=model_setting)
        try:
            calls.clear()
            pipe.edit(clip, "a blue square", source_prompt=PROMPT, guidance_scale=guidance, seed=0)
        finally:
            pipe.register_to_config(flow_edit_guidance=found)
        (v,) = calls  # one call on the four rows: source and edit, conditioned then not
        src = v[2] + pipe.config.guidance_scale * (v[0] - v[2])
        tar = v[3] + expected * (v[1] - v[3])
        assert torch.allclose(deltas[-1], (tar - src)[None], atol=1e-5)


def test_best_of_keeps_the_take_whose_caption_the_judge_scores_highest(pipe):
    judged = []

    def judge(prompt, caption):  # the second take wins
        judged.append((prompt, caption))
        return [0.2, 0.9, 0.5][len(judged) - 1]

    steps = []
    out = pipe.generate(PROMPT, seed=7, num_inference_steps=2, best_of=3, judge=judge, callback=steps.append,
                        return_trajectory=True)
    assert [c.seed for c in out.candidates] == [7, 8, 9] and [c.score for c in out.candidates] == [0.2, 0.9, 0.5]
    assert [prompt for prompt, _ in judged] == [PROMPT] * 3
    assert [c.caption for c in out.candidates] == [caption for _, caption in judged]
    # the chosen take is an ordinary generation with its seed, and its caption the ordinary caption
    again = pipe.generate(PROMPT, seed=8, num_inference_steps=2)
    assert out.seed == 8 and np.array_equal(out.frames, again.frames)
    assert out.caption == out.candidates[1].caption == pipe.caption(again.frames, seed=8).text
    assert len(out.trajectory) == 2 and out.caption_trajectory[-1].text == out.caption
    # progress counts every call of every take: per take 2 steps, then the caption's calls
    per_take = pipe.config.caption_steps + pipe.config.caption_reread + int(pipe.config.caption_verify_weight > 0)
    total = 3 * (2 + per_take)
    assert [s.index for s in steps] == list(range(total)) and {s.num_steps for s in steps} == {total}
    assert steps[-1].text == out.candidates[-1].caption


def test_best_of_judged_part_way_finishes_only_the_chosen_take(pipe):
    """judge_at 0.5 of 4 steps: each take is judged by a quick caption (judge_steps) of its clean
    estimate after 2 steps; the chosen one then goes on from there to the end and is captioned at
    the defaults."""
    scores = iter([0.2, 0.9, 0.5])
    steps = []
    out = pipe.generate(PROMPT, seed=7, num_inference_steps=4, best_of=3, judge=lambda p, c: next(scores),
                        judge_at=0.5, judge_steps=3, callback=steps.append, return_trajectory=True)
    estimates = {}
    for seed in (7, 8, 9):
        pipe.generate(PROMPT, seed=seed, num_inference_steps=4,
                      callback=lambda step, seed=seed: step.index == 1 and estimates.setdefault(seed, step.preview()))
    quick = [pipe.caption(estimates[seed], seed=seed, num_inference_steps=3, reread=0, verify_weight=0).text
             for seed in (7, 8, 9)]
    assert [c.caption for c in out.candidates] == quick and [c.seed for c in out.candidates] == [7, 8, 9]
    again = pipe.generate(PROMPT, seed=8, num_inference_steps=4, return_trajectory=True)
    assert out.seed == 8 and np.array_equal(out.frames, again.frames)  # gone on to the end: the same clip
    assert out.caption == pipe.caption(again.frames, seed=8).text
    # its trajectory is the uninterrupted run's, the steps before it stopped included
    assert [s.sigma for s in out.trajectory] == [s.sigma for s in again.trajectory]
    assert all(np.array_equal(a.frames, b.frames) for a, b in zip(out.trajectory, again.trajectory, strict=True))
    assert out.caption_trajectory[-1].text == out.caption
    # progress: 3 × (2 steps + 3 caption steps), then the chosen take's last 2 steps and its full caption
    full = pipe.config.caption_steps + pipe.config.caption_reread + int(pipe.config.caption_verify_weight > 0)
    total = 3 * (2 + 3) + 2 + full
    assert [s.index for s in steps] == list(range(total)) and {s.num_steps for s in steps} == {total}


def test_a_take_judged_part_way_after_its_last_step_is_kept_as_it_is(pipe):
    """1 step at judge_at 0.5 is judged after that step: nothing is left to make, and the kept take's
    clip and trajectory are its own run's."""
    steps = []
    out = pipe.generate(PROMPT, seed=5, num_inference_steps=1, best_of=2, judge=lambda p, c: 0.0, judge_at=0.5,
                        judge_steps=2, callback=steps.append, return_trajectory=True)
    plain = pipe.generate(PROMPT, seed=5, num_inference_steps=1, return_trajectory=True)
    assert out.seed == 5 and np.array_equal(out.frames, plain.frames)
    assert len(out.trajectory) == 1 and np.array_equal(out.trajectory[0].frames, plain.trajectory[0].frames)
    full = pipe.config.caption_steps + pipe.config.caption_reread + int(pipe.config.caption_verify_weight > 0)
    assert [s.index for s in steps] == list(range(2 * (1 + 2) + full))  # no step made twice


def test_a_quick_judge_of_finished_takes_reads_the_chosen_one_again_in_full(pipe):
    steps = []
    out = pipe.generate(PROMPT, seed=3, num_inference_steps=2, best_of=2, judge=lambda p, c: 0.0, judge_steps=2,
                        callback=steps.append)
    plain = pipe.generate(PROMPT, seed=3, num_inference_steps=2)
    assert np.array_equal(out.frames, plain.frames)
    assert out.candidates[0].caption == pipe.caption(plain.frames, seed=3, num_inference_steps=2, reread=0,
                                                     verify_weight=0).text
    assert out.caption == pipe.caption(plain.frames, seed=3).text
    full = pipe.config.caption_steps + pipe.config.caption_reread + int(pipe.config.caption_verify_weight > 0)
    assert len(steps) == steps[0].num_steps == 2 * (2 + 2) + full  # nothing made again: only the caption


@pytest.mark.parametrize("judge_at", [1.0, 0.5])
@pytest.mark.parametrize("source_prompt", [None, "a red circle moving right"])
def test_an_edit_can_keep_the_best_of_several_tries_too(pipe, source_prompt, judge_at):
    clip = pipe.generate(PROMPT, seed=0, num_inference_steps=2).frames
    scores = iter([0.1, 0.7])
    steps = []
    out = pipe.edit(clip, "a blue circle moving right", source_prompt=source_prompt, strength=0.5, seed=3,
                    num_inference_steps=4, best_of=2, judge=lambda p, c: next(scores), judge_at=judge_at,
                    callback=steps.append)
    again = pipe.edit(clip, "a blue circle moving right", source_prompt=source_prompt, strength=0.5, seed=4,
                      num_inference_steps=4)
    assert out.seed == 4 and np.array_equal(out.frames, again.frames)
    assert [c.seed for c in out.candidates] == [3, 4] and out.caption == pipe.caption(again.frames, seed=4).text
    # strength 0.5 of 4 steps runs 2 per edit (judged after 1 of them at 0.5, the kept one going on
    # from there for its second); then the caption's calls
    reading = pipe.config.caption_steps + pipe.config.caption_reread + int(pipe.config.caption_verify_weight > 0)
    total = 2 * (2 + reading) if judge_at == 1 else 2 * (1 + reading) + 1 + reading
    assert [s.index for s in steps] == list(range(total)) and {s.num_steps for s in steps} == {total}


def test_best_of_breaks_ties_towards_the_first_take_and_wraps_the_seed(pipe):
    out = pipe.generate(PROMPT, seed=2**31 - 2, num_inference_steps=1, best_of=3, judge=lambda p, c: 1.0)
    assert [c.seed for c in out.candidates] == [2**31 - 2, 2**31 - 1, 0] and out.seed == 2**31 - 2
    plain = pipe.generate(PROMPT, seed=3, num_inference_steps=1)
    assert plain.candidates == [] and plain.caption is None


def test_best_of_stops_when_cancelled_in_a_later_take(pipe):
    seen = []
    per_take = 1 + pipe.config.caption_steps + pipe.config.caption_reread  # 1 video step, then the caption's calls
    with pytest.raises(Cancelled):  # at the second take's first step
        pipe.generate(PROMPT, seed=0, num_inference_steps=1, best_of=4, callback=stop_at(per_take, seen))
    assert seen == list(range(per_take + 1))


def test_the_take_judge_is_a_setting_of_the_saved_model(tmp_path, monkeypatch):
    pipe = tiny_pipeline()
    assert pipe.config.take_judge == "shapes"  # every preset learns the Shapes world
    calls = []
    pipe.register_to_config(take_judge="words")
    pipe.save_pretrained(tmp_path / "set")
    loaded = UniViGUPipeline.from_pretrained(tmp_path / "set")
    assert loaded.config.take_judge == "words"
    monkeypatch.setitem(JUDGES, "words", lambda prompt, caption: calls.append(caption) or 0.0)
    loaded.generate(PROMPT, seed=0, num_inference_steps=1, best_of=2)
    assert len(calls) == 2  # the saved model's judge read both takes
    index = json.loads((tmp_path / "set" / "model_index.json").read_text())
    del index["take_judge"]
    (tmp_path / "set" / "model_index.json").write_text(json.dumps(index))
    assert UniViGUPipeline.from_pretrained(tmp_path / "set").config.take_judge == "words"  # a model of any world
    with pytest.raises(ValueError, match="take_judge must be one of"):
        UniViGUPipeline(**{**loaded.components, "take_judge": "vibes"})


def test_a_shapes_model_says_how_its_prompts_go_and_what_a_prompt_asks_beyond_them():
    from uvigu.eval.grammar import prompt_guide

    pipe = tiny_pipeline()
    assert pipe.prompt_guide() == prompt_guide()
    assert pipe.prompt_notes(PROMPT) == []
    assert pipe.prompt_notes("a red circle moving right and a red square moving left") == [
        "More than one red object asked for; no two objects of the clips the model learned share a colour."]
    pipe.register_to_config(take_judge="words")  # a model of another world declares no grammar
    assert pipe.prompt_guide() is None
    assert pipe.prompt_notes("a red circle moving right and a red square moving left") == []


def test_where_and_how_takes_are_judged_are_settings_of_the_saved_model(tmp_path):
    pipe = tiny_pipeline()
    assert (pipe.config.take_judge_at, pipe.config.take_judge_steps) == (1.0, 0)  # judged finished, in full
    pipe.register_to_config(take_judge_at=0.5, take_judge_steps=2)
    pipe.save_pretrained(tmp_path / "set")
    loaded = UniViGUPipeline.from_pretrained(tmp_path / "set")
    steps = []
    out = loaded.generate(PROMPT, seed=0, num_inference_steps=2, best_of=2, callback=steps.append)
    full = pipe.config.caption_steps + pipe.config.caption_reread + int(pipe.config.caption_verify_weight > 0)
    assert len(steps) == steps[0].num_steps == 2 * (1 + 2) + 1 + full  # judged after 1 of 2 steps, by 2
    assert np.array_equal(out.frames, loaded.generate(PROMPT, seed=out.seed, num_inference_steps=2).frames)
    for bad, match in [({"take_judge_at": 0.0}, "judge_at must be in"), ({"take_judge_steps": -2}, "judge_steps")]:
        with pytest.raises(ValueError, match=match):
            UniViGUPipeline(**{**loaded.components, **bad})


def test_read_guidance_steers_the_steps_between_its_noise_levels_only(pipe, monkeypatch):
    plain = pipe.generate(PROMPT, seed=5, num_inference_steps=4)
    assert np.array_equal(plain.frames, pipe.generate(PROMPT, seed=5, num_inference_steps=4, read_guidance=0).frames)
    read = pipe.generate(PROMPT, seed=5, num_inference_steps=4, read_guidance=3.0)
    assert not np.array_equal(plain.frames, read.frames)
    assert np.array_equal(read.frames, pipe.generate(PROMPT, seed=5, num_inference_steps=4, read_guidance=3.0).frames)
    levels = []
    original = ReadGuidance.gradient

    def recording(self, x, ids, sigma, context):
        levels.append(float(sigma[0]))
        return original(self, x, ids, sigma, context)

    monkeypatch.setattr(ReadGuidance, "gradient", recording)
    steps = []
    pipe.generate(PROMPT, seed=5, num_inference_steps=8, read_guidance=1.0, callback=steps.append)
    inside = [s.sigma for s in steps if READ_GUIDANCE_FROM <= s.sigma <= READ_GUIDANCE_TOP]
    assert levels and levels == pytest.approx(inside)
    assert len(inside) < len(steps)  # the first and last steps are not steered
    # read_guidance_from moves where it stops: fewer steps from a higher level; a bad level is refused
    levels.clear()
    later = pipe.generate(PROMPT, seed=5, num_inference_steps=8, read_guidance=1.0, read_guidance_from=0.8)
    assert levels == pytest.approx([s.sigma for s in steps if 0.8 <= s.sigma <= READ_GUIDANCE_TOP])
    assert 0 < len(levels) < len(inside)
    pipe.register_to_config(read_guidance_from=0.8)  # the model's own setting
    try:
        assert np.array_equal(pipe.generate(PROMPT, seed=5, num_inference_steps=8, read_guidance=1.0).frames,
                              later.frames)
    finally:
        pipe.register_to_config(read_guidance_from=READ_GUIDANCE_FROM)
    for bad in (0.95, -0.1, True):
        with pytest.raises(ValueError, match="read_guidance_from must be a noise level from 0 up to, not including, 0.95"):
            pipe.generate(PROMPT, seed=5, num_inference_steps=2, read_guidance=1.0, read_guidance_from=bad)


def test_read_guidance_moves_the_clip_the_way_that_reads_the_prompt_s_words_more(pipe):
    reader = pipe._reader("a red circle moving right", seed=0)
    assert reader.wanted == pipe.tokenizer.convert_tokens_to_ids(["red", "circle", "right"])
    assert reader.unwanted == pipe.tokenizer.convert_tokens_to_ids(["left"])
    ids, _ = pipe._clean_text_stream([PROMPT])
    context = pipe._encode_prompts([PROMPT])
    x = torch.randn((1, *pipe.codec.latent_shape(4, 16, 16)), generator=torch.Generator().manual_seed(0))
    sigma = torch.tensor([0.7])
    g = reader.gradient(x, ids, sigma, context)
    assert g.shape == x.shape and g.pow(2).mean().sqrt().item() == pytest.approx(1.0, rel=1e-4)
    with torch.no_grad():
        score = lambda y: reader.score(y, ids, sigma, context).item()  # noqa: E731
        assert score(x - 1e-2 * g) < score(x) < score(x + 1e-2 * g)
    assert pipe._reader("zebra", seed=0) is None  # no word of the prompt in the vocabulary: nothing to steer by


def test_read_guidance_is_a_setting_of_the_saved_model(tmp_path):
    pipe = tiny_pipeline()
    assert pipe.config.read_guidance == 0.0  # off unless a model asks for it
    pipe.register_to_config(read_guidance=2.0)
    pipe.save_pretrained(tmp_path / "set")
    loaded = UniViGUPipeline.from_pretrained(tmp_path / "set")
    assert loaded.config.read_guidance == 2.0
    assert np.array_equal(loaded.generate(PROMPT, seed=1, num_inference_steps=3).frames,
                          pipe.generate(PROMPT, seed=1, num_inference_steps=3, read_guidance=2.0).frames)
    with pytest.raises(ValueError, match="read_guidance must be between 0 and"):
        UniViGUPipeline(**{**loaded.components, "read_guidance": -1.0})


def test_motion_noise_starts_from_noise_that_moves_the_way_every_object_goes(monkeypatch, tmp_path):
    pipe = tiny_pipeline()
    assert pipe.config.motion_noise == 0.0  # off unless a model asks for it
    pipe.register_to_config(take_judge="shapes", motion_noise_speed=2.0)
    starts = []
    original = pipeline_module.sample

    def recording(model_fn, *, video, **kwargs):
        starts.append(video.clone())
        return original(model_fn, video=video, **kwargs)

    monkeypatch.setattr(pipeline_module, "sample", recording)

    def start(prompt, model=pipe, **kwargs):
        model.generate(prompt, seed=3, num_inference_steps=2, **kwargs)
        return starts[-1]

    noise = torch.randn(start(PROMPT).shape, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(starts[-1], noise, rtol=0, atol=0)  # the seed's noise, as before
    # right, two cells a frame (the speed), half the variance moving; a second object going right too
    moving_right = moving_noise(noise, (0, 2.0), 0.5, _after_noise(noise.shape, 3))
    torch.testing.assert_close(start(PROMPT, motion_noise=0.5), moving_right)
    torch.testing.assert_close(start("a red circle moving right and a small blue square moving right",
                                     motion_noise=0.5), moving_right)
    torch.testing.assert_close(start("a red circle moving up", motion_noise=0.5),
                               moving_noise(noise, (-2.0, 0), 0.5, _after_noise(noise.shape, 3)))
    # objects going different ways, a still scene, a prompt without objects: the usual noise
    for prompt in ("a red circle moving right and a blue square staying still", "a red circle staying still",
                   "something shiny"):
        torch.testing.assert_close(start(prompt, motion_noise=0.5), noise, rtol=0, atol=0)
    pipe.register_to_config(take_judge="words")  # a judge without a grammar reads no motion
    torch.testing.assert_close(start(PROMPT, motion_noise=0.5), noise, rtol=0, atol=0)
    pipe.register_to_config(take_judge="shapes")

    # the model's own setting, kept when saved; joint generation starts from it too; edits do not
    before = pipe.edit(np.zeros((4, 16, 16, 3), np.uint8), PROMPT, seed=3, num_inference_steps=2).frames
    pipe.register_to_config(motion_noise=0.5)
    pipe.save_pretrained(tmp_path / "set")
    loaded = UniViGUPipeline.from_pretrained(tmp_path / "set")
    assert loaded.config.motion_noise == 0.5 and loaded.config.motion_noise_speed == 2.0
    torch.testing.assert_close(start(PROMPT, model=loaded), moving_right)
    assert np.array_equal(pipe.edit(np.zeros((4, 16, 16, 3), np.uint8), PROMPT, seed=3, num_inference_steps=2).frames,
                          before)
    pipe.generate_with_caption(PROMPT, seed=3, num_inference_steps=2)
    moving_joint = starts[-1]
    pipe.generate_with_caption(PROMPT, seed=3, num_inference_steps=2, motion_noise=0)
    assert not torch.allclose(moving_joint, starts[-1])
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError, match="motion_noise must be a share of the noise from 0 to 1"):
            pipe.generate(PROMPT, seed=3, motion_noise=bad)
        with pytest.raises(ValueError, match="motion_noise must be a share of the noise from 0 to 1"):
            UniViGUPipeline(**{**loaded.components, "motion_noise": bad})
    with pytest.raises(ValueError, match="motion_noise_speed must be more than 0"):
        UniViGUPipeline(**{**loaded.components, "motion_noise_speed": 0})


def test_renoise_draws_part_of_the_noise_afresh_as_the_starting_noise_moves(monkeypatch, tmp_path):
    pipe = tiny_pipeline()
    assert pipe.config.renoise == 0.0 and pipe.config.renoise_from == 0.7  # off unless a model asks for it
    plain = pipe.generate(PROMPT, seed=3, num_inference_steps=4)
    edit_before = pipe.edit(plain.frames, "a blue circle moving right", seed=3, num_inference_steps=4).frames
    pipe.register_to_config(take_judge="shapes", motion_noise=0.5, motion_noise_speed=2.0, renoise=0.5,
                            renoise_from=0.9)
    calls = []
    original = pipeline_module.sample

    def recording(model_fn, **kwargs):
        calls.append(kwargs)
        return original(model_fn, **kwargs)

    monkeypatch.setattr(pipeline_module, "sample", recording)
    noisy = pipe.generate(PROMPT, seed=3, num_inference_steps=4)
    renoise = calls[-1]["renoise"]
    assert (renoise.share, renoise.start) == (0.5, 0.9)
    assert np.array_equal(pipe.generate(PROMPT, seed=3, num_inference_steps=4).frames, noisy.frames)  # seeded
    pipe.register_to_config(renoise=0.0)
    steady = pipe.generate(PROMPT, seed=3, num_inference_steps=4).frames
    assert calls[-1]["renoise"] is None and not np.array_equal(steady, noisy.frames)
    pipe.register_to_config(renoise=0.5)
    # each fresh draw moves as the starting noise did: right, two cells a frame, half the variance
    generator = calls[-2]["generator"]
    twin = torch.Generator().manual_seed(0)
    twin.set_state(generator.get_state())
    shape = calls[-2]["video"].shape
    torch.testing.assert_close(renoise.draw(), moving_noise(torch.randn(shape, generator=twin), (0, 2.0), 0.5, twin))
    # a take judged half way and then finished is the clip its seed makes in one run
    best = pipe.generate(PROMPT, seed=3, num_inference_steps=4, best_of=2, judge_at=0.5, judge_steps=2)
    assert np.array_equal(pipe.generate(PROMPT, seed=best.seed, num_inference_steps=4).frames, best.frames)
    # joint generation too; edits never: they start from the clip
    pipe.generate_with_caption(PROMPT, seed=3, num_inference_steps=4)
    assert calls[-1]["renoise"] is not None
    assert np.array_equal(pipe.edit(plain.frames, "a blue circle moving right", seed=3, num_inference_steps=4).frames,
                          edit_before)
    # kept when saved, checked when loaded
    pipe.save_pretrained(tmp_path / "set")
    loaded = UniViGUPipeline.from_pretrained(tmp_path / "set")
    assert (loaded.config.renoise, loaded.config.renoise_from) == (0.5, 0.9)
    with pytest.raises(ValueError, match="renoise must be a share of the noise from 0 to 1"):
        UniViGUPipeline(**{**loaded.components, "renoise": 1.5})
    with pytest.raises(ValueError, match="renoise_from must be a noise level from 0 to 1"):
        UniViGUPipeline(**{**loaded.components, "renoise_from": -0.1})


MIXED = "a red circle moving right and a blue square moving up"


def test_objects_going_different_ways_get_moving_noise_along_the_paths_a_draft_shows(monkeypatch, tmp_path):
    pipe = tiny_pipeline()
    assert pipe.config.motion_noise_paths == 0.0 and pipe.config.motion_noise_draft == 6  # off unless asked for
    pipe.register_to_config(take_judge="shapes", motion_noise=0.5, motion_noise_paths=0.8, motion_noise_draft=2)
    starts, drafts = [], []
    original = pipeline_module.sample

    def recording(model_fn, *, video, **kwargs):
        starts.append(video.clone())
        return original(model_fn, video=video, **kwargs)

    places = [ObjectPlace("right", (4.0, 5.0), 3.0, "a red circle moving right", 0),
              ObjectPlace("up", (11.0, 10.0), 2.0, "a blue square moving up", 1)]

    def placing(judge, prompt, frames, fill=False):
        drafts.append((judge, prompt, frames, fill))
        return places

    monkeypatch.setattr(pipeline_module, "sample", recording)
    monkeypatch.setattr(object_paths, "object_places", placing)
    steps = []
    result = pipe.generate(MIXED, seed=3, num_inference_steps=4,
                           callback=lambda s: steps.append((s.index, s.num_steps)))

    # the draft: the run's first 2 steps from plain noise, its clean estimate then; progress counts the run's 4
    # (objects the draft does not show are placed too: fill)
    assert [(judge, prompt, fill) for judge, prompt, _, fill in drafts] == [("shapes", MIXED, True)]
    previews = []

    def stop_after_two(step):
        if step.index == 1:
            previews.append(step.preview())

    pipe.generate(MIXED, seed=3, num_inference_steps=4, motion_noise=0, callback=stop_after_two)
    assert np.array_equal(drafts[0][2], previews[0])
    assert steps == [(i, 4) for i in range(4)]
    # the run starts from the seed's noise with 0.8 of it moving along each path (one cell a frame)
    noise = starts[-1]  # the run without moving noise just made
    paths = [NoisePath((4.0, 5.0), (0.0, 1.0), 3.0), NoisePath((11.0, 10.0), (-1.0, 0.0), 2.0)]
    expected = path_noise(noise, paths, 0.8, _after_noise(noise.shape, 3))
    again = pipe.generate(MIXED, seed=3, num_inference_steps=4)
    torch.testing.assert_close(starts[-1], expected, rtol=0, atol=0)
    assert np.array_equal(again.frames, result.frames) and not torch.equal(expected, noise)

    # no draft when the noise does not move along paths: one way for all, moving noise off, paths off
    drafts.clear()
    pipe.generate(PROMPT, seed=3, num_inference_steps=4)
    pipe.generate(MIXED, seed=3, num_inference_steps=4, motion_noise=0)
    pipe.register_to_config(motion_noise_paths=0.0)
    pipe.generate(MIXED, seed=3, num_inference_steps=4)
    torch.testing.assert_close(starts[-1], noise, rtol=0, atol=0)
    assert drafts == []
    pipe.register_to_config(motion_noise_paths=0.8)

    # best of two takes judged half way: each take drafts once, and the chosen seed makes the clip again
    progress = []
    best = pipe.generate(MIXED, seed=3, num_inference_steps=4, best_of=2, judge_at=0.5,
                         callback=lambda s: progress.append((s.index, s.num_steps)))
    assert len(drafts) == 2
    assert progress == [(i, progress[0][1]) for i in range(progress[0][1])]  # one count, up by one, to its end
    assert np.array_equal(pipe.generate(MIXED, seed=best.seed, num_inference_steps=4).frames, best.frames)
    # joint generation drafts as a joint run; the setting is kept when saved and checked when loaded
    drafts.clear()
    pipe.generate_with_caption(MIXED, seed=3, num_inference_steps=4)
    assert len(drafts) == 1
    pipe.save_pretrained(tmp_path / "set")
    loaded = UniViGUPipeline.from_pretrained(tmp_path / "set")
    assert (loaded.config.motion_noise_paths, loaded.config.motion_noise_draft) == (0.8, 2)
    with pytest.raises(ValueError, match="motion_noise_paths must be a share of the noise from 0 to 1"):
        UniViGUPipeline(**{**loaded.components, "motion_noise_paths": 1.5})
    with pytest.raises(ValueError, match="motion_noise_draft must be a whole number"):
        UniViGUPipeline(**{**loaded.components, "motion_noise_draft": 0})


def test_objects_going_different_ways_are_each_guided_by_their_own_prompt_along_their_path(monkeypatch, tmp_path):
    pipe = tiny_pipeline()
    assert (pipe.config.object_guidance, pipe.config.object_guidance_to) == (0.0, OBJECT_GUIDANCE_TO)  # off
    pipe.register_to_config(take_judge="shapes", motion_noise=0.5, motion_noise_draft=2)  # no noise along paths
    places = [ObjectPlace("right", (4.0, 5.0), 3.0, "a red circle moving right", 0),
              ObjectPlace("up", (11.0, 10.0), 2.0, "a blue square moving up", 1)]
    drafts, starts, guided = [], [], []
    monkeypatch.setattr(object_paths, "object_places",
                        lambda judge, prompt, frames, fill=False: drafts.append(prompt) or places)
    original_sample, original_guide = pipeline_module.sample, ObjectGuidance.__call__

    def recording_sample(model_fn, *, video, **kwargs):
        starts.append(video.clone())
        return original_sample(model_fn, video=video, **kwargs)

    def recording_guide(self, net, x, sv, st, v_cond):
        out = original_guide(self, net, x, sv, st, v_cond)
        guided.append((float(sv[0]), self, out is not v_cond))
        return out

    monkeypatch.setattr(pipeline_module, "sample", recording_sample)
    monkeypatch.setattr(ObjectGuidance, "__call__", recording_guide)
    plain = pipe.generate(MIXED, seed=3, num_inference_steps=4)
    assert drafts == [] and guided == []

    pipe.register_to_config(object_guidance=0.8, object_guidance_to=0.7)
    result = pipe.generate(MIXED, seed=3, num_inference_steps=4)
    assert drafts == [MIXED]  # a draft places the paths though no noise moves along them
    torch.testing.assert_close(starts[-1], starts[0], rtol=0, atol=0)  # the same start: only guidance differs
    # every step of the run asks; those at or above σ 0.7 take each path's share from its object's prompt
    assert len(guided) == 4 and [acted for _, _, acted in guided] == [sigma >= 0.7 for sigma, _, _ in guided]
    assert guided[0][2] and not guided[-1][2]
    guide = guided[0][1]
    assert (guide.weight, guide.to) == (0.8, 0.7)
    torch.testing.assert_close(guide.context, pipe._encode_prompts([place.prompt for place in places]))
    paths = [NoisePath((4.0, 5.0), (0.0, 1.0), 3.0), NoisePath((11.0, 10.0), (-1.0, 0.0), 2.0)]
    assert torch.equal(guide.discs[:, 0], path_discs(paths, 4, 16, 16))
    assert not np.array_equal(result.frames, plain.frames)
    assert np.array_equal(pipe.generate(MIXED, seed=3, num_inference_steps=4).frames, result.frames)

    # a best-of take goes on with its own objects' guidance: the chosen seed makes the same clip again
    pipe.register_to_config(object_guidance_to=0.0)
    best = pipe.generate(MIXED, seed=3, num_inference_steps=4, best_of=2, judge_at=0.5)
    assert np.array_equal(pipe.generate(MIXED, seed=best.seed, num_inference_steps=4).frames, best.frames)
    # joint generation and a run without classifier-free guidance are guided too; one-way prompts are not
    for run in (lambda: pipe.generate_with_caption(MIXED, seed=3, num_inference_steps=4),
                lambda: pipe.generate(MIXED, seed=3, num_inference_steps=4, guidance_scale=1.0)):
        guided.clear()
        run()
        assert len(guided) == 4 and all(acted for _, _, acted in guided)
    guided.clear()
    pipe.generate(PROMPT, seed=3, num_inference_steps=4)
    pipe.generate(MIXED, seed=3, num_inference_steps=4, motion_noise=0)  # moving noise off: all of it
    assert guided == []
    # the settings are kept when saved and checked when loaded
    pipe.save_pretrained(tmp_path / "set")
    loaded = UniViGUPipeline.from_pretrained(tmp_path / "set")
    assert (loaded.config.object_guidance, loaded.config.object_guidance_to) == (0.8, 0.0)
    with pytest.raises(ValueError, match="object_guidance must be .* from 0 to 1"):
        UniViGUPipeline(**{**loaded.components, "object_guidance": 1.5})
    with pytest.raises(ValueError, match="object_guidance_to must be a noise level"):
        UniViGUPipeline(**{**loaded.components, "object_guidance_to": 1.0})
    assert loaded.config.object_guidance_every == 1  # the default: the objects' prompts at every guided step
    with pytest.raises(ValueError, match="object_guidance_every must be a whole number of steps from 1"):
        UniViGUPipeline(**{**loaded.components, "object_guidance_every": 0})


def test_an_edit_of_two_objects_guides_each_by_its_own_text_before_and_after_the_edit(monkeypatch):
    pipe = tiny_pipeline()
    pipe.register_to_config(take_judge="shapes")
    clip = pipe.generate(MIXED, seed=1, num_inference_steps=4).frames
    edited = "a red circle moving right and a blue square moving down"
    before = [ObjectPlace("right", (4.0, 5.0), 3.0, "a red circle moving right", 0),
              ObjectPlace("up", (11.0, 10.0), 2.0, "a blue square moving up", 1)]
    after = [before[0], ObjectPlace("down", (11.0, 10.0), 1.5, "a blue square moving down", 1)]
    asked, guided = [], []
    monkeypatch.setattr(object_paths, "edit_places",
                        lambda judge, source, prompt, frames: asked.append((judge, source, prompt, frames))
                        or list(zip(before, after)))
    original_guide = ObjectGuidance.__call__

    def recording_guide(self, net, x, sv, st, v_cond):
        out = original_guide(self, net, x, sv, st, v_cond)
        guided.append((float(sv[0]), self, x, out is not v_cond))
        return out

    monkeypatch.setattr(ObjectGuidance, "__call__", recording_guide)
    plain = pipe.edit(clip, edited, source_prompt=MIXED, seed=2, num_inference_steps=4)
    assert asked == [] and guided == []  # off unless the model sets object_guidance

    pipe.register_to_config(object_guidance=0.8, object_guidance_to=0.7)
    result = pipe.edit(clip, edited, source_prompt=MIXED, seed=2, num_inference_steps=4)
    assert [(judge, source, prompt) for judge, source, prompt, _ in asked] == [("shapes", MIXED, edited)]
    assert np.array_equal(asked[0][3], clip)  # placed in the clip being edited
    # each step guides the source text's flow by the objects' texts before the edit, then the edited text's
    # by theirs after it; at the steps at or above σ 0.7 only
    sigmas = inference_sigmas(pipe.scheduler, 4, pipe.default_flow_edit_strength)[:-1].tolist()
    assert [sigma for sigma, *_ in guided] == pytest.approx([s for s in sigmas for _ in range(2)])
    assert [acted for *_, acted in guided] == [s >= 0.7 for s in sigmas for _ in range(2)]
    old, new = guided[0][1], guided[1][1]
    assert all(g is old for _, g, *_ in guided[::2]) and all(g is new for _, g, *_ in guided[1::2])
    assert not torch.equal(guided[0][2], guided[1][2])  # the source's noised clip, then the edit's
    torch.testing.assert_close(old.context, pipe._encode_prompts([place.prompt for place in before]))
    torch.testing.assert_close(new.context, pipe._encode_prompts([place.prompt for place in after]))
    assert (old.weight, old.to, new.weight, new.to) == (0.8, 0.7, 0.8, 0.7)
    # the source's paths as the clip shows them; the edited object's from the same start, its own way
    paths = [NoisePath((4.0, 5.0), (0.0, 1.0), 3.0), NoisePath((11.0, 10.0), (-1.0, 0.0), 2.0)]
    assert torch.equal(old.discs[:, 0], path_discs(paths, 4, 16, 16))
    assert torch.equal(new.discs[:, 0], path_discs([paths[0], NoisePath((14.0, 10.0), (1.0, 0.0), 1.5)], 4, 16, 16))
    assert not np.array_equal(result.frames, plain.frames)
    assert np.array_equal(pipe.edit(clip, edited, source_prompt=MIXED, seed=2, num_inference_steps=4).frames,
                          result.frames)
    # the plain edit (no text before the edit), and texts without two objects to place, are not guided
    guided.clear()
    pipe.edit(clip, edited, seed=2, num_inference_steps=4)
    monkeypatch.setattr(object_paths, "edit_places", lambda judge, source, prompt, frames: [])
    pipe.edit(clip, edited, source_prompt=MIXED, seed=2, num_inference_steps=4)
    assert guided == []


def _after_noise(shape, seed: int) -> torch.Generator:
    """A generator seeded ``seed`` that has drawn the starting noise of ``shape``, as generate's has."""
    generator = torch.Generator().manual_seed(seed)
    torch.randn(shape, generator=generator)
    return generator


def test_count_tokens_is_what_the_prompt_limit_counts(pipe):
    """The studio's token counter uses count_tokens: the text it counts as max_text_tokens runs,
    one token more is refused, whatever the spacing and punctuation."""
    limit = pipe.max_text_tokens
    fits = " ".join(["red"] * (limit - 1)) + "."  # a word token per word, one for the full stop
    assert pipe.count_tokens(fits) == pipe.count_tokens("  " + fits.replace(" ", "   \n")) == limit
    pipe.generate(fits, num_inference_steps=1, seed=0)
    longer = "red " + fits
    assert pipe.count_tokens(longer) == limit + 1
    with pytest.raises(ValueError, match=f"{limit + 1} tokens long"):
        pipe.generate(longer, num_inference_steps=1, seed=0)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda p: p.generate("", seed=0), "empty"),
        (lambda p: p.generate("   ", seed=0), "empty"),
        (lambda p: p.generate(" ".join(["red"] * 60), seed=0), "tokens long"),
        (lambda p: p.generate(" ".join(["red"] * 48), seed=0), "at most 47"),
        (lambda p: p.generate(PROMPT, seed=-1), "seed"),
        (lambda p: p.generate(PROMPT, num_inference_steps=0), "num_inference_steps"),
        (lambda p: p.generate(PROMPT, guidance_scale=100.0), "guidance_scale"),
        (lambda p: p.generate(PROMPT, height=15), "height"),
        (lambda p: p.generate(PROMPT, num_frames=3), "num_frames"),
        (lambda p: p.generate(PROMPT, best_of=0), "best_of must be a whole number of takes from 1 to 16"),
        (lambda p: p.generate(PROMPT, best_of=17), "best_of"),
        (lambda p: p.generate(PROMPT, best_of=2.0), "best_of"),
        (lambda p: p.generate(PROMPT, best_of=True), "best_of"),
        (lambda p: p.generate(PROMPT, best_of=2, judge="vibes"), "take_judge must be one of"),
        (lambda p: p.generate(PROMPT, best_of=2, judge_at=0), r"judge_at must be in \(0, 1\]"),
        (lambda p: p.generate(PROMPT, best_of=2, judge_at=1.5), "judge_at"),
        (lambda p: p.generate(PROMPT, best_of=2, judge_at=True), "judge_at"),
        (lambda p: p.generate(PROMPT, best_of=2, judge_steps=-1), "judge_steps must be a whole number"),
        (lambda p: p.generate(PROMPT, best_of=2, judge_steps=2.5), "judge_steps"),
        (lambda p: p.generate("", best_of=2), "empty"),
        (lambda p: p.generate(PROMPT, read_guidance=-1.0), "read_guidance must be between 0 and"),
        (lambda p: p.generate(PROMPT, read_guidance="hard"), "read_guidance"),
        (lambda p: p.edit(np.zeros((4, 16, 16, 3), np.uint8), PROMPT, strength=0.0), "strength"),
        (lambda p: p.edit(np.zeros((4, 16, 16, 3), np.uint8), PROMPT, source_prompt=PROMPT, strength=1.5), "strength"),
        (lambda p: p.edit(np.zeros((4, 16, 16, 3), np.uint8), PROMPT, source_prompt="  "), "source_prompt is empty"),
        (lambda p: p.edit(np.zeros((4, 16, 16, 3), np.uint8), PROMPT, source_prompt=3), "source_prompt must be text"),
        (lambda p: p.edit(np.zeros((4, 16, 16, 3), np.uint8), PROMPT, source_prompt=PROMPT, guidance_scale=99.0),
         "guidance_scale"),
        (lambda p: p.caption(np.zeros((4, 16, 16), np.uint8)), "uint8 frames"),
        (lambda p: p.caption(np.zeros((4, 16, 16, 3), np.float32)), "uint8 frames"),
        (lambda p: p.caption(12), "video file path"),
        (lambda p: p.caption(np.zeros((4, 16, 16, 3), np.uint8), temperature=-0.5), "temperature"),
        (lambda p: p.caption(np.zeros((4, 16, 16, 3), np.uint8), temperature="low"), "temperature"),
        (lambda p: p.caption(np.zeros((4, 16, 16, 3), np.uint8), reread=-1), "reread"),
        (lambda p: p.caption(np.zeros((4, 16, 16, 3), np.uint8), reread=1.5), "reread"),
        (lambda p: p.caption(np.zeros((4, 16, 16, 3), np.uint8), reread=True), "reread"),
        (lambda p: p.caption(np.zeros((4, 16, 16, 3), np.uint8), reread=99), "reread"),
        (lambda p: p.caption(np.zeros((4, 16, 16, 3), np.uint8), reread_threshold=1.5), "reread_threshold"),
        (lambda p: p.caption(np.zeros((4, 16, 16, 3), np.uint8), reread_threshold=-0.1), "reread_threshold"),
        (lambda p: p.caption(np.zeros((4, 16, 16, 3), np.uint8), reread_threshold=True), "reread_threshold"),
        (lambda p: p.caption(np.zeros((4, 16, 16, 3), np.uint8), reread_threshold="high"), "reread_threshold"),
        (lambda p: p.caption(np.zeros((4, 16, 16, 3), np.uint8), reread_period=1), "reread_period"),
        (lambda p: p.caption(np.zeros((4, 16, 16, 3), np.uint8), reread_period=4.0), "reread_period"),
        (lambda p: p.caption(np.zeros((4, 16, 16, 3), np.uint8), reread_period=99), "reread_period"),
        (lambda p: p.caption(np.zeros((4, 16, 16, 3), np.uint8), verify_weight=-1.0), "verify_weight"),
        (lambda p: p.caption(np.zeros((4, 16, 16, 3), np.uint8), verify_weight="high"), "verify_weight"),
        (lambda p: p.caption("no/such/clip.mp4"), "clip.mp4"),
        (lambda p: p.caption(np.zeros((4, 16, 16, 3), np.uint8), verify_max_texts=1), "verify_max_texts"),
        (lambda p: p.caption(np.zeros((4, 16, 16, 3), np.uint8), verify_max_texts=65), "verify_max_texts"),
        (lambda p: p.caption(np.zeros((4, 16, 16, 3), np.uint8), verify_max_texts=2.5), "verify_max_texts"),
        (lambda p: p.caption(np.zeros((4, 16, 16, 3), np.uint8), verify_draws=0), "verify_draws"),
        (lambda p: p.caption(np.zeros((4, 16, 16, 3), np.uint8), verify_draws=9), "verify_draws"),
    ],
)
def test_bad_inputs_raise_clear_errors(pipe, call, message):
    with pytest.raises(ValueError, match=message):
        call(pipe)


@pytest.mark.parametrize("preset", ["tiny", "tiny-latent"])
def test_a_trained_tiny_model_reproduces_its_clip_and_caption(preset):
    """The whole loop: a few hundred CPU steps on one (clip, caption) pair — for a learned codec,
    the codec first — then the pipeline's own caption() reads the caption back and generate()
    draws the clip."""
    pipe = build_pipeline(preset, shapes_vocabulary(), seed=0)  # as training starts: output heads at zero
    example = make_example(3, ShapesConfig(size=16, num_frames=4))
    frames = torch.from_numpy(example.frames)[None].repeat(8, 1, 1, 1, 1)
    if preset == "tiny-latent":  # stage 0: the codec learns to reconstruct the clip, then is frozen
        codec_optimizer = torch.optim.AdamW(pipe.codec.parameters(), lr=1e-2)
        pixels = frames[:1].permute(0, 4, 1, 2, 3).float() / 127.5 - 1.0
        for _ in range(200):
            codec_optimizer.zero_grad()
            reconstruction_loss(pipe.codec(pixels), pixels).mean().backward()
            codec_optimizer.step()
        pipe.codec.requires_grad_(False)
    config = ObjectiveConfig(stage="refine", prompt_dropout=0.0)
    params = list(pipe.transformer.parameters()) + list(pipe.text_encoder.parameters())
    optimizer = torch.optim.AdamW(params, lr=3e-3)
    pipe.transformer.train(), pipe.text_encoder.train()
    generator = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(300):
        out = compute_loss(
            transformer=pipe.transformer, text_encoder=pipe.text_encoder, tokenizer=pipe.tokenizer,
            codec=pipe.codec, frames=frames, prompts=[example.caption] * 8, captions=[example.caption] * 8,
            config=config, text_flow=pipe.text_flow, max_text_len=pipe.config.max_text_len,
            max_prompt_len=pipe.config.max_prompt_len, generator=generator,
        )
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
        losses.append((out.video_loss, out.text_loss))
    pipe.transformer.eval(), pipe.text_encoder.eval()

    assert pipe.caption(example.frames, seed=0, num_inference_steps=8).text == example.caption
    generated = pipe.generate(example.caption, seed=0, num_inference_steps=8, guidance_scale=1.0).frames
    error = np.abs(generated.astype(float) - example.frames.astype(float)).mean() / 255
    noise_level = np.abs(np.random.default_rng(0).integers(0, 256, example.frames.shape) - example.frames.astype(float)).mean() / 255
    assert error < 0.1 * noise_level, (error, noise_level)


def test_a_saved_pipeline_loads_in_a_fresh_interpreter(pipe, tmp_path):
    # Within this test process every component module is already imported; a new process shows
    # that from_pretrained alone finds the component classes.
    import subprocess
    import sys

    pipe.save_pretrained(tmp_path)
    code = (
        "import sys; from uvigu import UniViGUPipeline; "
        "p = UniViGUPipeline.from_pretrained(sys.argv[1]); "
        "print(p.generate('a red circle moving right', seed=0).frames.shape)"
    )
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "(4, 16, 16, 3)" in done.stdout


def test_a_detailed_caption_longer_than_the_prompt_encoder_works_as_a_prompt(pipe):
    # The studio's edit loop feeds whole two-object captions back as prompts: up to ~33 tokens, more
    # than the prompt encoder's 32; the text stream holds all of them.
    caption = ("a large orange triangle moves quickly to the left from the top right, while a small "
               "purple diamond moves slowly to the right from the bottom left on a white background.")
    assert pipe.config.max_prompt_len < len(pipe.tokenizer(caption, add_special_tokens=False)["input_ids"])
    assert pipe.edit(pipe.generate(PROMPT, seed=0).frames, caption, seed=0).frames.shape == (4, 16, 16, 3)


def test_a_caption_is_checked_against_the_grammar_the_model_declares():
    pipe = tiny_pipeline()  # its take_judge is "shapes": it writes the Shapes grammar
    assert pipe.follows_grammar("a large red circle moves quickly to the right from the left on a gray background.")
    assert pipe.follows_grammar("a large red square stays still near the gray on, gray gray gray gray") is False
    pipe.register_to_config(take_judge="words")  # a model that declares no grammar
    assert pipe.follows_grammar("a small background") is None


def test_a_high_noise_expert_makes_the_calls_at_and_above_its_boundary_and_no_others():
    import copy

    pipe, expert = tiny_pipeline(seed=0), tiny_pipeline(seed=1)
    twin = copy.deepcopy(pipe)  # before its calls are recorded: its own weights, the same values
    calls = {"pipe": [], "expert": []}

    def record(name, net):
        forward = net.forward

        def recorded(x, ids, sv, *args, **kwargs):
            calls[name].append(float(sv[0]))
            return forward(x, ids, sv, *args, **kwargs)
        net.forward = recorded

    record("pipe", pipe.transformer)
    record("expert", expert.transformer)
    plain = pipe.generate(PROMPT, seed=3, num_inference_steps=6).frames
    calls["pipe"].clear()
    pipe.use_high_noise_expert(expert, boundary=0.9)
    mixed = pipe.generate(PROMPT, seed=3, num_inference_steps=6).frames
    assert calls["expert"] and min(calls["expert"]) >= 0.9 and max(calls["pipe"]) < 0.9
    assert not np.array_equal(mixed, plain)
    # one call can leave it out: the model alone, as before it was attached; it stays attached
    calls["expert"].clear()
    assert np.array_equal(pipe.generate(PROMPT, seed=3, num_inference_steps=6, high_noise_expert=False).frames, plain)
    joint = pipe.generate_with_caption(PROMPT, seed=3, num_inference_steps=6, high_noise_expert=False)
    pipe.edit(plain, PROMPT, strength=1.0, seed=3, num_inference_steps=6, high_noise_expert=False)
    assert not calls["expert"] and pipe.high_noise_expert == (expert, 0.9)
    assert not np.array_equal(pipe.generate_with_caption(PROMPT, seed=3, num_inference_steps=6).frames, joint.frames)
    pipe.edit(plain, PROMPT, strength=1.0, seed=3, num_inference_steps=6)
    assert calls["expert"]  # a plain edit from σ 1 goes through it
    # captions are this model's alone; an expert of the same weights changes nothing; None removes it
    calls["expert"].clear()
    pipe.caption(mixed, seed=0)
    assert not calls["expert"]
    pipe.use_high_noise_expert(twin, boundary=0.9)
    assert np.array_equal(pipe.generate(PROMPT, seed=3, num_inference_steps=6).frames, plain)
    pipe.use_high_noise_expert(None)
    assert np.array_equal(pipe.generate(PROMPT, seed=3, num_inference_steps=6).frames, plain)
    # an expert it cannot use is refused
    with pytest.raises(ValueError, match="noise level in"):
        pipe.use_high_noise_expert(expert, boundary=1.5)
    other_words = build_pipeline("tiny", shapes_vocabulary() + ["teal"], seed=0)
    with pytest.raises(ValueError, match="same words"):
        pipe.use_high_noise_expert(other_words)
    # an expert left behind when the model is cast says so at the first call it would make
    pipe.use_high_noise_expert(expert, boundary=0.9)
    pipe.transformer.to(torch.bfloat16)
    with pytest.raises(ValueError, match="move it alike"):
        pipe.generate(PROMPT, seed=3, num_inference_steps=2)
    pipe.transformer.to(torch.float32)
