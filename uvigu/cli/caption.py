"""``uvigu caption``: video files described in text, once each or as a timeline (and as a
``metadata.jsonl`` that ``uvigu train --data`` reads)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .common import add_model_arguments, add_start_argument, load_pipeline, read_video_arg, step_progress
from .outputs import caption_steps_path, write_steps


def add_caption_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("caption", help="describe video files in text")
    p.add_argument("videos", nargs="+", metavar="video",
                   help="video files (each resized / resampled to the model's clip size)")
    p.add_argument("--metadata", metavar="FILE", default=None,
                   help="also write the captions as a new metadata.jsonl, a line per video ({\"video\": its path "
                   "from FILE's folder, \"caption\": ...}): a folder `uvigu train --data` reads once the videos "
                   "are in it, after you correct the captions")
    p.add_argument("--every", type=float, default=None, metavar="SECONDS",
                   help="caption the model's clip every SECONDS, from --start to the video's end, not once: a "
                   "timeline of captions")
    p.add_argument("--srt", metavar="FILE", default=None,
                   help="with --every, also write the timeline as subtitles (SubRip), a cue per caption")
    p.add_argument("--trajectory", action="store_true",
                   help="also write each caption's denoising steps as one picture in the current folder "
                   "(NAME-caption-steps.png for the video NAME.mp4, or NAME-caption-steps-2.png, … where it exists: "
                   "a row per step with its noise level, four frames of the clip as the model sees it and the text)")
    add_start_argument(p)
    add_model_arguments(p)
    p.add_argument("--temperature", type=float, default=None,
                   help="of the token draws: lower is more literal, 0 the most likely token (default: the model's)")
    p.add_argument("--reread", type=int, default=None,
                   help="passes re-predicting each word with the word before it noised; 0: none (default: the model's)")
    p.add_argument("--reread-threshold", type=float, default=None,
                   help="a pass changes a word only where it gives the written word a probability below this; "
                        "1: always the most likely word (default: the model's)")
    p.add_argument("--reread-period", type=int, default=None,
                   help="a pass redraws 2 of every this many words, on as many copies of the caption "
                        "(default: the model's)")
    p.add_argument("--verify-weight", type=float, default=None,
                   help="weight of the video stream's judgement on words the caption is unsure of "
                        "(each likely word tried, the caption that best predicts the clip kept); 0: off "
                        "(default: the model's)")
    p.add_argument("--verify-max-texts", type=int, default=None,
                   help="candidate captions that check judges, the most unsure words first (default: the model's)")
    p.add_argument("--verify-draws", type=int, default=None,
                   help="noise draws of the clip per candidate caption in that check (default: the model's)")
    p.set_defaults(func=run_caption)


def run_caption(args: argparse.Namespace) -> int:
    import contextlib
    import json
    import os

    metadata = None if args.metadata is None else Path(args.metadata)
    if args.srt is not None and (args.every is None or len(args.videos) > 1):
        raise ValueError("--srt writes the timeline of one video's captions: give one video and --every")
    if args.every is not None and metadata is not None:
        raise ValueError("--metadata writes one caption per video; leave out --every")
    if args.trajectory and args.every is not None:
        raise ValueError("--trajectory draws the steps of one caption of each video; leave out --every")
    if args.trajectory and not os.access(Path.cwd(), os.W_OK | os.X_OK):
        raise ValueError(f"--trajectory writes its pictures in the current folder, {Path.cwd()}, which this user "
                         "may not write to")
    if metadata is not None:
        if metadata.exists():
            raise ValueError(f"{metadata} already exists; choose another file or remove it.")
        outside = [v for v in args.videos if not Path(v).resolve().is_relative_to(metadata.parent.resolve())]
        if outside:
            raise ValueError(f"{', '.join(outside)} {'is' if len(outside) == 1 else 'are'} not inside "
                             f"{metadata.parent.resolve()}, the folder of {metadata.name}; a dataset's videos are.")
    pipe = load_pipeline(args.model, args.device, args.dtype)
    from ..inputs import caption_settings, check_seed

    options = _caption_options(args)  # checked, then every video that cannot be read named at once, before any work
    check_seed(options["seed"])
    caption_settings(pipe.config, **{name: value for name, value in options.items() if name != "seed"})
    _check_videos(args.videos, args.start)
    if args.every is not None:
        return _caption_timeline(pipe, args)
    written, failed = 0, []
    # Each caption is written as it is made, so an interrupted run keeps the ones it finished.
    with open(metadata, "x", encoding="utf-8") if metadata is not None else contextlib.nullcontext() as out:
        for path in args.videos:
            try:
                video, notes = read_video_arg(pipe, args, path)
                result = pipe.caption(video, **_caption_options(args), callback=step_progress("caption"),
                                      return_trajectory=args.trajectory)
            except ValueError as error:
                if len(args.videos) == 1:
                    raise
                print(f"uvigu caption: {error}; going on with the other videos", file=sys.stderr)
                failed.append(path)
                continue
            for note in [*notes, *result.input_notes]:
                print(f"note: {note}", file=sys.stderr)
            if len(args.videos) > 1:
                print(f"video: {path}")
            print(f"seed: {result.seed}")
            print(f"caption: {result.text}")
            if args.trajectory:
                start = f" from {args.start:g} s" if args.start else ""
                write_steps(caption_steps_path(path), [("caption", result.trajectory, None)],
                             f"caption of {Path(path).name}{start} · seed {result.seed}")
            if pipe.follows_grammar(result.text) is False:
                print("note: the caption does not follow the grammar the model writes: the clip is probably unlike "
                      "the footage it learned from", file=sys.stderr)
            if out is not None:
                relative = Path(os.path.relpath(Path(path).resolve(), metadata.parent.resolve())).as_posix()
                out.write(json.dumps({"video": relative, "caption": result.text}) + "\n")
                out.flush()
                written += 1
    if metadata is not None:
        print(f"metadata: {metadata} ({written} line{'s' if written != 1 else ''})")
    if failed:
        print(f"uvigu caption: {len(failed)} of {len(args.videos)} videos could not be captioned: "
              f"{', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def _check_videos(videos: list[str], start_s: float) -> None:
    """Refuse, before any captioning, when any of ``videos`` cannot be read from ``start_s`` on: one
    ``ValueError`` naming each (reading the files' headers, not their frames)."""
    from ..videoio import check_video, probe_video

    def check(path: str) -> None:
        check_video(probe_video(path), Path(path).name, start_s=start_s)

    if len(videos) == 1:
        return check(videos[0])
    problems = []
    for path in videos:
        try:
            check(path)
        except ValueError as error:
            problems.append(f"  {path}: {error}")
    if problems:
        raise ValueError(f"{len(problems)} of {len(videos)} videos cannot be read; nothing was captioned. "
                         "Fix or leave out:\n" + "\n".join(problems))


def _caption_timeline(pipe, args: argparse.Namespace) -> int:
    """``uvigu caption --every``: each video captioned every ``--every`` seconds from ``--start``
    to its end, printed as a timeline as it is made (and, for one video, ``--srt`` subtitles)."""
    from ..timeline import caption_timeline, timestamp, to_srt

    def show(index: int, count: int, cue) -> None:
        print(f"{timestamp(cue.start_s)} – {timestamp(cue.end_s)}  {cue.text}", flush=True)

    cues = []
    for path in args.videos:
        if len(args.videos) > 1:
            print(f"video: {path}")
        cues = caption_timeline(pipe, path, args.every, start_s=args.start, on_cue=show, **_caption_options(args))
    if args.srt is not None:
        Path(args.srt).write_text(to_srt(cues), encoding="utf-8")
        print(f"subtitles: {args.srt} ({len(cues)} cues)")
    return 0


def _caption_options(args: argparse.Namespace) -> dict:
    """``uvigu caption``'s settings as ``pipe.caption`` takes them."""
    return {"seed": args.seed, "num_inference_steps": args.steps, "temperature": args.temperature,
            "reread": args.reread, "reread_threshold": args.reread_threshold, "reread_period": args.reread_period,
            "verify_weight": args.verify_weight, "verify_max_texts": args.verify_max_texts,
            "verify_draws": args.verify_draws}
