import pytest
import torch

from uvigu.flows import DiscreteFlow, reread, sample, verify

V, MASK = 12, 11


@pytest.mark.parametrize("source", ["uniform", "mask"])
def test_clean_probability_equals_kappa(source):
    flow = DiscreteFlow(V, MASK, source=source, exponent=2.0)
    x_1 = torch.full((4000, 8), 3)
    for sigma in (0.0, 0.3, 0.7, 1.0):
        x_t = flow.corrupt(x_1, torch.full((4000,), sigma), generator=torch.Generator().manual_seed(0))
        kappa = (1 - sigma) ** 2
        if source == "mask":
            clean = (x_t == 3).float().mean()
            assert abs(float(clean) - kappa) < 0.01
        else:
            # a uniform draw can also land on the clean token: P = κ + (1 − κ)/(V − 1)
            clean = (x_t == 3).float().mean()
            assert abs(float(clean) - (kappa + (1 - kappa) / (V - 1))) < 0.01
        assert float(flow.kappa(sigma)) == pytest.approx(kappa)


def test_sources_never_draw_a_mask_unless_masked():
    uniform = DiscreteFlow(V, MASK, source="uniform").sample_source((200, 50), generator=torch.Generator().manual_seed(0))
    assert not (uniform == MASK).any() and uniform.min() >= 0 and uniform.max() < V
    assert set(uniform.unique().tolist()) == set(range(V)) - {MASK}
    masked = DiscreteFlow(V, MASK, source="mask").sample_source((3, 4))
    assert (masked == MASK).all()


def oracle(target: torch.Tensor):
    def model_fn(video, text, sv, st):
        logits = torch.full((*target.shape, V), -1e4)
        logits.scatter_(-1, target.unsqueeze(-1), 0.0)
        return torch.zeros_like(video), logits

    return model_fn


@pytest.mark.parametrize("source", ["uniform", "mask"])
def test_jump_sampler_with_oracle_recovers_the_target(source):
    flow = DiscreteFlow(V, MASK, source=source)
    target = torch.randint(0, MASK, (3, 20), generator=torch.Generator().manual_seed(4))
    g = torch.Generator().manual_seed(5)
    start = flow.sample_source(tuple(target.shape), generator=g)
    seen = []
    out = sample(
        oracle(target), video=torch.zeros(3, 1, 1, 1, 1), text=start, sigmas=torch.linspace(1, 0, 9),
        denoise_video=False, denoise_text=True, text_flow=flow, generator=g,
        callback=lambda step: seen.append(step.text.clone()),
    )
    assert torch.equal(out.text, target)
    assert not (out.text == MASK).any()
    # tokens become clean gradually, not all at the first step
    assert 0 < (seen[0] == target).float().mean() < 1 or source == "uniform"
    assert len(seen) == 8


def test_jump_probability_matches_the_mixture_path():
    # From the masked source, the fraction of tokens unmasked over one step is (κ' − κ)/(1 − κ).
    flow = DiscreteFlow(V, MASK, source="mask")
    x_t = torch.full((1, 20000), MASK)
    logits = torch.zeros(1, 20000, V)
    x_next = flow.jump_step(x_t, logits, 0.8, 0.6, generator=torch.Generator().manual_seed(0))
    expected = (0.4 - 0.2) / (1 - 0.2)
    assert abs(float((x_next != MASK).float().mean()) - expected) < 0.01
    assert not (flow.jump_step(x_t, logits, 0.2, 0.0) == MASK).any()


def test_pinned_tokens_stay():
    flow = DiscreteFlow(V, MASK, source="mask")
    x_t = torch.tensor([[1, MASK, 2, MASK]])
    pinned = torch.tensor([[True, False, True, False]])
    out = flow.jump_step(x_t, torch.zeros(1, 4, V), 0.5, 0.0, pinned=pinned)
    assert out[0, 0] == 1 and out[0, 2] == 2 and (out[0, [1, 3]] != MASK).all()


