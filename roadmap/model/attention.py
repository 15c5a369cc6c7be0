"""Swin's spatial mixer, window self-attention, in place of the roadmap block's spatial conv; and Swin itself.

Section 2.3 of the paper likens a depthwise conv to self-attention's weighted sum: both mix information per
channel, over space only, and leave channel mixing to the 1x1 layers. `WindowMixer` makes the comparison a one
argument change of :class:`roadmap.model.network.RoadmapNet` (``spatial_mixer: window_attention``): it takes the place
of the spatial conv and nothing else in the block changes. It is timm's Swin attention (``WindowAttention``, with
its relative position bias, heads and shifted windows in every other block), not a re-implementation.

The window follows ``kernel_size`` where the map allows it. The rule (`fit_window`): on a map of side s, the
window is the largest size not above the kernel that tiles the map exactly, so that no window is padded. That
is the map itself when the kernel covers it, and then nothing is shifted, as there is nothing to shift across.
At 224 px ConvNeXt's stages see 56, 28, 14 and 7 px, and a 7 kernel gives Swin's 7 x 7 windows everywhere. At the
proxy's 48 px they see 12, 6, 3 and 1 px, and the windows are 6, 6, 3 and 1. A window of 1 px on a wider map
would mix no space at all (a prime side under a smaller kernel, e.g. 7 px under a 3 kernel); a run's config is
refused for it (`check_windows`). The bias table spans the kernel's window, so the parameters do not depend on
the input size; a smaller window reads the table's centre, as `roadmap.model.network.SpatialConv` runs the centre of
its kernel on a small map. The windows are chosen at each call, so the network runs at any input size, as a
ConvNeXt does.

`swin_transformer` builds timm's SwinTransformer (``model=swin_t``, ``swin_s``, ``swin_b``) with each stage's
window fitted by the same rule, so that Swin runs at the proxy's input size too.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
from timm.models.swin_transformer import (
    SwinTransformer,
    SwinTransformerBlock,
    WindowAttention,
    get_relative_position_index,
    window_partition,
    window_reverse,
)
from torch import nn

from roadmap.model.weights import load_state, read_state


def fit_window(side: int, kernel_size: int) -> int:
    """The window on a map of side `side` for a `kernel_size` window: the largest size up to the kernel that tiles
    the map exactly (the whole map when the kernel covers it)."""
    return max(size for size in range(1, min(side, kernel_size) + 1) if side % size == 0)


def check_windows(sides: Sequence[int], size: int, key: str = "kernel_size") -> None:
    """Raise a ValueError where the rule would leave a map wider than 1 px a window of 1 px: no spatial mixing.
    `size` is the nominal window, the argument `key`."""
    for stage, side in enumerate(sides, 1):
        if side > 1 and fit_window(side, size) == 1:
            raise ValueError(
                f"window attention with {key}={size} leaves stage {stage}'s {side} px map a window of 1 px (no size "
                f"from 2 to {size} tiles {side} px), so its blocks would mix no space; use a {key} of {side} or "
                f"more, or an input size whose stage maps a window up to {size} tiles (stage maps: {list(sides)} px)")


@lru_cache(maxsize=64)
def _relative_index(height: int, width: int, device: torch.device) -> torch.Tensor:
    return get_relative_position_index(height, width, device=device)


@lru_cache(maxsize=64)
def _shift_mask(height: int, width: int, window: tuple[int, int], shift: tuple[int, int], device: torch.device,
                dtype: torch.dtype) -> torch.Tensor:
    """Swin's mask for shifted windows on a map of `height` x `width`: timm's own, from a one-channel block."""
    block = SwinTransformerBlock(1, (height, width), num_heads=1, window_size=window, shift_size=shift, mlp_ratio=1)
    return block.attn_mask.to(device=device, dtype=dtype)


class CroppedWindowAttention(WindowAttention):
    """timm's window attention (W-MSA) whose relative position bias table spans the kernel's window
    (``window_size``); a call on a smaller window (`window`) reads the bias of its offsets, the table's centre."""

    window: tuple[int, int]  # the window of the current call

    def _get_rel_pos_bias(self) -> torch.Tensor:
        (kh, kw), (wh, ww) = self.window_size, self.window
        table = self.relative_position_bias_table.view(2 * kh - 1, 2 * kw - 1, self.num_heads)
        table = table[kh - wh:kh + wh - 1, kw - ww:kw + ww - 1].reshape(-1, self.num_heads)
        bias = table[_relative_index(wh, ww, table.device).view(-1)].view(wh * ww, wh * ww, self.num_heads)
        return bias.permute(2, 0, 1).unsqueeze(0)

    def forward(self, x: torch.Tensor, window: tuple[int, int], mask: torch.Tensor | None = None) -> torch.Tensor:
        self.window = window
        return super().forward(x, mask)


