"""Synthetic images: random tensors of any shape, for tests and timing runs that need no data set."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import cached_property
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from roadmap.data.module import ImageData
from roadmap.errors import need


class SyntheticImages(Dataset):
    """Standard-normal tensors of any shape with uniform random labels, each made from (seed, split, index)."""

    def __init__(self, size: int, shape: tuple[int, ...], num_classes: int, seed: int, split: int) -> None:
        self.size = size
        self.shape = shape
        self.key = (seed, split)
        labels = torch.Generator().manual_seed(int(np.random.SeedSequence(self.key).generate_state(1)[0]))
        self.targets = torch.randint(num_classes, (size,), generator=labels).tolist()

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        seed = int(np.random.SeedSequence((*self.key, index)).generate_state(1)[0])
        image = torch.randn(self.shape, generator=torch.Generator().manual_seed(seed))
        return image, self.targets[index]


class SyntheticData(ImageData):
    """Random tensors, already normalised, without augmentation: tests and timing runs need no data set."""

    in_chans_choices = None  # any number of channels

    def __init__(self, *, train_size: int, val_size: int, **common: Any) -> None:
        super().__init__(**common)
        self.train_size = train_size
        self.val_size = val_size

    @classmethod
    def check(cls, config: Mapping[str, Any]) -> None:
        """Both sets need at least one image."""
        super().check(config)
        for key in ("train_size", "val_size"):
            need(config[key] > 0, f"data.{key}", config[key], "a positive number of images")

    def transform(self, train: bool, channels: int) -> Callable | None:
        return None

    @cached_property
    def finish(self) -> Callable[[torch.Tensor, bool], torch.Tensor]:
        return _as_made  # a function, not a lambda: DDP's spawned processes get the dataset pickled

    def load_splits(self) -> tuple[Dataset, Dataset]:
        self.source = f"generated from seed {self.seed}"
        shape = (self.in_chans, self.input_size, self.input_size)
        return (
            SyntheticImages(self.train_size, shape, self.num_classes, self.seed, split=0),
            SyntheticImages(self.val_size, shape, self.num_classes, self.seed, split=1),
        )


def _as_made(x: torch.Tensor, train: bool) -> torch.Tensor:
    """Synthetic batches are made normalised and are not augmented."""
    return x