def test_losses():
    flow = DiscreteFlow(V, MASK)
    x_1 = torch.tensor([[1, 2, 3]])
    perfect = torch.full((1, 3, V), -30.0).scatter(-1, x_1.unsqueeze(-1), 30.0)
    flat = torch.zeros(1, 3, V)
    sigma = torch.tensor([0.5])
    assert flow.loss(perfect, x_1, x_1, sigma).item() < 1e-6
    assert flow.loss(flat, x_1, x_1, sigma).item() == pytest.approx(torch.log(torch.tensor(float(V))).item(), rel=1e-5)
    x_t = torch.tensor([[1, 5, 6]])
    assert flow.loss(perfect, x_1, x_t, sigma, kind="gkl").item() < 1e-4
    assert flow.loss(flat, x_1, x_t, sigma, kind="gkl").item() > 0
    weight = torch.tensor([[1.0, 0.0, 0.0]])
    assert flow.loss(flat, x_1, x_1, sigma, weight=weight).item() == pytest.approx(flow.loss(flat, x_1, x_1, sigma).item())
    with pytest.raises(ValueError, match="text loss"):
        flow.loss(flat, x_1, x_1, sigma, kind="mse")


def test_bad_configuration_is_refused():
    with pytest.raises(ValueError, match="source"):
        DiscreteFlow(V, MASK, source="gaussian")
    with pytest.raises(ValueError, match="mask_token_id"):
        DiscreteFlow(V, V)


def test_reread_repredicts_each_word_with_the_word_before_it_noised():
    """A model that copies its left neighbour's bias when that word is written and reads the
    evidence when it is noise: one re-read pass must give the evidence at every position."""
    flow = DiscreteFlow(V, MASK, source="mask")
    b, l = 2, 11
    g = torch.Generator().manual_seed(0)
    evidence = torch.randint(0, MASK, (b, l), generator=g)
    biased = (evidence + 1) % MASK
    written = torch.where(torch.rand(b, l, generator=g) < 0.5, evidence, biased)
    calls = []

    def model_fn(video, text, sv, st):
        calls.append((text.clone(), sv.clone(), st.clone()))
        left_noised = torch.cat([torch.ones_like(text[:, :1], dtype=torch.bool), text[:, :-1] == MASK], dim=1)
        copies = text.shape[0] // b
        want = torch.where(left_noised, evidence.repeat(copies, 1), biased.repeat(copies, 1))
        logits = torch.full((*text.shape, V), -1e4)
        logits.scatter_(-1, want.unsqueeze(-1), 0.0)
        return torch.zeros_like(video), logits

    out = reread(model_fn, video=torch.zeros(b, 1, 1, 1, 1), text=written, text_flow=flow, period=4)
    assert torch.equal(out, evidence)
    assert len(calls) == 1  # one network call for all the copies
    text, sv, st = calls[0]
    assert text.shape == (4 * b, l) and torch.all(sv == 0) and torch.allclose(st, torch.full((4 * b,), 0.5))
    # each copy redraws half the positions, every position in exactly two copies
    redrawn = (text == MASK).view(4, b, l)
    assert torch.all(redrawn.sum(0) == 2) and torch.equal(redrawn[:, 0], redrawn[:, 1])
    with pytest.raises(ValueError, match="period"):
        reread(model_fn, video=torch.zeros(b, 1, 1, 1, 1), text=written, text_flow=flow, period=1)


def test_reread_threshold_changes_only_words_the_reread_finds_unlikely():
    """The re-read gives the written word 0.3 and another word 0.6 at the positions the model
    doubts, the written word 0.9 elsewhere: a threshold between 0.3 and 0.9 changes exactly the
    doubted words, one at or below 0.3 none, 1 (the default) every doubted word."""
    flow = DiscreteFlow(V, MASK, source="mask")
    b, l = 2, 9
    g = torch.Generator().manual_seed(3)
    written = torch.randint(0, MASK - 1, (b, l), generator=g)
    other = written + 1  # still below MASK
    doubted = torch.rand(b, l, generator=g) < 0.5
    doubted[0, 0], doubted[0, 1] = True, False

    def model_fn(video, text, sv, st):
        copies = text.shape[0] // b
        w, o, d = written.repeat(copies, 1), other.repeat(copies, 1), doubted.repeat(copies, 1)
        probs = torch.full((*text.shape, V), 0.1 / (V - 3))
        probs.scatter_(-1, w[..., None], torch.where(d, 0.3, 0.9)[..., None])
        probs.scatter_(-1, o[..., None], torch.where(d, 0.6, 0.1 / (V - 3))[..., None])
        probs[..., MASK] = 1e-9
        return torch.zeros_like(video), probs.log()

    video = torch.zeros(b, 1, 1, 1, 1)
    changed = torch.where(doubted, other, written)
    assert torch.equal(reread(model_fn, video=video, text=written, text_flow=flow), changed)
    assert torch.equal(reread(model_fn, video=video, text=written, text_flow=flow, threshold=0.5), changed)
    assert torch.equal(reread(model_fn, video=video, text=written, text_flow=flow, threshold=0.25), written)
    assert torch.equal(reread(model_fn, video=video, text=written, text_flow=flow, threshold=0.0), written)
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError, match="threshold"):
            reread(model_fn, video=video, text=written, text_flow=flow, threshold=bad)


