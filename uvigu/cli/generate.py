"""``uvigu generate`` and ``uvigu edit``: a clip from a prompt, or from a clip and an edited caption;
each then captioned and read back against what was asked."""

from __future__ import annotations

import argparse
import sys

from .common import add_model_arguments, add_start_argument, load_pipeline, read_video_arg, step_progress
from .outputs import add_output_arguments, output_path, steps_path, write_outputs, write_steps


def add_generate_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("generate", help="make a clip from a prompt (and its caption)")
    p.add_argument("prompt", help="what the clip should show, e.g. 'a red circle moving right'")
    add_model_arguments(p)
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
    p.add_argument("--motion-noise", type=float, default=None, metavar="SHARE",
                   help="the share (0 to 1) of the starting noise that already moves the way the prompt asks, when "
                        "all its objects go one way (0: off, and for objects going different ways no noise moves "
                        "along each one's path nor does its own prompt guide it, which the model's "
                        "motion_noise_paths and object_guidance turn on) [the model's motion_noise]")
    _add_expert_argument(p)
    add_output_arguments(p, "clip.mp4")
    p.set_defaults(func=run_generate)


def add_edit_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("edit", help="regenerate a clip conditioned on an edited caption")
    p.add_argument("video", help="the clip to start from")
    p.add_argument("prompt", help="the edited caption or prompt")
    add_start_argument(p)
    add_model_arguments(p)
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
    add_output_arguments(p, "edited.mp4")
    p.set_defaults(func=run_edit)


def _add_expert_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-expert", action="store_true",
                   help="make every step with the model, leaving out the high-noise expert of its folder (the "
                   "shipped model's makes the first step from pure noise and draws the background the prompt "
                   "names)")


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
    out = output_path(args)
    pipe = load_pipeline(args.model, args.device, args.dtype)
    options = dict(seed=args.seed, num_inference_steps=args.steps, guidance_scale=args.guidance,
                   motion_noise=args.motion_noise, high_noise_expert=not args.no_expert,
                   return_trajectory=args.trajectory)
    _say_what_it_asks(pipe, args.prompt)
    if args.joint:
        result = pipe.generate_with_caption(args.prompt, callback=step_progress("generate"), **options)
    else:
        desc = "generate" if args.best_of == 1 else f"{args.best_of} takes"
        result = pipe.generate(args.prompt, best_of=args.best_of, judge_at=args.judge_at,
                               judge_steps=args.judge_steps, read_guidance=args.read_guidance,
                               read_guidance_from=args.read_guidance_from,
                               callback=step_progress(desc), **options)
    for take in result.candidates:
        chosen = "  <- kept" if take.seed == result.seed else ""
        print(f"take: seed {take.seed}, agrees {take.score:.2f}: {take.caption}{chosen}")
    print(f"seed: {result.seed}")
    write_outputs(result.frames, out, args, pipe.fps)
    caption, caption_steps = result.caption, result.caption_trajectory
    if caption is None and not args.no_caption:
        read = pipe.caption(result.frames, seed=result.seed, callback=step_progress("caption"),
                            return_trajectory=args.trajectory)
        caption, caption_steps = read.text, read.trajectory
    if args.trajectory:
        write_steps(steps_path(out), [("joint" if args.joint else "generate", result.trajectory, None),
                           ("caption", caption_steps, result.frames)], f"{args.prompt} · seed {result.seed}")
    if caption is not None:
        from ..judge import EXPERT_LEAVES_EMPTY

        print(f"caption: {caption}")
        hint = None if args.joint else "--seed"  # a joint caption is written from the prompt, not read off the clip
        if hint and pipe.high_noise_expert is not None and not args.no_expert:
            hint += f" or --no-expert ({EXPERT_LEAVES_EMPTY})"
        _print_read_back(pipe.read_back(args.prompt, caption), "joint caption" if args.joint else "round trip", hint)
        if (corrected := pipe.corrected_caption(args.prompt, caption)) is not None:
            import shlex

            print("ask for what it missed: uvigu edit " + shlex.join([str(out), corrected, "--source-prompt", caption]))
    return 0


def run_edit(args: argparse.Namespace) -> int:
    out = output_path(args)
    pipe = load_pipeline(args.model, args.device, args.dtype)
    video, notes = read_video_arg(pipe, args)
    _say_what_it_asks(pipe, args.prompt, args.source_prompt)
    source_prompt = args.source_prompt
    if args.keep_rest:
        # What the clip shows before the change, in the model's words, as the studio's Keep the rest.
        source_prompt = pipe.caption(video, seed=args.seed, callback=step_progress("caption")).text
        print(f"caption before the change: {source_prompt}")
        if source_prompt.split() == args.prompt.split():
            raise ValueError("the prompt is the clip's caption unchanged, so keeping the rest leaves nothing to "
                             "change; edit the caption, or drop --keep-rest for a variation.")
    result = pipe.edit(
        video, args.prompt, strength=args.strength, source_prompt=source_prompt, seed=args.seed,
        num_inference_steps=args.steps, guidance_scale=args.guidance, high_noise_expert=not args.no_expert,
        callback=step_progress("edit"), return_trajectory=args.trajectory,
    )
    for note in [*notes, *result.input_notes]:
        print(f"note: {note}", file=sys.stderr)
    print(f"seed: {result.seed}")
    write_outputs(result.frames, out, args, pipe.fps)
    caption = None
    if not args.no_caption:  # what the edited clip shows, as the studio says it after an edit
        caption = pipe.caption(result.frames, seed=result.seed, callback=step_progress("caption"),
                               return_trajectory=args.trajectory)
    if args.trajectory:
        caption_steps = caption.trajectory if caption is not None else None
        write_steps(steps_path(out), [("edit", result.trajectory, None), ("caption", caption_steps, result.frames)],
                     f"{args.prompt} · seed {result.seed}")
    if caption is not None:
        print(f"caption: {caption.text}")
        _print_read_back(pipe.read_back(args.prompt, caption.text), "your edit", empty_hint="--seed")
    return 0


# --- eval --------------------------------------------------------------------------------------


def _print_read_back(read_backs, what: str, empty_hint: str | None = None) -> None:
    """How much of the prompt the caption names, and each object it names otherwise (`pipe.read_back`);
    with ``empty_hint``, what to try when the caption (of the model's clip) names no object."""
    from ..judge import NAMES_NO_OBJECT, names_no_object, read_back_count

    if count := read_back_count(read_backs):
        print(f"{what}: {count}")
    for item in read_backs:
        if not item.asked:
            print(f"  {item.name}: not asked for")
        elif item.name and not item.found:
            print(f"  {item.name}: not in the caption")
        elif item.name and not item.agrees:
            print(f"  {item.name}: " + ", ".join(f"{said} instead of {asked}" for said, asked in item.misses()))
    if empty_hint is not None and names_no_object(read_backs):
        print(f"  {NAMES_NO_OBJECT}: try another {empty_hint}")
