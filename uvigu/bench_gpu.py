"""GPU benchmark: step time and peak memory of the unified model against diffusers' Wan transformer.

Random weights at the Wan2.1-T2V-1.3B size in bf16 (no checkpoint needed). One "step" is one
transformer call at batch 1 under ``torch.no_grad`` — what a denoising step costs without guidance
(classifier-free guidance doubles the batch). Measured per clip size, in the same run:

* ``wan`` — diffusers' ``WanTransformer3DModel`` (the baseline);
* ``t2v`` — the unified model generating video with the prompt's tokens held clean in the text stream;
* ``caption`` — clean video, the whole text stream noisy, empty condition;
* ``joint`` — video and text both noisy.

``uvigu bench --gpu`` calls :func:`run_gpu_benchmark` and :func:`render_markdown`. Without a CUDA
device the benchmark refuses (it measures nothing meaningful on a CPU); tests run the same code on
the CPU with a tiny configuration by passing ``device="cpu"`` explicitly.

Tensor vocabulary: b batch, c latent channels, f/h/w latent frames, height and width, l text tokens,
s prompt-encoder tokens.
"""

from __future__ import annotations

import gc
import logging
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from diffusers import WanTransformer3DModel

from .models.presets import WAN_1_3B
from .models.transformer import UniViGUTransformer3DModel
from .models.wan_loading import cast_keeping_fp32_modules

logger = logging.getLogger(__name__)

UMT5_VOCAB = 256384  # UMT5 config vocabulary; the text head adds one [MASK] id
TASKS = ("wan", "t2v", "caption", "joint")


@dataclass(frozen=True)
class ClipSize:
    num_frames: int  # 4k + 1
    height: int  # multiple of 16
    width: int

    @property
    def label(self) -> str:
        return f"{self.num_frames}×{self.height}×{self.width}"

    def latent_shape(self, channels: int, temporal: int = 4, spatial: int = 8) -> tuple[int, int, int, int]:
        return (channels, (self.num_frames - 1) // temporal + 1, self.height // spatial, self.width // spatial)


# Wan2.1's default clip (32,760 video tokens) and two smaller ones.
DEFAULT_SIZES = (ClipSize(81, 480, 832), ClipSize(33, 480, 832), ClipSize(17, 320, 576))


def run_gpu_benchmark(
    sizes: Sequence[ClipSize] = DEFAULT_SIZES,
    *,
    model_config: dict | None = None,
    vocab_size: int = UMT5_VOCAB,
    text_len: int = 256,  # text stream (the official --max_length 256)
    prompt_tokens: int = 64,  # the t2v text stream: the prompt's tokens alone, as UniViGUPipeline.generate
    context_len: int = 512,  # UMT5 condition length, as WanPipeline
    warmup: int = 2,
    iters: int = 5,
    device: str | torch.device = "cuda",
    dtype: torch.dtype = torch.bfloat16,
    tasks: Sequence[str] = TASKS,
    seed: int = 0,
) -> list[dict]:
    """Measure every task at every size; one dict per (size, task).

    Row keys: ``size``, ``video_tokens``, ``text_tokens``, ``task``, ``step_ms`` (median over
    ``iters``), ``peak_gib`` (peak allocated memory, weights included; None on a CPU), ``vs_wan``
    (step time over the Wan baseline's at the same size).
    """
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("the GPU benchmark needs a CUDA device and none is available; it was not run.")
    unknown = set(tasks) - set(TASKS)
    if unknown:
        raise ValueError(f"unknown task(s) {', '.join(sorted(unknown))}; choose from {', '.join(TASKS)}.")
    config = dict(model_config or WAN_1_3B)
    rows: list[dict] = []

    if "wan" in tasks:
        wan = _build(lambda: WanTransformer3DModel(**config), device, dtype, seed)
        for size in sizes:
            x, context = _video_inputs(size, config, context_len, device, dtype, seed)
            t = torch.full((1,), 500.0, device=device)
            call = lambda: wan(x, t, context, return_dict=False)  # noqa: E731
            rows.append(_measure("wan", size, _video_tokens(size, config), 0, call, device, warmup, iters))
        del wan
        _free(device)

    unified_tasks = [t for t in tasks if t != "wan"]
    if unified_tasks:
        model = _build(
            lambda: UniViGUTransformer3DModel(
                **config, vocab_size=vocab_size + 1, mask_token_id=vocab_size, max_text_len=max(text_len, 1)
            ),
            device, dtype, seed,
        )
        g = torch.Generator().manual_seed(seed)
        ids = torch.randint(0, vocab_size, (1, text_len), generator=g).to(device)
        half, zero = torch.full((1,), 0.5, device=device), torch.zeros(1, device=device)
        for size in sizes:
            x, context = _video_inputs(size, config, context_len, device, dtype, seed)
            empty = torch.zeros_like(context)
            calls: dict[str, Callable[[], object]] = {
                "t2v": lambda: model(x, ids[:, :prompt_tokens], half, zero, context),
                "caption": lambda: model(x, ids, zero, half, empty),
                "joint": lambda: model(x, ids, half, half, context),
            }
            for task in unified_tasks:
                tokens = prompt_tokens if task == "t2v" else text_len
                rows.append(_measure(task, size, _video_tokens(size, config), tokens, calls[task], device, warmup, iters))
        del model
        _free(device)

    base = {r["size"]: r["step_ms"] for r in rows if r["task"] == "wan"}
    for r in rows:
        r["dtype"] = str(dtype).removeprefix("torch.")
        r["vs_wan"] = r["step_ms"] / base[r["size"]] if r["size"] in base else None
    order = {s.label: i for i, s in enumerate(sizes)}
    rows.sort(key=lambda r: (order[r["size"]], TASKS.index(r["task"])))
    return rows


def render_markdown(rows: Sequence[dict], device_name: str, model: str = "the Wan2.1-T2V-1.3B size") -> str:
    """A markdown table of ``rows`` headed by the device that produced them."""
    dtype = rows[0]["dtype"] if rows else "?"
    lines = [
        f"Device: {device_name}. Random weights at {model}, {dtype}, batch 1, one transformer call per step "
        "(classifier-free guidance doubles it); median step time; peak memory includes the weights.",
        "",
        "| clip (f×h×w) | video tokens | text tokens | task | step (ms) | × Wan | peak memory (GiB) |",
        "|---|---:|---:|---|---:|---:|---:|",
    ]
    for r in rows:
        ratio = "—" if r.get("vs_wan") is None else f"{r['vs_wan']:.2f}"
        peak = "—" if r.get("peak_gib") is None else f"{r['peak_gib']:.1f}"
        lines.append(
            f"| {r['size']} | {r['video_tokens']:,} | {r['text_tokens']:,} | {r['task']} | "
            f"{r['step_ms']:.1f} | {ratio} | {peak} |"
        )
    return "\n".join(lines) + "\n"


def device_description(device: str | torch.device = "cuda") -> str:
    """A readable name of the device, e.g. ``NVIDIA H100 80GB HBM3 (CUDA 12.8, torch 2.13.0)``."""
    device = torch.device(device)
    if device.type == "cuda" and torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda}, torch {torch.__version__})"
    return f"{device.type} (torch {torch.__version__})"


