import numpy as np
import pytest
import torch

from uvigu.data.shapes import ShapesConfig, make_example, reversed_prompt, shapes_vocabulary
from uvigu.models.presets import build_pipeline
from uvigu.models.prompt_encoder import encode_prompt
from uvigu.models.tokenizer import encode_text
from uvigu.training.config import get_train_preset
from uvigu.flows import velocity_target
from uvigu.training.objective import ObjectiveConfig, compute_loss, swap_words, video_loss_weights


def test_swap_words_changes_only_kept_words_of_the_chosen_rows_into_batch_words():
    g = torch.Generator().manual_seed(0)
    clean = torch.randint(10, 60, (6, 20), generator=g)
    valid = torch.ones(6, 20, dtype=torch.bool)
    valid[:, 15:] = False  # padding
    noisy = clean.clone()
    noisy[:, ::3] = 500 + torch.arange(7)  # words the path already replaced by source draws
    rows = torch.tensor([True, True, True, True, False, False])

    assert torch.equal(swap_words(noisy, clean, valid, rows, 0.0, g), noisy)
    out = swap_words(noisy, clean, valid, rows, 1.0, g)
    eligible = (noisy == clean) & valid & rows[:, None]
    assert torch.equal(out[~eligible], noisy[~eligible])  # source draws, padding and other rows kept
    pool = set(clean[valid].tolist())
    assert set(out[eligible].tolist()) <= pool  # every swapped word is a word of the batch's texts
    assert (out[eligible] != clean[eligible]).float().mean() > 0.8  # and mostly a different one


def test_swap_words_swaps_about_the_asked_share():
    g = torch.Generator().manual_seed(1)
    clean = torch.arange(200 * 50).reshape(200, 50)  # all words distinct: a swap always changes the word
    valid = torch.ones_like(clean, dtype=torch.bool)
    out = swap_words(clean.clone(), clean, valid, torch.ones(200, dtype=torch.bool), 0.25, g)
    assert (out != clean).float().mean().item() == pytest.approx(0.25, abs=0.02)


@pytest.mark.parametrize("value", [-0.1, 1.5])
def test_text_swap_must_be_a_probability(value):
    with pytest.raises(ValueError, match="text_swap"):
        ObjectiveConfig(text_swap=value)


def _loss(pipe, example, tasks, text_swap):
    frames = torch.from_numpy(example.frames)[None].repeat(4, 1, 1, 1, 1)
    return compute_loss(
        transformer=pipe.transformer, text_encoder=pipe.text_encoder, tokenizer=pipe.tokenizer, codec=pipe.codec,
        frames=frames, prompts=[example.prompt] * 4, captions=[example.caption] * 4,
        config=ObjectiveConfig(stage="refine", text_swap=text_swap), text_flow=pipe.text_flow,
        max_text_len=pipe.config.max_text_len, max_prompt_len=pipe.config.max_prompt_len,
        generator=torch.Generator().manual_seed(0), tasks=tasks,
    )


def test_text_swap_touches_the_noisy_text_of_caption_examples_only():
    torch.manual_seed(0)
    pipe = build_pipeline("tiny", shapes_vocabulary(), seed=0)
    with torch.no_grad():  # output heads start at zero: give the text head something to say
        for p in pipe.transformer.parameters():
            p.add_(0.05 * torch.randn_like(p))
    example = make_example(3, ShapesConfig(size=16, num_frames=4))
    # generate examples keep their condition text clean: the swap must leave their loss alone
    plain, swapped = (_loss(pipe, example, ["generate"] * 4, s) for s in (0.0, 1.0))
    assert swapped.video_loss == plain.video_loss
    # caption examples see the swapped words, so their text loss moves
    plain, swapped = (_loss(pipe, example, ["caption"] * 4, s) for s in (0.0, 1.0))
    assert swapped.text_loss != plain.text_loss


@pytest.mark.parametrize("value", [-0.1, 1.5])
def test_reverse_twins_must_be_a_probability(value):
    with pytest.raises(ValueError, match="reverse_twins"):
        ObjectiveConfig(reverse_twins=value)


