"""Two CPU processes under ``accelerate launch`` (gloo) end a few training steps with identical weights."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import torch

from uvigu.testing import tiny_pipeline

WORKER = Path(__file__).with_name("ddp_worker.py")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_cpu_ranks_hold_identical_weights(tmp_path):
    launcher = Path(sys.executable).with_name("accelerate")
    # --multi_gpu selects accelerate's torchrun launcher; the worker's Accelerator(cpu=True) then
    # runs DistributedDataParallel over gloo (accelerate's --cpu flag would start a single process).
    cmd = [str(launcher), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(free_port()),
           str(WORKER), str(tmp_path), "3"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]

    info = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert all(i["world_size"] == 2 and i["backend"] == "gloo" for i in info)
    assert info[0]["losses"] != info[1]["losses"]  # the ranks saw different data
    a, b = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    initial = tiny_pipeline(seed=0).transformer.state_dict()
    assert a.keys() == b.keys() == initial.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=f"{key} differs between ranks")
    assert any(not torch.equal(a[k], initial[k]) for k in a)  # and training moved them
