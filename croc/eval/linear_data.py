"""The linear probe's data: split subsets resized for the epoch protocol, random crops for the iteration
(ADE20K) protocol, the seeded key stream that drives them, and their loader."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from croc.eval.seg_transforms import random_crop_pair, resize_pair


class SegmentationSplit(Protocol):
    """The surface of croc.data.segmentation.SegmentationDataset the probe uses."""

    num_classes: int
    class_names: tuple[str, ...]

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]: ...  # uint8 [3,H,W], int64 [H,W]



class _FirstItems(Dataset):
    """The first ``limit`` items of a split (all of them when None)."""

    def __init__(self, split: SegmentationSplit, limit: int | None) -> None:
        self.split = split
        self.length = len(split) if limit is None else min(limit, len(split))

    def __len__(self) -> int:
        return self.length


class ResizedPairs(_FirstItems):
    """The first ``limit`` items of a split, resized to size x size: uint8 [3,S,S], int64 [S,S]."""

    def __init__(self, split: SegmentationSplit, size: int, limit: int | None) -> None:
        super().__init__(split, limit)
        self.size = size

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, label = self.split[index]
        return resize_pair(image, label, (self.size, self.size))


class RandomCrops(_FirstItems):
    """Keys (index, crop_seed) -> a random crop x crop window of item ``index``: uint8 [3,c,c], int64 [c,c]."""

    def __init__(self, split: SegmentationSplit, crop: int, limit: int | None) -> None:
        super().__init__(split, limit)
        self.crop = crop

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        index, crop_seed = key
        image, label = self.split[index]
        return random_crop_pair(image, label, self.crop, torch.Generator().manual_seed(crop_seed))


class ShuffledStream(Sampler):
    """``total`` keys (index, crop_seed): reshuffled passes over range(n), seeds drawn from ``seed``."""

    def __init__(self, n: int, total: int, seed: int) -> None:
        self.n, self.total, self.seed = n, total, seed

    def __len__(self) -> int:
        return self.total

    def __iter__(self) -> Iterator[tuple[int, int]]:
        generator = torch.Generator().manual_seed(self.seed)
        produced = 0
        while produced < self.total:
            order = torch.randperm(self.n, generator=generator)[: self.total - produced]
            crop_seeds = torch.randint(2**62, (len(order),), generator=generator)
            yield from zip(order.tolist(), crop_seeds.tolist(), strict=True)
            produced += len(order)


def make_loader(dataset: Dataset, batch_size: int, num_workers: int, device: torch.device,
                sampler: Sampler | None = None) -> DataLoader:
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, shuffle=False, num_workers=num_workers,
                      pin_memory=device.type == "cuda", drop_last=False)
