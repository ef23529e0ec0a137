"""The endless, seeded stream of dataset indices every training stage reads its batches from."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Dataset, Sampler


class ShuffledStream(Sampler[int]):
    """An endless stream of dataset indices: a seeded permutation per epoch, from position ``start``.

    With ``tag_epochs`` each index of epoch ``e`` comes as ``e * length + index``, for datasets
    whose items differ from one draw of an example to the next (``VideoFolderDataset`` with a seed).
    """

    def __init__(self, length: int, seed: int, start: int = 0, *, tag_epochs: bool = False) -> None:
        if length < 1:
            raise ValueError("the training dataset is empty.")
        self.length, self.seed, self.start, self.tag_epochs = length, seed, start, tag_epochs

    @classmethod
    def over(cls, dataset: Dataset, seed: int, start: int = 0) -> ShuffledStream:
        """The stream over ``dataset``, tagging epochs when its ``draws_differ`` says it wants them."""
        return cls(len(dataset), seed, start, tag_epochs=bool(getattr(dataset, "draws_differ", False)))

    def __iter__(self) -> Iterator[int]:
        epoch, offset = divmod(self.start, self.length)
        while True:
            order = torch.randperm(self.length, generator=torch.Generator().manual_seed(self.seed * 7919 + epoch))
            if self.tag_epochs:
                order = order + epoch * self.length
            yield from order[offset:].tolist()
            epoch, offset = epoch + 1, 0
