"""timm's RandAugment, per sample, on a batch held on the training device.

torchvision and kornia draw RandAugment's operations once per batch; timm draws them per image, on PIL images.
This draws as timm does, per sample (which operations, whether each applies, its magnitude and sign) and applies
each sample's own with batched tensor operations, following the PIL operations timm calls (ImageOps, ImageEnhance,
Image.transform): the same levels, fills and rounding to whole pixel values, so that a sample's result matches
timm's on the same image to within a pixel level (bicubic resampling aside: torch's kernel is not PIL's).

timm's config string is parsed by timm itself (`rand_augment_transform`); only its operations are re-implemented.
Two ways of applying them give identical results: `compact` (each operation computed on the samples that drew it,
which reads how many did: free on a CPU) and masked (every operation computed on the whole batch and kept where
drawn: no host sync, for a GPU's queue).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from timm.data.auto_augment import rand_augment_transform

from roadmap.errors import ConfigError

Tensor = torch.Tensor
LEVEL_DENOM = 10.0  # timm's _LEVEL_DENOM: magnitudes run from 0 to 10
GEOMETRIC = ("Rotate", "ShearX", "ShearY", "TranslateXRel", "TranslateYRel")


# --- Levels: timm's level_to_arg functions on a tensor of magnitudes (and random signs) ---------------------------


def _signed(value: Tensor, negate: Tensor) -> Tensor:
    return torch.where(negate, -value, value)


def _enhance_increasing(m: Tensor, negate: Tensor) -> Tensor:
    return (1.0 + _signed(m / LEVEL_DENOM * 0.9, negate)).clamp(min=0.1)


LEVELS: dict[str, Callable[[Tensor, Tensor, Mapping], Tensor]] = {
    "AutoContrast": lambda m, n, h: m,
    "Equalize": lambda m, n, h: m,
    "Invert": lambda m, n, h: m,
    "Rotate": lambda m, n, h: _signed(m / LEVEL_DENOM * 30.0, n),
    "Posterize": lambda m, n, h: torch.trunc(m / LEVEL_DENOM * 4),
    "PosterizeIncreasing": lambda m, n, h: 4 - torch.trunc(m / LEVEL_DENOM * 4),
    "Solarize": lambda m, n, h: torch.trunc(m / LEVEL_DENOM * 256).clamp(max=256),
    "SolarizeIncreasing": lambda m, n, h: 256 - torch.trunc(m / LEVEL_DENOM * 256).clamp(max=256),
    "SolarizeAdd": lambda m, n, h: torch.trunc(m / LEVEL_DENOM * 110).clamp(max=128),
    **{name: lambda m, n, h: m / LEVEL_DENOM * 1.8 + 0.1 for name in ("Color", "Contrast", "Brightness", "Sharpness")},
    **{f"{name}Increasing": lambda m, n, h: _enhance_increasing(m, n)
       for name in ("Color", "Contrast", "Brightness", "Sharpness")},
    "ShearX": lambda m, n, h: _signed(m / LEVEL_DENOM * 0.3, n),
    "ShearY": lambda m, n, h: _signed(m / LEVEL_DENOM * 0.3, n),
    "TranslateXRel": lambda m, n, h: _signed(m / LEVEL_DENOM * h.get("translate_pct", 0.45), n),
    "TranslateYRel": lambda m, n, h: _signed(m / LEVEL_DENOM * h.get("translate_pct", 0.45), n),
}


# --- Pixel operations on (n, C, H, W) float batches of whole pixel values, each sample with its own level ---------


def _per_sample(level: Tensor) -> Tensor:
    return level.view(-1, 1, 1, 1).to(torch.float32)


def luminance(x: Tensor) -> Tensor:
    """PIL's RGB -> L conversion, (R 19595 + G 38470 + B 7471 + 2^15) >> 16, kept (n, 1, H, W); L stays L."""
    if x.shape[1] == 1:
        return x
    r, g, b = x[:, 0:1], x[:, 1:2], x[:, 2:3]
    return torch.floor((r * 19595 + g * 38470 + b * 7471 + 32768) / 65536)


def blend(degenerate: Tensor, x: Tensor, factor: Tensor) -> Tensor:
    """PIL's Image.blend(degenerate, x, factor), as ImageEnhance uses it: truncated to whole values, clipped."""
    return torch.floor(degenerate + _per_sample(factor) * (x - degenerate)).clamp(0, 255)


