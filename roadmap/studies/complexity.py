"""The per-step complexity table of `make flops`: our parameters and GFLOPs per roadmap step at the paper's setting,
against the paper's Tables 10 and 11."""

import argparse
import logging
from pathlib import Path

import torch

from roadmap.config.composition import PAPER_SETTING, build_model, compose, step_overrides
from roadmap.model.flops import complexity
from roadmap.results.records import atomic_write_text
from roadmap.results.tables import to_csv
from roadmap.steps import REGIMES, ROADMAP

OUT_DIR = Path("experiments/complexity")


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
