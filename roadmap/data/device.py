"""The device-resident data path (`data.pipeline: device`) for data sets held in memory (Fashion-MNIST, CIFAR).

The training images sit once on the training device as one uint8 tensor; each batch is gathered and augmented
there with batched tensor operations, per sample, drawing what timm's per-image transforms draw:

- timm's random-resized crop (its `get_params`: ten tries of area and log-aspect ratio, then the centre-crop
  fallback) and the horizontal flip, applied as PIL resizes the crop: two batched products with per-sample weight
  matrices of PIL's filters (bilinear, bicubic, nearest), antialiased when shrinking;
- timm's RandAugment, per sample (roadmap/data/randaugment.py);
- normalisation, with a grayscale image repeated to RGB by broadcasting;
- timm's Random Erasing in its "pixel" mode, one box per sample (timm's own loops over the images of a batch).

Mixup and CutMix stay in the module (timm's Mixup works on a device batch). A batch is a function of (seed,
epoch, rank, batch number), as on the loader path: the order comes from the same sampler (roadmap/data/sampling.py)
and the batch's draws from a generator on the device seeded from its place in training, so a resumed run sees the
batches of an uninterrupted one. The two paths draw from the same distributions, not the same numbers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from roadmap.data.datasets import EvalBatches
from roadmap.data.randaugment import BatchRandAugment, luminance
from roadmap.data.sampling import PADDING_INDEX, PADDING_LABEL, BatchKey
from roadmap.errors import ConfigError

Tensor = torch.Tensor
TRIES = 10  # timm's attempts at a crop box (random-resized crop) and at an erasing box, before giving up
# timm's RandomErasing defaults, which the recipe's `random_erasing` probability leaves as they are
ERASE_AREA = (0.02, 1 / 3)
ERASE_ASPECT = (0.3, 1 / 0.3)


def batch_seed(*key: int) -> int:
    """A 63-bit seed for one batch's generator, from its place in training (as the loader path's `seeded`)."""
    return int(np.random.SeedSequence(key).generate_state(2, np.uint64)[0] >> np.uint64(1))


def _first_try(ok: Tensor, *values: Tensor) -> tuple[Tensor, ...]:
    """Per row, each of `values` at the first try that is `ok` (the first column when none is)."""
    first = ok.to(torch.uint8).argmax(1, keepdim=True)  # argmax returns the first maximal index
    return tuple(v.gather(1, first).squeeze(1) for v in values)


def crop_boxes(n: int, height: int, width: int, scale: Sequence[float], ratio: Sequence[float],
               generator: torch.Generator, device: torch.device) -> Tensor:
    """(n, 4) crop boxes (top, left, h, w) drawn as timm's RandomResizedCropAndInterpolation.get_params draws one:
    up to ten tries of an area in `scale` x the image's and a log-uniform aspect ratio in `ratio`, the first that
    fits wins, at a uniform position; none fits: the largest centre crop within `ratio`."""
    uniform = torch.rand(n, TRIES, 2, generator=generator, device=device, dtype=torch.float64)
    area = height * width * (scale[0] + (scale[1] - scale[0]) * uniform[..., 0])
    log_low, log_high = math.log(ratio[0]), math.log(ratio[1])
    aspect = torch.exp(log_low + (log_high - log_low) * uniform[..., 1])
    w, h = torch.round(torch.sqrt(area * aspect)), torch.round(torch.sqrt(area / aspect))
    ok = (w <= width) & (h <= height) & (w > 0) & (h > 0)
    h, w = _first_try(ok, h, w)
    found = ok.any(1)
    in_ratio = width / height  # timm's fallback: the whole image, or its centre at the nearest allowed ratio
    if in_ratio < min(ratio):
        fallback = (round(width / min(ratio)), width)
    elif in_ratio > max(ratio):
        fallback = (height, round(height * max(ratio)))
    else:
        fallback = (height, width)
    h = torch.where(found, h, float(fallback[0]))
    w = torch.where(found, w, float(fallback[1]))
    position = torch.rand(n, 2, generator=generator, device=device, dtype=torch.float64)
    top = torch.where(found, torch.floor(position[:, 0] * (height - h + 1)), float((height - fallback[0]) // 2))
    left = torch.where(found, torch.floor(position[:, 1] * (width - w + 1)), float((width - fallback[1]) // 2))
    return torch.stack([top, left, h, w], 1)


def _triangle(d: Tensor) -> Tensor:
    return (1 - d.abs()).clamp(min=0)


def _bicubic(d: Tensor, a: float = -0.5) -> Tensor:
    d = d.abs()
    near = ((a + 2) * d - (a + 3)) * d * d + 1
    far = (((d - 5) * d + 8) * d - 4) * a
    return torch.where(d < 1, near, torch.where(d < 2, far, torch.zeros_like(d)))


FILTERS = {"bilinear": (_triangle, 1.0), "bicubic": (_bicubic, 2.0)}  # PIL's resampling filters and supports


def resize_weights(start: Tensor, length: Tensor, size: int, extent: int, mode: str) -> Tensor:
    """(n, size, extent): the weights PIL's resize (Resample.c) gives each input pixel of one axis for each output
    pixel, resizing the span [start, start + length) of each sample to `size` pixels. Output pixel x is centred at
    start + (x + 0.5) scale; its filter is stretched by the scale when shrinking (antialiasing); only the span's own
    pixels count, as PIL resizes the crop alone; the weights are normalised to sum to one. Nearest: the pixel under
    the centre."""
    scale = (length / size).view(-1, 1, 1)
    centre = start.view(-1, 1, 1) + (torch.arange(size, device=start.device, dtype=torch.float64).view(1, -1, 1)
                                     + 0.5) * scale
    pixel = torch.arange(extent, device=start.device, dtype=torch.float64).view(1, 1, -1)
    inside = (pixel >= start.view(-1, 1, 1)) & (pixel < (start + length).view(-1, 1, 1))
    if mode == "nearest":
        return (inside & (pixel == torch.floor(centre))).double()
    kernel, support = FILTERS[mode]
    stretch = scale.clamp(min=1)
    weights = kernel((pixel - centre + 0.5) / stretch) * inside
    return weights / weights.sum(-1, keepdim=True)


def _round(x: Tensor) -> Tensor:
    """PIL's rounding of a resampled value to a stored pixel: half up, clipped to [0, 255]."""
    return torch.floor(x + 0.5).clamp(0, 255)


