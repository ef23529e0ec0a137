"""``uvigu bench``: the command-line face of the benchmarks of ``uvigu.bench`` (prints the tables, writes
the doc).

``uvigu bench`` measures the CPU figures on a pipeline folder; ``uvigu bench --gpu`` runs the
Wan-scale GPU benchmark (``uvigu.bench_gpu``). Each writes its own marked section of the doc.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from .common import shown_path

# The measuring modules (torch, diffusers) load when the command runs, so registering the
# subcommand keeps `uvigu --help` fast.
DEFAULT_OUTPUT = "docs/BENCHMARKS.md"


def add_bench_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``bench`` on an ``argparse`` subparsers object."""
    parser = subparsers.add_parser(
        "bench",
        help="time generate / caption / edit, the denoiser's GFLOP/s and its step cost against plain Wan",
        description="Measure, in one run: the pipeline tasks at default settings, the denoiser's achieved "
        "GFLOP/s against a plain matmul, the unified model's step cost against diffusers' "
        "WanTransformer3DModel of the same size, and generate / caption / edit with the denoiser's weights in "
        "bfloat16 against float32. Prints markdown and writes it into --output.",
    )
    parser.add_argument("--model", default=None,
                        help="pipeline folder (default: the shipped assets/uvigu-shapes; without a saved pipeline "
                        "there, a randomly initialised 'shapes' pipeline of the same size is measured)")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per task, after the warm-up [%(default)s]")
    parser.add_argument("--warmup", type=int, default=1, help="untimed calls per task first [%(default)s]")
    parser.add_argument("--forward-repeats", type=int, default=10,
                        help="timed calls per single forward and matmul [%(default)s]")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--output", default=DEFAULT_OUTPUT, help="markdown file to update [%(default)s]")
    parser.add_argument("--no-write", action="store_true", help="print only; leave --output untouched")
    parser.add_argument("--gpu", action="store_true",
                        help="instead, the Wan2.1-1.3B-size GPU benchmark (random bf16 weights; needs CUDA)")
    parser.set_defaults(func=run_bench)


def _command(args: argparse.Namespace, model: Path, threads: int) -> str:
    """The canonical command that reproduces this run."""
    parts = ["uvigu", "bench", "--model", shown_path(model), "--repeats", str(args.repeats), "--warmup", str(args.warmup),
             "--forward-repeats", str(args.forward_repeats), "--threads", str(threads)]
    if args.output != DEFAULT_OUTPUT:
        parts += ["--output", shown_path(args.output)]
    return shlex.join(parts)


def run_bench(args: argparse.Namespace) -> int:
    """Run the benchmarks as ``args`` asks; print the report and write it into ``args.output``."""
    if args.gpu:
        return _run_gpu(args)
    import torch

    from ..bench.report import format_markdown, load_average, machine_info, write_section
    from ..bench.suite import load_benchmark_pipeline, run_benchmarks
    from ..models.presets import SHIPPED_MODEL_DIR

    if args.repeats < 1 or args.warmup < 0 or args.forward_repeats < 1:
        raise ValueError("--repeats and --forward-repeats must be at least 1, --warmup at least 0.")
    if args.threads is not None:
        if args.threads < 1:
            raise ValueError(f"--threads must be at least 1, got {args.threads}.")
        torch.set_num_threads(args.threads)
    model_dir = Path(args.model) if args.model else SHIPPED_MODEL_DIR
    pipe, loaded = load_benchmark_pipeline(model_dir)
    if loaded:
        model = f"`{shown_path(model_dir)}`"
    else:
        model = f"a randomly initialised `shapes` pipeline (no saved pipeline at `{shown_path(model_dir)}`)"
        print(f"note: {shown_path(model_dir)} holds no saved pipeline; measuring a randomly initialised 'shapes' "
              "pipeline of the same size (speed does not depend on the weights).", file=sys.stderr)
    machine = machine_info(pipe.transformer.device)
    result = run_benchmarks(pipe, model, repeats=args.repeats, warmup=args.warmup, forward_repeats=args.forward_repeats)
    markdown = format_markdown(result, machine, _command(args, model_dir, torch.get_num_threads()),
                               load_after=load_average())
    print(markdown)
    if not args.no_write:
        write_section(args.output, markdown)
        print(f"wrote {shown_path(args.output)}", file=sys.stderr)
    return 0


def _run_gpu(args: argparse.Namespace) -> int:
    import torch

    if not torch.cuda.is_available():
        print("uvigu bench --gpu needs a CUDA device and none is available; nothing was measured.", file=sys.stderr)
        return 2
    try:
        from ..bench_gpu import device_description, render_markdown, run_gpu_benchmark
    except ImportError as error:
        print(f"uvigu bench --gpu is not available in this installation ({error}).", file=sys.stderr)
        return 2
    from ..bench.report import write_section

    rows = run_gpu_benchmark()
    command = "uvigu bench --gpu" + ("" if args.output == DEFAULT_OUTPUT else f" --output {shown_path(args.output)}")
    markdown = f"## `{command}`\n\n" + render_markdown(rows, device_description())
    print(markdown)
    if not args.no_write:
        write_section(args.output, markdown, section="gpu")
        print(f"wrote {shown_path(args.output)}", file=sys.stderr)
    return 0

