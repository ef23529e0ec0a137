"""How much the denoiser's clean-clip estimate depends on each attribute of its text (``uvigu probe``).

A diagnosis for generation: noise a reference clip to σ, ask the denoiser for the clean clip x̂ once
with the clip's own caption as the condition and once per attribute with that caption changed in
one object's colour, shape or motion (one-attribute edits as the evaluation makes them,
`uvigu.eval.edits`), and compare the squared errors of x̂, decoded to pixels by the pipeline's
codec, over the pixels the change touches (where the clip and the clip of the changed scene
differ). A model that uses an attribute of the text does worse with the wrong one — above all at
high σ, where the text is most of what it knows; a ratio near 1 means it ignores it.

The condition is the caption, held clean in the text stream and fed to the prompt encoder, as in
the generate task's caption-conditioned examples (DESIGN §2.4); the same noise serves every text.

``uvigu probe --words`` asks the captioning side a question of the same kind: given the clean clip
and its reference caption with the shape word of one object noised, does the model name the shape
right — once with the colour word beside it written, once with that colour word noised too? A
model that reads shapes from the clip does as well either way; one that reads them from the colour
word (colour–shape pairs learned as units) does worse when the colour is written, above all on the
held-out pairs it never saw together. This is what the caption re-read pass
(`uvigu.flows.reread`) acts on.

``uvigu probe --levels`` asks where in the noise a generated clip goes wrong: each reference clip
is noised to the σ the edit schedule at a strength starts from and analyzed like a generated clip,
once after a single denoiser call (its clean estimate) and once after the sampler's whole run from
there with the clip's own prompt (strength 1: generation). It also measures the model's linear
floors — the part of a clean patch its patch embedding cannot see and its output head cannot
draw — which bound how sharp any clean estimate can be.

``uvigu probe --steps`` asks the same of generation itself: each prompt is generated as the
evaluation generates it (the model's defaults, the clip's seed), and the clean estimate the sampler
holds after each step is analyzed like the finished clip — from which step on each object has its
colour, shape and motion, and how many of those the later steps still change.

The probes of where generation puts objects and which way it moves them are
`uvigu.eval.layout_probe`'s.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from uvigu.data.shapes import COLORS, HELD_OUT_PAIRS, SHAPES, render_scene, scene_caption
from uvigu.eval.analyzer import analyze_clip, match_objects
from uvigu.eval.edits import ATTRIBUTES, edit_scene
from uvigu.eval.grammar import scene_mentions
from uvigu.eval.clips import SETS, EvalConfig, clip_config, counted_objects, eval_example
from uvigu.flows import inference_sigmas, interpolate
from uvigu.models.tokenizer import encode_text, is_word_level, split_words

DEFAULT_SIGMAS = (0.3, 0.6, 0.9)

# denoise(x_t (b, c, f, h, w), texts (b), sigma) -> x̂ (b, c, f, h, w)
Denoiser = Callable[[torch.Tensor, Sequence[str], float], torch.Tensor]


@dataclass(frozen=True)
class ProbeRow:
    sigma: float
    attribute: str
    clips: int
    error_right: float  # mean (x̂ − x)² over the changed pixels (RGB in [-1, 1]), with the clip's own caption
    error_wrong: float  # the same with the caption's attribute changed
    right_better: int  # clips where the right caption gave the lower error

    @property
    def ratio(self) -> float:
        return self.error_wrong / self.error_right if self.error_right > 0 else float("nan")


def pipeline_denoiser(pipe) -> Denoiser:
    """The pipeline's transformer as a clean-clip estimator for caption-conditioned video."""

    return lambda x_t, texts, sigma: pipe.clean_estimate(x_t, list(texts), sigma)


