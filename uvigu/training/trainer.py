"""Two-stage training of the unified model (DESIGN §2.4), on ``accelerate``.

``train(config)`` reads top to bottom like nanoGPT's ``train.py``: build data and a fresh pipeline
(or one holding a saved pipeline's weights, ``config.init_from``), wrap model + optimizer +
dataloader with ``accelerate`` (so one CPU, one GPU or many GPUs run the same code), train the
codec first when the preset's is learned (stage 0, ``uvigu.training.codec_stage``), optionally
resume, then one loop over both stages — Knowledge Recall (text target = prompt), then Capability
Refinement (text target = detailed caption) — with EMA, logging, samples and checkpoints. The EMA
weights are what ``<out>/pipeline`` holds at the end. A run stopped early (a time limit, Ctrl-C,
SIGTERM; ``StopRequest``) ends its step and checkpoints there instead, so nothing is lost.

Outputs under ``config.out_dir``::

    codec_log.jsonl, codec/  stage 0 (learned codecs only), see uvigu.training.codec_stage
    train_log.jsonl          one record per log interval (losses per task, lr, steps/s)
    checkpoints/step_N/      see uvigu.training.checkpoint
    samples/                 EMA samples: clip strips and captions (samples.jsonl)
    pipeline/                the final pipeline (EMA weights), training_config.json,
                             training_summary.json
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import platform
import signal
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from torch.utils.data import DataLoader, Dataset

from ..data.shapes import ShapesConfig, ShapesDataset, shapes_vocabulary
from ..data.video_folder import VideoFolderDataset
from ..eval.folder import caption_folder, folder_dataset, folder_scores
from ..models.autoencoder import VideoAutoencoder
from ..models.presets import build_pipeline, get_preset
from ..models.tokenizer import build_word_tokenizer, count_tokens, split_words
from ..videoio import write_strip_png
from .checkpoint import (
    CheckpointState,
    checkpoint_dir,
    commit_checkpoint,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    read_state,
    save_rng,
    save_weights,
    staging_dir,
)
from .config import TrainConfig
from .codec_stage import CODEC_LOG, train_codec
from .ema import EMA
from .objective import LossOutput, compute_loss
from .progress import time_left
from .stream import ShuffledStream
from .warm_start import copy_weights, load_source, saved_addable, source_words

logger = logging.getLogger(__name__)

LOG_FILE = "train_log.jsonl"
PIPELINE_DIR = "pipeline"


def train(
    config: TrainConfig,
    *,
    resume: bool = False,
    stop_after_s: float | None = None,
    on_trained: Callable[[Accelerator, list[torch.nn.Module]], None] | None = None,
) -> Path:
    """Train per ``config``; returns the folder of the final pipeline (``<out_dir>/pipeline``).

    With ``resume=True`` the run continues from the latest checkpoint in ``out_dir`` at its step
    (or starts fresh when there is none); without it, an ``out_dir`` that already holds
    checkpoints is refused rather than overwritten. ``on_trained``, when given, is called on every
    process after the last step with the accelerator and the unwrapped ``[transformer,
    text_encoder]`` holding the trained (not yet EMA) weights — e.g. to check that data-parallel
    processes agree.

    A run can stop early without losing work: after ``stop_after_s`` seconds of this call, or on
    Ctrl-C / SIGTERM (a second one stops at once), it ends the step it is in, writes a checkpoint
    there and returns that checkpoint's folder instead of the pipeline; ``resume=True`` continues
    it as if it had not stopped (same schedule, same batches), and the checkpoint is a model
    already (``--model``, ``uvigu export``).
    """
    call_start, stop = time.perf_counter(), StopRequest(stop_after_s)
    if config.init_from:  # settings the run leaves unset take the saved model's, not the preset's
        inherited = {k: v for k, v in saved_addable(config.init_from).items() if getattr(config, k) is None}
        config = dataclasses.replace(config, **inherited)
    out = Path(config.out_dir)
    checkpoint = latest_checkpoint(out) if resume else None
    if not resume and list_checkpoints(out):
        raise ValueError(f"{out} already holds checkpoints; resume the run or choose another output folder.")
    accelerator = Accelerator(mixed_precision="bf16" if config.bf16 else "no")
    main = accelerator.is_main_process
    if main:
        out.mkdir(parents=True, exist_ok=True)
        config.save(out / "training_config.json")

    # --- data and a fresh model (or one holding a saved pipeline's weights)
    dataset, words = build_dataset(config)
    source = None
    if checkpoint is not None:
        words = _check_resumable(config, read_state(checkpoint), words)
    elif config.init_from:
        source = load_source(config.init_from)
        words = sorted(set(words) | set(source_words(source)))
    changes = {} if config.position_features is None else {"position_features": config.position_features}
    pipe = build_pipeline(config.preset, words, seed=config.seed, **changes)
    if isinstance(dataset, VideoFolderDataset):  # texts the text stream cannot hold stop the run now, not at their turn
        dataset.check_text_lengths(partial(count_tokens, pipe.tokenizer), pipe.config.max_text_len - 1)
    # clips to caption at every sample, checked now (every line and clip) rather than at the first sample
    eval_clips = folder_dataset(pipe, config.eval_data) if config.eval_data and main else None
    if source is not None:
        new_words = copy_weights(pipe, source, config.init_from)
        logger.info("starting from the weights of %s%s", config.init_from,
                    f"; new words with fresh embeddings: {', '.join(new_words)}" if new_words else "")
    if isinstance(pipe.codec, VideoAutoencoder):  # stage 0: train the codec (or keep init_from's), then freeze it
        train_codec(pipe.codec, dataset, config, accelerator, out, pretrained=source is not None)
    # The anchor: a frozen copy of the starting weights, as the init_from model has them (on resume too).
    anchor = _anchor_models(config, words, changes, source) if config.video_anchor or config.text_anchor else None
    del source
    transformer, text_encoder = pipe.transformer.train(), pipe.text_encoder.train()
    ema = EMA([transformer, text_encoder], config.ema_decay)
    if config.gradient_checkpointing:
        transformer.enable_gradient_checkpointing()
        text_encoder.gradient_checkpointing_enable()
    optimizer = build_optimizer([transformer, text_encoder], config)
    text_flow = pipe.text_flow
    # The objective's draws (task, σ, noise, dropout) come from one generator per process.
    generator = torch.Generator().manual_seed(config.seed + 1_000_003 * accelerator.process_index)

    step, wall_before = 0, 0.0
    if checkpoint is not None:
        saved = load_checkpoint(
            checkpoint, models=[transformer, text_encoder], ema_models=ema.modules, optimizer=optimizer,
            generator=generator, process_index=accelerator.process_index,
        )
        step, wall_before = saved.step, saved.wall_s
        logger.info("resumed from %s at step %d", checkpoint, step)
        if main:
            _truncate_log(out / LOG_FILE, step)
    elif resume:
        logger.info("no checkpoint in %s: starting from step 0", out)
    if main and step == 0:
        (out / LOG_FILE).unlink(missing_ok=True)

    # Every process reads its share of one endless, seeded stream of batches; starting the stream
    # at the step's position makes a resumed run see the batches an uninterrupted one would.
    stream = ShuffledStream.over(dataset, config.seed, start=step * config.examples_per_step(accelerator.num_processes))
    loader = DataLoader(dataset, batch_size=config.batch_size, sampler=stream, num_workers=config.num_workers,
                        drop_last=True, persistent_workers=config.num_workers > 0, worker_init_fn=_ignore_ctrl_c,
                        pin_memory=accelerator.device.type == "cuda")
    transformer, text_encoder, optimizer, loader = accelerator.prepare(transformer, text_encoder, optimizer, loader)
    models = [accelerator.unwrap_model(transformer), accelerator.unwrap_model(text_encoder)]
    ema.modules = [m.to(accelerator.device) for m in ema.modules]
    pipe.codec.to(accelerator.device)  # frames are encoded where the loader puts them
    if anchor is not None:
        anchor = tuple(m.to(accelerator.device) for m in anchor)
    params = [p for m in (transformer, text_encoder) for p in m.parameters()]
    objectives = {stage: config.objective(stage) for stage in ("recall", "refine")}

    logger.info(
        "training %s on %s: %d recall + %d refine steps, batch %d × %d micro-batch(es) × %d process(es), %s, "
        "%.2fM parameters", config.preset, config.data, config.steps_recall, config.steps_refine, config.batch_size,
        config.grad_accum, accelerator.num_processes, accelerator.device, sum(p.numel() for p in params) / 1e6,
    )
    window = LossWindow()
    session_start = time.perf_counter()
    batches: Iterator[dict] = iter(loader)
    with stop.on_signals():
        while step < config.total_steps:
            stage = config.stage_at(step)
            lr = learning_rate(step, config)
            for group in optimizer.param_groups:
                group["lr"] = lr
            # grad_accum micro-batches, each loss divided by grad_accum, so the step follows the mean of
            # their losses; data-parallel processes exchange gradients on the last micro-batch only.
            for micro in range(config.grad_accum):
                batch = next(batches)
                last = micro == config.grad_accum - 1
                with contextlib.ExitStack() as no_sync:
                    if not last:
                        for model in (transformer, text_encoder):
                            no_sync.enter_context(accelerator.no_sync(model))
                    with accelerator.autocast():
                        result = compute_loss(
                            transformer=transformer, text_encoder=text_encoder, tokenizer=pipe.tokenizer,
                            codec=pipe.codec, frames=batch["frames"], prompts=batch["prompt"], captions=batch["caption"],
                            config=objectives[stage], text_flow=text_flow, max_text_len=pipe.config.max_text_len,
                            max_prompt_len=pipe.config.max_prompt_len, generator=generator, anchor=anchor,
                        )
                    accelerator.backward(result.loss / config.grad_accum)
                window.add(result)
            grad_norm = accelerator.clip_grad_norm_(params, config.grad_clip) if config.grad_clip > 0 else None
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            ema.update(models, step)
            step += 1
            window.end_step(None if grad_norm is None else float(grad_norm))

            stage_done = step == config.steps_recall or step == config.total_steps
            stopping = step < config.total_steps and stop.now(accelerator, time.perf_counter() - call_start)
            # A stopping run logs the steps since its last record too, so none go unlogged.
            if main and (step % config.log_every == 0 or stage_done or stopping):
                record = {"step": step, "stage": stage, "lr": lr, **window.summary(),
                          "elapsed_s": round(wall_before + time.perf_counter() - session_start, 2)}
                _append_log(out / LOG_FILE, record)
                logger.info(_format_record(record, config.total_steps))
                window = LossWindow()
            if config.sample_every and step % config.sample_every == 0 and main:
                write_samples(pipe, ema.modules, dataset, config, out / "samples", step, eval_clips)
            wall_s = wall_before + time.perf_counter() - session_start
            if step % config.ckpt_every == 0 or step == config.total_steps or stopping:
                _save_checkpoint(accelerator, out, step, wall_s, words, config, models, ema, optimizer, generator)
            if stopping:
                stopped = checkpoint_dir(out, step)
                logger.info("stopped at step %d of %d (%s); continue with --resume, or use %s as a model",
                            step, config.total_steps, stop.reason, stopped)
                accelerator.wait_for_everyone()
                accelerator.end_training()
                return stopped

    # --- the final pipeline: EMA weights, eval mode, with the run's config and summary beside them
    wall_s = wall_before + time.perf_counter() - session_start
    final = out / PIPELINE_DIR
    if on_trained is not None:
        on_trained(accelerator, models)
    if main:
        ema.copy_to(models)
        if config.gradient_checkpointing:
            models[0].disable_gradient_checkpointing()
            models[1].gradient_checkpointing_disable()
        models[0].eval()
        models[1].eval()
        pipe.save_pretrained(final)
        config.save(final / "training_config.json")
        summary = summarize(config, out / LOG_FILE, wall_s, accelerator, params)
        (final / "training_summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
        logger.info("saved the EMA pipeline to %s (%.1f min of training)", final, wall_s / 60)
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return final


# --- pieces of the loop ------------------------------------------------------------------------


class StopRequest:
    """When a run should stop early: after ``after_s`` seconds, or once SIGINT / SIGTERM arrived.

    The first signal only asks (the step in progress ends, a checkpoint is written); the handlers
    are then put back, so a second Ctrl-C stops at once. Processes of a data-parallel run agree on
    the step to stop at (one of them asking is enough), so they all write the same checkpoint.
    """

    def __init__(self, after_s: float | None = None) -> None:
        if after_s is not None and after_s < 0:
            raise ValueError(f"stop_after_s must be >= 0, not {after_s}.")
        self.after_s = after_s
        self.signal_name: str | None = None
        self.reason = ""
        self._previous: dict[int, Any] = {}

    @contextlib.contextmanager
    def on_signals(self) -> Iterator[None]:
        if threading.current_thread() is threading.main_thread():  # only the main thread may set handlers
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._ask)
        try:
            yield
        finally:
            self._restore()

    def _ask(self, signum: int, frame: Any) -> None:
        self.signal_name = signal.Signals(signum).name
        self._restore()
        logger.warning("%s: stopping after this step, with a checkpoint (again to stop at once)", self.signal_name)

    def _restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def now(self, accelerator: Accelerator, elapsed_s: float) -> bool:
        timed_out = self.after_s is not None and elapsed_s >= self.after_s
        asked = self.signal_name is not None or timed_out
        if accelerator.num_processes > 1:
            asked = bool(accelerator.reduce(torch.tensor(float(asked), device=accelerator.device), "sum").item() > 0)
        if asked and not self.reason:
            self.reason = (f"{self.signal_name} received" if self.signal_name is not None
                           else f"time limit of {self.after_s / 60:.1f} min reached" if timed_out
                           else "another process asked")
        return asked


def build_dataset(config: TrainConfig) -> tuple[Dataset, list[str]]:
    """The training dataset of ``config.data`` and the vocabulary its texts need."""
    preset = get_preset(config.preset)
    if config.data == "shapes":
        if preset.height != preset.width:
            raise ValueError(f"the Shapes world draws square clips; preset {preset.name!r} is "
                             f"{preset.height}×{preset.width}.")
        shapes = ShapesConfig(size=preset.height, num_frames=preset.num_frames, fps=preset.fps)
        return ShapesDataset(config.shapes_clips, seed=config.seed, config=shapes, split="train"), shapes_vocabulary()
    root = Path(config.data)
    if not root.is_dir():
        raise ValueError(f"--data must be 'shapes' or a folder with metadata.jsonl; {root} is neither.")
    # A clip that stops decoding mid-run (a file replaced or damaged after the check of every clip at
    # the start) is skipped with a warning rather than ending the run.
    dataset = VideoFolderDataset(root, num_frames=preset.num_frames, height=preset.height, width=preset.width,
                                 fps=preset.fps, seed=config.seed, skip_unreadable=True)
    logger.info("%s: %s", root, dataset.describe())
    if dataset.short_clips:
        item_s = preset.num_frames / preset.fps
        logger.warning("%s: %d of %d clips are shorter than an item (%g s): each is filled out by holding its last "
                       "frame, so the model learns motion that stops; give it clips of at least %g s", root,
                       dataset.short_clips, len(dataset), item_s, item_s)
    splitter = build_word_tokenizer([])
    words = sorted({w for e in dataset.entries for text in (e.prompt, e.caption) for w in split_words(splitter, text)})
    return dataset, words


def build_optimizer(modules: list[torch.nn.Module], config: TrainConfig) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices only (nanoGPT): not on biases and norms, nor on the
    embedders — every parameter whose name contains ``embed`` (token, patch, timestep and condition
    embedders) and T5's ``shared`` token table."""
    decay, no_decay, seen = [], [], set()
    for module in modules:
        for name, p in module.named_parameters():
            if id(p) in seen or not p.requires_grad:
                continue
            seen.add(id(p))
            is_embedding = "embed" in name or name.startswith("shared")
            (decay if p.ndim >= 2 and not is_embedding else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=config.lr, betas=(config.beta1, config.beta2))


