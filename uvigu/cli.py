"""The ``uvigu`` command: ``uvigu train | generate | caption | edit | eval | sweep | probe | bench | export | convert-official``.

Each subcommand is one ``add_<name>_parser(subparsers)`` function that declares its arguments and
sets ``func`` to the function that runs it; ``main`` only wires them. To add a subcommand, write
its two functions and append its ``add_*_parser`` to ``SUBCOMMANDS``.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from .bench.command import add_bench_parser


# --- train -------------------------------------------------------------------------------------


def add_train_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train",
        help="train a model (two stages: recall, refine) on the Shapes world or a folder of clips",
        description="Train the unified model (for a learned-codec preset, the codec first); the final pipeline "
        "(EMA weights) is written to OUT/pipeline.",
    )
    p.add_argument("--preset", default="shapes",
                   help="training preset: shapes (2-core CPU), shapes-gpu (one GPU: the shipped model's first run), "
                        "shapes-latent / shapes-latent-gpu (the learned-codec model), lab (a 16-pixel world for "
                        "experiments in minutes) or tiny")
    p.add_argument("--data", default=None, help="'shapes' or a folder with metadata.jsonl (default: the preset's)")
    p.add_argument("--out", default=None, help="output folder (default: the preset's, e.g. runs/shapes)")
    p.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in OUT")
    p.add_argument("--stop-after", type=float, metavar="MINUTES",
                   help="stop this session after MINUTES (at the end of a step, with a checkpoint there; "
                        "--resume continues the run as if it had not stopped). Ctrl-C does the same")
    p.add_argument("--init-from", metavar="PIPELINE",
                   help="start from the weights of a saved pipeline (e.g. assets/uvigu-shapes) of the preset's "
                        "architecture, to fine-tune or continue it; new words of the data get fresh embeddings")
    p.add_argument("--position-features", type=int, metavar="K",
                   help="give each video token its place in the clip (K sine/cosine frequencies per axis; 0: "
                        "RoPE only, as Wan; default: the preset's, or with --init-from the saved model's); with "
                        "--init-from they may be added to a model without them, starting at zero")
    p.add_argument("--steps-codec", type=int, help="codec steps (learned-codec presets only)")
    p.add_argument("--steps-recall", type=int, help="Knowledge Recall steps (text target: the prompt)")
    p.add_argument("--steps-refine", type=int, help="Capability Refinement steps (text target: the caption)")
    p.add_argument("--batch-size", type=int, help="batch size per process (and per micro-batch)")
    p.add_argument("--grad-accum", type=int, metavar="N",
                   help="micro-batches summed into one optimizer step (default 1): the step's batch is "
                        "batch size × N × processes, at the memory of one micro-batch")
    p.add_argument("--lr", type=float, help="peak learning rate")
    p.add_argument("--warmup-steps", type=int, help="steps of linear warm-up to the peak learning rate")
    p.add_argument(
        "--task-probs", type=float, nargs=3, metavar=("GENERATE", "CAPTION", "JOINT"),
        help="weights of the three tasks per example",
    )
    p.add_argument(
        "--text-swap", type=float,
        help="chance a clean word of a noisy text is swapped for a word of the batch's texts (0: off)",
    )
    p.add_argument(
        "--reverse-twins", type=float,
        help="Shapes only: chance a generate example also trains on its clip played backwards with the prompt's "
             "motion words turned round, on the same noise (0: off)",
    )
    p.add_argument(
        "--video-sigma-shift", type=float, metavar="S",
        help="shift of the video's training noise levels (σ' = Sσ / (1 + (S − 1)σ) of a logit-normal σ; "
             "larger S trains more at high noise; default: the preset's, 3 for the Shapes presets)",
    )
    p.add_argument(
        "--video-sigma-min", type=float, metavar="SIGMA",
        help="train the video at noise levels in [SIGMA, 1) only (the usual σ distribution mapped into that "
             "range; 0: all levels), e.g. to fine-tune the high-noise steps where a clip's layout is decided",
    )
    p.add_argument(
        "--video-sigma-min-share", type=float, metavar="P",
        help="with --video-sigma-min: map only a share P of the examples into that range, each with chance P, "
             "the rest at the usual levels (default 1: all of them)",
    )
    p.add_argument(
        "--video-anchor", action="store_true", default=None,
        help="with --init-from, --video-sigma-min and a share below 1: the video examples below that level learn "
             "the starting model's own prediction, not the data's, so the rest of the noise stays where it was",
    )
    p.add_argument(
        "--text-anchor", action="store_true", default=None,
        help="with --init-from: the text stream's examples (caption, joint) learn the starting model's own word "
             "probabilities, not the data's words, so a fine-tune aimed at the video keeps the captions where they were",
    )
    p.add_argument(
        "--video-loss-cap", type=float, metavar="W",
        help="cap the 1/σ² weight the velocity loss gives a video example's clean-clip error at W, so low noise "
             "levels no longer outweigh the high ones where a clip's layout is decided (0: no cap)",
    )
    p.add_argument(
        "--text-loss-weight", type=float, metavar="LAMBDA",
        help="λ in loss = video MSE + λ · text cross entropy (default: the preset's, 1); below 1 the text "
             "examples' gradients weigh less beside the video's in the weights both streams share",
    )
    p.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=None, help="bf16 autocast")
    p.add_argument("--gradient-checkpointing", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--num-workers", type=int, help="dataloader worker processes")
    p.add_argument("--seed", type=int)
    p.add_argument("--log-every", type=int)
    p.add_argument("--ckpt-every", type=int, help="steps between checkpoints (one is also written at the end)")
    p.add_argument("--keep-checkpoints", type=int, metavar="N",
                   help="how many of the latest checkpoints to keep (older ones are deleted; default 2)")
    p.add_argument("--sample-every", type=int, help="steps between EMA samples; 0: never")
    p.add_argument("--eval-data", metavar="FOLDER",
                   help="clips with metadata.jsonl kept out of training: at every sample they are captioned with the "
                   "EMA weights and BLEU-4 / CIDEr-D against their captions logged (OUT/samples/samples.jsonl), as "
                   "`uvigu eval --data` scores them")
    p.set_defaults(func=run_train)


def run_train(args: argparse.Namespace) -> int:
    from .training.checkpoint import is_checkpoint, latest_checkpoint, read_state
    from .training.config import TrainConfig, get_train_preset
    from .training.trainer import train

    overrides = {
        name: value
        for name, value in {
            "data": args.data,
            "init_from": args.init_from,
            "position_features": args.position_features,
            "out_dir": args.out,
            "steps_codec": args.steps_codec,
            "steps_recall": args.steps_recall,
            "steps_refine": args.steps_refine,
            "batch_size": args.batch_size,
            "grad_accum": args.grad_accum,
            "lr": args.lr,
            "warmup_steps": args.warmup_steps,
            "task_probs": tuple(args.task_probs) if args.task_probs else None,
            "text_swap": args.text_swap,
            "reverse_twins": args.reverse_twins,
            "video_sigma_shift": args.video_sigma_shift,
            "video_sigma_min": args.video_sigma_min,
            "video_sigma_min_share": args.video_sigma_min_share,
            "video_anchor": args.video_anchor,
            "text_anchor": args.text_anchor,
            "video_loss_cap": args.video_loss_cap,
            "text_loss_weight": args.text_loss_weight,
            "bf16": args.bf16,
            "gradient_checkpointing": args.gradient_checkpointing,
            "num_workers": args.num_workers,
            "seed": args.seed,
            "log_every": args.log_every,
            "ckpt_every": args.ckpt_every,
            "keep_checkpoints": args.keep_checkpoints,
            "sample_every": args.sample_every,
            "eval_data": args.eval_data,
        }.items()
        if value is not None
    }
    config = get_train_preset(args.preset, **overrides)
    checkpoint = latest_checkpoint(config.out_dir) if args.resume else None
    if checkpoint is not None:
        # A resumed run keeps the settings it was started with, except those given again here.
        saved = {**read_state(checkpoint).config, **overrides}
        config = TrainConfig.from_dict(saved)
    if args.stop_after is not None and args.stop_after < 0:
        raise ValueError(f"--stop-after must be 0 or more minutes, not {args.stop_after:g}.")
    stop_after_s = None if args.stop_after is None else args.stop_after * 60
    final = train(config, resume=args.resume, stop_after_s=stop_after_s)
    if is_checkpoint(final):
        state = read_state(final)
        print(f"stopped at step {state.step} of {config.total_steps}; checkpoint: {final}\n"
              f"continue with: uvigu train --resume --out {config.out_dir}  (or use the checkpoint as --model)")
    else:
        print(f"trained pipeline: {final}")
    return 0


# --- generate / caption / edit ---------------------------------------------------------------


def _add_checkpoint_arguments(p: argparse.ArgumentParser, dtype: str = "auto") -> None:
    """The checkpoint a model command loads, where it runs and in what precision (``_load_pipeline``'s
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


def _add_model_arguments(p: argparse.ArgumentParser) -> None:
    _add_checkpoint_arguments(p)
    p.add_argument("--seed", type=int, default=None, help="random seed (default: a random one, printed)")
    p.add_argument("--steps", type=int, default=None, help="denoising steps (default: the model's)")


def _add_start_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--start", type=float, default=0.0, metavar="SECONDS",
                   help="where in the video file the model's clip starts (it takes the model's length from there) "
                        "[%(default)s]")