def test_reread_with_a_uniform_source_keeps_ids_in_the_vocabulary():
    flow = DiscreteFlow(V, MASK, source="uniform", exponent=2.0)
    target = torch.randint(0, MASK, (3, 9), generator=torch.Generator().manual_seed(1))
    seen = []

    def model_fn(video, text, sv, st):
        seen.append(st)
        return oracle(target.repeat(text.shape[0] // 3, 1))(video, text, sv, st)

    out = reread(model_fn, video=torch.zeros(3, 1, 1, 1, 1), text=torch.zeros_like(target), text_flow=flow,
                 generator=torch.Generator().manual_seed(2))
    assert torch.equal(out, target) and not (out == MASK).any()
    # κ(σ) = (1 − σ)² equals the clean half of each copy
    assert float(flow.kappa(seen[0][0])) == pytest.approx(0.5)


def test_reread_never_writes_the_mask_and_reads_each_word_from_its_own_copy():
    """Each copy's logits favour a different word, and [MASK] most of all: the word at position p
    must come from copy (p − 1) mod period (the one whose noised pair ends at p), never the mask."""
    flow = DiscreteFlow(V, MASK, source="mask")
    b, l, period = 2, 10, 4

    def model_fn(video, text, sv, st):
        copy = torch.arange(period).repeat_interleave(b)  # row o·b + i is copy o
        logits = torch.zeros(*text.shape, V)
        logits[torch.arange(len(copy)), :, copy] = 5.0
        logits[..., MASK] = 9.0
        return torch.zeros_like(video), logits

    out = reread(model_fn, video=torch.zeros(b, 1, 1, 1, 1), text=torch.full((b, l), 7), text_flow=flow, period=period)
    expected = (torch.arange(l) - 1) % period
    assert torch.equal(out, expected.expand(b, l))


def test_sigma_at_inverts_kappa():
    for exponent in (0.5, 1.0, 2.0):
        flow = DiscreteFlow(V, MASK, exponent=exponent)
        for clean in (0.0, 0.25, 0.5, 0.98, 1.0):
            assert float(flow.kappa(flow.sigma_at(clean))) == pytest.approx(clean, abs=1e-6)
    with pytest.raises(ValueError, match="clean fraction"):
        flow.sigma_at(1.5)


def _split_probs(written: torch.Tensor, rival: torch.Tensor, unsure: torch.Tensor, p_written: float = 0.6,
                 p_rival: float = 0.39) -> torch.Tensor:
    """Posteriors (b, l, V): the written word 0.999 where sure; where ``unsure``, p_written on it and
    p_rival on ``rival`` (the rest spread evenly, each well below the verification's 0.01)."""
    b, l = written.shape
    probs = torch.full((b, l, V), 1e-4)
    sure = torch.where(unsure, p_written, 0.999)
    probs.scatter_(-1, written[..., None], sure[..., None])
    probs.scatter_(-1, rival[..., None], torch.where(unsure, p_rival, 1e-4)[..., None])
    return probs / probs.sum(-1, keepdim=True)


def test_verify_lets_the_judge_settle_only_the_words_the_text_is_unsure_of():
    """Two rows; the text stream is split between the written word and a rival at a few positions.
    A judge that favours the truth (the rival at some unsure positions, the written word at the
    others) must decide exactly those positions when it weighs enough, be asked about nothing else,
    and with weight 0 leave the text stream's own most likely word."""
    b, l = 2, 9
    g = torch.Generator().manual_seed(5)
    written = torch.randint(0, MASK - 1, (b, l), generator=g)
    rival = written + 1
    unsure = torch.zeros(b, l, dtype=torch.bool)
    unsure[0, [1, 4]] = True
    unsure[1, [2, 3, 7]] = True
    truth = written.clone()
    truth[0, 4], truth[1, 2], truth[1, 7] = rival[0, 4], rival[1, 2], rival[1, 7]
    probs = _split_probs(written, rival, unsure)
    asked = []

    def judge(rows, texts):
        asked.append((rows.clone(), texts.clone()))
        wrong = (texts != truth[rows]).sum(-1).float()  # a text that fits the clip denoises it better
        return torch.log1p(wrong)

    out = verify(judge, text=written, probs=probs, weight=10.0)
    assert torch.equal(out, truth)
    (rows, texts), = asked  # one call for every candidate of every row
    assert rows.tolist() == [0] * 4 + [1] * 6  # two candidates per unsure position
    changed = texts != written[rows]
    assert changed.sum(-1).tolist() == [0, 1] * 5  # each text: the written one, or one word changed
    assert set(changed.nonzero()[:, 1].tolist()) == {1, 2, 3, 4, 7}  # only unsure positions
    # weight 0: the text's own probabilities decide — the written word, here the most likely
    assert torch.equal(verify(judge, text=written, probs=probs, weight=0.0), written)
    # a weak judge does not overturn a confident text: 0.9 against 0.09 needs a score gap above log(10)
    confident = _split_probs(written, rival, unsure, p_written=0.9, p_rival=0.09)
    assert torch.equal(verify(judge, text=written, probs=confident, weight=0.5), written)
    assert torch.equal(verify(judge, text=written, probs=confident, weight=10.0), truth)
    with pytest.raises(ValueError, match="weight"):
        verify(judge, text=written, probs=probs, weight=-1.0)


def _three_unsure_words() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """A text of six words unsure at positions 1, 2 and 3 (3 the most, then 2): written, rival,
    unsure, probs."""
    written = torch.tensor([[1, 2, 3, 4, 5, 6]])
    rival = written + 1
    unsure = torch.tensor([[False, True, True, True, False, False]])
    probs = _split_probs(written, rival, unsure)
    probs[0, 3] = _split_probs(written, rival, unsure, p_written=0.45, p_rival=0.54)[0, 3]  # the most unsure
    probs[0, 2] = _split_probs(written, rival, unsure, p_written=0.55, p_rival=0.44)[0, 2]
    return written, rival, unsure, probs


def test_verify_takes_the_most_unsure_positions_first_and_keeps_the_written_word_a_candidate():
    written, rival, unsure, probs = _three_unsure_words()
    # the text stream sure of another word than the one written (a re-read threshold below 1 kept
    # it): the written word is still tried, but the position comes last
    probs[0, 5] = 0.0
    probs[0, 5, 9] = 1.0
    asked = []

    def judge(rows, texts):
        asked.append(texts.clone())
        return torch.zeros(len(texts))

    out = verify(judge, text=written, probs=probs, weight=1.0, max_texts=4)  # room for two positions
    assert {int(p) for p in (asked[0] != written).nonzero()[:, 1]} == {2, 3}  # tops 0.54, 0.55 before 0.61, 1.0
    assert int(out[0, 3]) == int(rival[0, 3])  # an indifferent judge: the probabilities decide
    assert torch.equal(out[0, [0, 1, 2, 4, 5]], written[0, [0, 1, 2, 4, 5]])
    asked.clear()
    out = verify(judge, text=written, probs=probs, weight=1.0)
    assert {int(p) for p in (asked[0] != written).nonzero()[:, 1]} == {1, 2, 3, 5} and int(out[0, 5]) == 9
    # nothing unsure: no call at all
    asked.clear()
    sure = _split_probs(written, rival, torch.zeros_like(unsure))
    assert torch.equal(verify(judge, text=written, probs=sure, weight=1.0), written) and not asked


def test_verify_tries_only_the_candidate_texts_accepted_and_spends_its_budget_on_them():
    # A judge that favours the rival everywhere, and an ``accept`` that refuses the rival at
    # position 3 (as a word that would break the caption's grammar): position 3 keeps the written
    # word and is not judged, and the room it leaves goes to the next unsure position.
    written, rival, _, probs = _three_unsure_words()
    asked = []

    def judge(rows, texts):
        asked.append(texts.clone())
        return -(texts == rival[rows]).sum(-1).float()  # the rival's texts denoise the clip better

    def accept(text):
        return int(text[3]) != int(rival[0, 3])

    out = verify(judge, text=written, probs=probs, weight=10.0, max_texts=4, accept=accept)
    assert {int(p) for p in (asked[0] != written).nonzero()[:, 1]} == {1, 2}  # 3 refused: 2, then 1
    assert all(accept(text) for text in asked[0])
    assert out[0].tolist() == [1, 3, 4, 4, 5, 6]  # the rivals at 1 and 2, the written word at 3
    asked.clear()
    assert verify(judge, text=written, probs=probs, weight=10.0, max_texts=4)[0, 3] == rival[0, 3]  # unrefused