# --- helpers ---------------------------------------------------------------------------------------


def _build(make: Callable[[], torch.nn.Module], device: torch.device, dtype: torch.dtype, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    with torch.device(device):
        model = make()
    return cast_keeping_fp32_modules(model, dtype).eval().requires_grad_(False)


def _video_inputs(size: ClipSize, config: dict, context_len: int, device, dtype, seed: int):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(1, *size.latent_shape(config["in_channels"]), generator=g).to(device, dtype)
    context = torch.randn(1, context_len, config["text_dim"], generator=g).to(device, dtype)
    return x, context


def _video_tokens(size: ClipSize, config: dict) -> int:
    _, f, h, w = size.latent_shape(config["in_channels"])
    p_t, p_h, p_w = config["patch_size"]
    return (f // p_t) * (h // p_h) * (w // p_w)


def _measure(task: str, size: ClipSize, video_tokens: int, text_tokens: int, call: Callable[[], object],
             device: torch.device, warmup: int, iters: int) -> dict:
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    with torch.no_grad():
        for i in range(warmup + iters):
            start = time.perf_counter()
            call()
            if cuda:
                torch.cuda.synchronize(device)
            if i >= warmup:
                times.append((time.perf_counter() - start) * 1000)
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if cuda else None
    row = {
        "size": size.label, "num_frames": size.num_frames, "height": size.height, "width": size.width,
        "video_tokens": video_tokens, "text_tokens": text_tokens, "task": task,
        "step_ms": statistics.median(times), "peak_gib": peak,
    }
    logger.info("%s %s: %.1f ms/step", size.label, task, row["step_ms"])
    return row


def _free(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
