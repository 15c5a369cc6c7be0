"""Which images a run sees, and in which order: fixed subsets, the training order of (seed, epoch), DDP shares."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import NamedTuple

import numpy as np
import torch
from torch.utils.data import Sampler

SUBSET_SEED = 20220110  # the paper's arXiv date; a constant, so that subsets never depend on the run seed
PADDING_LABEL = -1  # the label of validation padding under DDP, which the metrics skip
PADDING_INDEX = -1  # where ValidationBatches pads a shorter share


def balanced_subset(labels: Sequence[int] | np.ndarray | torch.Tensor, size: int | None) -> np.ndarray:
    """Sorted indices of a class-balanced sample of `size` items (all of them when `size` is None or too big).

    Classes take turns: every class gives its i-th (shuffled) sample before any gives its (i+1)-th, so the
    counts differ by at most one, and a class with too few samples leaves its share to the others. The draw
    uses SUBSET_SEED, never the run seed: all seeds and all steps train on the same images.
    """
    labels = np.asarray(labels)
    if size is None or size >= len(labels):
        return np.arange(len(labels))
    if size < 1:
        raise ValueError(f"a subset needs at least one image, got {size}")
    rng = np.random.default_rng(SUBSET_SEED)
    classes = rng.permutation(np.unique(labels))
    index = np.concatenate([rng.permutation(np.flatnonzero(labels == c)) for c in classes])
    rank = np.concatenate([np.arange(np.count_nonzero(labels == c)) for c in classes])
    turn = np.concatenate([np.full(np.count_nonzero(labels == c), k) for k, c in enumerate(classes)])
    chosen = index[np.lexsort((turn, rank))[:size]]
    return np.sort(chosen)


class BatchKey(NamedTuple):
    """One training batch: where it sits in training (its augmentations are seeded from this) and its images."""

    epoch: int
    rank: int
    number: int  # the batch's position in this process's epoch
    indices: tuple[int, ...]


class EpochBatches(Sampler[BatchKey]):
    """The training batches of one epoch, shuffled by (seed, epoch) alone; incomplete batches are dropped.

    It hands whole batches to the dataset as `BatchKey`s: the dataset seeds a batch's augmentations from
    (seed, epoch, rank, number), so the data is a function of (seed, epoch) in worker processes too (even
    persistent ones, whose copy of the dataset never sees `set_epoch`), and costs one seeding per batch.
    `generator` is re-seeded with seed + epoch and given to the DataLoader, so the worker base seeds follow
    (seed, epoch) as well. Lightning calls `set_epoch` every epoch.

    Under DDP each of the `world_size` processes takes every `world_size`-th index of the one shared order,
    starting at its `rank`; the order is first padded by wrapping around, so that every process runs the same
    number of batches (as torch's DistributedSampler does).
    """

    def __init__(self, size: int, batch_size: int, seed: int, epoch: int = 0, rank: int = 0,
                 world_size: int = 1, start: int = 0) -> None:
        self.size, self.batch_size, self.seed = size, batch_size, seed
        self.rank, self.world_size = rank, world_size
        self.start = start  # the batches of this epoch already trained on (a run resumed within an epoch)
        self.generator = torch.Generator()
        self.set_epoch(epoch)

    def set_epoch(self, epoch: int) -> None:
        if epoch != getattr(self, "epoch", epoch):
            self.start = 0  # a new epoch starts at its first batch
        self.epoch = epoch
        self.generator.manual_seed(self.seed + epoch)

    @property
    def batches(self) -> int:
        """Batches in a whole epoch of this process's share."""
        return math.ceil(self.size / self.world_size) // self.batch_size

    def __len__(self) -> int:
        """A whole epoch's: Lightning counts a resumed epoch's batches from those already trained on."""
        return self.batches

    def __iter__(self) -> Iterator[BatchKey]:
        # Its own stream, not `generator`: the DataLoader draws from that one too, at times that differ
        # between a fresh and a resumed run.
        order = np.random.default_rng([self.seed, self.epoch]).permutation(self.size)
        share = np.resize(order, math.ceil(self.size / self.world_size) * self.world_size)[self.rank::self.world_size]
        for number in range(self.start, self.batches):
            batch = share[number * self.batch_size:(number + 1) * self.batch_size]
            yield BatchKey(self.epoch, self.rank, number, tuple(int(i) for i in batch))


class ValidationBatches(Sampler[tuple[int, ...]]):
    """One process's share of the validation set, in order, a batch at a time: under DDP every `world_size`-th
    image from `rank` on.

    Shares differ by at most one image; the shorter ones are padded with PADDING_INDEX, which the dataset turns
    into an image labelled PADDING_LABEL that the metrics skip. So every process runs the same number of batches,
    and each image counts exactly once, where torch's DistributedSampler would count its padding twice.
    """

    def __init__(self, size: int, batch_size: int, rank: int = 0, world_size: int = 1) -> None:
        share = list(range(rank, size, world_size))
        self.share = share + [PADDING_INDEX] * (math.ceil(size / world_size) - len(share))
        self.batch_size = batch_size

    def __len__(self) -> int:
        return math.ceil(len(self.share) / self.batch_size)

    def __iter__(self) -> Iterator[tuple[int, ...]]:
        for start in range(0, len(self.share), self.batch_size):
            yield tuple(self.share[start:start + self.batch_size])
