"""Where ``uvigu generate`` and ``uvigu edit`` write their clips (never over an earlier one unless
``--out`` names it), and the pictures of the denoising steps: beside the clip, or in the current
folder for ``uvigu caption --trajectory``."""

from __future__ import annotations

import argparse
import itertools
import os
from collections.abc import Callable
from pathlib import Path


def add_output_arguments(p: argparse.ArgumentParser, default: str) -> None:
    stem = Path(default).stem
    p.add_argument("--out", default=None,
                   help=f"MP4 to write (H.264, yuv420p), replaced if it exists [{default}, or {stem}-2.mp4, "
                   f"{stem}-3.mp4, … where it exists: an earlier clip is kept]")
    p.set_defaults(default_out=default)
    p.add_argument("--scale", type=int, default=4, help="enlarge frames N× without blur [%(default)s]")
    p.add_argument("--gif", action="store_true", help="also write a GIF beside the MP4")
    p.add_argument("--strip", action="store_true", help="also write a PNG strip of 8 frames beside the MP4")
    p.add_argument("--trajectory", action="store_true",
                   help="also write every denoising step, and its caption's, as one picture beside the MP4 "
                   "(NAME-steps.png: a row per step with its noise level, four frames of the clean-clip estimate "
                   "and the text)")


def output_path(args: argparse.Namespace) -> Path:
    """Where the clip goes (``--out``, else the first free default name), checked before any work:
    a ``ValueError`` when it is a folder or its folder cannot be written to."""
    out = Path(args.out) if args.out else _unused_output(Path(args.default_out), args)
    if out.is_dir():
        raise ValueError(f"--out {out} is a folder; give the clip's file name, e.g. {out / args.default_out}")
    folder = out.absolute().parent
    while not folder.exists():  # the clip's folder is made if need be: its nearest existing one decides
        folder = folder.parent
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"cannot write {out}: {folder} is not a folder this user may write to")
    return out


def write_outputs(frames, out: Path, args: argparse.Namespace, fps: int) -> None:
    from ..videoio import write_gif, write_mp4, write_strip_png

    print(f"clip: {write_mp4(frames, out, fps=fps, scale=args.scale)}")
    if args.gif:
        print(f"gif: {write_gif(frames, out.with_suffix('.gif'), fps, scale=args.scale)}")
    if args.strip:
        print(f"strip: {write_strip_png(frames, out.with_suffix('.png'), scale=args.scale)}")


def steps_path(out: Path) -> Path:
    """Where ``--trajectory`` writes the picture of the steps of the clip ``out``."""
    return out.with_name(f"{out.stem}-steps.png")


def caption_steps_path(video: str) -> Path:
    """Where ``uvigu caption --trajectory`` draws the steps of the caption of ``video``: in the
    current folder, under the first name of ``NAME-caption-steps.png``, ``…-2.png``, … no file has."""
    return _first_free(Path(f"{Path(video).stem}-caption-steps.png"))


def write_steps(picture: Path, stages: list[tuple[str, list | None, object]], title: str) -> None:
    """``--trajectory``: the steps of each (stage, the pipeline's trajectory, the clip shown while
    only text moves, or None) in one picture, written to ``picture``."""
    from ..studio.trajectories import TRAJECTORY_PICTURE_SIDE, trajectory_frames
    from ..videoio import write_trajectory_png

    steps = [step for stage, trajectory, still in stages for step in trajectory_frames(stage, trajectory, still)]
    print(f"steps: {write_trajectory_png(steps, picture, side=TRAJECTORY_PICTURE_SIDE, title=title)}")


def _unused_output(default: Path, args: argparse.Namespace) -> Path:
    """``default``, or ``stem-2``, ``stem-3``, … of it: the first name under which neither the MP4
    nor the GIF, strip and steps written beside it would replace a file (an output not asked for by name)."""

    def beside(out: Path) -> list[Path]:
        return ([out.with_suffix(".gif")] * args.gif + [out.with_suffix(".png")] * args.strip
                + [steps_path(out)] * args.trajectory)

    return _first_free(default, beside)


def _first_free(default: Path, beside: Callable[[Path], list[Path]] = lambda out: []) -> Path:
    """``default``, or ``stem-2``, ``stem-3``, … of it: the first name that neither names a file
    nor has one at any of the paths ``beside`` gives for it."""
    for n in itertools.count(1):
        out = default if n == 1 else default.with_stem(f"{default.stem}-{n}")
        if not any(path.exists() for path in [out, *beside(out)]):
            return out
    raise AssertionError("unreachable")
