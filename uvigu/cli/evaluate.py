"""The commands that measure a model: ``uvigu eval`` (the report), ``sweep`` (a task under several
settings), ``probe`` (what the denoiser takes from its text, and whether generation follows it),
and ``shapes``, which writes the evaluation's clips as a folder of videos."""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import add_checkpoint_arguments, clip_progress, load_pipeline, shown_path, where_it_ran


def add_eval_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "eval",
        help="measure caption / generation / round-trip / edit accuracy and write docs/EVAL.md",
        description="Evaluate a model on fresh Shapes clips (a main set and a held-out-pairs set) and write the "
        "report, example strips and per-clip results (OUT's folder/eval/results.jsonl); or, with --data, score its "
        "captions of your own clips against yours (BLEU-4, CIDEr-D).",
    )
    add_checkpoint_arguments(p, dtype="float32")
    p.add_argument("--data", default=None, metavar="FOLDER",
                   help="a folder of your clips with metadata.jsonl, as `uvigu train --data` reads it: caption each "
                   "clip from its start and score the captions against the metadata's (default --out: "
                   "FOLDER/EVAL.md, the records beside it as EVAL.jsonl)")
    p.add_argument("--num", type=int, default=None,
                   help="main-set clips (training distribution) [200]; with --data, the first NUM clips [all]")
    p.add_argument("--num-heldout", type=int, default=None, help="clips with held-out colour–shape pairs [200]")
    p.add_argument("--examples", type=int, default=None,
                   help="clips per set shown as strips [2]; with --data, the first clips shown [4]")
    p.add_argument("--notes", default=None,
                   help="a markdown file included in the report under 'Notes' (notes written below the end-of-report "
                   "marker of an existing report are kept without it)")
    p.add_argument("--out", default=None, help="report to write [docs/EVAL.md]")
    p.set_defaults(func=run_eval)


def run_eval(args: argparse.Namespace) -> int:
    from ..eval.clips import EvalConfig
    from ..eval.report import write_report
    from ..models.presets import SHIPPED_MODEL_DIR

    if args.data is not None:
        return _run_folder_eval(args)
    args.num = 200 if args.num is None else args.num
    args.num_heldout = 200 if args.num_heldout is None else args.num_heldout
    args.examples = 2 if args.examples is None else args.examples
    args.out = args.out or "docs/EVAL.md"
    config = EvalConfig(num_clips=args.num, num_heldout=args.num_heldout, num_examples=args.examples)
    notes = Path(args.notes).read_text(encoding="utf-8") if args.notes else None
    pipe = load_pipeline(args.model, args.device, args.dtype)
    model = shown_path(args.model or SHIPPED_MODEL_DIR)
    command = (f"uvigu eval --model {model} --num {args.num} --num-heldout {args.num_heldout} --out {shown_path(args.out)}"
               + where_it_ran(pipe, args.dtype))
    with clip_progress(args.num + args.num_heldout, "eval") as progress:
        report = write_report(pipe, args.out, config, command=command, model=model, notes=notes, progress=progress)
    elapsed = report.elapsed_s  # the report's: with the time of the runs it went on from, if it was interrupted
    print(f"report: {report.report_path}")
    print(f"per-clip results: {report.results_path}")
    if report.kept_lines:
        print(f"kept the {report.kept_lines} lines of notes below the report's end; they were written for "
              "the run before this one, so check what they say against the new tables")
    print(f"elapsed: {elapsed:.0f} s ({elapsed / (args.num + args.num_heldout):.1f} s per clip)")
    for row in report.summary.rows:
        if row.group == "targets":
            print(f"{row.label}: main {row.main.text()}, held-out {row.heldout.text()}")
    return 0


