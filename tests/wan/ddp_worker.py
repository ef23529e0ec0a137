"""One rank of a short data-parallel run of the real trainer (launched twice by test_distributed.py).

Calls ``uvigu.training.trainer.train`` on the ``tiny`` preset. Each rank reads its own share of the
batches, so the ranks agree afterwards only if gradients were averaged. Writes ``rank<i>.pt`` (the
trained transformer and text-encoder weights, keys prefixed ``transformer.`` / ``text_encoder.``)
and ``rank<i>.json`` (the process group and the Shapes clips the rank read).
"""

import json
import sys
from pathlib import Path

import torch

from uvigu.data.shapes import ShapesDataset
from uvigu.training.config import get_train_preset
from uvigu.training.trainer import train

seen: list[int] = []
read_clip = ShapesDataset.__getitem__


def spy_getitem(self, index):
    seen.append(int(index))
    return read_clip(self, index)


ShapesDataset.__getitem__ = spy_getitem  # this process only: records which clips the rank reads


def main(out: Path, run_dir: Path, steps_recall: int, steps_refine: int) -> None:
    config = get_train_preset("tiny", out_dir=str(run_dir), steps_recall=steps_recall, steps_refine=steps_refine,
                              ckpt_every=steps_recall + steps_refine)

    def dump(accelerator, models):
        transformer, text_encoder = models
        state = {**{f"transformer.{k}": v.detach().cpu().clone() for k, v in transformer.state_dict().items()},
                 **{f"text_encoder.{k}": v.detach().cpu().clone() for k, v in text_encoder.state_dict().items()}}
        rank = accelerator.process_index
        torch.save(state, out / f"rank{rank}.pt")
        (out / f"rank{rank}.json").write_text(json.dumps(
            {"world_size": accelerator.num_processes, "distributed_type": str(accelerator.distributed_type),
             "backend": accelerator.state.backend, "clips": seen}
        ))

    train(config, on_trained=dump)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
