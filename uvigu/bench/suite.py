"""The measurements of ``uvigu bench``: task wall times, denoiser throughput, step cost against
diffusers' plain Wan transformer, and the tasks with the denoiser's weights in bfloat16 against
float32, all in one run on one pipeline.

Every number is compared with a baseline timed in the same run (STYLE: benchmarks are scripts);
the functions return rows, ``report`` turns them into markdown.

Tensor vocabulary: b batch, c/f/h/w latent dims, l text tokens, s prompt-encoder tokens.
"""

from __future__ import annotations

import copy
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from diffusers import WanTransformer3DModel

from ..loading import cast_denoisers, denoisers
from ..models.prompt_encoder import encode_prompt
from ..models.tokenizer import encode_text
from .flops import ForwardShape, transformer_flops, video_tokens
from .timing import Timing, time_call, time_interleaved

logger = logging.getLogger(__name__)

PROMPT = "a red circle moving right"
EDITED_PROMPT = "a blue circle moving right"
DIFFERENT_WAYS_PROMPT = "a red circle moving right and a blue square moving up"  # objects going different ways
BEST_OF = 4  # takes of the best-of rows: the studio's most tries per take
SIGMA = 0.5  # noise level of the noisy modality in the forward benchmarks (cost does not depend on it)


@dataclass(frozen=True)
class TaskRow:
    """Wall time of one pipeline method at its default settings."""

    task: str  # the pipeline method
    denoiser_calls: int  # transformer forwards per call (CFG runs both branches in one batch-2 call)
    timing: Timing

    @property
    def seconds_per_call(self) -> float:
        return self.timing.median_s / self.denoiser_calls


@dataclass(frozen=True)
class ForwardRow:
    """One denoiser forward (a sampling step) of a given shape."""

    name: str
    batch: int
    video_tokens: int
    text_tokens: int
    flops: int  # analytic count (see flops.py)
    timing: Timing

    @property
    def gflops_per_s(self) -> float:
        return self.flops / self.timing.median_s / 1e9


@dataclass(frozen=True)
class MatmulRow:
    """A plain (m, k) @ (k, n) matmul: the ceiling a forward of that width can reach here."""

    dtype: str
    m: int
    k: int
    n: int
    timing: Timing

    @property
    def flops(self) -> int:
        return 2 * self.m * self.k * self.n

    @property
    def gflops_per_s(self) -> float:
        return self.flops / self.timing.median_s / 1e9


@dataclass(frozen=True)
class StepCost:
    """A forward of the unified model next to diffusers' Wan transformer at the same batch."""

    unified: ForwardRow
    wan: ForwardRow

    @property
    def ratio(self) -> float:
        return self.unified.timing.median_s / self.wan.timing.median_s


@dataclass(frozen=True)
class PrecisionRow:
    """One task with the denoiser's weights in float32 and in bfloat16, called in turn."""

    task: str
    float32: Timing
    bfloat16: Timing

    @property
    def speedup(self) -> float:
        return self.float32.median_s / self.bfloat16.median_s


@dataclass(frozen=True)
class BenchmarkResult:
    model: str  # what was measured: a model dir, or the fallback's description
    tasks: list[TaskRow]
    forwards: list[ForwardRow]  # the unified model's generate and caption steps
    matmuls: list[MatmulRow]
    step_costs: list[StepCost]
    elapsed_s: float
    precision: list[PrecisionRow] = field(default_factory=list)  # float32 against bfloat16 weights
    high_noise_boundary: float | None = None  # the model's high-noise expert's, when it has one


# ---------------------------------------------------------------------------------------------
# The model under test
# ---------------------------------------------------------------------------------------------


def load_benchmark_pipeline(model_dir: str | Path | None = None) -> tuple[object, bool]:
    """``(pipeline, loaded)``: the pipeline saved in ``model_dir`` (default: the shipped model) and
    True, or, when there is none, a randomly initialised ``shapes`` pipeline and False (speed does
    not depend on the weights, so its figures stand in until a model is saved there)."""
    from ..models.presets import SHIPPED_MODEL_DIR
    from ..pipeline import UniViGUPipeline

    model_dir = Path(SHIPPED_MODEL_DIR if model_dir is None else model_dir)
    if (model_dir / "model_index.json").is_file():
        return UniViGUPipeline.from_pretrained(model_dir), True
    logger.warning(
        "no saved pipeline in %s (no model_index.json); benchmarking a randomly initialised 'shapes' "
        "pipeline of the same size instead.", model_dir.name,
    )
    return _fallback_pipeline(), False


def _fallback_pipeline():
    from ..data.shapes import shapes_vocabulary
    from ..models.presets import build_pipeline

    return build_pipeline("shapes", shapes_vocabulary())