def _run_folder_eval(args: argparse.Namespace) -> int:
    from ..data.video_folder import METADATA_FILE
    from ..eval.folder import write_folder_report
    from ..models.presets import SHIPPED_MODEL_DIR

    if args.notes is not None or args.num_heldout is not None:
        raise ValueError("--num-heldout and --notes are the Shapes evaluation's; with --data, give --num (the first "
                         "clips), --examples, --model and --out")
    if args.num is not None and args.num < 1:
        raise ValueError(f"--num must be at least 1, got {args.num}")
    if args.examples is not None and args.examples < 0:
        raise ValueError(f"--examples must be 0 or more, got {args.examples}")
    out = Path(args.out) if args.out else Path(args.data) / "EVAL.md"
    pipe = load_pipeline(args.model, args.device, args.dtype)
    model = shown_path(args.model or SHIPPED_MODEL_DIR)
    command = (f"uvigu eval --data {shown_path(args.data)} --model {model}"
               + (f" --num {args.num}" if args.num is not None else "")
               + (f" --examples {args.examples}" if args.examples is not None else "") + f" --out {shown_path(out)}"
               + where_it_ran(pipe, args.dtype))
    with clip_progress(None, "captions") as progress:
        report = write_folder_report(pipe, args.data, out, command=command, model=model,
                                     folder=shown_path(args.data), limit=args.num,
                                     num_examples=4 if args.examples is None else args.examples, progress=progress)
    print(f"report: {report.report_path}")
    print(f"per-clip results: {report.results_path}")
    print(f"{report.num_clips} clips of {Path(args.data) / METADATA_FILE} in {report.elapsed_s:.0f} s: "
          f"caption BLEU-4 {report.bleu4:.3f}, CIDEr-D {report.cider_d:.3f}")
    return 0


# --- sweep ---------------------------------------------------------------------------------------


def add_sweep_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "sweep",
        help="accuracy of generate, caption, round_trip, edit or fix under several settings, on the evaluation's "
        "clips",
        description="Run one task on the evaluation's clips and seeds once per --setting and print a markdown "
        "table: object accuracy (colour, shape, motion together and alone) for generate, caption and round_trip "
        "(the caption of the clip generated from the prompt, under caption settings; each clip is generated "
        "once, at the defaults), edit success (and its parts) for edit, object accuracy of the generated clip "
        "edited once with its caption corrected to the prompt for fix (the studio's Ask for what it missed, "
        "keeping the rest; with_source=0: a plain edit; rounds=0: the generated clip itself), and seconds per "
        "clip (for round_trip, the "
        "caption's; for fix, the caption's and edit's).",
    )
    p.add_argument("task", choices=["generate", "caption", "round_trip", "edit", "fix"])
    p.add_argument("--setting", action="append", default=None, metavar="K=V[,K=V]",
                   help="settings of one row, e.g. guidance_scale=6,num_inference_steps=40 or shift=6 (generate; "
                   "shift: the sampler's noise levels under another scheduler shift, also for edit; expert=0: without the "
                   "model's high-noise expert, also for edit and fix), "
                   "num_inference_steps=24, temperature=0.5 or reread=0 (caption, round_trip) or strength=0.7 or "
                   "with_source=1 (edit; 1: the edit is also given the caption before the change, as source_prompt; "
                   "2: the model's own caption of the clip, as the studio's Keep the rest) or rounds=0, "
                   "strength=0.8, with_source=0 (fix; 0: a plain edit, Keep the rest unticked) or keep_better=1 "
                   "(fix: the edit kept only when its caption agrees better with the prompt); "
                   "'defaults' for the pipeline's; repeat for more rows [defaults]")
    add_checkpoint_arguments(p, dtype="float32")
    p.add_argument("--num", type=int, default=20, help="main-set clips [%(default)s]")
    p.add_argument("--num-heldout", type=int, default=0, help="held-out-set clips [%(default)s]")
    p.add_argument("--first-clip", type=int, default=0,
                   help="start at this clip of each set (its Shapes and pipeline seeds as the evaluation's clip of "
                   "that index); past --num / --num-heldout of the evaluation, a setting can be chosen on clips "
                   "the evaluation does not score [%(default)s]")
    p.add_argument("--high-noise-model", metavar="PATH",
                   help="another pipeline folder of the model's words, e.g. it fine-tuned at the top of the noise, "
                   "that makes the denoising calls at and above --high-noise-boundary (pipe.use_high_noise_expert)")
    p.add_argument("--high-noise-boundary", type=float, default=None, metavar="S",
                   help="with --high-noise-model: the noise level from which it denoises [0.99: the first of the "
                   "default 20 steps]")
    p.set_defaults(func=run_sweep_command)


