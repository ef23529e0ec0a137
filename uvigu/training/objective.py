"""The training objective: one loss over a batch that mixes the three tasks (DESIGN §2.4).

Per example a task is drawn; each noisy modality gets its own σ and the clean one σ = 0:

* generate — video noisy, text stream clean (the condition text), loss on the video velocity;
* caption — video clean, text noisy with the stage's target, empty condition, loss on the text;
* joint — both noisy at the same σ, the prompt as condition, both losses.

Stage ``recall`` (Knowledge Recall) targets the clip's prompt; stage ``refine`` (Capability
Refinement) targets its detailed caption, and generate examples then take the prompt or the
caption as their text, so an edited caption works as a prompt in the studio's edit loop.
Loss = video MSE + λ · text cross entropy, each averaged over the examples that have it.

The video MSE is on the velocity, whichever the network predicts: with x̂₀ = x_t − σ v̂ its error
is ‖x̂₀ − x₀‖² / σ², so an example at σ = 0.1 weighs a hundred times one at σ = 1 (JiT, arXiv
2511.13720, finds this weighting best for an x-predicting model's image quality). ``video_loss_cap``
W multiplies each example's MSE by min(1, W σ²): its clean-clip error then weighs min(1/σ², W).

Tensor vocabulary: b batch, f frames, h/w height and width, l text tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

from ..data.shapes import reversed_prompt
from ..flows import DiscreteFlow, interpolate, sample_training_sigma, velocity_target
from ..models.prompt_encoder import encode_prompt
from ..models.tokenizer import encode_text

Stage = Literal["recall", "refine"]
TASKS = ("generate", "caption", "joint")


@dataclass(frozen=True)
class ObjectiveConfig:
    stage: Stage = "recall"
    task_probs: tuple[float, float, float] = (0.4, 0.4, 0.2)  # generate, caption, joint
    text_loss_weight: float = 1.0  # λ
    prompt_dropout: float = 0.1  # empty condition for classifier-free guidance
    caption_as_condition: float = 0.5  # stage refine: chance a generate example is conditioned on the caption
    video_sigma_shift: float = 1.0  # shift of the logit-normal training σ (inference uses the scheduler's)
    text_loss: Literal["ce", "gkl"] = "ce"
    # chance that a word a noisy text stream kept clean is swapped for a word of the batch's texts
    # (see swap_words); 0: the plain mixture path
    text_swap: float = 0.0
    # chance that a generate example conditioned on a prompt with motion brings its time-reversed
    # twin into the batch (see compute_loss); 0: no twins
    reverse_twins: float = 0.0
    # the video's training σ mapped into [video_sigma_min, 1): σ' = min + (1 − min) σ; 0: the whole range
    video_sigma_min: float = 0.0
    # the share of examples whose σ is so mapped (each drawn with this chance; the rest keep the usual
    # draw), so that a run trains the top of the noise without giving up the rest; 1: all of them
    video_sigma_min_share: float = 1.0
    # the video MSE weighs an example's clean-clip error by 1/σ² (module doc); a cap W > 0 limits that
    # weight to W, so low σ no longer outweighs the high σ where a clip's layout is decided; 0: no cap
    video_loss_cap: float = 0.0
    # with compute_loss's anchor (the model a fine-tune started from): the video examples below
    # video_sigma_min learn the anchor's velocity instead of the data's (video_anchor), and the text
    # stream's examples the anchor's word distributions (their KL divergence from it) instead of the
    # data's words (text_anchor), so a fine-tune aimed elsewhere leaves those where they were
    video_anchor: bool = False
    text_anchor: bool = False

    def __post_init__(self) -> None:
        if self.stage not in ("recall", "refine"):
            raise ValueError(f"stage must be 'recall' or 'refine', got {self.stage!r}.")
        if len(self.task_probs) != 3 or min(self.task_probs) < 0 or sum(self.task_probs) <= 0:
            raise ValueError(f"task_probs must be three non-negative weights, got {self.task_probs}.")
        if not 0.0 <= self.text_swap <= 1.0:
            raise ValueError(f"text_swap is a probability in [0, 1], got {self.text_swap}.")
        if not 0.0 <= self.reverse_twins <= 1.0:
            raise ValueError(f"reverse_twins is a probability in [0, 1], got {self.reverse_twins}.")
        if not 0.0 <= self.video_sigma_min < 1.0:
            raise ValueError(f"video_sigma_min must be in [0, 1), got {self.video_sigma_min}.")
        if not 0.0 <= self.video_sigma_min_share <= 1.0:
            raise ValueError(f"video_sigma_min_share is a share in [0, 1], got {self.video_sigma_min_share}.")
        if not self.video_sigma_shift > 0.0:
            raise ValueError(f"video_sigma_shift must be positive, got {self.video_sigma_shift}.")
        if not self.video_loss_cap >= 0.0:
            raise ValueError(f"video_loss_cap must be >= 0 (0: no cap), got {self.video_loss_cap}.")
        if not self.text_loss_weight >= 0.0:
            raise ValueError(f"text_loss_weight must be >= 0, got {self.text_loss_weight}.")


@dataclass(frozen=True)
class LossOutput:
    loss: torch.Tensor  # scalar, differentiable
    video_loss: float
    text_loss: float
    per_task: dict[str, float]  # "generate/video", "caption/text", "joint/video", "joint/text"
    task_counts: dict[str, int]
    twins: int | None = None  # time-reversed twins the batch gained; None when the objective makes none


def draw_tasks(batch_size: int, config: ObjectiveConfig, generator: torch.Generator | None = None) -> list[str]:
    probs = torch.tensor(config.task_probs, dtype=torch.float)
    idx = torch.multinomial(probs / probs.sum(), batch_size, replacement=True, generator=generator)
    return [TASKS[i] for i in idx.tolist()]


def swap_words(
    text_t: torch.Tensor,
    text_clean: torch.Tensor,
    valid: torch.Tensor,
    rows: torch.Tensor,
    prob: float,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Swap words that ``text_t`` kept clean for words drawn from the batch's clean texts.

    On the mixture path a word is either clean or a uniform draw from the vocabulary — almost
    never a plausible word — so the network learns to trust every plausible word it sees. While
    sampling, the words already written are its own guesses and can be wrong: a caption that has
    its colour word written before its shape word gets the shape the colour was seen with in
    training. Each word of the rows ``rows`` (b,) that is kept clean and is not padding is, with
    probability ``prob``, replaced by a word drawn uniformly from the non-padding words of
    ``text_clean`` (b, l) — the batch's colours and shapes among them — so the network learns to check
    the words it sees against the video. The loss still asks for the clean words. CPU tensors;
    returns the new ``text_t``.
    """
    if prob <= 0:
        return text_t
    pool = text_clean[valid]
    if pool.numel() == 0:
        return text_t
    u = torch.rand(text_t.shape, generator=generator)
    pick = torch.randint(0, pool.numel(), text_t.shape, generator=generator)
    swap = (u < prob) & (text_t == text_clean) & valid & rows[:, None]
    return torch.where(swap, pool[pick], text_t)