def learning_rate(step: int, config: TrainConfig) -> float:
    """Linear warmup over ``warmup_steps``, then cosine from ``lr`` to ``lr·min_lr_ratio`` at the end."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, config.total_steps - config.warmup_steps)
    cosine = 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    return config.lr * (config.min_lr_ratio + (1.0 - config.min_lr_ratio) * cosine)


class LossWindow:
    """Running means of the losses between two log lines (over micro-batches); per-task means
    weighted by task counts; grad norm and speed per optimizer step."""

    def __init__(self) -> None:
        self.steps, self.start = 0, time.perf_counter()
        self.sums: dict[str, float] = defaultdict(float)
        self.weights: dict[str, float] = defaultdict(float)
        self.step_twins: int | None = None  # twins of the optimizer step under way (None: twins off)

    def _add(self, key: str, value: float, weight: float = 1) -> None:
        self.sums[key] += value * weight
        self.weights[key] += weight

    def add(self, result: LossOutput) -> None:
        """One micro-batch's losses."""
        self._add("loss", float(result.loss.detach()))
        self._add("video_loss", result.video_loss)
        self._add("text_loss", result.text_loss)
        if result.twins is not None:
            self.step_twins = (self.step_twins or 0) + result.twins
        for key, value in result.per_task.items():
            self._add(key, value, result.task_counts[key.split("/")[0]])

    def end_step(self, grad_norm: float | None) -> None:
        """An optimizer step is done."""
        self.steps += 1
        if grad_norm is not None:
            self._add("grad_norm", grad_norm)
        if self.step_twins is not None:
            self._add("twins", self.step_twins)  # logged as twins per optimizer step
            self.step_twins = None

    def summary(self) -> dict[str, float]:
        seconds = time.perf_counter() - self.start
        means = {k: round(self.sums[k] / self.weights[k], 5) for k in self.sums if self.weights[k]}
        return {**means, "steps_per_s": round(self.steps / seconds, 4)}