def run_sweep_command(args: argparse.Namespace) -> int:
    from ..eval.clips import EvalConfig
    from ..eval.sweep import parse_setting, render_table, run_sweep

    settings = [parse_setting(args.task, text) for text in (args.setting or ["defaults"])]
    config = EvalConfig(num_clips=args.num, num_heldout=args.num_heldout).starting_at(args.first_clip)
    if args.high_noise_boundary is not None and args.high_noise_model is None:
        raise ValueError("--high-noise-boundary says where the --high-noise-model takes over: give that too.")
    pipe = load_pipeline(args.model, args.device, args.dtype)
    if args.high_noise_model is not None:
        from ..models.expert import HIGH_NOISE_BOUNDARY

        pipe.use_high_noise_expert(load_pipeline(args.high_noise_model, args.device, args.dtype),
                                   HIGH_NOISE_BOUNDARY if args.high_noise_boundary is None else args.high_noise_boundary)
    with clip_progress((args.num + args.num_heldout) * len(settings), "sweep") as progress:
        rows = run_sweep(pipe, args.task, settings, config, progress=progress)
    print(render_table(rows, args.task))
    return 0


# --- probe ---------------------------------------------------------------------------------------


def add_probe_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "probe",
        help="how much the denoiser uses each attribute of its text (colour, shape, motion), per noise level",
        description="Noise the evaluation's main-set clips to each σ and compare the denoiser's clean-clip error, "
        "over the pixels a change touches, with the clip's caption and with one attribute of it changed; print a "
        "markdown table. With --words, the captioning side instead: how often the shape word of an object "
        "is predicted right beside the clean clip with the colour word written and with it noised. With --levels, "
        "where in the noise generation goes wrong: each clip noised to where the edit schedule at each strength "
        "starts, then analyzed after one denoiser call and after the sampler's run from there (strength 1 is "
        "generation), with the model's linear floors (what its patch embedding and output head cannot carry). "
        "With --directions, whether generation follows the motion words: each prompt that names motion generated "
        "as written and with every direction turned round, on the same seed. With --placement, whether it follows "
        "the words that say where objects start: each reference caption generated as written and with every start "
        "region mirrored through the centre of the frame, on the same seed. With --means, where the model expects "
        "each object from pure noise: its clean estimate (asked at σ 0.95 unless --sigma says) with the reference "
        "caption, against the path the Shapes world gives an object so described. With --steps, where in sampling "
        "generation decides each object: every prompt generated as the evaluation generates it, and the clean "
        "estimate after each step analyzed like the finished clip (main and held-out sets).",
    )
    add_checkpoint_arguments(p, dtype="float32")
    p.add_argument("--num", type=int, default=200, help="main-set clips [%(default)s]")
    p.add_argument("--sigma", type=float, action="append", default=None,
                   help="noise level in (0, 1]; repeat for more [0.3, 0.6, 0.9]; with --means, one [0.95]")
    p.add_argument("--words", action="store_true", help="probe the caption's shape words instead (see above)")
    p.add_argument("--num-heldout", type=int, default=100,
                   help="held-out-set clips, with --words or --steps [%(default)s]")
    p.add_argument("--levels", action="store_true",
                   help="where in the noise generation goes wrong instead (see above); --strength picks the levels")
    p.add_argument("--strength", type=float, action="append", default=None,
                   help="with --levels: edit strength in (0, 1]; repeat for more [0.05, 0.15, 0.3, 0.5, 0.7, 0.85, 1]")
    p.add_argument("--directions", action="store_true",
                   help="whether generation follows the prompt's motion words instead (see above)")
    p.add_argument("--placement", action="store_true",
                   help="whether generation follows the caption's start regions instead (see above)")
    p.add_argument("--means", action="store_true",
                   help="where the clean estimate from pure noise puts each object instead (see above)")
    p.add_argument("--steps", action="store_true",
                   help="after which sampler step generation's objects are decided instead (see above)")
    p.set_defaults(func=run_probe_command)