def smooth(x: Tensor) -> Tensor:
    """PIL's ImageFilter.SMOOTH (3x3 kernel 1 1 1 / 1 5 1 / 1 1 1, over 13, rounded); the border keeps its pixels.
    Summed in whole numbers, so that the result does not depend on the batch it is computed in."""
    padded = torch.nn.functional.pad(x, (1, 1, 1, 1))
    height, width = x.shape[-2:]
    total = sum(padded[..., dy:dy + height, dx:dx + width] for dy in range(3) for dx in range(3)) + 4 * x
    smoothed = torch.floor(total / 13 + 0.5).clamp(0, 255)
    border = torch.ones_like(x[:1, :1], dtype=torch.bool)
    border[..., 1:-1, 1:-1] = False
    return torch.where(border, x, smoothed)


def autocontrast(x: Tensor) -> Tensor:
    """ImageOps.autocontrast (no cutoff): each channel of each sample stretched from its [min, max] to [0, 255]."""
    flat = x.flatten(2).double()
    low, high = flat.amin(-1, keepdim=True), flat.amax(-1, keepdim=True)
    scale = torch.full_like(low, 255.0) / (high - low).clamp(min=1)  # (a scalar over a tensor is not IEEE's division)
    stretched = torch.trunc(flat * scale - low * scale).clamp(0, 255)
    return torch.where(high > low, stretched, flat).float().view_as(x)