def resized_crops(images: Tensor, boxes: Tensor, flips: Tensor, size: int, mode: str) -> Tensor:
    """Each image's crop box resized to `size` x `size` and mirrored where `flips`, as torchvision's resized_crop
    does on a PIL image (crop, then PIL's two-pass resize, horizontal first, each pass rounded to whole values):
    two batched products with per-sample weight matrices. `images`: (n, C, H, W) uint8 -> (n, C, size, size) float."""
    _, _, height, width = images.shape
    top, left, h, w = boxes.unbind(1)
    across = resize_weights(left, w, size, width, mode)
    across = torch.where(flips.view(-1, 1, 1), across.flip(1), across)  # a mirrored image reads its box backwards
    down = resize_weights(top, h, size, height, mode)
    x = _round(images.float() @ across.transpose(1, 2).unsqueeze(1).float())  # (n, C, H, size)
    return _round(down.unsqueeze(1).float() @ x)


def erase(x: Tensor, probability: float, generator: torch.Generator, compact: bool) -> Tensor:
    """timm's RandomErasing(probability, mode="pixel") on a normalised batch, one box per sample: with
    `probability`, up to ten tries of an area in [2 %, 1/3] of the image and a log-uniform aspect ratio in
    [0.3, 1/0.3], the first that fits filled with standard normal noise per pixel and channel. `compact` draws
    noise for the erased samples alone (which reads how many: free on a CPU); otherwise for all (no host sync)."""
    n, channels, height, width = x.shape
    device = x.device
    uniform = torch.rand(n, TRIES, 2, generator=generator, device=device, dtype=torch.float64)
    fires = torch.rand(n, generator=generator, device=device) < probability
    area = height * width * (ERASE_AREA[0] + (ERASE_AREA[1] - ERASE_AREA[0]) * uniform[..., 0])
    log_low, log_high = math.log(ERASE_ASPECT[0]), math.log(ERASE_ASPECT[1])
    aspect = torch.exp(log_low + (log_high - log_low) * uniform[..., 1])
    h, w = torch.round(torch.sqrt(area * aspect)), torch.round(torch.sqrt(area / aspect))
    ok = (w < width) & (h < height)
    h, w = _first_try(ok, h, w)
    fires &= ok.any(1)
    position = torch.rand(n, 2, generator=generator, device=device, dtype=torch.float64)
    top, left = torch.floor(position[:, 0] * (height - h + 1)), torch.floor(position[:, 1] * (width - w + 1))
    rows = torch.arange(height, device=device, dtype=torch.float64).view(1, -1)
    cols = torch.arange(width, device=device, dtype=torch.float64).view(1, -1)
    in_rows = (rows >= top.view(-1, 1)) & (rows < (top + h).view(-1, 1))
    in_cols = (cols >= left.view(-1, 1)) & (cols < (left + w).view(-1, 1))
    box = (in_rows.view(n, 1, height, 1) & in_cols.view(n, 1, 1, width)) & fires.view(n, 1, 1, 1)
    if not compact:
        noise = torch.randn(x.shape, generator=generator, device=device, dtype=x.dtype)
        return torch.where(box, noise, x)
    chosen = fires.nonzero().squeeze(1)
    if not len(chosen):
        return x
    noise = torch.randn((len(chosen), channels, height, width), generator=generator, device=device, dtype=x.dtype)
    return x.index_copy(0, chosen, torch.where(box[chosen], noise, x[chosen]))


