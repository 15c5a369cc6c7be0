"""Helpers shared by the tests."""

import torch
from torch import nn

from roadmap.config import PAPER_SETTING, build_model, compose, step_overrides


def copy_weights_in_order(source: dict[str, torch.Tensor], target: nn.Module) -> None:
    """Copy `source` tensors into `target` by position: the two must list the same tensors in the
    same order. A Linear weight (out, in) fills a 1x1 conv weight (out, in, 1, 1) and back."""
    target_state = target.state_dict()
    assert len(source) == len(target_state), f"{len(source)} tensors for {len(target_state)}"
    for (src_name, src), (dst_name, dst) in zip(source.items(), target_state.items(), strict=True):
        assert src.numel() == dst.numel() and src.shape[:2] == dst.shape[:2], (
            f"{src_name} {tuple(src.shape)} does not fit {dst_name} {tuple(dst.shape)}")
        target_state[dst_name] = src.reshape(dst.shape).clone()
    target.load_state_dict(target_state)


def step_model(step: str, regime: str = "resnet50", *extra: str) -> nn.Module:
    """The step's network at the paper's setting (full widths, 1000 classes)."""
    return build_model(compose([*PAPER_SETTING, *step_overrides(step, regime), *extra]))