def _recorded_loss(pipe, frames, prompts, tasks, reverse_twins, stage="recall", **objective):
    """compute_loss with the transformer's inputs recorded (``objective``: more ObjectiveConfig fields)."""
    seen = {}
    forward = pipe.transformer.forward

    def recording(x_t, text_t, sigma_v, sigma_t, context, text_mask):
        seen.update(x_t=x_t, text_t=text_t, sigma_v=sigma_v, sigma_t=sigma_t, context=context, text_mask=text_mask)
        return forward(x_t, text_t, sigma_v, sigma_t, context, text_mask)

    pipe.transformer.forward = recording
    try:
        out = compute_loss(
            transformer=pipe.transformer, text_encoder=pipe.text_encoder, tokenizer=pipe.tokenizer,
            codec=pipe.codec, frames=frames, prompts=prompts, captions=[p + "." for p in prompts],
            config=ObjectiveConfig(stage=stage, reverse_twins=reverse_twins, prompt_dropout=0.0, **objective),
            text_flow=pipe.text_flow, max_text_len=pipe.config.max_text_len,
            max_prompt_len=pipe.config.max_prompt_len, generator=torch.Generator().manual_seed(0), tasks=tasks,
        )
    finally:
        del pipe.transformer.forward
    return out, seen


def test_reverse_twins_add_each_generate_clip_backwards_with_its_prompt_turned_round_on_the_same_noise():
    torch.manual_seed(0)
    pipe = build_pipeline("tiny", shapes_vocabulary(), seed=0)
    config = ShapesConfig(size=16, num_frames=4)
    examples = [make_example(s, config) for s in range(40)]
    moving = [e for e in examples if reversed_prompt(e.prompt) is not None][:2]
    still = [e for e in examples if reversed_prompt(e.prompt) is None][:1]
    batch = moving + still + moving[:1]
    frames = torch.from_numpy(np.stack([e.frames for e in batch]))
    prompts = [e.prompt for e in batch]
    tasks = ["generate", "generate", "generate", "caption"]
    _, seen = _recorded_loss(pipe, frames, prompts, tasks, reverse_twins=1.0)

    # the two moving generate examples get twins; the still one and the caption example do not
    assert seen["x_t"].shape[0] == 6
    for twin, original in ((4, 0), (5, 1)):
        sigma = seen["sigma_v"][original]
        assert seen["sigma_v"][twin] == sigma > 0 and seen["sigma_t"][twin] == 0
        clean = pipe.codec.encode(frames[original : original + 1])[0]
        clean_back = pipe.codec.encode(frames[original : original + 1].flip(1))[0]
        noise = (seen["x_t"][original] - (1 - sigma) * clean) / sigma
        noise_back = (seen["x_t"][twin] - (1 - sigma) * clean_back) / sigma
        torch.testing.assert_close(noise_back, noise, atol=1e-4, rtol=0)
        ids, valid = encode_text(pipe.tokenizer, [reversed_prompt(prompts[original])], pipe.config.max_text_len)
        assert torch.equal(seen["text_t"][twin][valid[0]], ids[0][valid[0]])
        # the condition is the turned-round prompt too
        expected = encode_prompt(pipe.text_encoder, pipe.tokenizer, [reversed_prompt(prompts[original])],
                                 pipe.config.max_prompt_len, "cpu")
        torch.testing.assert_close(seen["context"][twin], expected[0])


def test_without_twins_the_loss_is_what_it_was():
    torch.manual_seed(0)
    pipe = build_pipeline("tiny", shapes_vocabulary(), seed=0)
    config = ShapesConfig(size=16, num_frames=4)
    still = [e for e in (make_example(s, config) for s in range(40)) if reversed_prompt(e.prompt) is None][:3]
    frames = torch.from_numpy(np.stack([e.frames for e in still]))
    prompts = [e.prompt for e in still]
    tasks = ["generate", "caption", "joint"]
    off, seen_off = _recorded_loss(pipe, frames, prompts, tasks, reverse_twins=0.0)
    on, seen_on = _recorded_loss(pipe, frames, prompts, tasks, reverse_twins=1.0)  # nothing moves: no twin
    assert on.loss.item() == off.loss.item()
    assert all(torch.equal(seen_on[k], seen_off[k]) for k in seen_off)


def test_reverse_twins_need_the_shapes_world(tmp_path):
    with pytest.raises(ValueError, match="reverse_twins needs the Shapes world"):
        get_train_preset("tiny", data=str(tmp_path), reverse_twins=0.5)
    assert get_train_preset("tiny", reverse_twins=0.5).objective("refine").reverse_twins == 0.5