def run_probe(
    pipe,
    config: EvalConfig = EvalConfig(),
    sigmas: Sequence[float] = DEFAULT_SIGMAS,
    denoise: Denoiser | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[ProbeRow]:
    """One row per (σ, attribute) over the main-set clips of ``config`` (seeds as the evaluation's)."""
    for sigma in sigmas:
        if not 0.0 < sigma <= 1.0:
            raise ValueError(f"noise levels must be in (0, 1], got {sigma}.")
    denoise = denoise or pipeline_denoiser(pipe)
    shapes = clip_config(pipe)
    sums = {(s, a): [0, 0.0, 0.0, 0] for s in sigmas for a in ATTRIBUTES}  # clips, right, wrong, better
    for index in range(config.num_clips):
        example = eval_example(config, "main", index, shapes)
        seed = config.pipeline_seed("main", index)
        rng = np.random.default_rng([seed, index])
        texts, attributes, regions = [scene_caption(example.scene)], [], []
        for attribute in ATTRIBUTES:
            change = edit_scene(example.scene, attribute, rng)
            changed = None if change is None else (render_scene(change.edited) != example.frames).any(-1)
            if changed is not None and changed.any():  # (f, h, w): the pixels this change touches
                texts.append(scene_caption(change.edited))
                attributes.append(attribute)
                regions.append(torch.from_numpy(changed)[..., None].expand(-1, -1, -1, 3))  # as frames (f, h, w, 3)
        frames = torch.from_numpy(example.frames)[None]
        x = pipe.codec.encode(frames).float().cpu()
        noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(seed))
        for sigma in sigmas:
            x_t = interpolate(x, noise, torch.tensor([sigma])).expand(len(texts), *x.shape[1:])
            decoded = pipe.codec.decode(denoise(x_t, texts, sigma))  # uint8 (b, f, h, w, 3)
            squared = ((decoded.float() - frames.float()) / 127.5) ** 2
            for k, (attribute, region) in enumerate(zip(attributes, regions), start=1):
                right, wrong = float(squared[0][region].mean()), float(squared[k][region].mean())
                entry = sums[(sigma, attribute)]
                entry[0] += 1
                entry[1] += right
                entry[2] += wrong
                entry[3] += right < wrong
        if progress is not None:
            progress(index + 1, config.num_clips)
    rows = []
    for (sigma, attribute), (n, right, wrong, better) in sums.items():
        rows.append(ProbeRow(sigma, attribute, n, right / n if n else float("nan"),
                             wrong / n if n else float("nan"), better))
    return rows


