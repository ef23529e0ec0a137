"""The commands that write model folders: ``uvigu train``, ``export`` (a checkpoint as a pipeline),
``expert`` (a high-noise expert into a pipeline folder) and ``convert-official``."""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import load_pipeline


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
    from ..training.checkpoint import is_checkpoint, latest_checkpoint, read_state
    from ..training.config import TrainConfig, get_train_preset
    from ..training.trainer import train

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
    from ..training.export import export_checkpoint

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
    from ..loading import model_kind
    from ..models.expert import EXPERT_FOLDER, write_expert
    from ..models.presets import SHIPPED_MODEL_DIR
    from ..models.expert import HIGH_NOISE_BOUNDARY

    model = Path(args.model) if args.model else SHIPPED_MODEL_DIR
    if model_kind(model) != "pipeline":
        raise ValueError(f"{model} is not a pipeline folder (model_index.json): the expert is written into one.")
    if (model / EXPERT_FOLDER).exists():
        raise ValueError(f"{model / EXPERT_FOLDER} already exists; remove it first to write another.")
    pipe, expert = load_pipeline(str(model), "cpu", "float32"), load_pipeline(args.tuned, "cpu", "float32")
    boundary = HIGH_NOISE_BOUNDARY if args.boundary is None else args.boundary
    # how it was made goes with it: a pipeline folder's run records, as `uvigu train` leaves them there
    records = [Path(args.tuned) / name for name in ("training_config.json", "training_summary.json")
               if (Path(args.tuned) / name).is_file()]
    folder = write_expert(pipe, expert, model / EXPERT_FOLDER, boundary=boundary, rank=args.rank, records=records)
    size = sum(f.stat().st_size for f in folder.iterdir()) / 2**20
    print(f"high-noise expert: {folder} ({size:.1f} MB; from σ {boundary:g}, rank {args.rank})")
    return 0


# --- shapes ------------------------------------------------------------------------------------


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

    from ..models.official import convert_official

    out = convert_official(args.checkpoint, args.wan, args.out, dtype=getattr(torch, args.dtype),
                           text_source=args.text_source)
    print(f"converted pipeline: {out}")
    return 0
