"""The data module every data set shares: subsets, timm's transforms, and a training order fixed by (seed, epoch).

So that a roadmap step compares to another on exactly the same data:

- transforms are timm's, driven by the recipe's `augment` block, so both recipes augment as the paper's code
  does (per image, then per batch: roadmap/data/transforms.py);
- `train_subset` / `val_subset` take a fixed, class-balanced sample drawn with a constant seed, so every run
  seed and every step sees the same images;
- the training data is a function of (seed, epoch): the order depends on nothing else, and each batch is
  augmented under random states seeded from its place in training. A run resumed from a checkpoint therefore
  sees the same batches as an uninterrupted one, whatever `num_workers` and `persistent_workers` are.

Two pipelines make the batches (`data.pipeline`): `loader`, timm's per-image transforms in a DataLoader, for any
data set; and `device`, for data sets held in memory, the images on the training device and the same augmentations
drawn per sample as batched tensor operations there (roadmap/data/device.py). Left null, the pipeline is the one
measured faster on the run's device (PIPELINE_BY_DEVICE; docs/device-data.md).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from functools import cached_property
from typing import Any

import lightning
import numpy as np
import torch
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from torch.utils.data import DataLoader, Dataset

from roadmap.data.datasets import ArrayImages, EvalBatches, TrainBatches, targets_of
from roadmap.data.device import DeviceAugment, DeviceBatches, DeviceEval, as_nchw
from roadmap.data.sampling import EpochBatches, ValidationBatches, balanced_subset
from roadmap.data.transforms import BatchFinish, image_transform
from roadmap.errors import ConfigError, need

log = logging.getLogger(__name__)
Stats = tuple[float, ...]
PIPELINES = ("loader", "device")
# data.pipeline: null picks, per device type, the pipeline measured faster there (docs/device-data.md)
PIPELINE_BY_DEVICE = {"cuda": "device", "cpu": "loader"}


class ImageData(lightning.LightningDataModule):
    """The common data module. Subclasses implement `load_splits()` (the raw training and validation sets: PIL
    images or `ArrayImages`, int labels, a `targets` attribute) and set `rgb_mean` / `rgb_std`."""

    rgb_mean: Stats = IMAGENET_DEFAULT_MEAN
    rgb_std: Stats = IMAGENET_DEFAULT_STD
    source: str | None = None  # where the data was read from, for the run's record; set by `load_splits()`
    in_chans_choices: tuple[int, ...] | None = (1, 3)  # what `data.in_chans` may be (None: any positive count)
    in_memory = False  # the data set is held in memory as uint8 arrays (ArrayImages): the device pipeline can serve it

    def __init__(
        self,
        *,
        num_classes: int | None,
        in_chans: int,
        input_size: int,
        batch_size: int,
        num_workers: int,
        pin_memory: bool | None,
        persistent_workers: bool,
        train_subset: int | None,
        val_subset: int | None,
        augment: Mapping[str, Any],
        seed: int,
        pipeline: str | None = None,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.in_chans = in_chans
        self.input_size = input_size
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.pin_memory = torch.cuda.is_available() if pin_memory is None else pin_memory
        self.persistent_workers = persistent_workers and num_workers > 0
        self.train_subset = train_subset
        self.val_subset = val_subset
        self.augment = augment
        self.seed = seed
        self.pipeline = pipeline  # loader | device | None (the measured default of the run's device)
        self.train_set: TrainBatches | None = None
        self.val_set: EvalBatches | None = None
        self._on_device: dict[torch.device, tuple[DeviceBatches, DeviceEval]] = {}

    @classmethod
    def check(cls, config: Mapping[str, Any]) -> None:
        """What can be checked of a `data` config without reading the data (roadmap/training/validation.py calls it
        right after composition); each data set adds where its files must be."""
        need(config["num_classes"] is not None, "data.num_classes", None, "given: only an ImageFolder counts its own")
        choices, in_chans = cls.in_chans_choices, config["in_chans"]
        need(in_chans in choices if choices else in_chans > 0, "data.in_chans", in_chans,
             f"one of {list(choices)}" if choices else "a positive number of channels")
        pipeline = config.get("pipeline")
        need(pipeline is None or pipeline in PIPELINES, "data.pipeline", pipeline,
             f"one of {list(PIPELINES)}, or null for the measured default of the run's device")
        need(pipeline != "device" or cls.in_memory, "data.pipeline", pipeline,
             "loader for this data set", "The device pipeline serves data sets held in memory (Fashion-MNIST, "
             "CIFAR); an image folder is decoded per image by the loader.")

    def load_splits(self) -> tuple[Dataset, Dataset]:
        """The raw (untransformed) training and validation datasets; sets `source`."""
        raise NotImplementedError

    @cached_property
    def finish(self) -> Callable[[torch.Tensor, bool], torch.Tensor]:
        """What each batch of uint8 images becomes, once transformed image by image (`finish(x, train)`)."""
        return BatchFinish(*self.stats(self.in_chans), erasing=float(self.augment["random_erasing"]))

    def stats(self, channels: int) -> tuple[Stats, Stats]:
        """Normalisation mean and std for `channels` channels (one: the mean of the RGB statistics)."""
        if channels == 3:
            return tuple(self.rgb_mean), tuple(self.rgb_std)
        return (float(np.mean(self.rgb_mean)),), (float(np.mean(self.rgb_std)),)

    def transform(self, train: bool, channels: int) -> Callable | None:
        """timm's per-image pipeline for images of `channels` channels."""
        return image_transform(self.augment, self.input_size, train, self.stats(channels)[0])

    @cached_property
    def splits(self) -> tuple[Dataset, Dataset, np.ndarray, np.ndarray]:
        """The raw training and validation sets and the indices of their fixed subsets, loaded once."""
        train_raw, val_raw = self.load_splits()
        classes = getattr(train_raw, "classes", None)
        if classes is not None and self.num_classes is not None and len(classes) != self.num_classes:
            raise ConfigError(f"data.num_classes={self.num_classes}, but the data set has {len(classes)} classes; set "
                              f"data.num_classes={len(classes)}.")
        train_idx = balanced_subset(targets_of(train_raw), self.train_subset)
        val_idx = balanced_subset(targets_of(val_raw), self.val_subset)
        if len(train_idx) < self.batch_size:
            raise ConfigError(
                f"data.batch_size={self.batch_size} is larger than the training set ({len(train_idx)} images, "
                f"data.train_subset={self.train_subset}); training drops incomplete batches, so lower "
                "data.batch_size or use more images")
        return train_raw, val_raw, train_idx, val_idx

    def fit_augment(self, augment: Mapping[str, Any]) -> None:
        """Augment as `augment` says instead (the recipe fitted to the run's length, roadmap/training/budget.py, which
        needs `train_batches()` first): only before `setup()` has built the transforms."""
        if self.train_set is not None or "finish" in self.__dict__:
            raise RuntimeError("fit_augment() after setup(): the transforms are already built")
        self.augment = augment

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        train_raw, val_raw, train_idx, val_idx = self.splits
        # Grayscale images are transformed as they are and become RGB per batch (BatchFinish); RGB images for a
        # one-channel network are converted per image.
        in_memory = isinstance(train_raw, ArrayImages)
        channels = train_raw.channels if in_memory else 3
        mode = "L" if self.in_chans == 1 and channels == 3 else None
        channels = min(channels, self.in_chans)
        self.train_set = TrainBatches(train_raw, train_idx, self.transform(True, channels), mode, self.finish,
                                      self.seed)
        self.val_set = EvalBatches(val_raw, val_idx, self.transform(False, channels), mode, self.finish,
                                   precompute=in_memory)

    def pipeline_on(self, device: torch.device | str) -> str:
        """The pipeline a run on `device` uses: `data.pipeline`, or where null the measured default of its type
        (the loader for a data set not held in memory)."""
        if not self.in_memory:
            return "loader"
        return self.pipeline or PIPELINE_BY_DEVICE.get(torch.device(device).type, "loader")

    def _device(self) -> torch.device:
        trainer = self.trainer
        return trainer.strategy.root_device if trainer is not None else torch.device("cpu")

    def on_device(self, device: torch.device) -> tuple[DeviceBatches, DeviceEval]:
        """The training and evaluation sets held on `device`, made once (after `setup()`, with the fitted recipe)."""
        if device not in self._on_device:
            if self.train_set is None:
                self.setup("fit")
            train_raw, _, train_idx, _ = self.splits
            gray = self.in_chans == 1
            images = as_nchw(train_raw.images[train_idx], gray)
            augment = DeviceAugment(self.augment, self.input_size, *self.stats(self.in_chans),
                                    fill_mean=self.stats(images.shape[1])[0])
            self._on_device[device] = (DeviceBatches(images, self.train_set.targets, augment, self.seed, device),
                                       DeviceEval(self.val_set, augment, device))
        return self._on_device[device]

    def _resume_point(self) -> tuple[int, int]:
        """The epoch Lightning is about to run and the batches of it already trained on. After a resume the loader is
        built before `set_epoch` is called (and workers prefetch), so the sampler must start at the restored epoch,
        and, from a checkpoint saved within an epoch (roadmap/training/preemption.py), after its trained batches."""
        trainer = self.trainer
        if trainer is None:
            return 0, 0
        epochs = trainer.fit_loop.epoch_progress.current
        within = epochs.started > epochs.processed  # an epoch begun and not finished
        # Saved at a batch's end, a checkpoint counts that batch as ready, not yet as completed.
        return int(epochs.processed), int(trainer.fit_loop.epoch_loop.batch_progress.current.ready) if within else 0

    def _shard(self) -> tuple[int, int]:
        """(rank, world size) of this process: under DDP each process loads its own share."""
        trainer = self.trainer
        return (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)

    def train_batches(self, world_size: int = 1) -> int:
        """Training batches per epoch in each of `world_size` processes (incomplete batches are dropped). It reads
        the data set, not the augmentations, which can still be fitted to this count (`fit_augment`)."""
        return len(EpochBatches(len(self.splits[2]), self.batch_size, self.seed, world_size=world_size))

    def train_dataloader(self) -> DataLoader:
        """Whole batches from the sampler (`batch_size=None`): the dataset builds and seeds each batch itself."""
        if self.train_set is None:
            self.setup("fit")
        rank, world_size = self._shard()
        epoch, start = self._resume_point()
        sampler = EpochBatches(len(self.train_set), self.batch_size, self.seed, epoch, rank, world_size, start)
        device = self._device()
        if self.pipeline_on(device) == "device":  # batches made on the device, in this process
            return DataLoader(self.on_device(device)[0], batch_size=None, sampler=sampler)
        return DataLoader(self.train_set, batch_size=None, sampler=sampler, generator=sampler.generator,
                          **self._loader_options())

    def val_dataloader(self) -> DataLoader:
        if self.val_set is None:
            self.setup("validate")
        sampler = ValidationBatches(len(self.val_set), self.batch_size, *self._shard())
        device = self._device()
        if self.pipeline_on(device) == "device":
            return DataLoader(self.on_device(device)[1], batch_size=None, sampler=sampler)
        return DataLoader(self.val_set, batch_size=None, sampler=sampler, **self._loader_options())

    def _loader_options(self) -> dict[str, Any]:
        return {
            "num_workers": self.num_workers,
            "pin_memory": self.pin_memory,
            "persistent_workers": self.persistent_workers,
        }
