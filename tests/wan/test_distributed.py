"""Two CPU processes under ``accelerate launch`` (gloo) run the real trainer and end with identical weights."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from uvigu import UniViGUPipeline
from uvigu.data.shapes import shapes_vocabulary
from uvigu.models.presets import build_pipeline
from uvigu.training.checkpoint import checkpoint_dir, list_checkpoints
from uvigu.training.trainer import LOG_FILE

WORKER = Path(__file__).with_name("ddp_worker.py")
STEPS_RECALL, STEPS_REFINE, BATCH = 2, 1, 4  # crosses the stage boundary; BATCH is the tiny-latent preset's


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_two_ranks(tmp_path: Path, run_dir: Path, grad_accum: int, **env_vars: str) -> None:
    launcher = Path(sys.executable).with_name("accelerate")
    # --multi_gpu selects accelerate's torchrun launcher (its --cpu flag would start a single
    # process); ACCELERATE_USE_CPU makes the trainer's Accelerator() join the ranks over gloo —
    # without it each rank would train alone, as if launched on its own.
    cmd = [str(launcher), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(free_port()),
           str(WORKER), str(tmp_path), str(run_dir), str(STEPS_RECALL), str(STEPS_REFINE), str(grad_accum)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "", "ACCELERATE_USE_CPU": "true", **env_vars}
    # Past the limit, SIGTERM lets the launcher stop both ranks (torchrun starts each in a session of
    # its own, so killing the launcher alone would leave them running), and the failure shows what
    # they printed.
    launched = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _, stderr = launched.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        launched.terminate()
        _, stderr = launched.communicate(timeout=60)
        pytest.fail(f"the two ranks did not finish within 120 s:\n{stderr[-3000:]}")
    assert launched.returncode == 0, stderr[-3000:]


@pytest.mark.parametrize("grad_accum", [1, 2])
def test_two_cpu_ranks_of_the_trainer_hold_identical_weights(tmp_path, grad_accum):
    # With grad_accum 2 the ranks exchange gradients on a step's last micro-batch only (no_sync on
    # the first): they agree afterwards only if that exchange still averages the whole step.
    run_dir = tmp_path / "run"
    launch_two_ranks(tmp_path, run_dir, grad_accum)

    info = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert all(i["world_size"] == 2 and i["backend"] == "gloo" for i in info)
    steps = STEPS_RECALL + STEPS_REFINE
    clips = [set(i["clips"]) for i in info]
    assert all(len(i["clips"]) >= steps * BATCH * grad_accum for i in info)  # accelerate's loader reads a batch ahead
    assert not clips[0] & clips[1]  # the ranks read different shares of the batch stream
    codec_clips = [set(i["codec_clips"]) for i in info]
    assert all(codec_clips) and not codec_clips[0] & codec_clips[1]  # in the codec stage too

    a, b = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    initial = build_pipeline("tiny-latent", shapes_vocabulary(), seed=0)  # the trainer's fresh model (seed 0)
    initial = {**{f"transformer.{k}": v for k, v in initial.transformer.state_dict().items()},
               **{f"text_encoder.{k}": v for k, v in initial.text_encoder.state_dict().items()}}
    assert a.keys() == b.keys() == initial.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=f"{key} differs between ranks")
    for prefix in ("transformer.", "text_encoder."):  # and training moved both models
        assert any(not torch.equal(a[k], initial[k]) for k in a if k.startswith(prefix)), prefix

    # Only the main process writes: the log, one checkpoint (with both ranks' RNG), the final pipeline.
    assert [json.loads(line)["step"] for line in (run_dir / LOG_FILE).read_text().splitlines()] == [1, 2, 3]
    (checkpoint,) = list_checkpoints(run_dir)
    assert {p.name for p in checkpoint.glob("rng_*.safetensors")} == {"rng_0.safetensors", "rng_1.safetensors"}
    final = run_dir / "pipeline"
    summary = json.loads((final / "training_summary.json").read_text())
    assert summary["examples_seen"] == steps * BATCH * grad_accum * 2 and "2 process(es)" in summary["device"]
    shipped = UniViGUPipeline.from_pretrained(final).transformer.state_dict()
    assert shipped.keys() == {k.removeprefix("transformer.") for k in a if k.startswith("transformer.")}


def test_ctrl_c_on_one_rank_stops_both_at_the_same_step_with_one_checkpoint(tmp_path):
    run_dir = tmp_path / "run"
    launch_two_ranks(tmp_path, run_dir, 1, UVIGU_TEST_SIGINT_AT="1,2")  # rank 1 only, in step 2
    stopped = checkpoint_dir(run_dir, 2)
    assert [(tmp_path / f"rank{r}.result").read_text() for r in (0, 1)] == [str(stopped)] * 2
    assert list_checkpoints(run_dir) == [stopped] and not (run_dir / "pipeline").exists()
    assert {p.name for p in stopped.glob("rng_*.safetensors")} == {"rng_0.safetensors", "rng_1.safetensors"}
