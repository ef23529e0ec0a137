"""What a training run does: one frozen config with commented defaults, and named presets.

``tiny`` trains the tiny model for a few steps (tests); ``shapes`` trains the Shapes world model
on a 2-core CPU in about 100 minutes; ``shapes-gpu`` trains the shipped model's first run on one
GPU in about 23 minutes (its model card has the second); ``shapes-latent`` / ``shapes-latent-gpu``
train the learned-codec variant (codec, then transformer). The config is written beside the
weights (``training_config.json``) and into every checkpoint, so a run describes itself.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, Literal

from .objective import ObjectiveConfig


@dataclass(frozen=True)
class TrainConfig:
    # --- model and data
    preset: str = "shapes"  # model size: a name in uvigu.models.presets.PRESETS
    data: str = "shapes"  # "shapes" (procedural Shapes world, train split) or a folder with metadata.jsonl
    shapes_clips: int = 1_000_000  # distinct Shapes clips drawn from (item i is fixed by seed and i)
    # a saved pipeline folder (e.g. assets/uvigu-shapes) whose weights the run starts from, to
    # fine-tune or continue it; None: random weights. Its architecture must be the preset's.
    init_from: str | None = None
    # the transformer's position features (uvigu.models.transformer.place_features); None: the
    # preset's, or with init_from the saved model's. A run from init_from may add them to a model
    # without: they start at zero, so the run starts from exactly the saved model's outputs
    position_features: int | None = None
    # --- stage 0, for presets with a learned codec (uvigu.models.autoencoder): train it by
    # reconstruction, then freeze it (skipped with init_from, which brings its own codec)
    steps_codec: int = 1000
    codec_lr: float = 2e-3  # cosine to a tenth over the stage
    codec_latent_noise: float = 0.1  # std of the noise added to the (unit-RMS) latents while training the decoder
    # --- stages (DESIGN §2.4): Knowledge Recall (text target = prompt), then Capability
    # Refinement (text target = detailed caption); steps are optimizer steps
    steps_recall: int = 1000
    steps_refine: int = 1000
    batch_size: int = 16  # per process and micro-batch
    # micro-batches whose gradients are summed into one optimizer step: the global batch is
    # batch_size × grad_accum × number of processes, so a small machine can take a GPU preset's
    # batch (e.g. 16 × 16 = shapes-gpu's 256) at the memory of batch_size
    grad_accum: int = 1
    # --- optimizer: AdamW, linear warmup then cosine decay over both stages together, so the
    # refine stage continues at the lower learning rate of a fine-tuning stage
    lr: float = 1e-3
    min_lr_ratio: float = 0.1  # the cosine ends at lr × this
    warmup_steps: int = 100
    weight_decay: float = 0.01  # matrices only; biases, norms and embeddings are not decayed
    beta1: float = 0.9
    beta2: float = 0.99
    grad_clip: float = 1.0  # max global grad norm; 0 disables clipping
    ema_decay: float = 0.999  # EMA of transformer + text encoder weights; the EMA is what ships
    # --- the objective (uvigu.training.objective.ObjectiveConfig)
    task_probs: tuple[float, float, float] = (0.4, 0.4, 0.2)  # generate, caption, joint
    text_loss_weight: float = 1.0  # λ in loss = video MSE + λ · text CE
    prompt_dropout: float = 0.1  # empty condition, for classifier-free guidance
    caption_as_condition: float = 0.5  # refine: chance a generate example is conditioned on the caption
    video_sigma_shift: float = 1.0  # shift of the logit-normal training σ of the video
    video_sigma_min: float = 0.0  # the video's training σ mapped into [this, 1) (objective); 0: all of it
    video_sigma_min_share: float = 1.0  # the share of examples so mapped, the rest as usual (objective); 1: all
    # the video examples below video_sigma_min learn init_from's own velocity, not the data's (objective's anchor)
    video_anchor: bool = False
    # the text stream's examples learn init_from's own word distributions, not the data's words (objective's anchor)
    text_anchor: bool = False
    video_loss_cap: float = 0.0  # cap on the 1/σ² weight of a video example's clean-clip error (objective); 0: none
    text_loss: Literal["ce", "gkl"] = "ce"
    text_swap: float = 0.0  # chance a clean word of a noisy text is swapped for a batch word (objective.swap_words)
    reverse_twins: float = 0.0  # Shapes only: chance a generate example brings its time-reversed twin (objective)
    # --- speed
    bf16: bool = False  # bf16 autocast (accelerate mixed precision); slower than fp32 on our CPU (see "shapes")
    gradient_checkpointing: bool = False  # recompute activations in backward: less memory, ~30% slower
    num_workers: int = 0  # dataloader worker processes (Shapes clips take ~1 ms each: 0 is fine)
    # --- bookkeeping
    log_every: int = 25  # steps between log lines / train_log.jsonl records
    ckpt_every: int = 250  # steps between checkpoints (one is also written at the end)
    keep_checkpoints: int = 2  # older checkpoints are deleted
    sample_every: int = 500  # steps between EMA samples (clip strip + caption) in <out>/samples; 0: never
    sample_prompt: str = "a red circle moving right and a large blue square staying still"
    # a folder of clips with metadata.jsonl kept out of training: at every sample its clips are
    # captioned with the EMA weights and BLEU-4 / CIDEr-D against its captions logged (samples.jsonl)
    eval_data: str | None = None
    seed: int = 0
    out_dir: str = "runs/shapes"

    def __post_init__(self) -> None:
        if self.position_features is not None and self.position_features < 0:
            raise ValueError(f"position_features must be 0 (off) or positive, got {self.position_features}.")
        if self.steps_recall < 0 or self.steps_refine < 0 or self.steps_recall + self.steps_refine == 0:
            raise ValueError(
                f"steps_recall and steps_refine must be >= 0 and not both 0, got {self.steps_recall}, {self.steps_refine}."
            )
        if self.steps_codec < 0 or self.codec_latent_noise < 0 or not self.codec_lr > 0:
            raise ValueError("steps_codec and codec_latent_noise must be >= 0 and codec_lr positive.")
        for name in ("batch_size", "grad_accum", "log_every", "ckpt_every", "keep_checkpoints", "shapes_clips"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}.")
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr}.")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}.")
        if self.warmup_steps < 0 or self.sample_every < 0 or self.num_workers < 0:
            raise ValueError("warmup_steps, sample_every and num_workers must be >= 0.")
        if self.eval_data is not None and self.sample_every == 0:
            raise ValueError("eval_data is captioned at every sample; give sample_every (steps between samples).")
        self.objective("recall")  # validates the objective fields
        if self.video_anchor and (self.init_from is None or self.video_sigma_min <= 0):
            raise ValueError("video_anchor keeps the levels below video_sigma_min where the init_from model has "
                             "them: give both --init-from and --video-sigma-min (with a share below 1).")
        if self.text_anchor and self.init_from is None:
            raise ValueError("text_anchor holds the text stream to the words the init_from model reads: give "
                             "--init-from.")
        if self.reverse_twins > 0 and self.data != "shapes":
            raise ValueError(
                "reverse_twins needs the Shapes world (--data shapes): a twin is the clip played backwards "
                "with its prompt's motion words turned round, which only the Shapes grammar says how to do."
            )

    @property
    def total_steps(self) -> int:
        return self.steps_recall + self.steps_refine

    def examples_per_step(self, num_processes: int = 1) -> int:
        """Examples in one optimizer step: batch_size × grad_accum × processes."""
        return self.batch_size * self.grad_accum * num_processes

    def stage_at(self, step: int) -> Literal["recall", "refine"]:
        """The stage that optimizer step ``step`` (0-based) belongs to."""
        return "recall" if step < self.steps_recall else "refine"

    def objective(self, stage: Literal["recall", "refine"]) -> ObjectiveConfig:
        return ObjectiveConfig(
            stage=stage,
            task_probs=tuple(self.task_probs),
            text_loss_weight=self.text_loss_weight,
            prompt_dropout=self.prompt_dropout,
            caption_as_condition=self.caption_as_condition,
            video_sigma_shift=self.video_sigma_shift,
            video_sigma_min=self.video_sigma_min,
            video_sigma_min_share=self.video_sigma_min_share,
            video_loss_cap=self.video_loss_cap,
            video_anchor=self.video_anchor,
            text_anchor=self.text_anchor,
            text_loss=self.text_loss,
            text_swap=self.text_swap,
            reverse_twins=self.reverse_twins,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown training config fields: {', '.join(unknown)}.")
        if "task_probs" in values:
            values = {**values, "task_probs": tuple(values["task_probs"])}
        return cls(**values)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path) -> TrainConfig:
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))


TRAIN_PRESETS: dict[str, TrainConfig] = {
    # Seconds on a CPU: the tiny model (16×16 px, 4 frames) for a few steps.
    "tiny": TrainConfig(
        preset="tiny",
        shapes_clips=64,
        steps_recall=3,
        steps_refine=3,
        batch_size=4,
        lr=3e-3,
        warmup_steps=0,
        ema_decay=0.9,
        log_every=1,
        ckpt_every=3,
        sample_every=0,
        out_dir="runs/tiny",
    ),
    # The laboratory: fresh clips of the 16-pixel world (no memorising), about 4.5 steps/s at
    # batch 32 on the 2-core CPU, so 2,500 steps take 9–10 minutes.
    "lab": TrainConfig(
        preset="lab",
        steps_recall=0,
        steps_refine=2500,
        batch_size=32,
        lr=1e-3,
        warmup_steps=100,
        ema_decay=0.999,
        video_sigma_shift=3.0,
        log_every=500,
        ckpt_every=2500,
        sample_every=0,
        out_dir="runs/lab",
    ),
    # The Shapes model sized for ≤ 100 minutes on a shared 2-core CPU (AMD EPYC, avx512_bf16).
    # Measured: one step at batch 16 takes 2.3 s with the machine otherwise idle (2 threads), and
    # 4–10 s (median ≈ 6.5 s) while other jobs load it (load ≈ 6; with OMP_WAIT_POLICY=PASSIVE —
    # OpenMP's default busy-waiting made 2 threads take 15–29 s there, 1 thread took 6.2 s).
    # 1200 steps ≈ 46 min idle, ≈ 100 min at an average 5 s/step; samples and checkpoints add
    # ~1 min. bf16 autocast measured slower on this CPU (6.6–8.3 s vs 5.7–5.9 s per step under the
    # same load), so it stays off; use --bf16 on GPUs, and on CPUs with AMX: on an Intel Xeon with
    # AMX, 2 threads, idle, steps 20–30 of `uvigu train --preset shapes --steps-recall 30
    # --steps-refine 0 [--bf16]` ran at 0.476 steps/s with it against 0.404 without (1.18×), with
    # the same losses to three digits.
    "shapes": TrainConfig(
        preset="shapes",
        steps_recall=500,
        steps_refine=700,
        batch_size=16,
        lr=1e-3,
        warmup_steps=60,
        ema_decay=0.995,  # the warm-up decay (1 + t)/(10 + t) is lower than this until step ~1800
        # Train σ with the inference shift (3, Wan's), as SD3 does (arXiv 2403.03206 §5.3.2): with
        # shift 1 a logit-normal σ exceeds 0.9 in 1.4% of examples, yet 6 of the 20 shifted
        # inference steps run there; a first run's checkpoint at step 300 denoised σ = 0.3–0.9
        # well but its σ = 1 prediction was worse than the data mean, and samples were noise.
        video_sigma_shift=3.0,
        bf16=False,
        log_every=10,
        ckpt_every=100,
        sample_every=300,
        out_dir="runs/shapes",
    ),
    # The shipped model's first run (its model card has the second): the same model trained on one
    # GPU, 16× the batch, bf16 autocast, Shapes clips drawn by 12 dataloader workers (~0.9 ms each).
    # Measured on one H100: 5.3 steps/s (≈ 1,360 clips/s), so 7,300 steps (1.87 M clips) took 22.8
    # minutes.
    "shapes-gpu": TrainConfig(
        preset="shapes",
        steps_recall=1800,
        steps_refine=5500,
        batch_size=256,
        lr=1.5e-3,
        warmup_steps=300,
        ema_decay=0.999,
        video_sigma_shift=3.0,
        bf16=True,
        num_workers=12,
        log_every=50,
        ckpt_every=1000,
        sample_every=2000,
        out_dir="runs/shapes-gpu",
    ),
}

# The learned-codec presets: each is its pixel-space twin with a codec stage first.
TRAIN_PRESETS.update({
    "tiny-latent": replace(TRAIN_PRESETS["tiny"], preset="tiny-latent", steps_codec=3, out_dir="runs/tiny-latent"),
    # On a 2-core CPU (AMD EPYC): a codec step at batch 16 took ≈ 1.1 s and a transformer step
    # ≈ 1.3–1.55 s (256 latent tokens + the text stream) with the machine otherwise idle; the run
    # took 2 h 32 min (47 + 105 min, under some load). 57.6 k clips are far too few for the
    # transformer to generate; the codec reconstructs what the analyzer reads (docs/shapes-latent/EVAL.md).
    "shapes-latent": replace(
        TRAIN_PRESETS["shapes"], preset="shapes-latent", steps_codec=2000, steps_recall=1000, steps_refine=2600,
        log_every=20, ckpt_every=200, sample_every=400, out_dir="runs/shapes-latent",
    ),
    # On one GPU, sized to finish in about 10 minutes: a codec stage of 400 steps, then 3,200
    # transformer steps of batch 256 (819 k clips, 14× the CPU run). Not yet run; the time is an
    # estimate from shapes-gpu's measured 5.3 steps/s with twice the video tokens. Longer training
    # continues it in parts: --init-from OUT/pipeline --seed N --steps-recall 0 (the codec is
    # copied, its stage skipped).
    "shapes-latent-gpu": replace(
        TRAIN_PRESETS["shapes-gpu"], preset="shapes-latent", steps_codec=400, steps_recall=800, steps_refine=2400,
        out_dir="runs/shapes-latent-gpu",
    ),
})


def get_train_preset(name: str, **overrides: Any) -> TrainConfig:
    """The training preset ``name`` with ``overrides`` (field=value) applied."""
    if name not in TRAIN_PRESETS:
        raise ValueError(f"unknown training preset {name!r}; choose one of {', '.join(TRAIN_PRESETS)}.")
    return replace(TRAIN_PRESETS[name], **overrides) if overrides else TRAIN_PRESETS[name]