def _read_video_arg(pipe, args: argparse.Namespace, video: str | None = None):
    """The ``video`` argument (or ``video``) as the pipeline takes it: the file itself, or with
    ``--start`` its clip from there (uint8 frames), and notes on what was changed to fit."""
    video = args.video if video is None else video
    if not args.start:
        return video, []
    from .inputs import prepare_video

    return prepare_video(video, pipe.config, start_s=args.start)


def _add_output_arguments(p: argparse.ArgumentParser, default: str) -> None:
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


def add_generate_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("generate", help="make a clip from a prompt (and its caption)")
    p.add_argument("prompt", help="what the clip should show, e.g. 'a red circle moving right'")
    _add_model_arguments(p)
    p.add_argument("--guidance", type=float, default=None, help="classifier-free guidance scale")
    p.add_argument("--joint", action="store_true", help="generate clip and caption in one joint pass")
    p.add_argument("--no-caption", action="store_true", help="skip captioning the new clip")
    p.add_argument("--best-of", type=int, default=1, metavar="N",
                   help="make N takes (seeds SEED, SEED+1, …), caption each and keep the one whose caption agrees "
                        "best with the prompt; each take costs a generation and a caption [%(default)s]")
    p.add_argument("--judge-at", type=float, default=None, metavar="SHARE",
                   help="with --best-of: judge each take after this share of its steps (0 to 1), then finish "
                        "only the kept one [the model's take_judge_at]")
    p.add_argument("--judge-steps", type=int, default=None, metavar="N",
                   help="with --best-of: judge each take by a quick caption of N steps (0: the full caption) "
                        "[the model's take_judge_steps]")
    p.add_argument("--read-guidance", type=float, default=None, metavar="S",
                   help="steer the clip by the model's own reading of it towards the prompt's words (0: off; "
                        "each steered step costs about three more network calls; docs/EVAL.md) [the model's "
                        "read_guidance]")
    p.add_argument("--read-guidance-from", type=float, default=None, metavar="SIGMA",
                   help="with --read-guidance: steer the steps from noise level 0.95 down to SIGMA [the model's "
                        "read_guidance_from]")
    _add_expert_argument(p)
    _add_output_arguments(p, "clip.mp4")
    p.set_defaults(func=run_generate)


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
    _add_start_argument(p)
    _add_model_arguments(p)
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