class DeviceAugment:
    """The recipe's `augment` block as batched operations on uint8 images on any device; also normalises.

    `mean` and `std` are the normalisation's, per output channel (one, or three for RGB); `fill_mean` is the mean
    of the images' own channels, RandAugment's fill colour as timm sets it.
    """

    def __init__(self, augment: Mapping[str, Any], size: int, mean: Sequence[float], std: Sequence[float],
                 fill_mean: Sequence[float]) -> None:
        interpolation = augment["interpolation"]
        if interpolation not in ("nearest", "bilinear", "bicubic"):
            raise ConfigError(f"recipe.augment.interpolation={interpolation}: data.pipeline=device resamples with "
                              "nearest, bilinear or bicubic only; use data.pipeline=loader.")
        self.size, self.mode = size, interpolation
        self.scale, self.ratio = tuple(augment["train_crop_scale"]), tuple(augment["train_crop_ratio"])
        self.hflip, self.erasing = float(augment["hflip"]), float(augment["random_erasing"])
        fill = tuple(min(255, round(255 * m)) for m in fill_mean)
        self.randaugment = BatchRandAugment(augment["randaugment"], fill, interpolation) if augment.get(
            "randaugment") else None
        self.mean = torch.tensor([255 * m for m in mean]).view(1, -1, 1, 1)
        self.std = torch.tensor([255 * s for s in std]).view(1, -1, 1, 1)

    def to(self, device: torch.device) -> DeviceAugment:
        self.mean, self.std = self.mean.to(device), self.std.to(device)
        return self

    def normalise(self, x: Tensor) -> Tensor:
        """(x - mean) / std; a one-channel batch becomes as many channels as the statistics have."""
        return (x - self.mean) / self.std

    def __call__(self, images: Tensor, generator: torch.Generator) -> Tensor:
        """uint8 (n, C, H, W) -> normalised float (n, channels, size, size), per sample: crop and flip, RandAugment,
        normalisation, Random Erasing."""
        n, _, height, width = images.shape
        compact = images.device.type == "cpu"  # a CPU reads a count for free; a GPU's queue would wait for it
        boxes = crop_boxes(n, height, width, self.scale, self.ratio, generator, images.device)
        flips = torch.rand(n, generator=generator, device=images.device) < self.hflip
        x = resized_crops(images, boxes, flips, self.size, self.mode)
        if self.randaugment is not None and self.randaugment.active:
            x = self.randaugment(x, generator, compact)
        x = self.normalise(x)
        return erase(x, self.erasing, generator, compact) if self.erasing > 0 else x


def as_nchw(images: np.ndarray, gray: bool) -> Tensor:
    """In-memory images (N, H, W) or (N, H, W, 3), uint8 -> (N, C, H, W); RGB to PIL's luminance when `gray`."""
    pixels = torch.from_numpy(np.ascontiguousarray(images))
    pixels = pixels.unsqueeze(1) if pixels.ndim == 3 else pixels.permute(0, 3, 1, 2)
    if gray and pixels.shape[1] == 3:
        pixels = luminance(pixels.float()).to(torch.uint8)
    return pixels.contiguous()


class DeviceBatches(Dataset):
    """The training images of a subset, on one device, served a batch at a time by `EpochBatches`' keys, each batch
    augmented by `augment` from a generator seeded from (seed, epoch, rank, batch number)."""

    def __init__(self, images: Tensor, targets: Sequence[int], augment: DeviceAugment, seed: int,
                 device: torch.device) -> None:
        self.device = torch.device(device)
        self.images = images.to(self.device)
        self.targets = torch.as_tensor(targets, dtype=torch.long).to(self.device)
        self.augment = augment.to(self.device)
        self.seed = seed
        self.generator = torch.Generator(self.device)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, key: BatchKey) -> tuple[Tensor, Tensor]:
        # Non-blocking: a host-to-device copy from pageable memory is staged at once, without waiting for the GPU.
        indices = torch.as_tensor(key.indices).to(self.device, non_blocking=True)
        self.generator.manual_seed(batch_seed(self.seed, key.epoch, key.rank, key.number))
        return self.augment(self.images[indices], self.generator), self.targets[indices]


class DeviceEval(Dataset):
    """The evaluation images, resized and centre-cropped once by timm's transforms (the loader path's
    `EvalBatches`, precomputed), on one device: a batch costs a gather and the normalisation."""

    def __init__(self, evaluation: EvalBatches, normalise: DeviceAugment, device: torch.device) -> None:
        if evaluation.images is None:
            raise ValueError("DeviceEval needs the evaluation images precomputed (EvalBatches(precompute=True))")
        self.device = torch.device(device)
        self.images = evaluation.images.to(self.device)
        self.targets = torch.as_tensor(evaluation.targets, dtype=torch.long).to(self.device)
        self.normalise = normalise.to(self.device).normalise

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, positions: Sequence[int]) -> tuple[Tensor, Tensor]:
        where = torch.as_tensor(positions).to(self.device, non_blocking=True)
        real = where.clamp(min=0)  # padding (DDP's shorter shares) shows the first image
        labels = torch.where(where == PADDING_INDEX, PADDING_LABEL, self.targets[real])
        return self.normalise(self.images[real].float()), labels