def _anchor_models(config: TrainConfig, words: list[str], changes: dict[str, Any],
                   source=None) -> tuple[torch.nn.Module, torch.nn.Module]:
    """The transformer and text encoder of ``config.init_from`` (``source``, that model already loaded,
    or None to load it: a resumed run) in ``words``' vocabulary, built as the run's pipeline is
    (``changes`` to the preset), frozen: what the objective's anchor holds the lower noise levels
    (video_anchor) or the text stream (text_anchor) to."""
    frozen = build_pipeline(config.preset, words, seed=config.seed, **changes)
    copy_weights(frozen, source if source is not None else load_source(config.init_from), config.init_from)
    return tuple(m.eval().requires_grad_(False) for m in (frozen.transformer, frozen.text_encoder))


def write_samples(pipe, ema_modules: list[torch.nn.Module], dataset: Dataset, config: TrainConfig,
                  folder: Path, step: int, eval_clips: VideoFolderDataset | None = None) -> None:
    """With the EMA weights: generate a clip for the first training prompt and caption it, and
    caption the first training clip; strips and texts go to ``folder``. With ``eval_clips`` (the
    run's ``eval_data``), caption those too and log their BLEU-4 and CIDEr-D against their captions."""
    ema_pipe = type(pipe)(
        transformer=ema_modules[0], text_encoder=ema_modules[1], tokenizer=pipe.tokenizer, codec=pipe.codec,
        scheduler=pipe.scheduler, **{k: v for k, v in pipe.config.items() if not k.startswith("_") and k not in pipe.components},
    )
    item = dataset[0]
    prompt = config.sample_prompt or item["prompt"]
    folder.mkdir(parents=True, exist_ok=True)
    generated = ema_pipe.generate(prompt, seed=0)
    record = {
        "step": step,
        "prompt": prompt,
        "caption_of_generated": ema_pipe.caption(generated.frames, seed=0).text,
        "reference_caption": item["caption"],
        "caption_of_reference": ema_pipe.caption(item["frames"], seed=0).text,
    }
    if eval_clips is not None:
        captions = caption_folder(ema_pipe, eval_clips)
        bleu, cider = folder_scores(captions)
        record.update(eval_clips=len(captions), eval_bleu4=round(bleu, 4), eval_cider_d=round(cider, 4))
    write_strip_png(generated.frames, folder / f"step_{step:07d}.png", scale=2)
    _append_log(folder / "samples.jsonl", record)
    logger.info("sample at step %d: %r → %r", step, prompt, record["caption_of_generated"])
    if eval_clips is not None:
        logger.info("captions of %s at step %d (%d clips): BLEU-4 %.3f, CIDEr-D %.3f", config.eval_data, step,
                    record["eval_clips"], record["eval_bleu4"], record["eval_cider_d"])


