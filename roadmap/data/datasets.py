"""Datasets over a raw source (PIL images or uint8 arrays, int labels): training batches and evaluation images."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from roadmap.data.sampling import PADDING_INDEX, PADDING_LABEL, BatchKey
from roadmap.data.transforms import seeded, to_batch


def targets_of(raw: Dataset) -> Sequence[int] | torch.Tensor:
    targets = getattr(raw, "targets", None)
    if targets is None:
        raise TypeError(f"{type(raw).__name__} has no `targets`: the data module needs the labels to draw subsets")
    return targets


class ArrayImages(Dataset):
    """A data set held in memory, decoded once: uint8 images (N, H, W) for grayscale or (N, H, W, 3) for RGB.

    An item is a PIL image made from the array without a copy of the data set, so timm's per-image transforms
    (RandAugment works on PIL images only) cost what they cost on a small image, and nothing more.
    """

    def __init__(self, images: np.ndarray | torch.Tensor, targets: Sequence[int] | torch.Tensor) -> None:
        self.images = np.ascontiguousarray(np.asarray(images, dtype=np.uint8))
        if self.images.ndim not in (3, 4) or (self.images.ndim == 4 and self.images.shape[-1] != 3):
            raise ValueError(f"in-memory images must be (N, H, W) or (N, H, W, 3) uint8, got {self.images.shape}")
        self.targets = [int(t) for t in targets]
        if len(self.targets) != len(self.images):
            raise ValueError(f"{len(self.images)} images but {len(self.targets)} labels")

    @property
    def channels(self) -> int:
        return 1 if self.images.ndim == 3 else 3

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[Image.Image, int]:
        return Image.fromarray(self.images[i], mode="L" if self.images.ndim == 3 else "RGB"), self.targets[i]


def _convert(image: Any, mode: str | None) -> Any:
    """A PIL image in `mode` ("L" or "RGB"); anything else (tensors) as it is."""
    if mode is not None and isinstance(image, Image.Image) and image.mode != mode:
        return image.convert(mode)
    return image


Finish = Callable[[torch.Tensor, bool], torch.Tensor]  # a uint8 batch -> what the network takes (transforms.py)


class TrainBatches(Dataset):
    """The training images `indices` of `raw`, served a batch at a time by `EpochBatches`' keys.

    Each batch is augmented under random states seeded from (seed, epoch, rank, batch number), per image and
    then as a batch (`finish`: normalisation and Random Erasing): the same batches whatever the number of loader
    workers, and after a resume. One seeding per batch, not per image.
    """

    def __init__(self, raw: Dataset, indices: np.ndarray, transform: Callable | None, mode: str | None,
                 finish: Finish, seed: int) -> None:
        self.raw, self.indices, self.transform, self.mode = raw, indices, transform, mode
        self.finish, self.seed = finish, seed
        self.targets = [int(t) for t in np.asarray(targets_of(raw))[indices]]

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, key: BatchKey) -> tuple[torch.Tensor, torch.Tensor]:
        with seeded(self.seed, key.epoch, key.rank, key.number):
            images, labels = zip(*(self.item(i) for i in key.indices), strict=True)
            return self.finish(to_batch(images), True), torch.tensor(labels)

    def item(self, position: int) -> tuple[Any, int]:
        """One image of the subset, transformed under the current random state."""
        image, label = self.raw[int(self.indices[position])]
        image = _convert(image, self.mode)
        return (self.transform(image) if self.transform is not None else image), int(label)


class EvalBatches(Dataset):
    """The evaluation images `indices` of `raw` (deterministic transforms only), a batch of positions at a time;
    the position PADDING_INDEX gives the first image labelled PADDING_LABEL.

    With `precompute`, every image is transformed once, at construction, into one uint8 tensor: for in-memory
    data sets, whose evaluation then costs only the network.
    """

    def __init__(self, raw: Dataset, indices: np.ndarray, transform: Callable | None, mode: str | None,
                 finish: Finish, precompute: bool = False) -> None:
        self.raw, self.indices, self.transform, self.mode, self.finish = raw, indices, transform, mode, finish
        self.targets = [int(t) for t in np.asarray(targets_of(raw))[indices]]
        self.images = to_batch([self._transformed(i) for i in range(len(indices))]) if precompute else None

    def __len__(self) -> int:
        return len(self.indices)

    def _transformed(self, position: int) -> Any:
        image, _ = self.raw[int(self.indices[position])]
        image = _convert(image, self.mode)
        return self.transform(image) if self.transform is not None else image

    def __getitem__(self, positions: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        real = [max(p, 0) for p in positions]  # padding shows the first image
        images = self.images[real] if self.images is not None else to_batch([self._transformed(p) for p in real])
        labels = [PADDING_LABEL if p == PADDING_INDEX else self.targets[p] for p in positions]
        return self.finish(images, False), torch.tensor(labels)
