"""Parameters and FLOPs of any network, and the per-step complexity table of `make flops`.

FLOPs are counted by fvcore, where one multiply-add is one FLOP. fvcore also gives norm layers a
rough cost (2 per element for BatchNorm in eval mode, 5 for LayerNorm); the paper's tables count
only convolutions and linear layers, so ``gflops`` does too, and ``gflops_with_norms`` keeps
fvcore's full total for comparison with other counters. Attention's two products (queries by keys, weights by
values) are multiply-adds too: fvcore counts them as matmuls, and, where attention runs fused (PyTorch's
scaled_dot_product_attention, which fvcore does not know), `_attention_flops` counts the same.
"""

import argparse
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import torch
from fvcore.nn import FlopCountAnalysis
from fvcore.nn.jit_handles import get_shape
from torch import nn

from roadmap.config.composition import PAPER_SETTING, build_model, compose, step_overrides
from roadmap.model.network import SpatialConv
from roadmap.results.records import atomic_write_text
from roadmap.results.tables import to_csv
from roadmap.steps import REGIMES, ROADMAP

# fvcore's names of multiply-add ops
WEIGHT_OPS = ("conv", "linear", "matmul", "addmm", "bmm", "einsum", "scaled_dot_product_attention")
OUT_DIR = Path("experiments/complexity")


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


def step_table(regime: str, input_size: int = 224) -> list[dict]:
    """One row per roadmap step: our parameters and GFLOPs against the paper's GFLOPs."""
    rows = []
    for step in ROADMAP:
        cfg = compose([*PAPER_SETTING, *step_overrides(step.name, regime)])
        with torch.device("meta"):  # counting needs shapes, not values: skip initialising up to 89M weights
            model = build_model(cfg)
        c = complexity(model.to_empty(device="cpu"), input_size, cfg.model.in_chans)
        paper = step.paper[regime]
        rows.append({
            "step": step.name,
            "params": c.params,
            "gflops": round(c.gflops, 3),
            "gflops_with_norms": round(c.gflops_with_norms, 3),
            "paper_gflops": paper.gflops,
            "paper_fig2_gflops": paper.fig2_gflops,
            "diff": round(c.gflops - paper.gflops, 3),
            "diff_fig2": None if paper.fig2_gflops is None else round(c.gflops - paper.fig2_gflops, 3),
        })
    return rows


def to_markdown(rows: list[dict], regime: str) -> str:
    cols = list(rows[0])
    lines = [
        f"# Complexity per roadmap step, {regime} regime, 224x224",
        "",
        "GFLOPs by fvcore, one multiply-add = one FLOP, counting convolutions and linear layers as the",
        "paper does; `gflops_with_norms` is fvcore's full count, norms included. Paper values: Table 10",
        "(resnet50) or Table 11 (resnet200); `paper_fig2_gflops` where Figure 2 says otherwise.",
        "",
        "| " + " | ".join(cols) + " |",
        "|" + "---|" * len(cols),
    ]
    for row in rows:
        cells = ("" if row[c] is None else f"{row[c]:,}" if c == "params" else str(row[c]) for c in cols)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Print and write the per-step complexity table.")
    parser.add_argument("--regime", choices=REGIMES, action="append", help="default: every regime")
    parser.add_argument("--out", type=Path, default=OUT_DIR, help=f"output folder (default {OUT_DIR})")
    args = parser.parse_args(argv)
    logging.getLogger("fvcore").setLevel(logging.ERROR)
    for regime in args.regime or REGIMES:
        rows = step_table(regime)
        markdown = to_markdown(rows, regime)
        print(markdown)
        atomic_write_text(args.out / f"{regime}.csv", to_csv(rows))
        atomic_write_text(args.out / f"{regime}.md", markdown)