def add_edit_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("edit", help="regenerate a clip conditioned on an edited caption")
    p.add_argument("video", help="the clip to start from")
    p.add_argument("prompt", help="the edited caption or prompt")
    _add_start_argument(p)
    _add_model_arguments(p)
    source = p.add_mutually_exclusive_group()
    source.add_argument("--source-prompt", default=None, metavar="TEXT",
                        help="the caption or prompt before the change: the edit then follows the difference of the "
                        "two texts (FlowEdit), keeping what they agree on")
    source.add_argument("--keep-rest", action="store_true",
                        help="caption the clip first and use that caption as --source-prompt (the studio's Keep the "
                        "rest): write the prompt as that caption with your change")
    p.add_argument("--strength", type=float, default=None,
                   help="0: keep the clip … 1: ignore it [the model's edit_strength, 0.7 on the shipped model; "
                   "0.9 with --source-prompt or --keep-rest]")
    p.add_argument("--guidance", type=float, default=None,
                   help="classifier-free guidance scale [the model's; with --source-prompt or --keep-rest the edited "
                   "text's is the model's flow_edit_guidance, 3 on the shipped model]")
    p.add_argument("--no-caption", action="store_true",
                   help="skip captioning the edited clip (and saying how much of the prompt its caption names)")
    _add_expert_argument(p)
    _add_output_arguments(p, "edited.mp4")
    p.set_defaults(func=run_edit)


def _add_expert_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-expert", action="store_true",
                   help="make every step with the model, leaving out the high-noise expert of its folder (the "
                   "shipped model's makes the first step from pure noise and draws the background the prompt "
                   "names)")


def _load_pipeline(model: str | None, device: str | None = "auto", dtype: str | None = "float32"):
    from .loading import load_pipeline

    return load_pipeline(model, device, dtype)


def _progress(desc: str):
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
def _clip_progress(total: int | None, desc: str) -> Iterator[Callable[[int, int], None]]:
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


def _output_path(args: argparse.Namespace) -> Path:
    """Where the clip goes (``--out``, else the first free default name), checked before any work:
    a ``ValueError`` when it is a folder or its folder cannot be written to."""
    import os

    out = Path(args.out) if args.out else _unused_output(Path(args.default_out), args)
    if out.is_dir():
        raise ValueError(f"--out {out} is a folder; give the clip's file name, e.g. {out / args.default_out}")
    folder = out.absolute().parent
    while not folder.exists():  # the clip's folder is made if need be: its nearest existing one decides
        folder = folder.parent
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"cannot write {out}: {folder} is not a folder this user may write to")
    return out


