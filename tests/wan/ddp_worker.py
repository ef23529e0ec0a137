"""One rank of a short data-parallel run (launched twice by test_distributed.py under accelerate).

Each rank draws different clips, so the ranks agree afterwards only if gradients were averaged.
Writes ``rank<i>.pt`` (the transformer's weights) and ``rank<i>.json`` (what the rank saw).
"""

import json
import sys
from pathlib import Path

import torch
from accelerate import Accelerator

from uvigu.testing import tiny_pipeline
from uvigu.training.objective import ObjectiveConfig, compute_loss

PROMPTS = ["a red circle moving right", "a blue square moving up", "a green circle moving left"]


def main(out: Path, steps: int) -> None:
    accelerator = Accelerator(cpu=True)
    pipe = tiny_pipeline(seed=0)  # same initial weights on every rank
    transformer = pipe.transformer.train()
    optimizer = torch.optim.AdamW(transformer.parameters(), lr=1e-3)
    transformer, optimizer = accelerator.prepare(transformer, optimizer)
    rank = accelerator.process_index
    generator = torch.Generator().manual_seed(100 + rank)  # different data per rank
    cfg = pipe.config
    losses = []
    for _ in range(steps):
        frames = torch.randint(0, 256, (2, cfg.num_frames, cfg.height, cfg.width, 3), generator=generator,
                               dtype=torch.uint8)
        prompts = [PROMPTS[int(i)] for i in torch.randint(0, 3, (2,), generator=generator)]
        result = compute_loss(
            transformer=transformer, text_encoder=pipe.text_encoder, tokenizer=pipe.tokenizer, codec=pipe.codec,
            frames=frames, prompts=prompts, captions=prompts, config=ObjectiveConfig(), text_flow=pipe.text_flow,
            max_text_len=cfg.max_text_len, max_prompt_len=cfg.max_prompt_len, generator=generator,
        )
        optimizer.zero_grad()
        accelerator.backward(result.loss)
        optimizer.step()
        losses.append(float(result.loss.detach()))
    state = {k: v.detach().cpu() for k, v in accelerator.unwrap_model(transformer).state_dict().items()}
    torch.save(state, out / f"rank{rank}.pt")
    (out / f"rank{rank}.json").write_text(json.dumps(
        {"world_size": accelerator.num_processes, "distributed_type": str(accelerator.distributed_type),
         "backend": accelerator.state.backend, "losses": losses}
    ))
    accelerator.wait_for_everyone()


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]))
