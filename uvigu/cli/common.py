"""What the model commands share: the arguments that pick a model, where it runs and its seed,
loading it, and progress bars on stderr."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


def add_checkpoint_arguments(p: argparse.ArgumentParser, dtype: str = "auto") -> None:
    """The checkpoint a model command loads, where it runs and in what precision (``load_pipeline``'s
    three arguments). ``dtype``: the default precision — auto for the commands that make things,
    float32 for those that measure, so that their reports' figures come out the same on any CPU."""
    p.add_argument("--model", default=None,
                   help="pipeline folder, or a training checkpoint (<run>/checkpoints/step_N, its EMA weights) "
                        "(default: the shipped assets/uvigu-shapes)")
    p.add_argument("--device", default="auto",
                   help="where the model runs: auto (the GPU when torch sees one, else the CPU), cpu, cuda or "
                   "cuda:N [%(default)s]")
    p.add_argument("--dtype", default=dtype,
                   help="precision of the denoiser's weights: float32, bfloat16, or auto — bfloat16 where the "
                   "hardware computes it natively (an Ampere or newer GPU, a CPU with AMX or AVX-512 BF16), else "
                   "float32 (its norms and modulation stay float32; docs/BENCHMARKS.md times both) [%(default)s]")


def add_model_arguments(p: argparse.ArgumentParser) -> None:
    add_checkpoint_arguments(p)
    p.add_argument("--seed", type=int, default=None, help="random seed (default: a random one, printed)")
    p.add_argument("--steps", type=int, default=None, help="denoising steps (default: the model's)")


def add_start_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--start", type=float, default=0.0, metavar="SECONDS",
                   help="where in the video file the model's clip starts (it takes the model's length from there) "
                        "[%(default)s]")


def read_video_arg(pipe, args: argparse.Namespace, video: str | None = None):
    """The ``video`` argument (or ``video``) as the pipeline takes it: the file itself, or with
    ``--start`` its clip from there (uint8 frames), and notes on what was changed to fit."""
    video = args.video if video is None else video
    if not args.start:
        return video, []
    from ..inputs import prepare_video

    return prepare_video(video, pipe.config, start_s=args.start)


def load_pipeline(model: str | None, device: str | None = "auto", dtype: str | None = "float32"):
    from ..loading import load_pipeline

    return load_pipeline(model, device, dtype)


def step_progress(desc: str):
    from tqdm.auto import tqdm

    bar = None

    def callback(step) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=step.num_steps, desc=desc, unit="step", file=sys.stderr)
        bar.update(1)
        if step.index + 1 == step.num_steps:
            bar.close()

    return callback


@contextmanager
def clip_progress(total: int | None, desc: str) -> Iterator[Callable[[int, int], None]]:
    """A bar on stderr for a run over clips; yields the ``progress(done, total)`` callback the
    evaluation, sweep and probe runs take (``total`` None: the first call's)."""
    from tqdm.auto import tqdm

    bars = [] if total is None else [tqdm(total=total, desc=desc, unit="clip", file=sys.stderr)]

    def progress(done: int, count: int) -> None:
        if not bars:
            bars.append(tqdm(total=count, desc=desc, unit="clip", file=sys.stderr))
        bars[0].update(done - bars[0].n)

    try:
        yield progress
    finally:
        for bar in bars:
            bar.close()


def shown_path(path: str | Path) -> str:
    """``path`` relative to the working directory or the repository, so reports name no machine's paths."""
    from ..models.presets import SHIPPED_MODEL_DIR

    resolved = Path(path).resolve()
    for base in (Path.cwd().resolve(), SHIPPED_MODEL_DIR.parents[1]):
        if resolved.is_relative_to(base):
            return resolved.relative_to(base).as_posix()
    return resolved.name


def where_it_ran(pipe, dtype: str) -> str:
    """The flags a report's command adds for where it ran: a GPU's numbers differ from the CPU's in
    the last digits, and so do another precision's (checked by the loader)."""
    from ..inputs import check_dtype

    flags = f" --device {pipe.device}" if pipe.device.type != "cpu" else ""
    if (chosen := str(check_dtype(dtype, pipe.device)).removeprefix("torch.")) != "float32":
        flags += f" --dtype {chosen}"
    return flags