def render_probe(rows: Sequence[ProbeRow]) -> str:
    """A markdown table: per σ and attribute, the errors with the right and the changed caption."""
    lines = [
        "| σ | attribute changed | clips | error, own caption | error, changed caption | ratio | own caption better |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        better = f"{r.right_better / r.clips:.2f} ({r.right_better}/{r.clips})" if r.clips else "–"
        lines.append(f"| {r.sigma:g} | {r.attribute} | {r.clips} | {r.error_right:.4f} | {r.error_wrong:.4f} | "
                     f"{r.ratio:.2f} | {better} |")
    return "\n".join(lines)


# predict(frames uint8 (f, h, w, 3), ids (b, l), text σ (b,)) -> the most likely id per position (b, l)
WordPredictor = Callable[[np.ndarray, torch.Tensor, torch.Tensor], torch.Tensor]
WORD_CONDITIONS = ("colour written", "colour noised")


@dataclass(frozen=True)
class WordProbeRow:
    set_name: str
    condition: str  # one of WORD_CONDITIONS
    right: int  # shape words predicted right
    total: int

    @property
    def accuracy(self) -> float:
        return self.right / self.total if self.total else float("nan")


def pipeline_word_predictor(pipe) -> WordPredictor:
    """The pipeline's transformer reading text beside the clean clip, as captioning does."""

    @torch.no_grad()
    def predict(frames: np.ndarray, ids: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        device, b = pipe._device, ids.shape[0]
        video = pipe.codec.encode(torch.from_numpy(frames)[None]).to(device, pipe._dtype)
        context = pipe._encode_prompts([""]).expand(b, -1, -1)
        logits = pipe.transformer(video.expand(b, *video.shape[1:]), ids.to(device), torch.zeros(b, device=device),
                                  sigma.to(device), context).text_logits
        return pipe.text_flow.posterior(logits, temperature=0.0).argmax(-1).cpu()

    return predict


def run_word_probe(
    pipe,
    config: EvalConfig = EvalConfig(),
    predict: WordPredictor | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[WordProbeRow]:
    """Per set and condition, how often the shape word of an object is predicted right (module doc).

    Counted like the evaluation: every object on the main set, on the held-out set those with a
    held-out colour–shape pair. The noised words are redrawn from the text source (one draw per
    clip, the same in both conditions); the text σ is the one whose κ is the clean fraction.
    """
    if not is_word_level(pipe.tokenizer):
        raise ValueError("the word probe reads Shapes captions word by word; this model's tokenizer is not word-level.")
    predict = predict or pipeline_word_predictor(pipe)
    shapes, flow, length = clip_config(pipe), pipe.text_flow, pipe.config.max_text_len
    counts = {(s, c): [0, 0] for s in SETS for c in WORD_CONDITIONS}
    total, done = config.num_clips + config.num_heldout, 0
    for set_name in SETS:
        for index in range(config.count(set_name)):
            example = eval_example(config, set_name, index, shapes)
            caption = scene_caption(example.scene)
            words = split_words(pipe.tokenizer, caption)  # one token per word
            ids, _ = encode_text(pipe.tokenizer, [caption], length)
            noise = flow.sample_source((length,), generator=torch.Generator().manual_seed(config.pipeline_seed(set_name, index)))
            rows, texts, sigmas = [], [], []  # every (condition, shape position) of the clip, one batch
            for i in range(1, len(words)):
                color, shape = words[i - 1], words[i]
                if color not in COLORS or shape not in SHAPES:
                    continue
                if set_name != "main" and (color, shape) not in HELD_OUT_PAIRS:
                    continue
                for condition, noised in zip(WORD_CONDITIONS, ([i], [i - 1, i])):
                    text = ids[0].clone()
                    text[noised] = noise[noised]
                    rows.append((condition, i))
                    texts.append(text)
                    sigmas.append(flow.sigma_at(1.0 - len(noised) / length))
            if rows:
                best = predict(example.frames, torch.stack(texts), torch.tensor(sigmas))
                for k, (condition, i) in enumerate(rows):
                    entry = counts[(set_name, condition)]
                    entry[0] += int(best[k, i]) == int(ids[0, i])
                    entry[1] += 1
            done += 1
            if progress is not None:
                progress(done, total)
    return [WordProbeRow(s, c, *counts[(s, c)]) for s in SETS for c in WORD_CONDITIONS if config.count(s)]


def render_word_probe(rows: Sequence[WordProbeRow]) -> str:
    """A markdown table: per set, shape words right with the colour word written and noised."""
    lines = ["| set | shape words | right, colour written | right, colour noised |", "|---|---:|---:|---:|"]
    by_set: dict[str, dict[str, WordProbeRow]] = {}
    for r in rows:
        by_set.setdefault(r.set_name, {})[r.condition] = r
    for set_name, cells in by_set.items():
        n = next(iter(cells.values())).total
        shown = [f"{cells[c].accuracy:.3f} ({cells[c].right}/{cells[c].total})" if cells[c].total else "–"
                 for c in WORD_CONDITIONS]
        lines.append(f"| {set_name} | {n} | {shown[0]} | {shown[1]} |")
    return "\n".join(lines)


# --- where in the noise a generated clip goes wrong (``uvigu probe --levels``) --------------------

# Edit strengths whose schedules start at σ ≈ 0.14 … 1 on the shipped model (20 steps, shift 3);
# strength 1 starts from pure noise, which is generation itself.
DEFAULT_LEVEL_STRENGTHS = (0.05, 0.15, 0.3, 0.5, 0.7, 0.85, 1.0)
LEVEL_FIELDS = ("color", "shape", "motion")
MATCH_KEYS = ("all", *LEVEL_FIELDS)  # "all": colour, shape and motion right together


@dataclass(frozen=True)
class LevelRow:
    strength: float
    sigma: float  # the σ the schedule at this strength starts from
    objects: int  # prompted objects of the clips
    estimate_right: dict[str, int]  # one denoiser call from the noised reference: objects right per field and "all"
    sampled_right: dict[str, int]  # the sampler run from there (an edit with the clip's own prompt): the same
    estimate_error: float  # mean (x̂ − x)² of the one-call estimate, in the codec's units


@dataclass(frozen=True)
class PatchFloors:
    """How much of the clean clips' patches a linear layer of the model cannot carry (mean squared
    residual per value, in the codec's units): what the patch embedding maps to zero (the part of
    each patch outside its weights' row space), and — for a model that predicts the clean clip —
    the part outside the span of the output head (its bias plus its weights' column space)."""

    embedding: float
    head: float | None  # None: the head predicts a velocity, not the clip
    patch_values: int  # values per patch (channels × patch volume)
    width: int  # the model's hidden size


def _object_marks(truth, found, counted: Sequence[bool]) -> dict[str, list[bool]]:
    """Per MATCH_KEYS, whether each counted prompted object is found right."""
    fields = {"all": LEVEL_FIELDS, **{f: (f,) for f in LEVEL_FIELDS}}
    return {key: [ok for ok, keep in zip(match_objects(truth, found, fields[key]), counted) if keep]
            for key in MATCH_KEYS}


def _match_counts(truth, found) -> dict[str, int]:
    """Per MATCH_KEYS, how many prompted objects are found right."""
    return {key: sum(marks) for key, marks in _object_marks(truth, found, [True] * len(truth)).items()}


def run_level_probe(
    pipe,
    config: EvalConfig = EvalConfig(),
    strengths: Sequence[float] = DEFAULT_LEVEL_STRENGTHS,
    denoise: Denoiser | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[LevelRow]:
    """Per strength, over the main-set clips of ``config`` (seeds as the evaluation's): the reference
    clip is noised to the σ the edit schedule at that strength starts from, then (a) the denoiser's
    one-call clean estimate from there with the clip's prompt as the condition, and (b) the whole
    sampler run from there — ``pipe.edit(clip, prompt, strength)``, with the pipeline's default steps
    and guidance, so strength 1 is ``pipe.generate(prompt)`` with the same seed — are analyzed like
    generated clips. Where (b) falls below (a), the sampler's later steps lose what the noisy clip
    still showed; where (a) falls, the denoiser cannot read it from the noise at that level."""
    for strength in strengths:
        if not 0.0 < strength <= 1.0:
            raise ValueError(f"strengths must be in (0, 1], got {strength}.")
    denoise = denoise or pipeline_denoiser(pipe)
    steps = pipe.config.num_inference_steps
    starts = {s: float(inference_sigmas(pipe.scheduler, steps, s)[0]) for s in strengths}
    shapes = clip_config(pipe)
    zero = lambda: dict.fromkeys(MATCH_KEYS, 0)  # noqa: E731
    sums = {s: [0, zero(), zero(), 0.0] for s in strengths}  # objects, estimate, sampled, error
    for index in range(config.num_clips):
        example = eval_example(config, "main", index, shapes)
        seed = config.pipeline_seed("main", index)
        truth = scene_mentions(example.scene)
        x = pipe.codec.encode(torch.from_numpy(example.frames)[None]).float().cpu()
        noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(seed))
        for strength in strengths:
            sigma = starts[strength]
            estimate = denoise(interpolate(x, noise, torch.tensor([sigma])), [example.prompt], sigma).float().cpu()
            sampled = pipe.edit(example.frames, example.prompt, strength=strength, seed=seed).frames
            entry = sums[strength]
            entry[0] += len(truth)
            for counts, frames in ((entry[1], pipe.codec.decode(estimate)[0].numpy()), (entry[2], sampled)):
                for key, n in _match_counts(truth, analyze_clip(frames).objects).items():
                    counts[key] += n
            entry[3] += float(((estimate - x) ** 2).mean())
        if progress is not None:
            progress(index + 1, config.num_clips)
    n = max(config.num_clips, 1)
    return [LevelRow(s, starts[s], objects, estimate, sampled, error / n)
            for s, (objects, estimate, sampled, error) in sums.items()]


def render_level_probe(rows: Sequence[LevelRow]) -> str:
    """A markdown table: per strength, objects right from one denoiser call and after the sampler."""
    lines = [
        "| strength | starts at σ | objects | one call: right (colour, shape, motion) | shape | motion | "
        "error | sampled from there: right | shape | motion |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        def cell(counts: dict[str, int], key: str) -> str:
            return f"{counts[key] / r.objects:.3f}" if r.objects else "–"

        def share(counts: dict[str, int]) -> str:
            return f"{counts['all'] / r.objects:.3f} ({counts['all']}/{r.objects})" if r.objects else "–"

        lines.append(
            f"| {r.strength:g} | {r.sigma:.3f} | {r.objects} | {share(r.estimate_right)} | "
            f"{cell(r.estimate_right, 'shape')} | {cell(r.estimate_right, 'motion')} | {r.estimate_error:.4f} | "
            f"{share(r.sampled_right)} | {cell(r.sampled_right, 'shape')} | {cell(r.sampled_right, 'motion')} |"
        )
    return "\n".join(lines)


@dataclass(frozen=True)
class StepRow:
    """One sampler step of generation, over one set's clips: what its clean estimate shows."""

    set_name: str  # "main" | "heldout"
    step: int  # the sampler's step, from 0; the row after the last step is the finished clip
    sigma: float  # the noise level the step starts from (0: the finished clip)
    objects: int  # prompted objects counted (on the held-out set, those of a held-out pair)
    right: dict[str, int]  # per MATCH_KEYS: objects right in the step's clean estimate
    lost: dict[str, int]  # right here, wrong in the finished clip
    gained: dict[str, int]  # wrong here, right in the finished clip


def run_step_probe(
    pipe,
    config: EvalConfig = EvalConfig(),
    progress: Callable[[int, int], None] | None = None,
) -> list[StepRow]:
    """Per set and sampler step, over the clips of ``config``: each clip's prompt generated as the
    evaluation generates it (``pipe.generate(prompt, seed)`` at the model's defaults, with the
    trajectory), and each step's clean estimate and the finished clip analyzed; every estimate is
    compared, object by object, with the finished clip. Steps where ``lost`` and ``gained`` are near
    zero no longer change what the clip shows: what is wrong there was decided before."""
    shapes = clip_config(pipe)
    rows, done, total = [], 0, config.num_clips + config.num_heldout
    for set_name in SETS:
        sigmas: list[float] = []  # the σ of each step, then 0 for the finished clip
        right, lost, gained = [], [], []  # per step: a count per MATCH_KEYS
        objects = 0
        for index in range(config.count(set_name)):
            example = eval_example(config, set_name, index, shapes)
            out = pipe.generate(example.prompt, seed=config.pipeline_seed(set_name, index), return_trajectory=True)
            truth = scene_mentions(example.scene)
            counted = counted_objects(set_name, truth)
            objects += sum(counted)
            states = [(step.sigma, step.frames) for step in out.trajectory] + [(0.0, out.frames)]
            if not sigmas:
                sigmas = [sigma for sigma, _ in states]
                right, lost, gained = ([dict.fromkeys(MATCH_KEYS, 0) for _ in states] for _ in range(3))
            elif len(states) != len(sigmas):
                raise ValueError("every clip must be generated in the same number of steps.")
            marks = [_object_marks(truth, analyze_clip(frames).objects, counted) for _, frames in states]
            end = marks[-1]
            for step, here in enumerate(marks):
                for key in MATCH_KEYS:
                    right[step][key] += sum(here[key])
                    lost[step][key] += sum(a and not b for a, b in zip(here[key], end[key]))
                    gained[step][key] += sum(b and not a for a, b in zip(here[key], end[key]))
            done += 1
            if progress is not None:
                progress(done, total)
        rows += [StepRow(set_name, step, sigma, objects, right[step], lost[step], gained[step])
                 for step, sigma in enumerate(sigmas)]
    return rows


def render_step_probe(rows: Sequence[StepRow]) -> str:
    """A markdown table: per set and step, objects right in the clean estimate, and how many of them
    the finished clip loses or gains (all three fields together, then shape and motion)."""
    lines = [
        "| set | step | σ | objects right (colour, shape, motion) | colour | shape | motion | "
        "right here, wrong at the end (all / shape / motion) | wrong here, right at the end (all / shape / motion) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        def share(key: str) -> str:
            return f"{r.right[key] / r.objects:.3f}" if r.objects else "–"

        def moved(counts: dict[str, int]) -> str:
            return " / ".join(str(counts[k]) for k in ("all", "shape", "motion"))

        step = "end" if r.sigma == 0.0 else str(r.step)
        lines.append(
            f"| {r.set_name} | {step} | {r.sigma:.3f} | {share('all')} ({r.right['all']}/{r.objects}) | "
            f"{share('color')} | {share('shape')} | {share('motion')} | {moved(r.lost)} | {moved(r.gained)} |"
        )
    return "\n".join(lines)


def _patches(x: torch.Tensor, patch: tuple[int, int, int], channels_last: bool) -> torch.Tensor:
    """(b, c, f, h, w) → (patches, values), each patch flattened as (c, t, h, w) or (t, h, w, c)."""
    b, c, f, h, w = x.shape
    pt, ph, pw = patch
    x = x.reshape(b, c, f // pt, pt, h // ph, ph, w // pw, pw)
    order = (0, 2, 4, 6, 3, 5, 7, 1) if channels_last else (0, 2, 4, 6, 1, 3, 5, 7)
    return x.permute(*order).reshape(-1, c * pt * ph * pw)


@torch.no_grad()
def patch_floors(pipe, config: EvalConfig = EvalConfig()) -> PatchFloors:
    """The model's linear floors (PatchFloors) on the clean main-set clips of ``config``."""
    model = pipe.transformer
    patch = tuple(model.config.patch_size)
    embed = model.patch_embedding.weight.detach().float().cpu().flatten(1)  # (width, c·t·h·w), beside the clips
    head_w = model.proj_out.weight.detach().float().cpu()  # (t·h·w·c, width)
    head_b = model.proj_out.bias.detach().float().cpu()
    seen = torch.linalg.svd(embed, full_matrices=False)[2]  # orthonormal rows spanning what the embedding reads
    seen = seen[: int(torch.linalg.matrix_rank(embed))]
    spanned = torch.linalg.svd(head_w, full_matrices=False)[0]  # orthonormal columns spanning what the head draws
    spanned = spanned[:, : int(torch.linalg.matrix_rank(head_w))]
    predicts_clip = model.config.prediction_type == "sample"
    shapes = clip_config(pipe)
    lost_in = lost_out = 0.0
    values = 0
    for index in range(config.num_clips):
        x = pipe.codec.encode(torch.from_numpy(eval_example(config, "main", index, shapes).frames)[None]).float().cpu()
        p_in = _patches(x, patch, channels_last=False)
        lost_in += float(((p_in - (p_in @ seen.T) @ seen) ** 2).sum())
        p_out = _patches(x, patch, channels_last=True) - head_b
        lost_out += float(((p_out - (p_out @ spanned) @ spanned.T) ** 2).sum())
        values += p_in.numel()
    values = max(values, 1)
    return PatchFloors(lost_in / values, lost_out / values if predicts_clip else None, embed.shape[1], embed.shape[0])


def render_patch_floors(floors: PatchFloors) -> str:
    head = ("(the head predicts a velocity)" if floors.head is None
            else f"{floors.head:.4f} outside the output head's span")
    return (f"Linear floors on the clean clips ({floors.patch_values} values per patch, width {floors.width}): "
            f"{floors.embedding:.4f} per value unseen by the patch embedding; {head}.")