def example(pipe):
    """A Shapes example at the pipeline's default size: its clip (uint8 (f, h, w, 3)) for caption
    and edit, and its caption as the text before the change for the edit that keeps the rest."""
    from ..data.shapes import ShapesConfig, make_example

    f, h, w = pipe.default_num_frames, pipe.default_height, pipe.default_width
    try:
        config = ShapesConfig(size=min(h, w), num_frames=f)
    except ValueError:  # too small a frame for the grammar's sizes: let the pipeline resize
        config = ShapesConfig()
    return make_example(0, config)


def one_word_edited(shapes) -> str:
    """The studio's round-trip edit of a Shapes example: its caption with the first object's colour
    changed to one its scene does not use."""
    from ..data.shapes import COLORS

    first = shapes.scene.objects[0]
    used = {obj.color for obj in shapes.scene.objects}
    return re.sub(rf"\b{first.color}\b", next(c for c in COLORS if c not in used), shapes.caption, count=1)


# ---------------------------------------------------------------------------------------------
# 1. Tasks
# ---------------------------------------------------------------------------------------------


def _count_calls(modules: list[torch.nn.Module], fn: Callable[[], object]) -> int:
    calls = []
    handles = [module.register_forward_pre_hook(lambda *_: calls.append(1)) for module in modules]
    try:
        fn()
    finally:
        for handle in handles:
            handle.remove()
    return len(calls)


def bench_tasks(pipe, *, repeats: int = 3, warmup: int = 1, clip: np.ndarray | None = None) -> list[TaskRow]:
    """Median / min / max wall time of generate, caption, edit, edit_keep_rest (``edit`` also given
    the text before the change, ``source_prompt``: the studio's default edit), edit_one_word (the
    example's caption, one word changed, from the caption: the studio's round trip),
    generate_with_caption, and generate with ``best_of`` takes — judged where and how the model's
    ``take_judge_at`` / ``take_judge_steps`` say, and (``_full``) every take finished and captioned
    at the defaults — at the pipeline's default steps and guidance (seed 0); for a model with a
    high-noise expert also generate_no_expert, generate with ``high_noise_expert=False``; and
    generate_different_ways, of a prompt whose objects go different ways. The first
    warm-up call also counts forwards, the expert's among them."""
    rows = []
    for name, fn in _task_calls(pipe, clip).items():
        calls = _count_calls(denoisers(pipe), fn)
        timing = time_call(fn, repeats=repeats, warmup=max(0, warmup - 1), synchronize=_sync(pipe.transformer))
        logger.info("%s: median %.3f s over %d", name, timing.median_s, repeats)
        rows.append(TaskRow(name, calls, timing))
    return rows


def _task_calls(pipe, clip: np.ndarray | None = None) -> dict[str, Callable[[], object]]:
    """The calls ``bench_tasks`` times, by task name, on the example clip (or ``clip``)."""
    shapes = example(pipe)
    clip = shapes.frames if clip is None else clip
    source = shapes.caption  # what the example clip shows (for another clip it only sets the text's length)
    expert = {}
    if getattr(pipe, "high_noise_expert", None) is not None:  # the same clip's steps, all by the model
        expert["generate_no_expert"] = lambda: pipe.generate(PROMPT, seed=0, high_noise_expert=False)
    return {
        "generate": lambda: pipe.generate(PROMPT, seed=0),
        **expert,
        "generate_different_ways": lambda: pipe.generate(DIFFERENT_WAYS_PROMPT, seed=0),
        "caption": lambda: pipe.caption(clip, seed=0),
        "edit": lambda: pipe.edit(clip, EDITED_PROMPT, seed=0),
        "edit_keep_rest": lambda: pipe.edit(clip, EDITED_PROMPT, source_prompt=source, seed=0),
        "edit_one_word": lambda: pipe.edit(clip, one_word_edited(shapes), source_prompt=source, seed=0),
        "generate_with_caption": lambda: pipe.generate_with_caption(PROMPT, seed=0),
        # best of BEST_OF takes, judged as the model's settings say, and every take finished and read in full
        f"generate_best_of_{BEST_OF}": lambda: pipe.generate(PROMPT, seed=0, best_of=BEST_OF),
        f"generate_best_of_{BEST_OF}_full": lambda: pipe.generate(PROMPT, seed=0, best_of=BEST_OF, judge_at=1.0,
                                                                   judge_steps=0),
    }


# the studio's calls at its defaults: a take (generate, then caption; of one object or of objects going
# different ways) and its edits (plain, keeping the rest, and the caption with one word changed)
PRECISION_TASKS = ("generate", "generate_different_ways", "caption", "edit", "edit_keep_rest", "edit_one_word")