def _write_outputs(frames, out: Path, args: argparse.Namespace, fps: int) -> None:
    from .videoio import write_gif, write_mp4, write_strip_png

    print(f"clip: {write_mp4(frames, out, fps=fps, scale=args.scale)}")
    if args.gif:
        print(f"gif: {write_gif(frames, out.with_suffix('.gif'), fps, scale=args.scale)}")
    if args.strip:
        print(f"strip: {write_strip_png(frames, out.with_suffix('.png'), scale=args.scale)}")


def _steps_path(out: Path) -> Path:
    """Where ``--trajectory`` writes the picture of the steps of the clip ``out``."""
    return out.with_name(f"{out.stem}-steps.png")


def _caption_steps_path(video: str) -> Path:
    """Where ``uvigu caption --trajectory`` draws the steps of the caption of ``video``: in the
    current folder, under the first name of ``NAME-caption-steps.png``, ``…-2.png``, … no file has."""
    return _first_free(Path(f"{Path(video).stem}-caption-steps.png"))


def _write_steps(picture: Path, stages: list[tuple[str, list | None, object]], title: str) -> None:
    """``--trajectory``: the steps of each (stage, the pipeline's trajectory, the clip shown while
    only text moves, or None) in one picture, written to ``picture``."""
    from .studio.manager import TRAJECTORY_PICTURE_SIDE, trajectory_frames
    from .videoio import write_trajectory_png

    steps = [step for stage, trajectory, still in stages for step in trajectory_frames(stage, trajectory, still)]
    print(f"steps: {write_trajectory_png(steps, picture, side=TRAJECTORY_PICTURE_SIDE, title=title)}")


def _unused_output(default: Path, args: argparse.Namespace) -> Path:
    """``default``, or ``stem-2``, ``stem-3``, … of it: the first name under which neither the MP4
    nor the GIF, strip and steps written beside it would replace a file (an output not asked for by name)."""

    def beside(out: Path) -> list[Path]:
        return ([out.with_suffix(".gif")] * args.gif + [out.with_suffix(".png")] * args.strip
                + [_steps_path(out)] * args.trajectory)

    return _first_free(default, beside)


def _first_free(default: Path, beside: Callable[[Path], list[Path]] = lambda out: []) -> Path:
    """``default``, or ``stem-2``, ``stem-3``, … of it: the first name that neither names a file
    nor has one at any of the paths ``beside`` gives for it."""
    for n in itertools.count(1):
        out = default if n == 1 else default.with_stem(f"{default.stem}-{n}")
        if not any(path.exists() for path in [out, *beside(out)]):
            return out
    raise AssertionError("unreachable")


def _warn_unknown(words: list[str], of: str = "") -> None:
    if words:
        print(f"warning: the model does not know these words{of}: {', '.join(words)}", file=sys.stderr)


def _say_what_it_asks(pipe, prompt: str, source_prompt: str | None = None) -> None:
    """Before the model runs (minutes, for a large one): words of the texts the model does not know,
    and what ``prompt`` asks beyond the clips it learned (`UniViGUPipeline.prompt_notes`)."""
    _warn_unknown(pipe.unknown_words(prompt))
    for note in pipe.prompt_notes(prompt):
        print(f"note: {note}", file=sys.stderr)
    if source_prompt is not None:
        _warn_unknown(pipe.unknown_words(source_prompt), " of --source-prompt")


def run_generate(args: argparse.Namespace) -> int:
    if args.joint and args.best_of != 1:
        raise ValueError("--best-of judges each take by its own caption; --joint writes the caption with the clip, "
                         "from the prompt, so the two do not go together.")
    if args.joint and args.read_guidance:
        raise ValueError("--read-guidance steers a clip by reading it as a caption would; --joint writes the "
                         "caption with the clip, so the two do not go together.")
    out = _output_path(args)
    pipe = _load_pipeline(args.model, args.device, args.dtype)
    options = dict(seed=args.seed, num_inference_steps=args.steps, guidance_scale=args.guidance,
                   high_noise_expert=not args.no_expert, return_trajectory=args.trajectory)
    _say_what_it_asks(pipe, args.prompt)
    if args.joint:
        result = pipe.generate_with_caption(args.prompt, callback=_progress("generate"), **options)
    else:
        desc = "generate" if args.best_of == 1 else f"{args.best_of} takes"
        result = pipe.generate(args.prompt, best_of=args.best_of, judge_at=args.judge_at,
                               judge_steps=args.judge_steps, read_guidance=args.read_guidance,
                               read_guidance_from=args.read_guidance_from,
                               callback=_progress(desc), **options)
    for take in result.candidates:
        chosen = "  <- kept" if take.seed == result.seed else ""
        print(f"take: seed {take.seed}, agrees {take.score:.2f}: {take.caption}{chosen}")
    print(f"seed: {result.seed}")
    _write_outputs(result.frames, out, args, pipe.fps)
    caption, caption_steps = result.caption, result.caption_trajectory
    if caption is None and not args.no_caption:
        read = pipe.caption(result.frames, seed=result.seed, callback=_progress("caption"),
                            return_trajectory=args.trajectory)
        caption, caption_steps = read.text, read.trajectory
    if args.trajectory:
        _write_steps(_steps_path(out), [("joint" if args.joint else "generate", result.trajectory, None),
                           ("caption", caption_steps, result.frames)], f"{args.prompt} · seed {result.seed}")
    if caption is not None:
        from .judge import EXPERT_LEAVES_EMPTY

        print(f"caption: {caption}")
        hint = None if args.joint else "--seed"  # a joint caption is written from the prompt, not read off the clip
        if hint and pipe.high_noise_expert is not None and not args.no_expert:
            hint += f" or --no-expert ({EXPERT_LEAVES_EMPTY})"
        _print_read_back(pipe.read_back(args.prompt, caption), "joint caption" if args.joint else "round trip", hint)
        if (corrected := pipe.corrected_caption(args.prompt, caption)) is not None:
            import shlex

            print("ask for what it missed: uvigu edit " + shlex.join([str(out), corrected, "--source-prompt", caption]))
    return 0


