"""The endless, seeded stream of dataset indices every training stage reads its batches from."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler


class ShuffledStream(Sampler[int]):
    """An endless stream of dataset indices: a seeded permutation per epoch, from position ``start``."""

    def __init__(self, length: int, seed: int, start: int = 0) -> None:
        if length < 1:
            raise ValueError("the training dataset is empty.")
        self.length, self.seed, self.start = length, seed, start

    def __iter__(self) -> Iterator[int]:
        epoch, offset = divmod(self.start, self.length)
        while True:
            order = torch.randperm(self.length, generator=torch.Generator().manual_seed(self.seed * 7919 + epoch))
            yield from order[offset:].tolist()
            epoch, offset = epoch + 1, 0
