"""One sampling loop for every task: each modality is either held clean or denoised on one σ schedule.

A task is a noise configuration (DESIGN §2.3): generate denoises video with clean text, caption
denoises text with clean video, joint denoises both on the same schedule, edit denoises video from
part-way. The loop calls the network once per step and updates both modalities from that call.

Tensor vocabulary: b batch, c/f/h/w video latent dims, l text tokens, V vocabulary;
``video`` (b, c, f, h, w), ``text`` ids (b, l), ``sigmas`` (k + 1,) from the start level to 0.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..inputs import number_in_range
from .text import DiscreteFlow
from .video import euler_step, interpolate, predict_clean, renoise_step

# model_fn(video, text, video_sigma (b,), text_sigma (b,)) -> (v_pred (b, c, f, h, w), logits (b, l, V))
DenoiseFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class SamplerStep:
    """What the loop knows after step ``index`` (0-based) of ``num_steps``."""

    index: int
    num_steps: int
    sigma: float  # the level this step started from
    sigma_next: float  # the level it reached
    video: torch.Tensor  # current x_σ' (b, c, f, h, w)
    video_clean: torch.Tensor | None  # the clean estimate x̂ at this step, None when video is held clean
    text: torch.Tensor  # current ids (b, l)


RENOISE_FROM = 0.7  # the noise level from which stochastic steps start, unless the model says otherwise


def check_renoise_from(level: float) -> float:
    """The noise level at and below which steps are stochastic, from 0 to 1."""
    return number_in_range(level, "renoise_from", 0.0, 1.0, "a noise level")


@dataclass(frozen=True)
class Renoise:
    """Stochastic video steps (`flows.video.renoise_step`): at each step that starts at or below
    noise level ``start`` (and ends above 0), ``share`` of the noise is drawn afresh by ``draw()``
    (a tensor shaped like the video; the run's own kind of noise, e.g. moving noise)."""

    share: float
    start: float
    draw: Callable[[], torch.Tensor]

    def applies(self, sigma: float, sigma_next: float) -> bool:
        return self.share > 0.0 and sigma_next > 0.0 and sigma <= self.start + 1e-6


@dataclass(frozen=True)
class SamplerResult:
    video: torch.Tensor  # (b, c, f, h, w), clean
    text: torch.Tensor  # (b, l), clean


def sample(
    model_fn: DenoiseFn,
    *,
    video: torch.Tensor,
    text: torch.Tensor,
    sigmas: torch.Tensor,
    denoise_video: bool,
    denoise_text: bool,
    text_flow: DiscreteFlow | None = None,
    generator: torch.Generator | None = None,
    text_temperature: float = 1.0,
    text_pinned: torch.Tensor | None = None,
    renoise: Renoise | None = None,
    callback: Callable[[SamplerStep], None] | None = None,
) -> SamplerResult:
    """Run the joint Euler loop over ``sigmas``.

    ``video`` / ``text`` are the starting states: x at σ = sigmas[0] for a denoised modality, the
    clean value for a held one (fed at σ = 0). Text jumps use ``text_flow``'s mixture-path rule.
    With ``renoise``, the video steps it applies to are stochastic (`Renoise`).
    """
    if denoise_text and text_flow is None:
        raise ValueError("denoising text needs a DiscreteFlow.")
    b = video.shape[0]
    num_steps = len(sigmas) - 1
    zeros = torch.zeros(b, device=video.device)
    for i in range(num_steps):
        sigma, sigma_next = float(sigmas[i]), float(sigmas[i + 1])
        level = torch.full((b,), sigma, device=video.device)
        v_pred, logits = model_fn(
            video, text, level if denoise_video else zeros, level if denoise_text else zeros
        )
        video_clean = None
        if denoise_video:
            video_clean = predict_clean(video, v_pred, level)
            if renoise is not None and renoise.applies(sigma, sigma_next):
                fresh = renoise.draw().to(video.device)
                video = renoise_step(video, v_pred, sigma, sigma_next, fresh, renoise.share)
            else:
                video = euler_step(video, v_pred, sigma, sigma_next)
        if denoise_text:
            text = text_flow.jump_step(
                text, logits, sigma, sigma_next,
                generator=generator, temperature=text_temperature, pinned=text_pinned,
            )
        if callback is not None:
            callback(SamplerStep(i, num_steps, sigma, sigma_next, video, video_clean, text))
    return SamplerResult(video=video, text=text)


# delta_fn(x_source_σ (b, c, f, h, w), x_target_σ, σ (b,)) -> (v_target − v_source, clean estimate of the target)
DeltaFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def flow_edit(
    delta_fn: DeltaFn,
    *,
    source: torch.Tensor,
    text: torch.Tensor,
    sigmas: torch.Tensor,
    edit: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    callback: Callable[[SamplerStep], None] | None = None,
) -> torch.Tensor:
    """Edit the clean ``source`` (b, c, f, h, w) along the difference of two flows; returns the edit.

    FlowEdit (Kulikov et al., arXiv 2412.08629), inversion-free: at each σ of ``sigmas`` the source
    is noised afresh, x_src = (1 − σ)·source + σ·ε, the edit is carried along with it,
    x_tar = edit + x_src − source, and the edit moves by the difference of the two velocities,
    v(x_tar | target text) − v(x_src | source text) (``delta_fn``). Where the two texts agree the
    difference is near zero and the clip stays as it was; what the texts disagree on is what
    changes. Noising from scratch (the plain edit) instead redraws everything the noise level
    hides. ``text`` (b, l) is only reported through ``callback``. ``edit`` is the edit at
    ``sigmas[0]`` when going on from part-way (default: the source, as an edit starts).
    """
    edit = (source if edit is None else edit).clone()
    num_steps = len(sigmas) - 1
    for i in range(num_steps):
        sigma, sigma_next = float(sigmas[i]), float(sigmas[i + 1])
        level = torch.full((source.shape[0],), sigma, device=source.device)
        noise = torch.randn(source.shape, generator=generator).to(source.device, source.dtype)
        x_src = interpolate(source, noise, level)
        x_tar = edit + x_src - source
        delta, clean = delta_fn(x_src, x_tar, level)
        edit = euler_step(edit, delta, sigma, sigma_next)
        if callback is not None:
            callback(SamplerStep(i, num_steps, sigma, sigma_next, edit, clean, text))
    return edit


REREAD_PERIOD = 4  # a re-read pass redraws 2 of every 4 positions


def reread(
    model_fn: DenoiseFn,
    *,
    video: torch.Tensor,
    text: torch.Tensor,
    text_flow: DiscreteFlow,
    generator: torch.Generator | None = None,
    period: int = REREAD_PERIOD,
    threshold: float = 1.0,
    return_probs: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Re-predict every word of a finished text with the word before it noised; returns ids (b, l),
    and with ``return_probs`` also the re-read's posterior (b, l, V) that :func:`verify` takes.

    A word decided beside words already decided leans on them: a captioner that has only seen
    purple diamonds calls a purple triangle a diamond once "purple" is written, and reads the
    shape far better from the clip when that word is noise (docs/EVAL.md). One network call on
    ``period`` copies of the text: copy o redraws the positions p with (p − o) mod period ∈ {0, 1}
    from the source and keeps the prediction at (p − o) mod period = 1, so each position is
    re-predicted once, with its left neighbour noised and the rest of the text as decided. The
    copies are fed at the σ whose κ is the clean fraction. A word is replaced by the most likely
    one only where the re-read gives the written word a probability below ``threshold``: 1 takes
    the most likely word everywhere; lower keeps a word the re-read still finds plausible, so that
    only clear disagreements change the text (with its context noised a word can be unsure which
    of two objects it belongs to). ``video`` (b, c, f, h, w) is held clean.
    """
    if period < 2:
        raise ValueError(f"a re-read needs a period of at least 2, got {period}.")
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"a re-read threshold is a probability from 0 to 1, got {threshold}.")
    b, l = text.shape
    device = text.device
    phase = (torch.arange(l, device=device)[None, :] - torch.arange(period, device=device)[:, None]) % period
    redrawn = phase < 2  # (period, l)
    source = text_flow.sample_source((period * b, l), generator=generator).to(device)
    copies = text.repeat(period, 1)  # copy o of example i at row o·b + i
    noisy = torch.where(redrawn.repeat_interleave(b, dim=0), source, copies)
    sigma = text_flow.sigma_at(1.0 - 2.0 / period)
    n = period * b
    _, logits = model_fn(
        video.repeat(period, *([1] * (video.ndim - 1))), noisy,
        torch.zeros(n, device=device), torch.full((n,), sigma, device=device),
    )
    # Position p is re-predicted in copy (p − 1) mod period: take those logits only, so the
    # posterior covers b × l rows, not period × b × l (with a 256k-word vocabulary that is the
    # difference between a few hundred MB and several GB).
    positions = torch.arange(l, device=logits.device)
    owner = (positions - 1) % period
    picked = logits.view(period, b, l, -1)[owner, :, positions].transpose(0, 1)  # (b, l, V)
    probs = text_flow.posterior(picked).to(device)
    unsure = probs.gather(-1, text[..., None]).squeeze(-1) < threshold
    ids = torch.where(unsure, probs.argmax(-1), text)
    return (ids, probs) if return_probs else ids


VERIFY_MIN_PROB = 0.01  # a word is a candidate when the text stream gives it at least this
VERIFY_MAX_CANDIDATES = 4  # per position, the most likely ones
VERIFY_MAX_TEXTS = 16  # candidate texts per verification, the most unsure positions first
VERIFY_DRAWS = 2  # noise draws of the clip per candidate text (the pipeline's error_fn; the shipped model sets 1)

# error_fn(rows (n,), texts (n, l)) -> (n,): log of the video stream's squared error in estimating
# the clean clip of batch row rows[i] with texts[i] as its condition (lower: the text fits the clip)
TextErrorFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def verify(
    error_fn: TextErrorFn,
    *,
    text: torch.Tensor,
    probs: torch.Tensor,
    weight: float,
    min_prob: float = VERIFY_MIN_PROB,
    max_candidates: int = VERIFY_MAX_CANDIDATES,
    max_texts: int = VERIFY_MAX_TEXTS,
    accept: Callable[[torch.Tensor], bool] | None = None,
) -> torch.Tensor:
    """Let the video stream settle the words the text stream is unsure of; returns ids (b, l).

    Analysis by synthesis with the one network: where the posterior ``probs`` (b, l, V) gives two
    or more words at least ``min_prob`` (up to ``max_candidates``, the written word always among
    them), each is tried in the finished ``text`` (b, l), the rest of the text as written, and
    scored log p(word) − ``weight`` · ``error_fn`` — how well the video stream, given that text,
    denoises the clip. The best-scoring word is kept. A text stream that names a held-out purple
    triangle a diamond still gives "triangle" some probability; the video stream, which reads the
    text as a whole, prefers the caption that predicts the clip (docs/EVAL.md). Positions are
    taken most unsure first (lowest top probability) until ``max_texts`` candidate texts per row;
    each position is judged with the others as written, in one call to ``error_fn``. ``accept``,
    given, decides which candidate texts (ids (l,)) may be tried at all — e.g. only those that still
    follow the grammar the model writes — the written text standing in every case.
    """
    if weight < 0:
        raise ValueError(f"a verification weight must be >= 0, got {weight}.")
    b = text.shape[0]
    rows, texts, slots = [], [], []  # slots: (row, position, word) per candidate text
    for i in range(b):
        top_p, top_w = probs[i].topk(max_candidates, dim=-1)  # (l, k)
        written = text[i]
        order = torch.argsort(top_p[:, 0])  # most unsure first
        used = 0
        for p in order.tolist():
            words = {int(w) for w, q in zip(top_w[p], top_p[p]) if q >= min_prob} | {int(written[p])}
            candidates = []
            for w in sorted(words):
                candidate = written.clone()
                candidate[p] = w
                if w == int(written[p]) or accept is None or accept(candidate):
                    candidates.append((w, candidate))
            if len(candidates) < 2 or used + len(candidates) > max_texts:
                continue
            for w, candidate in candidates:
                rows.append(i)
                texts.append(candidate)
                slots.append((i, p, w))
            used += len(candidates)
    if not texts:
        return text
    errors = error_fn(torch.tensor(rows, device=text.device), torch.stack(texts)).float().cpu()
    best: dict[tuple[int, int], tuple[float, int]] = {}
    for (i, p, w), error in zip(slots, errors.tolist()):
        score = float(torch.log(probs[i, p, w].clamp_min(1e-12))) - weight * error
        if (i, p) not in best or score > best[(i, p)][0]:
            best[(i, p)] = (score, w)
    out = text.clone()
    for (i, p), (_, w) in best.items():
        out[i, p] = w
    return out