def _print_read_back(read_backs, what: str, empty_hint: str | None = None) -> None:
    """How much of the prompt the caption names, and each object it names otherwise (`pipe.read_back`);
    with ``empty_hint``, what to try when the caption (of the model's clip) names no object."""
    from .judge import names_no_object, read_back_count

    if count := read_back_count(read_backs):
        print(f"{what}: {count}")
    for item in read_backs:
        if item.name and not item.found:
            print(f"  {item.name}: not in the caption")
        elif item.name and not item.agrees:
            print(f"  {item.name}: " + ", ".join(f"{said} instead of {asked}" for said, asked in item.misses()))
    if empty_hint is not None and names_no_object(read_backs):
        print(f"  the caption names no object, so the clip probably shows none: try another {empty_hint}")


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
    pipe = _load_pipeline(args.model, args.device, args.dtype)
    from .inputs import caption_settings, check_seed

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
                video, notes = _read_video_arg(pipe, args, path)
                result = pipe.caption(video, **_caption_options(args), callback=_progress("caption"),
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
                _write_steps(_caption_steps_path(path), [("caption", result.trajectory, None)],
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
    from .videoio import check_video, probe_video

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
    from .timeline import caption_timeline, timestamp, to_srt

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


def run_edit(args: argparse.Namespace) -> int:
    out = _output_path(args)
    pipe = _load_pipeline(args.model, args.device, args.dtype)
    video, notes = _read_video_arg(pipe, args)
    _say_what_it_asks(pipe, args.prompt, args.source_prompt)
    source_prompt = args.source_prompt
    if args.keep_rest:
        # What the clip shows before the change, in the model's words, as the studio's Keep the rest.
        source_prompt = pipe.caption(video, seed=args.seed, callback=_progress("caption")).text
        print(f"caption before the change: {source_prompt}")
        if source_prompt.split() == args.prompt.split():
            raise ValueError("the prompt is the clip's caption unchanged, so keeping the rest leaves nothing to "
                             "change; edit the caption, or drop --keep-rest for a variation.")
    result = pipe.edit(
        video, args.prompt, strength=args.strength, source_prompt=source_prompt, seed=args.seed,
        num_inference_steps=args.steps, guidance_scale=args.guidance, high_noise_expert=not args.no_expert,
        callback=_progress("edit"), return_trajectory=args.trajectory,
    )
    for note in [*notes, *result.input_notes]:
        print(f"note: {note}", file=sys.stderr)
    print(f"seed: {result.seed}")
    _write_outputs(result.frames, out, args, pipe.fps)
    caption = None
    if not args.no_caption:  # what the edited clip shows, as the studio says it after an edit
        caption = pipe.caption(result.frames, seed=result.seed, callback=_progress("caption"),
                               return_trajectory=args.trajectory)
    if args.trajectory:
        caption_steps = caption.trajectory if caption is not None else None
        _write_steps(_steps_path(out), [("edit", result.trajectory, None), ("caption", caption_steps, result.frames)],
                     f"{args.prompt} · seed {result.seed}")
    if caption is not None:
        print(f"caption: {caption.text}")
        _print_read_back(pipe.read_back(args.prompt, caption.text), "your edit", empty_hint="--seed")
    return 0


# --- eval --------------------------------------------------------------------------------------


def add_eval_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "eval",
        help="measure caption / generation / round-trip / edit accuracy and write docs/EVAL.md",
        description="Evaluate a model on fresh Shapes clips (a main set and a held-out-pairs set) and write the "
        "report, example strips and per-clip results (OUT's folder/eval/results.jsonl); or, with --data, score its "
        "captions of your own clips against yours (BLEU-4, CIDEr-D).",
    )
    _add_checkpoint_arguments(p, dtype="float32")
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


def _shown_path(path) -> str:
    """``path`` relative to the working directory or the repository, so reports name no machine's paths."""
    from .models.presets import SHIPPED_MODEL_DIR

    resolved = Path(path).resolve()
    for base in (Path.cwd().resolve(), SHIPPED_MODEL_DIR.parents[1]):
        if resolved.is_relative_to(base):
            return resolved.relative_to(base).as_posix()
    return resolved.name


def run_eval(args: argparse.Namespace) -> int:
    from .eval.report import EvalConfig, write_report
    from .models.presets import SHIPPED_MODEL_DIR

    if args.data is not None:
        return _run_folder_eval(args)
    args.num = 200 if args.num is None else args.num
    args.num_heldout = 200 if args.num_heldout is None else args.num_heldout
    args.examples = 2 if args.examples is None else args.examples
    args.out = args.out or "docs/EVAL.md"
    config = EvalConfig(num_clips=args.num, num_heldout=args.num_heldout, num_examples=args.examples)
    notes = Path(args.notes).read_text(encoding="utf-8") if args.notes else None
    pipe = _load_pipeline(args.model, args.device, args.dtype)
    model = _shown_path(args.model or SHIPPED_MODEL_DIR)
    command = (f"uvigu eval --model {model} --num {args.num} --num-heldout {args.num_heldout} --out {_shown_path(args.out)}"
               + _where_it_ran(pipe, args.dtype))
    with _clip_progress(args.num + args.num_heldout, "eval") as progress:
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


def _where_it_ran(pipe, dtype: str) -> str:
    """The flags a report's command adds for where it ran: a GPU's numbers differ from the CPU's in
    the last digits, and so do another precision's (checked by the loader)."""
    from .inputs import check_dtype

    flags = f" --device {pipe.device}" if pipe.device.type != "cpu" else ""
    if (chosen := str(check_dtype(dtype, pipe.device)).removeprefix("torch.")) != "float32":
        flags += f" --dtype {chosen}"
    return flags


def _run_folder_eval(args: argparse.Namespace) -> int:
    from .data.video_folder import METADATA_FILE
    from .eval.folder import write_folder_report
    from .models.presets import SHIPPED_MODEL_DIR

    if args.notes is not None or args.num_heldout is not None:
        raise ValueError("--num-heldout and --notes are the Shapes evaluation's; with --data, give --num (the first "
                         "clips), --examples, --model and --out")
    if args.num is not None and args.num < 1:
        raise ValueError(f"--num must be at least 1, got {args.num}")
    if args.examples is not None and args.examples < 0:
        raise ValueError(f"--examples must be 0 or more, got {args.examples}")
    out = Path(args.out) if args.out else Path(args.data) / "EVAL.md"
    pipe = _load_pipeline(args.model, args.device, args.dtype)
    model = _shown_path(args.model or SHIPPED_MODEL_DIR)
    command = (f"uvigu eval --data {_shown_path(args.data)} --model {model}"
               + (f" --num {args.num}" if args.num is not None else "")
               + (f" --examples {args.examples}" if args.examples is not None else "") + f" --out {_shown_path(out)}"
               + _where_it_ran(pipe, args.dtype))
    with _clip_progress(None, "captions") as progress:
        report = write_folder_report(pipe, args.data, out, command=command, model=model,
                                     folder=_shown_path(args.data), limit=args.num,
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
        "keeping the rest; rounds=0: the generated clip itself), and seconds per clip (for round_trip, the "
        "caption's; for fix, the caption's and edit's).",
    )
    p.add_argument("task", choices=["generate", "caption", "round_trip", "edit", "fix"])
    p.add_argument("--setting", action="append", default=None, metavar="K=V[,K=V]",
                   help="settings of one row, e.g. guidance_scale=6,num_inference_steps=40 or shift=6 (generate; "
                   "shift: the sampler's noise levels under another scheduler shift, also for edit; expert=0: without the "
                   "model's high-noise expert, also for edit and fix), "
                   "num_inference_steps=24, temperature=0.5 or reread=0 (caption, round_trip) or strength=0.7 or "
                   "with_source=1 (edit; 1: the edit is also given the caption before the change, as source_prompt; "
                   "2: the model's own caption of the clip, as the studio's Keep the rest) or rounds=0 or "
                   "strength=0.8 (fix); "
                   "'defaults' for the pipeline's; repeat for more rows [defaults]")
    _add_checkpoint_arguments(p, dtype="float32")
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
    from .eval.report import EvalConfig
    from .eval.sweep import parse_setting, render_table, run_sweep

    settings = [parse_setting(args.task, text) for text in (args.setting or ["defaults"])]
    config = EvalConfig(num_clips=args.num, num_heldout=args.num_heldout).starting_at(args.first_clip)
    if args.high_noise_boundary is not None and args.high_noise_model is None:
        raise ValueError("--high-noise-boundary says where the --high-noise-model takes over: give that too.")
    pipe = _load_pipeline(args.model, args.device, args.dtype)
    if args.high_noise_model is not None:
        from .pipeline import HIGH_NOISE_BOUNDARY

        pipe.use_high_noise_expert(_load_pipeline(args.high_noise_model, args.device, args.dtype),
                                   HIGH_NOISE_BOUNDARY if args.high_noise_boundary is None else args.high_noise_boundary)
    with _clip_progress((args.num + args.num_heldout) * len(settings), "sweep") as progress:
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
        "caption, against the path the Shapes world gives an object so described.",
    )
    _add_checkpoint_arguments(p, dtype="float32")
    p.add_argument("--num", type=int, default=200, help="main-set clips [%(default)s]")
    p.add_argument("--sigma", type=float, action="append", default=None,
                   help="noise level in (0, 1]; repeat for more [0.3, 0.6, 0.9]; with --means, one [0.95]")
    p.add_argument("--words", action="store_true", help="probe the caption's shape words instead (see above)")
    p.add_argument("--num-heldout", type=int, default=100, help="held-out-set clips, with --words [%(default)s]")
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
    p.set_defaults(func=run_probe_command)


