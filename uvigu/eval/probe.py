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
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from uvigu.data.shapes import COLORS, HELD_OUT_PAIRS, SHAPES, render_scene, scene_caption
from uvigu.eval.edits import ATTRIBUTES, edit_scene
from uvigu.eval.report import SETS, EvalConfig, clip_config, eval_example
from uvigu.flows import interpolate
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
