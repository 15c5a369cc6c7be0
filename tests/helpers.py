"""Helpers shared by the tests."""

import torch
from torch import nn

from roadmap.config import PAPER_SETTING, build_model, compose, step_overrides


def step_model(step: str, regime: str = "resnet50", *extra: str) -> nn.Module:
    """The step's network at the paper's setting (full widths, 1000 classes)."""
    return build_model(compose([*PAPER_SETTING, *step_overrides(step, regime), *extra]))


def perturb_norms(model: nn.Module) -> nn.Module:
    """Random norm weights and biases, running statistics, layer scales and conv biases, in place. At their initial
    values (ones, zeros, 1e-6) two norms of one width are interchangeable and layer scale all but closes each
    block, so identical logits would not show that every tensor went to its own place."""
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if tensor.is_floating_point() and tensor.dim() == 1:
                noise = torch.rand(tensor.shape, generator=generator)
                scale = name.endswith(("weight", "running_var", "gamma"))
                tensor.copy_(0.5 + noise if scale else 0.2 * (noise - 0.5))
    return model


def same_logits(reference: nn.Module, ours: nn.Module, size: int, atol: float = 1e-5) -> float:
    torch.manual_seed(0)
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        diff = (reference.eval()(x) - ours.eval()(x)).abs().max().item()
    assert diff <= atol, f"max abs logit difference {diff}"
    return diff