def run_probe_command(args: argparse.Namespace) -> int:
    from .eval.probe import (
        DEFAULT_LEVEL_STRENGTHS,
        DEFAULT_SIGMAS,
        MEANS_SIGMA,
        patch_floors,
        render_direction_probe,
        render_level_probe,
        render_means_probe,
        render_patch_floors,
        render_placement_probe,
        render_probe,
        render_word_probe,
        run_direction_probe,
        run_level_probe,
        run_means_probe,
        run_placement_probe,
        run_probe,
        run_word_probe,
    )
    from .eval.report import EvalConfig

    for name in ("directions", "placement", "means"):
        others = [flag for flag in ("directions", "placement", "means", "words", "levels")
                  if flag != name and getattr(args, flag)]
        sigmas = args.sigma and (name != "means" or len(args.sigma) > 1)  # --means takes one
        if getattr(args, name) and (others or sigmas or args.strength):
            raise ValueError(f"--{name} takes no other probe's flags (--directions, --placement, --means, --words, "
                             "--levels, --strength, --sigma but one with --means).")
    if args.levels and (args.words or args.sigma):
        raise ValueError("--levels takes --strength, not --words or --sigma.")
    if args.strength and not args.levels:
        raise ValueError("--strength is for the level probe (--levels).")
    if args.words and args.sigma:
        raise ValueError("--sigma is for the video probe; the word probe reads the clean clip.")
    config = EvalConfig(num_clips=args.num, num_heldout=args.num_heldout if args.words else 0)
    pipe = _load_pipeline(args.model, args.device, args.dtype)
    with _clip_progress(config.num_clips + config.num_heldout, "probe") as progress:
        if args.directions:
            print(render_direction_probe(run_direction_probe(pipe, config, progress=progress)))
        elif args.placement:
            print(render_placement_probe(run_placement_probe(pipe, config, progress=progress)))
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