def equalize(x: Tensor) -> Tensor:
    """ImageOps.equalize: each channel of each sample through its own histogram's cumulative lookup table. The
    histograms are counted by sorting, which a GPU does deterministically (its bincount does not)."""
    rows = x.shape[0] * x.shape[1]
    values = x.reshape(rows, -1).long()
    edges = torch.arange(257, device=x.device).expand(rows, 257).contiguous()
    histogram = torch.searchsorted(values.sort(-1).values, edges).diff(dim=-1)
    present = histogram > 0
    last = 255 - present.flip(-1).long().argmax(-1, keepdim=True)  # the highest value present
    step = (histogram.sum(-1, keepdim=True) - histogram.gather(-1, last)) // 255
    before = histogram.cumsum(-1) - histogram  # pixels below each value
    lut = ((step // 2 + before) // step.clamp(min=1)).clamp(max=255)
    keep = (present.sum(-1, keepdim=True) <= 1) | (step == 0)
    mapped = torch.where(keep, values, lut.gather(-1, values))
    return mapped.to(x.dtype).view_as(x)


def posterize(x: Tensor, bits: Tensor) -> Tensor:
    mask = (256 - 2 ** (8 - bits.long().clamp(0, 8))).to(torch.uint8).view(-1, 1, 1, 1)
    return (x.to(torch.uint8) & mask).to(x.dtype)


PIXEL_OPS: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "AutoContrast": lambda x, level: autocontrast(x),
    "Equalize": lambda x, level: equalize(x),
    "Invert": lambda x, level: 255 - x,
    "Posterize": posterize,
    "PosterizeIncreasing": posterize,
    "Solarize": lambda x, t: torch.where(x >= _per_sample(t), 255 - x, x),
    "SolarizeIncreasing": lambda x, t: torch.where(x >= _per_sample(t), 255 - x, x),
    "SolarizeAdd": lambda x, add: torch.where(x < 128, (x + _per_sample(add)).clamp(max=255), x),
    **{name: lambda x, f: blend(luminance(x).expand_as(x), x, f) for name in ("Color", "ColorIncreasing")},
    **{name: lambda x, f: blend(torch.floor(luminance(x).mean((1, 2, 3), keepdim=True, dtype=torch.float64) + 0.5)
                                .float().expand_as(x), x, f)
       for name in ("Contrast", "ContrastIncreasing")},
    **{name: lambda x, f: blend(torch.zeros_like(x), x, f) for name in ("Brightness", "BrightnessIncreasing")},
    **{name: lambda x, f: blend(smooth(x), x, f) for name in ("Sharpness", "SharpnessIncreasing")},
}


# --- Geometric operations: one affine map per sample, as PIL's Image.transform applies it -------------------------


def affine_matrices(names: list[str], op: Tensor, level: Tensor, height: int, width: int) -> Tensor:
    """Per sample, the (2, 3) map from an output pixel's centre to the input point PIL samples for it (pixel units,
    pixel i spanning [i, i + 1]): timm's rotate (about the centre), shear and translation; the identity for a sample
    whose operation is not geometric."""
    n = op.shape[0]
    matrix = torch.zeros(n, 2, 3, dtype=torch.float64, device=op.device)
    matrix[:, 0, 0] = matrix[:, 1, 1] = 1.0
    level = level.double()
    for k, name in enumerate(names):
        chosen = op == k
        if name == "ShearX":
            matrix[:, 0, 1] = torch.where(chosen, level, matrix[:, 0, 1])
        elif name == "ShearY":
            matrix[:, 1, 0] = torch.where(chosen, level, matrix[:, 1, 0])
        elif name == "TranslateXRel":
            matrix[:, 0, 2] = torch.where(chosen, level * width, matrix[:, 0, 2])
        elif name == "TranslateYRel":
            matrix[:, 1, 2] = torch.where(chosen, level * height, matrix[:, 1, 2])
        elif name == "Rotate":  # PIL's Image.rotate: counter-clockwise by `level` degrees about (W/2, H/2)
            angle = -torch.deg2rad(level)
            cos, sin = torch.cos(angle), torch.sin(angle)
            cx, cy = width / 2, height / 2
            rotation = torch.stack([torch.stack([cos, sin, cx - cos * cx - sin * cy], -1),
                                    torch.stack([-sin, cos, cy + sin * cx - cos * cy], -1)], -2)
            matrix = torch.where(chosen.view(-1, 1, 1), rotation, matrix)
    return matrix


def _cubic(v1: Tensor, v2: Tensor, v3: Tensor, v4: Tensor, d: Tensor) -> Tensor:
    """PIL's BICUBIC macro (Geometry.c): the cubic through four neighbours, at fraction `d` between v2 and v3."""
    return v2 + d * ((v3 - v1) + d * ((2 * (v1 - v2) + v3 - v4) + d * (-v1 + v2 - v3 + v4)))


def sample(x: Tensor, px: Tensor, py: Tensor, mode: str) -> Tensor:
    """The values PIL's transform filters (Geometry.c) read at input points (px, py), in pixel units, per sample:
    nearest, bilinear or bicubic from the 2x2 or 4x4 pixels around the point, edge pixels repeated, truncated to
    whole values as PIL stores them. `x`: (n, C, H, W); `px`, `py`: (n, P) -> (n, C, P), in float64."""
    n, channels, height, width = x.shape
    flat = x.reshape(n, channels, height * width).double()

    def at(row: Tensor, col: Tensor) -> Tensor:
        index = row.clamp(0, height - 1) * width + col.clamp(0, width - 1)
        return flat.gather(2, index.unsqueeze(1).expand(n, channels, -1))

    if mode == "nearest":
        return at(torch.floor(py).long(), torch.floor(px).long())
    xs, ys = px - 0.5, py - 0.5
    col, row = torch.floor(xs), torch.floor(ys)
    dx, dy = (xs - col).unsqueeze(1), (ys - row).unsqueeze(1)
    col, row = col.long(), row.long()
    if mode == "bilinear":
        top = at(row, col) + (at(row, col + 1) - at(row, col)) * dx
        bottom = at(row + 1, col) + (at(row + 1, col + 1) - at(row + 1, col)) * dx
        return torch.floor(top + (bottom - top) * dy)
    rows = [_cubic(*(at(row + i, col + j) for j in (-1, 0, 1, 2)), dx) for i in (-1, 0, 1, 2)]
    return torch.floor(_cubic(*rows, dy).clamp(0, 255))


def warp(x: Tensor, matrix: Tensor, fill: Tensor, mode: str) -> Tensor:
    """Each sample through its own pixel-space map, as PIL's Image.transform(AFFINE) samples: an output pixel whose
    input point falls outside the image takes `fill` (timm's fillcolor)."""
    n, channels, height, width = x.shape
    ys, xs = torch.meshgrid(torch.arange(height, device=x.device, dtype=torch.float64) + 0.5,
                            torch.arange(width, device=x.device, dtype=torch.float64) + 0.5, indexing="ij")
    points = torch.stack([xs, ys, torch.ones_like(xs)], -1).view(1, -1, 3)
    source = points @ matrix.transpose(1, 2)  # (n, H*W, 2): input points in pixel units
    px, py = source[..., 0], source[..., 1]
    inside = ((px >= 0) & (px < width) & (py >= 0) & (py < height)).unsqueeze(1)
    warped = torch.where(inside, sample(x, px, py, mode), fill.double().view(1, -1, 1))
    return warped.to(x.dtype).view_as(x)


# --- RandAugment ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Draws:
    """One layer's random choices, per sample."""

    op: Tensor  # index into the operations
    fires: Tensor  # whether the operation applies (timm's per-operation chance)
    level: Tensor  # the operation's argument (degrees, factor, bits, ...), from the magnitude and a random sign


class BatchRandAugment:
    """timm's RandAugment for `config` (``rand-m9-mstd0.5-inc1``), drawn and applied per sample.

    `fill` is timm's fill colour (the data set's mean in whole pixel values, one per channel), `interpolation`
    the geometric operations' resampling (the recipe's). Operations, magnitude, its noise and bound, the
    per-operation chance and the number of layers come from timm's parser.
    """

    def __init__(self, config: str, fill: tuple[int, ...], interpolation: str) -> None:
        parsed = rand_augment_transform(config, {"img_mean": fill, "translate_const": 100})
        if parsed.choice_weights is not None:
            raise ConfigError(f"recipe.augment.randaugment={config} picks its operations by weight, which "
                              "data.pipeline=device does not draw; use data.pipeline=loader.")
        unsupported = sorted({op.name for op in parsed.ops} - set(LEVELS))
        if unsupported:
            raise ConfigError(f"recipe.augment.randaugment={config} uses {', '.join(unsupported)}, which "
                              f"data.pipeline=device does not implement (it has {', '.join(LEVELS)}); use "
                              "data.pipeline=loader.")
        if interpolation not in ("nearest", "bilinear", "bicubic"):
            raise ConfigError(f"recipe.augment.interpolation={interpolation}: data.pipeline=device resamples with "
                              "nearest, bilinear or bicubic only; use data.pipeline=loader.")
        self.names = [op.name for op in parsed.ops]
        first = parsed.ops[0]
        for op in parsed.ops:
            if (op.prob, op.magnitude, op.magnitude_std, op.magnitude_max) != (
                    first.prob, first.magnitude, first.magnitude_std, first.magnitude_max):
                raise ConfigError(f"recipe.augment.randaugment={config}: its operations differ in chance or "
                                  "magnitude, which data.pipeline=device does not draw; use data.pipeline=loader.")
        self.layers, self.chance = parsed.num_layers, first.prob
        self.magnitude, self.magnitude_std = float(first.magnitude), float(first.magnitude_std)
        self.magnitude_max = float(first.magnitude_max or LEVEL_DENOM)
        self.hparams = first.hparams
        self.fill, self.interpolation = fill, interpolation

    @property
    def active(self) -> bool:
        return self.chance > 0 and self.layers > 0

    def draw(self, n: int, generator: torch.Generator, device: torch.device) -> Draws:
        """One layer's choices for `n` samples, as timm draws them for one image: an operation uniformly (with
        replacement across layers), whether it applies, a magnitude (normal around m, or uniform below it for an
        infinite std, clipped to [0, max]) and a sign."""
        op = torch.randint(len(self.names), (n,), generator=generator, device=device)
        fires = torch.rand(n, generator=generator, device=device) < self.chance
        if math.isinf(self.magnitude_std):
            magnitude = torch.rand(n, generator=generator, device=device, dtype=torch.float64) * self.magnitude
        else:
            noise = torch.randn(n, generator=generator, device=device, dtype=torch.float64)
            magnitude = self.magnitude + self.magnitude_std * noise
        magnitude = magnitude.clamp(0, self.magnitude_max)
        negate = torch.rand(n, generator=generator, device=device) > 0.5
        level = torch.zeros(n, dtype=torch.float64, device=device)
        for k, name in enumerate(self.names):
            level = torch.where(op == k, LEVELS[name](magnitude, negate, self.hparams), level)
        return Draws(op, fires, level)

    def __call__(self, x: Tensor, generator: torch.Generator, compact: bool) -> Tensor:
        """`x`: (n, C, H, W) float, whole pixel values in [0, 255]. Each layer's draws are made whatever the mode,
        so that `compact` changes only how the work is done."""
        for _ in range(self.layers):
            x = self.apply(x, self.draw(x.shape[0], generator, x.device), compact)
        return x

    def apply(self, x: Tensor, draws: Draws, compact: bool) -> Tensor:
        """Each sample through its drawn operation, where it fires. Nothing here copies from the host: on a GPU the
        batch is queued without a wait."""
        fill = torch.stack([torch.full((), float(v), dtype=x.dtype, device=x.device) for v in self.fill])

        def run(k: int | None, x: Tensor, sel: Tensor) -> Tensor:
            if k is None:  # every geometric operation at once: each sample's own map
                matrix = affine_matrices(self.names, draws.op[sel], draws.level[sel], *x.shape[-2:])
                return warp(x, matrix, fill, self.interpolation)
            return PIXEL_OPS[self.names[k]](x, draws.level[sel])

        geometric = torch.zeros_like(draws.fires)
        for k, name in enumerate(self.names):
            if name in GEOMETRIC:
                geometric |= draws.op == k
        groups: list[tuple[int | None, Tensor]] = [(None, draws.fires & geometric)]
        groups += [(k, draws.fires & (draws.op == k)) for k, name in enumerate(self.names) if name not in GEOMETRIC]
        every = torch.arange(x.shape[0], device=x.device)
        for k, chosen in groups:
            if compact:
                sel = chosen.nonzero().squeeze(1)
                if len(sel):
                    x = x.index_copy(0, sel, run(k, x[sel], sel))
            else:
                x = torch.where(chosen.view(-1, 1, 1, 1), run(k, x, every), x)
        return x