def bench_precision(pipe, *, repeats: int = 3, warmup: int = 1) -> list[PrecisionRow]:
    """The `PRECISION_TASKS` at their defaults with the denoiser's weights as loaded (float32) and
    in bfloat16 — a copy cast as ``--dtype bfloat16`` casts it (norms, modulation tables and
    timestep embedder kept float32) — the two called in turn."""
    if pipe.transformer.dtype != torch.float32:
        raise ValueError(f"bench_precision compares with float32 weights; this pipeline's are {pipe.transformer.dtype}.")
    low = copy.deepcopy(pipe)
    cast_denoisers(low, torch.bfloat16)  # a high-noise expert too, which must run in the model's precision
    full_calls, low_calls = _task_calls(pipe), _task_calls(low)
    rows = []
    for name in PRECISION_TASKS:
        timings = time_interleaved({"float32": full_calls[name], "bfloat16": low_calls[name]}, repeats=repeats,
                                   warmup=warmup, synchronize=_sync(pipe.transformer))
        logger.info("%s: float32 %.3f s, bfloat16 %.3f s", name, timings["float32"].median_s,
                    timings["bfloat16"].median_s)
        rows.append(PrecisionRow(name, timings["float32"], timings["bfloat16"]))
    return rows


# ---------------------------------------------------------------------------------------------
# 2 and 3. Denoiser forwards, matmul ceilings, and the plain Wan baseline
# ---------------------------------------------------------------------------------------------


def plain_wan_like(transformer) -> WanTransformer3DModel:
    """A randomly initialised diffusers ``WanTransformer3DModel`` with the unified model's sizes
    (width, heads, layers, patch, channels, FFN, prompt width), on its device and dtype."""
    c = transformer.config
    wan = WanTransformer3DModel(
        patch_size=tuple(c.patch_size),
        num_attention_heads=c.num_attention_heads,
        attention_head_dim=c.attention_head_dim,
        in_channels=c.in_channels,
        out_channels=c.out_channels,
        text_dim=c.text_dim,
        freq_dim=c.freq_dim,
        ffn_dim=c.ffn_dim,
        num_layers=c.num_layers,
        cross_attn_norm=c.cross_attn_norm,
        qk_norm=c.qk_norm,
        eps=c.eps,
        rope_max_seq_len=c.rope_max_seq_len,
    )
    wan = wan.to(transformer.device)
    # diffusers keeps norms and embedders in fp32 when loading in low precision; a cast is the
    # closest a fresh model gets (it warns), and only low-precision pipelines need it.
    return (wan if transformer.dtype == torch.float32 else wan.to(transformer.dtype)).eval()


def _sync(module: torch.nn.Module) -> Callable[[], None] | None:
    device = next(module.parameters()).device
    return torch.cuda.synchronize if device.type == "cuda" else None


@dataclass(frozen=True)
class _Inputs:
    latents: torch.Tensor  # (b, c, f, h, w)
    context: torch.Tensor  # (b, s, text_dim)


def _inputs(pipe, batch: int, generator: torch.Generator) -> _Inputs:
    device, dtype = pipe.transformer.device, pipe.transformer.dtype
    shape = (batch, *pipe.codec.latent_shape(pipe.default_num_frames, pipe.default_height, pipe.default_width))
    latents = torch.randn(shape, generator=generator).to(device, dtype)
    prompts = [PROMPT, ""][:batch] if batch <= 2 else [PROMPT] * batch
    with torch.no_grad():
        context = encode_prompt(pipe.text_encoder, pipe.tokenizer, prompts, pipe.config.max_prompt_len, device, dtype)
    return _Inputs(latents, context)