def add_export_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "export",
        help="write a training checkpoint as a pipeline folder (its EMA weights), to use or share mid-run",
        description="A run saves its pipeline when it ends; this writes the pipeline it would have saved at a "
        "checkpoint's step (EMA weights, vocabulary, model settings), with the run's training_config.json "
        "and checkpoint.json (step, training time). Model commands also take a checkpoint folder as --model.",
    )
    p.add_argument("checkpoint", help="a checkpoint folder, e.g. runs/shapes/checkpoints/step_0000500")
    p.add_argument("--out", required=True, help="new pipeline folder (loads with UniViGUPipeline.from_pretrained)")
    p.set_defaults(func=run_export)


def run_export(args: argparse.Namespace) -> int:
    from .training.export import export_checkpoint

    if Path(args.out).exists() and any(Path(args.out).iterdir()):
        raise ValueError(f"{args.out} already exists and is not empty; choose a new folder.")
    print(f"exported pipeline: {export_checkpoint(args.checkpoint, args.out)}")
    return 0


# --- expert ------------------------------------------------------------------------------------


def add_expert_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "expert",
        help="give a model folder a high-noise expert: another model that makes its denoising calls at the top of "
        "the noise",
        description="Write TUNED (a pipeline folder or checkpoint of the same words and layout, e.g. the model "
        "fine-tuned with `uvigu train --init-from MODEL --video-sigma-min 0.99`) into MODEL's folder as "
        "high_noise_expert/: its difference from MODEL, each weight matrix's in rank RANK, in float16, with TUNED's "
        "training_config.json and training_summary.json when it has them. Loading "
        "MODEL then attaches it (UniViGUPipeline.use_high_noise_expert): it makes the denoising calls of "
        "generate, joint and the plain edit at and above BOUNDARY.",
    )
    p.add_argument("tuned", help="the expert: a pipeline folder or a training checkpoint")
    p.add_argument("--model", default=None, help="the pipeline folder to give it to [the shipped assets/uvigu-shapes]")
    p.add_argument("--rank", type=int, default=16, help="rank of each weight matrix's difference [%(default)s]")
    p.add_argument("--boundary", type=float, default=None,
                   help="noise level from which it denoises [0.99: the first of the default 20 steps]")
    p.set_defaults(func=run_expert)