class WindowMixer(nn.Module):
    """Multi-head self-attention within windows of a channels-last map (N, H, W, C), shifted by half a window in
    every other block (`shifted`), as Swin's blocks mix space; the window per map by `fit_window`."""

    def __init__(self, dim: int, num_heads: int, kernel_size: int, shifted: bool) -> None:
        super().__init__()
        self.kernel_size, self.shifted = kernel_size, shifted
        self.attn = CroppedWindowAttention(dim, num_heads, window_size=kernel_size)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, shifted={self.shifted}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, height, width, channels = x.shape
        window = (fit_window(height, self.kernel_size), fit_window(width, self.kernel_size))
        # half a window, along each side that holds more than one window
        shift = tuple(w // 2 if self.shifted and w < side else 0 for w, side in zip(window, x.shape[1:3], strict=True))
        mask = None
        if any(shift):
            x = torch.roll(x, (-shift[0], -shift[1]), (1, 2))
            mask = _shift_mask(height, width, window, shift, x.device, x.dtype)
        windows = window_partition(x.contiguous(), window).view(-1, window[0] * window[1], channels)
        windows = self.attn(windows, window, mask).view(-1, *window, channels)
        x = window_reverse(windows, window, height, width)
        return torch.roll(x, shift, (1, 2)) if any(shift) else x


# --- Swin itself: timm's SwinTransformer, its windows fitted to the input size -----------------------------------


def swin_stage_sizes(input_size: int, patch_size: int, stages: int) -> list[int]:
    """The side of each Swin stage's maps: patch merging pads an odd map, so it halves rounding up (12, 6, 3, 2)."""
    sides = [input_size // patch_size]
    for _ in range(stages - 1):
        sides.append((sides[-1] + 1) // 2)
    return sides


def _invalid(name: str, value: object, must: str) -> ValueError:
    return ValueError(f"swin_transformer argument {name}={value!r} is invalid: {name} must be {must}.")


def check_swin_arguments(**kwargs: Any) -> dict[str, Any]:
    """`swin_transformer`'s arguments checked as it checks them, without building it
    (roadmap/training/validation.py)."""
    signature = inspect.signature(swin_transformer)
    try:
        args = signature.bind(**kwargs).arguments
    except TypeError as error:
        raise ValueError(f"swin_transformer: {error}; its arguments are {', '.join(signature.parameters)}.") from None
    depths, widths, heads = list(args["depths"]), list(args["widths"]), list(args["num_heads"])
    checks = (
        ("depths", lambda: depths and all(isinstance(d, int) and d > 0 for d in depths),
         "a non-empty list of positive ints"),
        ("widths", lambda: len(widths) == len(depths) and widths[0] > 0
         and all(w == widths[0] * 2 ** i for i, w in enumerate(widths)),
         "one width per stage, each twice the one before (Swin's patch merging doubles them)"),
        ("num_heads", lambda: len(heads) == len(depths)
         and all(h > 0 and w % h == 0 for h, w in zip(heads, widths, strict=True)),
         f"one head count per stage, each dividing its stage's width {widths}"),
        ("window_size", lambda: isinstance(args["window_size"], int) and args["window_size"] > 0, "a positive int"),
        ("patch_size", lambda: isinstance(args["patch_size"], int) and args["patch_size"] > 0, "a positive int"),
        ("input_size", lambda: args["input_size"] >= args["patch_size"], "at least patch_size"),
        ("drop_path_rate", lambda: 0 <= args["drop_path_rate"] < 1, "in [0, 1)"),
        ("weights", lambda: args.get("weights") is None or Path(args["weights"]).is_file(), "null or a weights file"),
    )
    for name, ok, must in checks:  # in order, each assuming the ones before it passed
        if not ok():
            raise _invalid(name, args.get(name), must)
    check_windows(swin_stage_sizes(args["input_size"], args["patch_size"], len(depths)), args["window_size"],
                  "window_size")
    return args


def swin_transformer(depths: Sequence[int], widths: Sequence[int], num_heads: Sequence[int], window_size: int,
                     patch_size: int, input_size: int, drop_path_rate: float, in_chans: int, num_classes: int,
                     weights: str | os.PathLike | None = None) -> SwinTransformer:
    """timm's SwinTransformer, each stage's window fitted to its maps at `input_size` by `fit_window` (at 224 px,
    Swin's 7 everywhere; at 48 px, 6, 6, 3 and 2). `widths` are its stage widths (C, 2C, 4C, 8C), so that the
    scale's width multiplier narrows Swin as it narrows every roadmap network. Any input size runs (timm's
    dynamic masks), with the windows built for `input_size`."""
    check_swin_arguments(depths=depths, widths=widths, num_heads=num_heads, window_size=window_size,
                         patch_size=patch_size, input_size=input_size, drop_path_rate=drop_path_rate,
                         in_chans=in_chans, num_classes=num_classes, weights=weights)
    windows = [fit_window(side, window_size) for side in swin_stage_sizes(input_size, patch_size, len(depths))]
    model = SwinTransformer(img_size=input_size, patch_size=patch_size, in_chans=in_chans, num_classes=num_classes,
                            embed_dim=widths[0], depths=tuple(depths), num_heads=tuple(num_heads), window_size=windows,
                            drop_path_rate=drop_path_rate, strict_img_size=False)
    if weights is not None:
        load_state(model, read_state(weights), f"weights={weights}")
    return model