def bench_forwards(pipe, *, repeats: int = 10, warmup: int = 2, seed: int = 0) -> tuple[list[ForwardRow], list[StepCost]]:
    """Time single denoiser forwards at the default clip size.

    Returns the unified model's generate step (batch 2: CFG's two branches, the prompt's tokens
    clean in the text stream, without padding as in the pipeline) and caption step (batch 1, the
    text stream noisy, the clip clean), and the step-cost comparisons with a plain diffusers Wan
    transformer of the same sizes: generate step, generate without text tokens, caption step.
    The five forwards are timed in turn, so that other load on the machine hits them alike.
    """
    transformer = pipe.transformer
    wan = plain_wan_like(transformer)
    generator = torch.Generator("cpu").manual_seed(seed)
    device = transformer.device
    c = transformer.config
    latent = pipe.codec.latent_shape(pipe.default_num_frames, pipe.default_height, pipe.default_width)
    n = video_tokens(tuple(c.patch_size), *latent[1:])
    s = pipe.config.max_prompt_len
    length = pipe.config.max_text_len
    wan_config = dict(c)

    def unified(name: str, batch: int, text: str) -> tuple[str, Callable[[], object], ForwardShape, int]:
        x = _inputs(pipe, batch, generator)
        noisy, clean = torch.full((batch,), SIGMA, device=device), torch.zeros(batch, device=device)
        if text == "prompt":  # generate: the prompt clean, its padding dropped as the pipeline does
            ids, valid = encode_text(pipe.tokenizer, [PROMPT] * batch, length)
            ids, mask, sv, st = ids[:, : int(valid[0].sum())].to(device), None, noisy, clean
        elif text == "noisy":  # caption: the whole text stream denoised, the clip clean
            ids = pipe.text_flow.sample_source((batch, length), generator=generator).to(device)
            mask, sv, st = None, clean, noisy
        else:  # no text tokens: the unified model reduced to Wan's computation
            ids, mask, sv, st = torch.zeros(batch, 0, dtype=torch.long, device=device), None, noisy, clean
        shape = ForwardShape(batch, n, ids.shape[1], s)
        return name, lambda: transformer(x.latents, ids, sv, st, x.context, mask), shape, transformer_flops(c, shape)

    def plain(batch: int) -> tuple[str, Callable[[], object], ForwardShape, int]:
        x = _inputs(pipe, batch, generator)
        timestep = torch.full((batch,), 1000.0 * SIGMA, device=device)
        shape = ForwardShape(batch, n, 0, s)
        call = lambda: wan(hidden_states=x.latents, timestep=timestep, encoder_hidden_states=x.context, return_dict=False)  # noqa: E731
        return f"diffusers Wan, batch {batch}", call, shape, transformer_flops(wan_config, shape, text_stream=False)

    cases = [
        unified("unified, generate step (CFG batch 2, prompt tokens)", 2, "prompt"),
        unified("unified, caption step (text noisy, clip clean)", 1, "noisy"),
        unified("unified, no text tokens (batch 2)", 2, "none"),
        plain(2),
        plain(1),
    ]

    def no_grad(call: Callable[[], object]) -> Callable[[], None]:
        def run() -> None:
            with torch.no_grad():
                call()

        return run

    timings = time_interleaved(
        {name: no_grad(call) for name, call, _, _ in cases}, repeats=repeats, warmup=warmup,
        synchronize=_sync(transformer),
    )
    generate, caption, no_text, wan2, wan1 = (
        ForwardRow(name, shape.batch, shape.video_tokens, shape.text_tokens, flops, timings[name])
        for name, _, shape, flops in cases
    )
    for row in (generate, caption, no_text, wan2, wan1):
        logger.info("%s: median %.4f s", row.name, row.timing.median_s)
    return [generate, caption], [StepCost(generate, wan2), StepCost(no_text, wan2), StepCost(caption, wan1)]


def bench_matmuls(
    m: int, k: int, n: int, *, repeats: int = 10, warmup: int = 2, device: torch.device | str = "cpu", seed: int = 0
) -> list[MatmulRow]:
    """Time a plain (m, k) @ (k, n) matmul in fp32 and in bf16 (the device's dense ceiling at
    that shape)."""
    generator = torch.Generator("cpu").manual_seed(seed)
    operands = {
        str(dtype).removeprefix("torch."): (
            torch.randn(m, k, generator=generator).to(device, dtype),
            torch.randn(k, n, generator=generator).to(device, dtype),
        )
        for dtype in (torch.float32, torch.bfloat16)
    }
    sync = torch.cuda.synchronize if torch.device(device).type == "cuda" else None
    timings = time_interleaved(
        {name: (lambda a=a, b=b: a @ b) for name, (a, b) in operands.items()},
        repeats=repeats, warmup=warmup, synchronize=sync,
    )
    return [MatmulRow(name, m, k, n, timing) for name, timing in timings.items()]


def run_benchmarks(
    pipe, model: str, *, repeats: int = 3, warmup: int = 1, forward_repeats: int = 10
) -> BenchmarkResult:
    """Everything ``uvigu bench`` measures, in one run on ``pipe`` (described as ``model``).

    The matmul baseline has the shape of the FFN's first projection in the generate step:
    (2·(n + l), d) @ (d, ffn_dim), the largest matmul of the forward.
    """
    start = time.perf_counter()
    forwards, step_costs = bench_forwards(pipe, repeats=forward_repeats, warmup=2)
    c = pipe.transformer.config
    rows = forwards[0].batch * (forwards[0].video_tokens + forwards[0].text_tokens)
    matmuls = bench_matmuls(
        rows, c.num_attention_heads * c.attention_head_dim, c.ffn_dim, repeats=forward_repeats, warmup=2,
        device=pipe.transformer.device,
    )
    tasks = bench_tasks(pipe, repeats=repeats, warmup=warmup)
    precision = bench_precision(pipe, repeats=repeats, warmup=warmup)
    expert = getattr(pipe, "high_noise_expert", None)
    return BenchmarkResult(model, tasks, forwards, matmuls, step_costs, time.perf_counter() - start, precision,
                           None if expert is None else expert[1])
