"""The factorial study's figures: a half-normal plot of its effects, and the three views of every change."""

from __future__ import annotations

from pathlib import Path

import matplotlib as mpl
import numpy as np
from scipy.stats import halfnorm

from roadmap.figures.common import STYLE, _figure, _save
from roadmap.results.effects import CHAIN, MAIN, Analysis

LABELLED = 7  # the largest effects named on the half-normal plot
VIEW_STYLE = {  # view -> (label, colour, marker)
    "path": ("along the paper's path (step − parent)", "#1b9e77", "o"),
    "leave_one_out": ("reverted from ConvNeXt-T (leave-one-out)", "#d95f02", "s"),
    "factorial": ("factorial main effect (averaged over the others)", "#7570b3", "D"),
    "paper": ("the paper's Δ along its path (ImageNet, Table 10)", "black", "x"),
}


def half_normal_figure(analysis: Analysis, out_base: Path) -> None:
    """|effect| of every column of the design against half-normal quantiles: inactive effects fall on the line of
    the error's standard error, active ones above it. Filled: the 95% interval excludes zero."""
    effects = sorted(analysis.top1.effects, key=lambda e: abs(e.effect))
    m = len(effects)
    quantiles = halfnorm.ppf((np.arange(1, m + 1) - 0.5) / m)
    with mpl.rc_context(STYLE):
        fig = _figure(8, 6)
        ax = fig.add_subplot()
        for i, (q, e) in enumerate(zip(quantiles, effects, strict=True)):
            color = "#7570b3" if e.term.kind == MAIN else "#999999" if e.term.kind == CHAIN else "#cccccc"
            ax.scatter(q, abs(e.effect), s=36, color=color if e.beyond_noise else "white", edgecolors=color, zorder=3)
            if i >= m - LABELLED:  # the rest crowd together: named in effects.csv and interactions.csv
                name = e.term.name if e.term.kind == MAIN else e.term.name.split(" = ")[0] + " = …"
                sign = "+" if e.effect > 0 else "−"
                ax.annotate(f"{name} ({sign})", (q, abs(e.effect)), xytext=(6, -3), textcoords="offset points",
                            fontsize=8, color="black" if e.beyond_noise else "0.45")
        se = analysis.top1.standard_error
        ax.plot([0, quantiles[-1]], [0, se * quantiles[-1]], color="0.6", ls="--", lw=1,
                label=f"no effect: |effect| ≈ its standard error ({se:.2f}) × quantile")
        ax.scatter([], [], color="#7570b3", label="main effect")
        ax.scatter([], [], color="#999999", label="alias chain of two-factor interactions")
        ax.scatter([], [], color="white", edgecolors="0.3", label="interval includes zero")
        ax.set_xlabel(f"half-normal quantile (the {LABELLED} largest effects named; all in effects.csv and "
                      "interactions.csv)")
        ax.set_ylabel("|effect on top-1| (points)")
        ax.set_title(f"Factorial effects on top-1: {analysis.design.rows} rows × seeds {analysis.seeds}, "
                     f"{analysis.top1.error}", fontsize=10)
        ax.legend(loc="upper left", fontsize=8, frameon=False)
        _save(fig, out_base)


def views_figure(rows: list[dict], out_base: Path) -> None:
    """Each change's Δ top-1 in the proxy's three views, with 95% intervals, and the paper's Δ along its path, one row
    per change in roadmap order."""
    with mpl.rc_context(STYLE):
        fig = _figure(8, 0.45 * len(rows) + 1.6)
        ax = fig.add_subplot()
        y = np.arange(len(rows))[::-1]
        for offset, (view, (label, color, marker)) in zip((0.27, 0.09, -0.09, -0.27), VIEW_STYLE.items(),
                                                          strict=True):
            for yi, row in zip(y, rows, strict=True):
                if row[view] is None:
                    continue
                low, high = row[f"{view}_ci_low"], row[f"{view}_ci_high"]
                if low is not None:
                    ax.plot([low, high], [yi + offset] * 2, color=color, lw=1.5)
                ax.plot(row[view], yi + offset, marker=marker, color=color, ms=5, ls="none")
            ax.plot([], [], marker=marker, color=color, label=label)
        ax.axvline(0, color="0.5", lw=0.8)
        ax.set_yticks(y, [row["delta"].replace("_", " ") for row in rows])
        ax.set_xlabel("Δ top-1 (points), 95% interval")
        ax.set_title("The proxy's three views of every change, beside the paper's Δ", fontsize=10)
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=1, fontsize=8, frameon=False)
        _save(fig, out_base)
