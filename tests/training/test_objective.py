import pytest
import torch

from uvigu.data.shapes import ShapesConfig, make_example, shapes_vocabulary
from uvigu.models.presets import build_pipeline
from uvigu.training.objective import ObjectiveConfig, compute_loss, swap_words


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