def run_expert(args: argparse.Namespace) -> int:
    from .loading import model_kind
    from .models.expert import EXPERT_FOLDER, write_expert
    from .models.presets import SHIPPED_MODEL_DIR
    from .pipeline import HIGH_NOISE_BOUNDARY

    model = Path(args.model) if args.model else SHIPPED_MODEL_DIR
    if model_kind(model) != "pipeline":
        raise ValueError(f"{model} is not a pipeline folder (model_index.json): the expert is written into one.")
    if (model / EXPERT_FOLDER).exists():
        raise ValueError(f"{model / EXPERT_FOLDER} already exists; remove it first to write another.")
    pipe, expert = _load_pipeline(str(model), "cpu", "float32"), _load_pipeline(args.tuned, "cpu", "float32")
    boundary = HIGH_NOISE_BOUNDARY if args.boundary is None else args.boundary
    # how it was made goes with it: a pipeline folder's run records, as `uvigu train` leaves them there
    records = [Path(args.tuned) / name for name in ("training_config.json", "training_summary.json")
               if (Path(args.tuned) / name).is_file()]
    folder = write_expert(pipe, expert, model / EXPERT_FOLDER, boundary=boundary, rank=args.rank, records=records)
    size = sum(f.stat().st_size for f in folder.iterdir()) / 2**20
    print(f"high-noise expert: {folder} ({size:.1f} MB; from σ {boundary:g}, rank {args.rank})")
    return 0


# --- shapes ------------------------------------------------------------------------------------


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
    from .data.shapes import ShapesConfig
    from .data.video_folder import METADATA_FILE, write_video_folder
    from .eval.report import EvalConfig, eval_example

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


def add_convert_official_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "convert-official",
        help="convert an official Uni-ViGU checkpoint (.pth) into a pipeline folder (safetensors)",
        description="Map the official release's parameter names onto ours; the .pth is read with "
        "torch.load(weights_only=True) and refused if it holds anything but weights.",
    )
    p.add_argument("--checkpoint", required=True, help="the official .pth (e.g. step-00010000.pth)")
    p.add_argument("--wan", required=True, help="the diffusers-format Wan2.1-T2V folder it was trained from")
    p.add_argument("--out", required=True, help="new output folder (loads with UniViGUPipeline.from_pretrained)")
    p.add_argument("--dtype", choices=["bfloat16", "float16", "float32"], default="bfloat16", help="[%(default)s]")
    p.add_argument("--text-source", choices=["uniform", "mask"], default=None,
                   help="the checkpoint's text source (default: read from its vocabulary size)")
    p.set_defaults(func=run_convert_official)


def run_convert_official(args: argparse.Namespace) -> int:
    import torch

    from .models.official import convert_official

    out = convert_official(args.checkpoint, args.wan, args.out, dtype=getattr(torch, args.dtype),
                           text_source=args.text_source)
    print(f"converted pipeline: {out}")
    return 0


# --- wiring ------------------------------------------------------------------------------------

SUBCOMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [
    add_train_parser,
    add_generate_parser,
    add_caption_parser,
    add_edit_parser,
    add_eval_parser,
    add_sweep_parser,
    add_probe_parser,
    add_bench_parser,
    add_export_parser,
    add_expert_parser,
    add_shapes_parser,
    add_convert_official_parser,
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="uvigu", description="Uni-ViGU: generate and describe video with one model.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add_parser in SUBCOMMANDS:
        add_parser(subparsers)
    return parser


def _not_said_here(record: logging.LogRecord) -> bool:
    """Leaves out the library's warning of unknown prompt words, which the commands print themselves."""
    return not hasattr(record, "unknown_words")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    inputs_logger = logging.getLogger("uvigu.inputs")
    inputs_logger.addFilter(_not_said_here)
    try:
        return args.func(args)
    except ValueError as error:
        print(f"uvigu {args.command}: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # a full disk, a file that went away: said, not a traceback (-v logs it)
        logging.getLogger("uvigu").debug("uvigu %s failed", args.command, exc_info=True)
        print(f"uvigu {args.command}: {error}", file=sys.stderr)
        return 1
    finally:
        inputs_logger.removeFilter(_not_said_here)


if __name__ == "__main__":
    sys.exit(main())
