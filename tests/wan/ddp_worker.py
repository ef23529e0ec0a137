"""One rank of a short data-parallel run of the real trainer (launched twice by test_distributed.py).

Calls ``uvigu.training.trainer.train`` on the ``tiny-latent`` model (a codec stage, then the two
stages of the transformer). Each rank reads its own share of the
batches, so the ranks agree afterwards only if gradients were averaged. Writes ``rank<i>.pt`` (the
trained transformer and text-encoder weights, keys prefixed ``transformer.`` / ``text_encoder.``)
and ``rank<i>.json`` (the process group and the Shapes clips the rank read in the codec stage and
after), then ``rank<i>.result`` (what ``train`` returned). With ``UVIGU_TEST_SIGINT_AT=RANK,CALL``
in the environment, that rank is sent SIGINT during its CALL-th loss computation.
"""

import json
import os
import signal
import sys
from pathlib import Path

import torch

from uvigu.data.shapes import ShapesDataset
from uvigu.training.config import get_train_preset
import uvigu.training.trainer as trainer_module
from uvigu.training.trainer import train

seen: list[int] = []
codec_seen: list[int] = []
read_clip = ShapesDataset.__getitem__
train_codec = trainer_module.train_codec


def spy_getitem(self, index):
    seen.append(int(index))
    return read_clip(self, index)


def spy_train_codec(*args, **kwargs):
    train_codec(*args, **kwargs)
    codec_seen.extend(seen)  # the clips of stage 0 (the codec) apart from the later stages'
    seen.clear()


ShapesDataset.__getitem__ = spy_getitem  # this process only: records which clips the rank reads
trainer_module.train_codec = spy_train_codec


def main(out: Path, run_dir: Path, steps_recall: int, steps_refine: int, grad_accum: int) -> None:
    config = get_train_preset("tiny-latent", out_dir=str(run_dir), steps_recall=steps_recall,
                              steps_refine=steps_refine, ckpt_every=steps_recall + steps_refine, grad_accum=grad_accum)

    def dump(accelerator, models):
        transformer, text_encoder = models
        state = {**{f"transformer.{k}": v.detach().cpu().clone() for k, v in transformer.state_dict().items()},
                 **{f"text_encoder.{k}": v.detach().cpu().clone() for k, v in text_encoder.state_dict().items()}}
        rank = accelerator.process_index
        torch.save(state, out / f"rank{rank}.pt")
        (out / f"rank{rank}.json").write_text(json.dumps(
            {"world_size": accelerator.num_processes, "distributed_type": str(accelerator.distributed_type),
             "backend": accelerator.state.backend, "clips": seen, "codec_clips": codec_seen}
        ))

    if "UVIGU_TEST_SIGINT_AT" in os.environ:  # "RANK,CALL": that rank gets Ctrl-C in that loss call
        rank, call = map(int, os.environ["UVIGU_TEST_SIGINT_AT"].split(","))
        compute_loss, calls = trainer_module.compute_loss, []

        def interrupted(**kwargs):
            calls.append(1)
            if int(os.environ["RANK"]) == rank and len(calls) == call:
                signal.raise_signal(signal.SIGINT)
            return compute_loss(**kwargs)

        trainer_module.compute_loss = interrupted
    result = train(config, on_trained=dump)
    (out / f"rank{os.environ['RANK']}.result").write_text(str(result))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
