"""The recipe's augmentations, all timm's, split as timm's own fast loader splits them.

Per image: random-resized crop, flip and RandAugment, or the evaluation resize and centre crop, on PIL images
(timm's ``create_transform(..., use_prefetcher=True)``), then one uint8 tensor per batch. Per batch
(`BatchFinish`): conversion to float, normalisation, grayscale repeated to RGB, and Random Erasing (timm's
``RandomErasing`` in batch mode), as timm's ``PrefetchLoader`` does. Both run in the loader under the batch's
seed; the per-image part stays small, so that a CPU spends its time training.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from PIL import Image
from timm.data import create_transform
from timm.data.random_erasing import RandomErasing
from timm.data.transforms import MaybePILToTensor
from torch.utils.data import get_worker_info
from torchvision.transforms import Compose


@contextmanager
def seeded(*key: int) -> Iterator[None]:
    """Seed torch's CPU generator, numpy and random (what timm and torchvision draw from) from `key`.

    Only the CPU generator is touched, not CUDA's. In the main process (num_workers=0) the old states are put
    back afterwards, so the model's own randomness (stochastic depth, Mixup, Random Erasing) is left as it was;
    a worker process runs nothing else, and skips that.
    """
    words = np.random.SeedSequence(key).generate_state(2)
    seed = int(words[0]) << 32 | int(words[1])
    in_main = get_worker_info() is None
    saved = (torch.get_rng_state(), np.random.get_state(), random.getstate()) if in_main else None
    torch.default_generator.manual_seed(seed)
    np.random.seed(int(words[0]))
    random.seed(seed)
    try:
        yield
    finally:
        if saved is not None:
            torch.set_rng_state(saved[0])
            np.random.set_state(saved[1])
            random.setstate(saved[2])


def image_transform(augment: Mapping[str, Any], input_size: int, train: bool, mean: Sequence[float]) -> Callable:
    """timm's per-image pipeline for the recipe's `augment` block, on PIL images, without its last step (one
    conversion to a tensor per image): `to_batch` converts a whole batch at once.

    `mean` (of the channels the images have when they are transformed) only sets RandAugment's fill colour.
    """
    if not train:
        pipeline = create_transform(
            input_size, is_training=False, crop_pct=float(augment["eval_resize_ratio"]),
            interpolation=augment["interpolation"], mean=tuple(mean), use_prefetcher=True)
    else:  # a random-resized crop, the only one recipe.augment.train_crop may name (roadmap/training/recipe.py)
        pipeline = create_transform(
            input_size, is_training=True, train_crop_mode="rrc", scale=tuple(augment["train_crop_scale"]),
            ratio=tuple(augment["train_crop_ratio"]), hflip=float(augment["hflip"]), color_jitter=None,
            auto_augment=augment.get("randaugment"), interpolation=augment["interpolation"], mean=tuple(mean),
            use_prefetcher=True)
    if not isinstance(pipeline.transforms[-1], MaybePILToTensor):
        raise TypeError(f"timm's prefetcher pipeline changed: it ends in {pipeline.transforms[-1]!r}")
    return Compose(pipeline.transforms[:-1])


def to_batch(images: Sequence[Image.Image | torch.Tensor]) -> torch.Tensor:
    """PIL images of one size and mode (or CHW tensors) -> one (N, C, H, W) tensor, uint8 for PIL images."""
    if isinstance(images[0], torch.Tensor):
        return torch.stack(list(images))
    pixels = torch.from_numpy(np.stack([np.asarray(image) for image in images]))
    return pixels.unsqueeze(1) if pixels.ndim == 3 else pixels.permute(0, 3, 1, 2).contiguous()


class BatchFinish:
    """uint8 batches -> normalised float batches with `channels` channels; Random Erasing on training batches.

    A one-channel batch becomes `channels` identical ones through the normalisation's broadcast (grayscale data
    sets keep the paper's 3-channel stem). Erasing fills with per-pixel normal noise (timm's "pixel" mode) and
    draws from the global random state, which the loader seeds per batch.
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float], erasing: float) -> None:
        self.mean = torch.tensor([255 * m for m in mean]).view(1, -1, 1, 1)
        self.std = torch.tensor([255 * s for s in std]).view(1, -1, 1, 1)
        self.erasing = erasing
        self._erase: dict[torch.device, RandomErasing] = {}

    def __call__(self, x: torch.Tensor, train: bool) -> torch.Tensor:
        mean, std = self.mean.to(x.device), self.std.to(x.device)
        x = (x.float() - mean) / std
        if train and self.erasing > 0:
            if x.device not in self._erase:
                self._erase[x.device] = RandomErasing(self.erasing, mode="pixel", device=x.device)
            x = self._erase[x.device](x)
        return x