@pytest.mark.parametrize("value", [-0.1, 1.0])
def test_video_sigma_min_must_be_below_one(value):
    with pytest.raises(ValueError, match="video_sigma_min"):
        ObjectiveConfig(video_sigma_min=value)


def _tiny_batch(n):
    """A tiny model and the first ``n`` clips of its Shapes world with their prompts."""
    torch.manual_seed(0)
    pipe = build_pipeline("tiny", shapes_vocabulary(), seed=0)
    examples = [make_example(s, ShapesConfig(size=16, num_frames=4)) for s in range(n)]
    return pipe, torch.from_numpy(np.stack([e.frames for e in examples])), [e.prompt for e in examples]


def test_video_sigma_min_maps_the_video_noise_levels_into_its_range():
    pipe, frames, prompts = _tiny_batch(12)
    tasks = ["generate", "caption", "joint"] * 4
    _, full = _recorded_loss(pipe, frames, prompts, tasks, reverse_twins=0.0)
    _, high = _recorded_loss(pipe, frames, prompts, tasks, reverse_twins=0.0, video_sigma_min=0.8)
    noisy = torch.tensor([t != "caption" for t in tasks])
    # the same draws, mapped into [0.8, 1): every noisy video above 0.8, the clean ones still clean
    torch.testing.assert_close(high["sigma_v"][noisy], 0.8 + 0.2 * full["sigma_v"][noisy])
    assert bool((high["sigma_v"][noisy] >= 0.8).all()) and bool((high["sigma_v"][~noisy] == 0).all())
    # joint examples noise their text at the video's level, as at inference
    joint = torch.tensor([t == "joint" for t in tasks])
    assert torch.equal(high["sigma_t"][joint], high["sigma_v"][joint])
    # and the noise itself is the same: only the level moved
    clean = pipe.codec.encode(frames)
    for seen in (full, high):
        sigma = seen["sigma_v"][noisy].view(-1, 1, 1, 1, 1)
        seen["noise"] = (seen["x_t"][noisy] - (1 - sigma) * clean[noisy]) / sigma
    torch.testing.assert_close(high["noise"], full["noise"], atol=1e-4, rtol=0)


def test_a_share_of_the_examples_is_mapped_to_the_top_the_rest_keep_their_levels():
    pipe, frames, prompts = _tiny_batch(24)
    tasks = ["generate"] * 24
    _, full = _recorded_loss(pipe, frames, prompts, tasks, reverse_twins=0.0)
    _, all_top = _recorded_loss(pipe, frames, prompts, tasks, reverse_twins=0.0, video_sigma_min=0.99)
    _, half = _recorded_loss(pipe, frames, prompts, tasks, reverse_twins=0.0, video_sigma_min=0.99,
                             video_sigma_min_share=0.5)
    mapped = half["sigma_v"] >= 0.99
    assert 0 < int(mapped.sum()) < 24  # some of each
    # a mapped example takes the level the whole-batch mapping gives it, the others their usual one
    torch.testing.assert_close(half["sigma_v"][mapped], all_top["sigma_v"][mapped])
    torch.testing.assert_close(half["sigma_v"][~mapped], full["sigma_v"][~mapped])
    assert bool((full["sigma_v"][~mapped] < 0.99).all())
    # share 1 is the whole-batch mapping, draw for draw
    _, one = _recorded_loss(pipe, frames, prompts, tasks, reverse_twins=0.0, video_sigma_min=0.99,
                            video_sigma_min_share=1.0)
    assert torch.equal(one["x_t"], all_top["x_t"])
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError, match="video_sigma_min_share"):
            ObjectiveConfig(video_sigma_min_share=bad)


def test_video_loss_weights_cap_the_clean_clip_error_weight():
    sigma = torch.tensor([0.05, 0.1, 0.25, 0.5, 0.7, 1.0])
    assert torch.equal(video_loss_weights(sigma, 0.0), torch.ones(6))
    weights = video_loss_weights(sigma, 4.0)
    torch.testing.assert_close(weights, torch.tensor([0.01, 0.04, 0.25, 1.0, 1.0, 1.0]))
    # the clean-clip error's weight, 1/σ² times this, is min(1/σ², 4)
    torch.testing.assert_close(weights / sigma**2, torch.minimum(1 / sigma**2, torch.tensor(4.0)))
    with pytest.raises(ValueError, match="video_loss_cap"):
        ObjectiveConfig(video_loss_cap=-1.0)
    with pytest.raises(ValueError, match="video_sigma_shift"):
        get_train_preset("tiny", video_sigma_shift=0.0)