def video_loss_weights(sigma: torch.Tensor, cap: float) -> torch.Tensor:
    """Per-example weights (b,) of the velocity MSE at video noise levels ``sigma`` (b,): min(1, cap · σ²),
    so the clean-clip error weighs at most ``cap`` (module doc); all ones when ``cap`` is 0."""
    if cap <= 0:
        return torch.ones_like(sigma, dtype=torch.float)
    return (cap * sigma.float() ** 2).clamp(max=1.0)


def device_randn(shape: torch.Size, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """Standard normal noise made on ``device`` from one seed drawn from ``generator``.

    The run stays reproducible and resumable through the one (CPU) generator, while the bulk of
    the draws happens where the data lives: a CPU ``randn`` of a GPU-sized batch (tens of
    millions of values) would take longer than the GPU's whole training step.
    """
    seed = int(torch.randint(0, 2**62, (), generator=generator))
    return torch.randn(shape, generator=torch.Generator(device=device).manual_seed(seed), device=device)


def compute_loss(
    *,
    transformer: torch.nn.Module,
    text_encoder: torch.nn.Module,
    tokenizer,
    codec,
    frames: torch.Tensor,
    prompts: Sequence[str],
    captions: Sequence[str],
    config: ObjectiveConfig,
    text_flow: DiscreteFlow,
    max_text_len: int,
    max_prompt_len: int,
    generator: torch.Generator | None = None,
    tasks: Sequence[str] | None = None,
    anchor: tuple[torch.nn.Module, torch.nn.Module] | None = None,
) -> LossOutput:
    """The mixed-task loss for uint8 ``frames`` (b, f, h, w, 3) with their prompts and captions.

    ``anchor`` (a frozen transformer and text encoder, the weights a fine-tune started from), which
    ``config.video_anchor`` and ``config.text_anchor`` need: with the first, the video examples below
    ``config.video_sigma_min`` learn that model's own velocity instead of the data's, so a fine-tune
    of the top of the noise keeps every lower level where the model had it; with the second, the
    text stream's examples learn its word distributions (the text loss is their KL divergence from
    them, 0 where the model reads as the anchor does), so the captions stay where they were."""
    if (config.video_anchor or config.text_anchor) and anchor is None:
        raise ValueError("video_anchor and text_anchor hold the model to an anchor: pass anchor=.")
    device = next(transformer.parameters()).device
    b = frames.shape[0]
    tasks = list(tasks) if tasks is not None else draw_tasks(b, config, generator)
    flow = text_flow
    rand = lambda: float(torch.rand((), generator=generator))  # noqa: E731

    targets = [p if config.stage == "recall" else c for p, c in zip(prompts, captions)]
    stream_texts, conditions = [], []
    for task, prompt, caption, target in zip(tasks, prompts, captions, targets):
        if task == "generate":
            use_caption = config.stage == "refine" and rand() < config.caption_as_condition
            text = caption if use_caption else prompt
            stream_texts.append(text)
            conditions.append("" if rand() < config.prompt_dropout else text)
        elif task == "caption":
            stream_texts.append(target)
            conditions.append("")  # never the prompt: the text stream must not copy it
        else:
            stream_texts.append(target)
            conditions.append("" if rand() < config.prompt_dropout else prompt)

    # Time-reversed twins: a generate example conditioned on a prompt that names motion brings, with
    # chance reverse_twins, the clip played backwards with the prompt turned round (reversed_prompt)
    # on the same noise and σ. At high σ a clip's motion is hidden by the noise, and a model can
    # lower its loss with hardly any use of the motion words: the shipped model moves an object
    # the way its seed says, whatever the prompt's direction (`uvigu probe --directions`). The two
    # examples of a pair differ only in their motion words and in the clip those words describe,
    # so the pair's loss is lowered only by reading the words.
    twins: list[int] = []
    if config.reverse_twins > 0:
        for i in range(b):
            back = reversed_prompt(prompts[i]) if tasks[i] == "generate" and stream_texts[i] == prompts[i] else None
            if back is not None and rand() < config.reverse_twins:
                twins.append(i)
                stream_texts.append(back)
                conditions.append(back if conditions[i] else "")
        if twins:
            frames = torch.cat([frames, frames[torch.tensor(twins, device=frames.device)].flip(1)])
            tasks = tasks + ["generate"] * len(twins)

    text_clean, valid = encode_text(tokenizer, stream_texts, max_text_len)
    text_clean, valid = text_clean.to(device), valid.to(device)
    video_noisy = torch.tensor([t != "caption" for t in tasks], device=device)
    text_noisy = torch.tensor([t != "generate" for t in tasks], device=device)

    x = codec.encode(frames).to(device)
    noise = device_randn((b, *x.shape[1:]), generator, device)
    sigma_v = sample_training_sigma(b, shift=config.video_sigma_shift, generator=generator).to(device)
    sigma_t = torch.rand(b, generator=generator).clamp(1e-3, 1.0).to(device)
    if config.video_sigma_min > 0:
        top = config.video_sigma_min + (1.0 - config.video_sigma_min) * sigma_v
        if config.video_sigma_min_share < 1.0:  # drawn after the levels, so the usual draws stay as they were
            mapped = (torch.rand(b, generator=generator) < config.video_sigma_min_share).to(device)
            top = torch.where(mapped, top, sigma_v)
        sigma_v = top
    if twins:  # a twin takes the noise and σ of the example it was made from
        source_row = torch.tensor(list(range(b)) + twins, device=device)
        noise, sigma_v, sigma_t = noise[source_row], sigma_v[source_row], sigma_t[source_row]
    sigma_t = torch.where(video_noisy, sigma_v, sigma_t)  # joint: one σ for both, as at inference
    sigma_v = torch.where(video_noisy, sigma_v, torch.zeros_like(sigma_v))
    sigma_t = torch.where(text_noisy, sigma_t, torch.zeros_like(sigma_t))

    x_t = interpolate(x, noise, sigma_v)
    clean_cpu = text_clean.cpu()
    text_t = flow.corrupt(clean_cpu, sigma_t.cpu(), generator=generator)
    text_t = swap_words(text_t, clean_cpu, valid.cpu(), text_noisy.cpu(), config.text_swap, generator)  # P = 0: as is
    text_t = torch.where(text_noisy[:, None], text_t.to(device), text_clean)
    # Noisy text runs over the whole stream (the model learns where the text ends); clean text
    # masks its padding out as keys, as at inference.
    text_mask = valid | text_noisy[:, None]
    context = encode_prompt(text_encoder, tokenizer, conditions, max_prompt_len, device)

    v_pred, logits = transformer(x_t, text_t, sigma_v, sigma_t, context, text_mask)
    target = velocity_target(x, noise).float()
    anchored = video_noisy & (sigma_v < config.video_sigma_min) if config.video_anchor else None
    held_text = config.text_anchor and bool(text_noisy.any())
    anchor_out = None
    if (anchored is not None and bool(anchored.any())) or held_text:
        with torch.no_grad():
            anchor_context = encode_prompt(anchor[1], tokenizer, conditions, max_prompt_len, device)
            anchor_out = anchor[0](x_t, text_t, sigma_v, sigma_t, anchor_context, text_mask)
    if anchored is not None and anchor_out is not None:
        target = torch.where(anchored.view(-1, *[1] * (target.ndim - 1)), anchor_out.video_velocity.float(), target)
    video_mse = F.mse_loss(v_pred.float(), target, reduction="none").flatten(1).mean(1)
    video_weight = video_loss_weights(sigma_v, config.video_loss_cap)
    if held_text:  # KL(anchor ‖ model) per word, averaged over the stream as the CE is
        held = F.log_softmax(anchor_out.text_logits.float(), dim=-1)
        text_ce = F.kl_div(F.log_softmax(logits.float(), dim=-1), held, log_target=True, reduction="none").sum(-1).mean(-1)
    else:
        text_ce = flow.loss(logits, text_clean, text_t, sigma_t, kind=config.text_loss)

    def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return (values * mask).sum() / mask.sum().clamp_min(1)

    video_loss = masked_mean(video_mse, video_noisy.float())  # logged as is, comparable across caps
    text_loss = masked_mean(text_ce, text_noisy.float())
    loss = masked_mean(video_mse * video_weight, video_noisy.float()) + config.text_loss_weight * text_loss

    per_task: dict[str, float] = {}
    counts = {t: tasks.count(t) for t in TASKS}
    for task in TASKS:
        m = torch.tensor([t == task for t in tasks], device=device, dtype=torch.float)
        if not counts[task]:
            continue
        if task != "caption":
            per_task[f"{task}/video"] = float(masked_mean(video_mse.detach(), m))
        if task != "generate":
            per_task[f"{task}/text"] = float(masked_mean(text_ce.detach(), m))
    return LossOutput(loss, float(video_loss.detach()), float(text_loss.detach()), per_task, counts,
                      len(twins) if config.reverse_twins > 0 else None)