def run_probe_command(args: argparse.Namespace) -> int:
    from ..eval.layout_probe import (
        MEANS_SIGMA,
        render_direction_probe,
        render_means_probe,
        render_placement_probe,
        run_direction_probe,
        run_means_probe,
        run_placement_probe,
    )
    from ..eval.probe import (
        DEFAULT_LEVEL_STRENGTHS,
        DEFAULT_SIGMAS,
        patch_floors,
        render_level_probe,
        render_patch_floors,
        render_probe,
        render_step_probe,
        render_word_probe,
        run_level_probe,
        run_probe,
        run_step_probe,
        run_word_probe,
    )
    from ..eval.clips import EvalConfig

    for name in ("directions", "placement", "means", "steps"):
        others = [flag for flag in ("directions", "placement", "means", "steps", "words", "levels")
                  if flag != name and getattr(args, flag)]
        sigmas = args.sigma and (name != "means" or len(args.sigma) > 1)  # --means takes one
        if getattr(args, name) and (others or sigmas or args.strength):
            raise ValueError(f"--{name} takes no other probe's flags (--directions, --placement, --means, --steps, "
                             "--words, --levels, --strength, --sigma but one with --means).")
    if args.levels and (args.words or args.sigma):
        raise ValueError("--levels takes --strength, not --words or --sigma.")
    if args.strength and not args.levels:
        raise ValueError("--strength is for the level probe (--levels).")
    if args.words and args.sigma:
        raise ValueError("--sigma is for the video probe; the word probe reads the clean clip.")
    config = EvalConfig(num_clips=args.num, num_heldout=args.num_heldout if args.words or args.steps else 0)
    pipe = load_pipeline(args.model, args.device, args.dtype)
    with clip_progress(config.num_clips + config.num_heldout, "probe") as progress:
        if args.directions:
            print(render_direction_probe(run_direction_probe(pipe, config, progress=progress)))
        elif args.placement:
            print(render_placement_probe(run_placement_probe(pipe, config, progress=progress)))
        elif args.steps:
            print(render_step_probe(run_step_probe(pipe, config, progress=progress)))
        elif args.means:
            sigma = args.sigma[0] if args.sigma else MEANS_SIGMA
            print(render_means_probe(run_means_probe(pipe, config, sigma, progress=progress)))
        elif args.levels:
            rows = run_level_probe(pipe, config, tuple(args.strength or DEFAULT_LEVEL_STRENGTHS), progress=progress)
            print(render_level_probe(rows) + "\n\n" + render_patch_floors(patch_floors(pipe, config)))
        elif args.words:
            print(render_word_probe(run_word_probe(pipe, config, progress=progress)))
        else:
            print(render_probe(run_probe(pipe, config, tuple(args.sigma or DEFAULT_SIGMAS), progress=progress)))
    return 0


# --- export ------------------------------------------------------------------------------------


def add_shapes_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "shapes",
        help="write Shapes clips as a folder of videos with metadata.jsonl, as `train --data` and `eval --data` read",
        description="Write clips of one of the evaluation's sets (main: the training distribution; heldout: the "
        "held-out colour–shape pairs), from --first-clip on, as MP4 files with their prompts and captions in "
        "metadata.jsonl: the layout your own clips take, with clips whose captions are known, to try `uvigu train "
        "--data` and `uvigu eval --data` on.",
    )
    p.add_argument("out", help="new folder to write")
    p.add_argument("--set", choices=["main", "heldout"], default="main", help="[%(default)s]")
    p.add_argument("--num", type=int, default=20, help="clips [%(default)s]")
    p.add_argument("--first-clip", type=int, default=0,
                   help="index of the set's first clip written (0: the evaluation's first) [%(default)s]")
    p.add_argument("--scale", type=int, default=1,
                   help="enlarge each pixel to SCALE×SCALE (nearest neighbour; 4: 256×256 files) [%(default)s]")
    p.set_defaults(func=run_shapes)


def run_shapes(args: argparse.Namespace) -> int:
    from ..data.shapes import ShapesConfig
    from ..data.video_folder import METADATA_FILE, write_video_folder
    from ..eval.clips import EvalConfig, eval_example

    if args.num < 1 or args.first_clip < 0 or args.scale < 1:
        raise ValueError(f"--num and --scale must be at least 1 and --first-clip at least 0, got {args.num}, "
                         f"{args.scale} and {args.first_clip}")
    config = EvalConfig().starting_at(args.first_clip)
    examples = (eval_example(config, args.set, index) for index in range(args.num))
    clips = ((f"{args.set}_{args.first_clip + i:05d}", ex.frames, ex.prompt, ex.caption) for i, ex in enumerate(examples))
    root = write_video_folder(args.out, clips, fps=ShapesConfig().fps, scale=args.scale)
    print(f"{args.num} clips of the {args.set} set: {root / METADATA_FILE}")
    return 0


# --- convert-official ---------------------------------------------------------------------------