def summarize(config: TrainConfig, log_file: Path, wall_s: float, accelerator: Accelerator,
              params: list[torch.Tensor]) -> dict[str, Any]:
    """Steps per stage, final losses per task (mean over each stage's last tenth), time and device.

    ``wall_time_s`` counts the recall and refine stages; a codec stage run in the same folder
    reports its own steps, final reconstruction loss and ``codec_wall_time_s``."""
    records = [json.loads(line) for line in log_file.read_text(encoding="utf-8").splitlines() if line.strip()]
    final_losses = {}
    for stage, first, last in (("recall", 0, config.steps_recall), ("refine", config.steps_recall, config.total_steps)):
        if last <= first:
            continue
        tail_start = last - max(1, (last - first) // 10)
        tail = [r for r in records if r["stage"] == stage and r["step"] > tail_start] or \
               [r for r in records if r["stage"] == stage][-1:]
        keys = sorted({k for r in tail for k in r} - {"step", "stage", "lr", "elapsed_s", "steps_per_s", "grad_norm"})
        final_losses[stage] = {k: round(sum(r[k] for r in tail if k in r) / sum(k in r for r in tail), 5) for k in keys}
    codec_log = log_file.parent / CODEC_LOG
    codec_records = [json.loads(line) for line in codec_log.read_text(encoding="utf-8").splitlines() if line.strip()] \
        if codec_log.is_file() else []
    steps = {"recall": config.steps_recall, "refine": config.steps_refine}
    codec = {}
    if codec_records:
        tail = codec_records[-max(1, len(codec_records) // 10):]
        final_losses["codec"] = {"reconstruction": round(sum(r["reconstruction"] for r in tail) / len(tail), 5)}
        steps = {"codec": codec_records[-1]["step"], **steps}
        codec = {"codec_wall_time_s": codec_records[-1]["elapsed_s"]}
    device = accelerator.device
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else _cpu_name()
    return {
        "steps": steps,
        **codec,
        "examples_seen": config.total_steps * config.examples_per_step(accelerator.num_processes),
        "final_losses": final_losses,
        "wall_time_s": round(wall_s, 1),
        "mean_steps_per_s": round(config.total_steps / wall_s, 4) if wall_s > 0 else None,
        "device": f"{device.type} ({device_name}), {accelerator.num_processes} process(es), "
                  f"{torch.get_num_threads()} CPU threads",
        "mixed_precision": accelerator.mixed_precision,
        "parameters": sum(p.numel() for p in params),
        "torch": torch.__version__,
    }


def _save_checkpoint(accelerator, out, step, wall_s, words, config, models, ema, optimizer, generator) -> None:
    staged = staging_dir(out, step)
    if accelerator.is_main_process:
        save_weights(staged, models=models, ema_models=ema.modules, optimizer=optimizer)
    accelerator.wait_for_everyone()
    save_rng(staged, accelerator.process_index, generator)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        state = CheckpointState(step=step, wall_s=round(wall_s, 2), words=words, config=config.to_dict())
        logger.info("checkpoint %s", commit_checkpoint(out, state, config.keep_checkpoints))
    accelerator.wait_for_everyone()


def _check_resumable(config: TrainConfig, saved: CheckpointState, words: list[str]) -> list[str]:
    """The checkpoint's vocabulary, after checking the run it came from trains the same model."""
    before = saved.config
    for key in ("preset", "data", "seed"):
        if before.get(key) != getattr(config, key):
            raise ValueError(f"cannot resume: the checkpoint was trained with {key}={before.get(key)!r}, "
                             f"this run asks for {getattr(config, key)!r}.")
    changed = sorted(k for k, v in config.to_dict().items() if k in before and before[k] != v
                     and not (isinstance(v, tuple) and list(v) == before[k]))
    if changed:
        logger.warning("resuming with changed settings: %s", ", ".join(f"{k}: {before[k]} → {getattr(config, k)}" for k in changed))
    if sorted(saved.words) != sorted(words):
        logger.warning("the data's vocabulary changed since the checkpoint; keeping the checkpoint's")
    return list(saved.words)


def _ignore_ctrl_c(worker_id: int) -> None:
    """Data workers leave Ctrl-C to the training process, which ends its step and checkpoints."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _append_log(path: Path, record: dict[str, Any]) -> None:
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")


def _truncate_log(path: Path, step: int) -> None:
    """Drop log records written after the checkpoint a run resumes from, so the log reads as one run."""
    if not path.is_file():
        return
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    kept = [line for line in lines if json.loads(line)["step"] <= step]
    path.write_text("".join(line + "\n" for line in kept), encoding="utf-8")


def _format_record(record: dict[str, Any], total_steps: int) -> str:
    """A log record as the line the run prints: the step of the run's steps, losses, rate and time left."""
    tasks = " ".join(f"{k}={v:.4f}" for k, v in record.items() if "/" in k)
    left = time_left(total_steps - record["step"], record["steps_per_s"])
    return (f"step {record['step']}/{total_steps} [{record['stage']}] loss={record['loss']:.4f} "
            f"video={record['video_loss']:.4f} text={record['text_loss']:.4f} | {tasks} | lr={record['lr']:.2e} "
            f"{record['steps_per_s']:.3f} steps/s" + (f", {left}" if left else "")
            + (f" | {record['twins']:.1f} twins/step" if "twins" in record else ""))