def test_text_loss_weight_scales_the_text_term_only():
    pipe, frames, prompts = _tiny_batch(8)
    tasks = ["generate", "joint", "caption", "generate"] * 2
    one, seen = _recorded_loss(pipe, frames, prompts, tasks, reverse_twins=0.0)
    tenth, seen_tenth = _recorded_loss(pipe, frames, prompts, tasks, reverse_twins=0.0, text_loss_weight=0.1)
    assert all(torch.equal(seen[k], seen_tenth[k]) for k in seen)  # the same draws
    assert tenth.video_loss == one.video_loss and tenth.text_loss == one.text_loss > 0  # logged as is
    video_term = one.loss.detach() - one.text_loss
    torch.testing.assert_close(tenth.loss.detach(), video_term + 0.1 * one.text_loss, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="text_loss_weight"):
        ObjectiveConfig(text_loss_weight=-1.0)


def test_video_loss_cap_reweighs_the_video_examples_and_logs_the_plain_mse():
    pipe, frames, prompts = _tiny_batch(8)
    tasks = ["generate", "joint", "caption", "generate"] * 2
    plain, seen = _recorded_loss(pipe, frames, prompts, tasks, reverse_twins=0.0)
    capped, seen_capped = _recorded_loss(pipe, frames, prompts, tasks, reverse_twins=0.0, video_loss_cap=4.0)
    assert all(torch.equal(seen[k], seen_capped[k]) for k in seen)  # the same draws
    assert capped.video_loss == plain.video_loss and capped.text_loss == plain.text_loss  # logged as is

    # the loss is the text term plus the per-example MSE of the noisy videos weighed min(1, 4σ²)
    noisy = torch.tensor([t != "caption" for t in tasks])
    sigma = seen["sigma_v"][noisy]
    assert bool((sigma < 0.5).any()) and bool((sigma > 0.5).any())  # both sides of the cap in the batch
    clean = pipe.codec.encode(frames)[noisy]
    noise = (seen["x_t"][noisy] - (1 - sigma.view(-1, 1, 1, 1, 1)) * clean) / sigma.view(-1, 1, 1, 1, 1)
    with torch.no_grad():
        v_pred = pipe.transformer(seen["x_t"], seen["text_t"], seen["sigma_v"], seen["sigma_t"], seen["context"],
                                  seen["text_mask"]).video_velocity[noisy]
    mse = ((v_pred - velocity_target(clean, noise)) ** 2).flatten(1).mean(1)
    torch.testing.assert_close(torch.tensor(plain.video_loss), mse.mean(), rtol=1e-4, atol=0)
    # without a cap the loss is the logged video MSE plus the text term, exactly
    assert plain.loss.item() == (torch.tensor(plain.video_loss) + torch.tensor(plain.text_loss)).item()
    expected = (mse * (4.0 * sigma**2).clamp(max=1.0)).mean() + capped.text_loss
    torch.testing.assert_close(capped.loss.detach(), expected, rtol=1e-4, atol=0)
    assert capped.loss.item() < plain.loss.item()  # low noise levels count for less


