"""The ladder study's figure: each contested change's Δ top-1 against the passes over the training set."""

from __future__ import annotations

from pathlib import Path

import matplotlib as mpl
from matplotlib.lines import Line2D
from matplotlib.ticker import FixedLocator, NullFormatter, NullLocator

from roadmap.figures.common import STYLE, _figure, _save

RULE_STYLE = {  # the regulariser rule: its marker, fill and line
    "linear": {"marker": "s", "markerfacecolor": "white", "linestyle": "--", "color": "#6a3d9a"},
    "sqrt": {"marker": "o", "markerfacecolor": "#1f78b4", "linestyle": "-", "color": "#1f78b4"},
}


def ladder_figure(rows: list[dict], rungs: list[tuple[str, float, str]], out_base: Path, context: str) -> None:
    """One panel per change: its Δ and 95% interval at each rung (`rungs`: label, passes, regulariser rule), on a
    log axis of passes, one line per rule, with the paper's Δ as a reference line and zero as the noise's centre."""
    with mpl.rc_context(STYLE):  # the figures' style, and fixed SVG ids: the same records, the same file
        columns = 3
        panels = (len(rows) + columns - 1) // columns
        fig = _figure(4.2 * columns, 3.2 * panels + 0.9)
        passes = sorted({p for _, p, _ in rungs})
        for index, row in enumerate(rows):
            ax = fig.add_subplot(panels, columns, index + 1)
            ax.axhline(0.0, color="black", linewidth=0.6)
            ax.axhline(row["paper_delta"], color="0.45", linestyle=":", linewidth=1.4)
            for rule, style in RULE_STYLE.items():
                points = [(p, row[label], row[f"{label} ci_low"], row[f"{label} ci_high"])
                          for label, p, r in rungs if r == rule and row[label] is not None]
                if not points:
                    continue
                # side by side at a shared length
                xs = [p * (1.06 if rule == "linear" else 1 / 1.06) for p, *_ in points]
                ys = [y for _, y, _, _ in points]
                low = [y - lo if lo is not None else 0.0 for _, y, lo, _ in points]
                high = [hi - y if hi is not None else 0.0 for _, y, _, hi in points]
                ax.errorbar(xs, ys, yerr=[low, high], capsize=3, markersize=6, linewidth=1.3, **style)
            ax.set_xscale("log")
            ax.xaxis.set_major_locator(FixedLocator(passes))
            ax.xaxis.set_major_formatter(lambda value, _: f"{value:g}")
            ax.xaxis.set_minor_locator(NullLocator())
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.set_xlim(passes[0] / 1.5, passes[-1] * 1.5)
            ax.set_title(f"{row['step'].replace('_', ' ')}: paper {row['paper_delta']:+.2f}", fontsize=10)
            ax.grid(axis="y", color="0.9")
            if index % columns == 0:
                ax.set_ylabel("Δ top-1 (points)")
            if index >= len(rows) - columns:
                ax.set_xlabel("passes over the training set")
        handles = [Line2D([], [], label=f"{rule} regulariser rule", markersize=6, **style)
                   for rule, style in RULE_STYLE.items()]
        handles.append(Line2D([], [], color="0.45", linestyle=":", linewidth=1.4, label="the paper's Δ (its path)"))
        fig.legend(handles=handles, loc="lower center", ncol=3, frameon=False, fontsize=9)
        fig.suptitle("Do the proxy's verdicts survive longer training? Each change's Δ (with it minus without it, "
                     "95% interval)\n" + context, fontsize=10)
        fig.set_layout_engine("tight", rect=(0, 0.06, 1, 0.93))
        _save(fig, out_base)
