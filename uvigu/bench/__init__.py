"""Benchmarks (``uvigu bench``): task wall times, the denoiser's achieved GFLOP/s against a plain
matmul, the unified model's step cost against diffusers' plain Wan transformer, and the tasks with
the denoiser's weights in bfloat16 against float32 — each against a
baseline timed in the same run, written into ``docs/BENCHMARKS.md``.

Modules: ``timing`` (repeat-and-summarise), ``flops`` (analytic and measured FLOP counts),
``suite`` (the measurements), ``report`` (machine info, markdown, the marked doc section),
``command`` (the CLI subcommand).
"""

from .flops import ForwardShape, count_flops, transformer_flops, video_tokens
from .report import format_markdown, machine_info, write_section
from .suite import (
    BenchmarkResult,
    ForwardRow,
    MatmulRow,
    PrecisionRow,
    StepCost,
    TaskRow,
    bench_forwards,
    bench_matmuls,
    bench_precision,
    bench_tasks,
    load_benchmark_pipeline,
    plain_wan_like,
    run_benchmarks,
)
from .timing import Timing, time_call

__all__ = [
    "BenchmarkResult", "ForwardRow", "ForwardShape", "MatmulRow", "PrecisionRow", "StepCost", "TaskRow", "Timing",
    "bench_forwards", "bench_matmuls", "bench_precision", "bench_tasks", "count_flops", "format_markdown",
    "load_benchmark_pipeline", "machine_info", "plain_wan_like", "run_benchmarks", "time_call", "transformer_flops",
    "video_tokens", "write_section",
]