def test_an_anchor_holds_the_levels_below_the_top_to_its_own_prediction():
    import copy

    pipe, frames, prompts = _tiny_batch(12)
    tasks = ["generate"] * 12

    def loss(**kwargs):
        return compute_loss(
            transformer=pipe.transformer, text_encoder=pipe.text_encoder, tokenizer=pipe.tokenizer, codec=pipe.codec,
            frames=frames, prompts=prompts, captions=[p + "." for p in prompts],
            config=ObjectiveConfig(prompt_dropout=0.0, video_sigma_min=0.99, video_sigma_min_share=kwargs.pop("share"),
                                   video_anchor="anchor" in kwargs),
            text_flow=pipe.text_flow, max_text_len=pipe.config.max_text_len, max_prompt_len=pipe.config.max_prompt_len,
            generator=torch.Generator().manual_seed(0), tasks=tasks, **kwargs,
        )

    same = (copy.deepcopy(pipe.transformer), copy.deepcopy(pipe.text_encoder))
    # every example below the top, the anchor the model itself: nothing to learn
    held = loss(share=0.0, anchor=same)
    assert held.video_loss == 0.0
    pipe.transformer.zero_grad()
    held.loss.backward()
    assert all(p.grad is None or not p.grad.any() for p in pipe.transformer.parameters())
    # without the anchor the same examples learn the data
    assert loss(share=0.0).video_loss > 0.01
    # some at the top: those learn the data, the rest the anchor, so the loss is the data's on the top ones alone
    half, plain = loss(share=0.5, anchor=same), loss(share=0.5)
    assert 0.0 < half.video_loss < plain.video_loss
    # another model as the anchor: the lower levels learn its velocity, which is not the data's
    other = copy.deepcopy(same)
    with torch.no_grad():
        for p in other[0].parameters():
            p.add_(0.05 * torch.randn_like(p))
    moved = loss(share=0.0, anchor=other).video_loss
    assert 0.0 < moved and moved != pytest.approx(loss(share=0.0).video_loss, rel=0.01)
    # the trainer's config asks for what the anchor needs
    from uvigu.training.config import get_train_preset

    with pytest.raises(ValueError, match="video_anchor"):
        get_train_preset("tiny", video_anchor=True, video_sigma_min=0.99)  # no model to hold to
    with pytest.raises(ValueError, match="video_anchor"):
        get_train_preset("tiny", video_anchor=True, init_from="x")  # no top to fine-tune
    with pytest.raises(ValueError, match="pass anchor="):
        compute_loss(transformer=pipe.transformer, text_encoder=pipe.text_encoder, tokenizer=pipe.tokenizer,
                     codec=pipe.codec, frames=frames, prompts=prompts, captions=prompts,
                     config=ObjectiveConfig(video_sigma_min=0.99, video_anchor=True), text_flow=pipe.text_flow,
                     max_text_len=pipe.config.max_text_len, max_prompt_len=pipe.config.max_prompt_len)


def test_a_text_anchor_holds_the_text_stream_to_the_anchors_word_probabilities():
    import copy

    pipe, frames, prompts = _tiny_batch(8)

    def loss(tasks, text_anchor=False, **kwargs):
        return compute_loss(
            transformer=pipe.transformer, text_encoder=pipe.text_encoder, tokenizer=pipe.tokenizer, codec=pipe.codec,
            frames=frames, prompts=prompts, captions=[p + "." for p in prompts],
            config=ObjectiveConfig(stage="refine", prompt_dropout=0.0, text_anchor=text_anchor),
            text_flow=pipe.text_flow, max_text_len=pipe.config.max_text_len, max_prompt_len=pipe.config.max_prompt_len,
            generator=torch.Generator().manual_seed(0), tasks=tasks, **kwargs,
        )

    captions, joints = ["caption"] * 8, ["joint"] * 8
    same = (copy.deepcopy(pipe.transformer), copy.deepcopy(pipe.text_encoder))
    # the anchor the model itself: no text loss and no gradient from it
    held = loss(captions, True, anchor=same)
    assert held.text_loss == 0.0 and loss(captions).text_loss > 0.1
    pipe.transformer.zero_grad()
    held.loss.backward()
    grads = [p.grad.abs().max().item() for p in pipe.transformer.parameters() if p.grad is not None]
    assert max(grads) < 1e-6  # the KL's gradient p_model − p_anchor, 0 up to rounding
    # another anchor: its word probabilities, which are not the data's words
    other = copy.deepcopy(same)
    with torch.no_grad():
        for p in other[0].parameters():
            p.add_(0.05 * torch.randn_like(p))
    moved = loss(captions, True, anchor=other).text_loss
    assert 0.0 < moved and moved != pytest.approx(loss(captions).text_loss, rel=0.01)
    # joint examples: the text held to the anchor, the video's target still the data's
    plain, joint = loss(joints), loss(joints, True, anchor=other)
    assert joint.video_loss == plain.video_loss > 0.0 and joint.text_loss != pytest.approx(plain.text_loss, rel=0.01)
    from uvigu.training.config import get_train_preset

    with pytest.raises(ValueError, match="text_anchor"):
        get_train_preset("tiny", text_anchor=True)  # no model to hold to
