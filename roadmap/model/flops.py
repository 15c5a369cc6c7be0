"""Parameters and FLOPs of any network.

FLOPs are counted by fvcore, where one multiply-add is one FLOP. fvcore also gives norm layers a
rough cost (2 per element for BatchNorm in eval mode, 5 for LayerNorm); the paper's tables count
only convolutions and linear layers, so ``gflops`` does too, and ``gflops_with_norms`` keeps
fvcore's full total for comparison with other counters. Attention's two products (queries by keys, weights by
values) are multiply-adds too: fvcore counts them as matmuls, and, where attention runs fused (PyTorch's
scaled_dot_product_attention, which fvcore does not know), `_attention_flops` counts the same.
"""

import math
from dataclasses import dataclass

import torch
from fvcore.nn import FlopCountAnalysis
from fvcore.nn.jit_handles import get_shape
from torch import nn

from roadmap.model.network import SpatialConv

# fvcore's names of multiply-add ops
WEIGHT_OPS = ("conv", "linear", "matmul", "addmm", "bmm", "einsum", "scaled_dot_product_attention")


@dataclass(frozen=True)
class Complexity:
    params: int
    gflops: float  # convolutions and linear layers: the paper's convention
    gflops_with_norms: float  # fvcore's full count


def _attention_flops(inputs: list, outputs: list) -> int:
    """aten::scaled_dot_product_attention (queries (..., L, E), keys (..., S, E), values (..., S, Ev)): L x S x E
    multiply-adds for the scores and L x S x Ev for the weighted sum, as the unfused matmuls count."""
    query, key, value = (get_shape(v) for v in inputs[:3])
    return math.prod(query[:-1]) * key[-2] * (query[-1] + value[-1])


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def complexity(model: nn.Module, input_size: int = 224, in_chans: int = 3) -> Complexity:
    """Count one image of `input_size` x `input_size` through `model` in eval mode, every kernel whole (the
    paper's convention, also on maps smaller than a kernel, where the network skips the taps that meet only
    padding: roadmap.model.network.SpatialConv)."""
    was_training = model.training
    model.eval()
    convs = [m for m in model.modules() if isinstance(m, SpatialConv)]
    for conv in convs:
        conv.crop = False
    try:
        x = torch.zeros(1, in_chans, input_size, input_size)
        flops = FlopCountAnalysis(model, x).unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        flops.set_op_handle("aten::scaled_dot_product_attention", _attention_flops)
        by_op = flops.by_operator()
    finally:
        for conv in convs:
            del conv.crop  # back to the class's default
        model.train(was_training)
    return Complexity(count_params(model), sum(by_op.get(op, 0) for op in WEIGHT_OPS) / 1e9, flops.total() / 1e9)
