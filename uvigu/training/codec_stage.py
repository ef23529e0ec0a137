"""Stage 0 of a run whose preset has a learned codec: train the autoencoder, then freeze it.

The codec learns by reconstruction alone (``uvigu.models.autoencoder.reconstruction_loss``) on the
run's own clips, before Knowledge Recall starts; the transformer then denoises its latents. Noise
of a fixed size is added to the latents while training so the decoder also renders latents that
are slightly off the encoder's outputs, which is what a diffusion model's samples are.

Outputs under the run folder::

    codec_log.jsonl    one record per log interval (reconstruction loss, lr, steps/s)
    codec/             the trained codec (diffusers layout), written when the stage ends

A run that stops during this stage starts it again on ``--resume``; once ``codec/`` exists the
stage is done and a resumed run loads it.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
from pathlib import Path

import torch
from accelerate import Accelerator
from torch.utils.data import DataLoader, Dataset

from ..models.autoencoder import VideoAutoencoder, reconstruction_loss
from .config import TrainConfig
from .progress import time_left
from .stream import ShuffledStream

logger = logging.getLogger(__name__)

CODEC_LOG = "codec_log.jsonl"
CODEC_DIR = "codec"


def codec_learning_rate(step: int, config: TrainConfig) -> float:
    """Cosine from ``codec_lr`` to a tenth of it over the stage (no warmup: the codec is shallow)."""
    progress = step / max(1, config.steps_codec)
    return config.codec_lr * (0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress))))


def train_codec(codec: VideoAutoencoder, dataset: Dataset, config: TrainConfig, accelerator: Accelerator,
                out: Path, *, pretrained: bool = False) -> None:
    """Train ``codec`` in place for ``config.steps_codec`` steps, then leave it frozen in eval mode.

    When a previous session of the run finished the stage, ``out/codec`` is loaded instead;
    ``pretrained`` (the codec came with ``init_from``) skips training and only writes ``out/codec``,
    so that a resumed run finds the same codec.
    """
    done = out / CODEC_DIR
    if (done / "config.json").is_file():
        trained = VideoAutoencoder.from_pretrained(done)
        if _settings(trained) != _settings(codec):
            raise ValueError(f"{done} holds a codec of another size than this preset's; choose a new output folder.")
        codec.load_state_dict(trained.state_dict())
        logger.info("codec stage already done: loaded %s", done)
        _freeze(codec)
        return
    if pretrained:
        _save(codec, done, accelerator)
        _freeze(codec)
        return
    if config.steps_codec == 0:
        raise ValueError(f"preset {config.preset!r} has a learned codec: train it (steps_codec > 0) or start "
                         "from a saved pipeline that has one (init_from).")

    codec.train()
    optimizer = torch.optim.AdamW(codec.parameters(), lr=config.codec_lr, weight_decay=0.0,
                                  betas=(config.beta1, config.beta2))
    stream = ShuffledStream.over(dataset, config.seed + 1)  # its own order, apart from the later stages'
    loader = DataLoader(dataset, batch_size=config.batch_size, sampler=stream, num_workers=config.num_workers,
                        drop_last=True, pin_memory=accelerator.device.type == "cuda")
    model, optimizer, loader = accelerator.prepare(codec, optimizer, loader)
    generator = torch.Generator().manual_seed(config.seed + 7 + 1_000_003 * accelerator.process_index)
    log = out / CODEC_LOG
    if accelerator.is_main_process:
        log.unlink(missing_ok=True)
    logger.info("codec stage: %d steps, batch %d × %d process(es), %.2fM parameters", config.steps_codec,
                config.batch_size, accelerator.num_processes, sum(p.numel() for p in codec.parameters()) / 1e6)
    unwrapped = accelerator.unwrap_model(model)
    start, window_start, losses = time.perf_counter(), time.perf_counter(), []
    batches = iter(loader)
    for step in range(config.steps_codec):
        lr = codec_learning_rate(step, config)
        for group in optimizer.param_groups:
            group["lr"] = lr
        frames = next(batches)["frames"]
        x = frames.to(accelerator.device).permute(0, 4, 1, 2, 3).float() / 127.5 - 1.0  # (b, 3, f, h, w)
        noise = torch.randn((x.shape[0], *unwrapped.latent_shape(*x.shape[2:])), generator=generator)
        with accelerator.autocast():
            loss = reconstruction_loss(model(x, config.codec_latent_noise * noise.to(x.device)), x).mean()
        accelerator.backward(loss)
        if config.grad_clip > 0:
            accelerator.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
        if accelerator.is_main_process and ((step + 1) % config.log_every == 0 or step + 1 == config.steps_codec):
            seconds = time.perf_counter() - window_start
            record = {"step": step + 1, "stage": "codec", "lr": lr, "reconstruction": round(sum(losses) / len(losses), 5),
                      "steps_per_s": round(len(losses) / seconds, 4), "elapsed_s": round(time.perf_counter() - start, 2)}
            with log.open("a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")
            left = time_left(config.steps_codec - step - 1, record["steps_per_s"])
            logger.info("codec step %d/%d: reconstruction=%.4f lr=%.2e %.3f steps/s%s", step + 1, config.steps_codec,
                        record["reconstruction"], lr, record["steps_per_s"], f", {left}" if left else "")
            losses, window_start = [], time.perf_counter()

    _save(unwrapped, done, accelerator)
    logger.info("codec stage done in %.1f min: %s", (time.perf_counter() - start) / 60, done)
    _freeze(unwrapped)


def _save(codec: VideoAutoencoder, folder: Path, accelerator: Accelerator) -> None:
    """Write the codec to ``folder`` through a staging folder, so a half-written one is never taken as done."""
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        staged = folder.with_name(folder.name + ".partial")
        shutil.rmtree(staged, ignore_errors=True)
        codec.save_pretrained(staged)
        staged.rename(folder)
    accelerator.wait_for_everyone()


def _settings(codec: VideoAutoencoder) -> dict:
    return {k: v for k, v in codec.config.items() if not k.startswith("_")}


def _freeze(codec: VideoAutoencoder) -> None:
    codec.eval()
    codec.requires_grad_(False)
