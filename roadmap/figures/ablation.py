"""An ablation study's chart, each variant's paired top-1 change from the reference, and the attention study's,
its networks by spatial mixer."""

from pathlib import Path

import matplotlib as mpl
import numpy as np
from matplotlib.lines import Line2D
from matplotlib.ticker import FixedLocator, FormatStrFormatter, NullFormatter

from roadmap.config.ablation import FINAL_STEP, STEP_MARK
from roadmap.figures.common import GOAL_COLOR, LABEL_OFFSETS, STYLE, _data_name, _figure, _flops, _place_labels, _save
from roadmap.steps import GOAL

MIXER_STYLE = {  # a network's spatial mixer: colour and legend label
    "depthwise": ("#5b3f94", "depthwise conv"),
    "attention": ("#3c8dbc", "window attention in its place"),
    "dense": ("0.45", "dense conv (space and channels at once)"),
    "goal": (GOAL_COLOR, "Swin (timm's; its own blocks)"),
}
WINDOW_ATTENTION = "+window_attention"
ABLATION_FIGURE = "ablation"
MIXERS_FIGURE = "mixers"


@mpl.rc_context(STYLE)
def ablation_figure(rows: list[dict], out_base: Path) -> None:
    """The variants of an ablation study as horizontal bars of their paired top-1 change from the reference
    (rows[0], as `stats.compare` orders them), most harmful first, with sd error bars and each variant's
    FLOPs; failed variants are named with their error under the chart."""
    reference, ran = rows[0], [r for r in rows[1:] if not r["error"] and r["paired_seeds"]]
    failed = [r for r in rows[1:] if r["error"]]
    flops, unit = _flops([reference, *ran])
    fig = _figure(9.5, 1.2 + 0.42 * max(len(ran), 1) + 0.3 * len(failed))
    ax = fig.subplots()
    y = np.arange(len(ran))[::-1]  # the first row (most harmful) at the top
    means = [r["delta_top1_mean"] for r in ran]
    colors = ["#c0504d" if m < 0 else "#4f81bd" for m in means]
    ax.barh(y, means, xerr=[r["delta_top1_sd"] or 0.0 for r in ran], color=colors, alpha=0.85, capsize=3,
            error_kw={"lw": 1, "ecolor": "0.25"})
    ax.set_yticks(y, [r["change"] for r in ran])
    ax.axvline(0, color="0.2", lw=0.8)
    ax.spines["top"].set_visible(False)  # STYLE drops the right one: the FLOPs column stands free
    ax.set_xlabel(f"top-1 change from {reference['name']} (points), mean ± sd of the paired seed differences")
    ax.grid(axis="x", alpha=0.3)
    ax.margins(x=0.08)
    for yi, f in zip(y, flops[1:], strict=True):  # each variant's cost, in a column right of the axes
        ax.annotate(f"{f:.3g}", (1.01, yi), xycoords=("axes fraction", "data"), va="center", fontsize=8.5,
                    color="0.3")
    ax.annotate(unit.split()[0], (1.01, 1.0), xycoords="axes fraction", va="bottom", fontsize=8.5, color="0.3")
    seeds = "-".join(map(str, sorted({min(r["paired_seeds"] for r in ran), max(r["paired_seeds"] for r in ran)})))
    fig.suptitle(f"{reference['name']} ({reference['top1_mean']:.1f}% top-1, {flops[0]:.3g} {unit}) with one change"
                 f" each\n{_data_name(rows)}, {reference['scale']} scale, {reference['input_size']} px, {seeds} paired "
                 "seeds. '-x' reverts delta x (a bar left of 0: x helps); '+y' adds y",
                 fontsize=11)
    if failed:
        fig.supxlabel("failed, no network: " + "; ".join(f"{r['change']} ({r['error']})" for r in failed),
                      fontsize=8.5, color="0.3", x=0.02, ha="left")
    _save(fig, out_base)


def _mixer(row: dict) -> str:
    deltas = row["deltas"].split()
    if row["name"] in {name for name, _ in GOAL.values()}:
        return "goal"
    if "window_attention" in deltas:
        return "attention"
    return "depthwise" if "depthwise_conv" in deltas else "dense"


@mpl.rc_context(STYLE)
def mixers_figure(rows: list[dict], out_base: Path) -> None:
    """The attention study's networks (docs/attention.md) by their spatial mixer: top-1 (mean ± sd over seeds)
    against FLOPs and against measured training throughput, an arrow from each network with its depthwise conv
    to the same network with window attention in its place."""
    rows = [row for row in rows if not row["error"]]
    flops, unit = _flops(rows)
    fig = _figure(12.5, 6.0)
    axes = fig.subplots(1, 2, sharey=True)
    for ax, xs, xlabel in ((axes[0], flops, unit),
                           (axes[1], [row["train_images_per_second_mean"] for row in rows],
                            "training images/s, measured in the runs")):
        at = {row["name"]: (x, row["top1_mean"]) for row, x in zip(rows, xs, strict=True)}
        labels, points = [], []
        for row, x in zip(rows, xs, strict=True):
            color = MIXER_STYLE[_mixer(row)][0]
            ax.errorbar(x, row["top1_mean"], yerr=row["top1_sd"], fmt="o", ms=7, color=color, capsize=3, mew=1.5)
            name = f"ConvNeXt-T ({row['name']})" if row["name"] == FINAL_STEP else row["name"]
            labels.append(ax.annotate(name, (x, row["top1_mean"]), xytext=LABEL_OFFSETS[0],
                                      textcoords="offset points", va="center", fontsize=8.5,
                                      arrowprops={"arrowstyle": "-", "color": "0.55", "lw": 0.6, "shrinkA": 1,
                                                  "shrinkB": 5}))
            points.append((x, row["top1_mean"], row["top1_sd"] or 0.0))
            twin = row["name"].removesuffix(WINDOW_ATTENTION).removesuffix(STEP_MARK)
            if twin != row["name"] and twin in at:
                ax.annotate("", at[row["name"]], xytext=at[twin], arrowprops={
                    "arrowstyle": "->", "color": MIXER_STYLE["attention"][0], "lw": 1.3, "shrinkA": 7, "shrinkB": 7})
        ax.margins(x=0.25, y=0.1)
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
        ax.spines["top"].set_visible(False)
        _place_labels(ax, labels, points)
    axes[0].set_xscale("log")  # the dense conv costs 5 times the others
    axes[0].xaxis.set_major_locator(FixedLocator([2, 3, 4, 5, 6, 8, 10, 15, 20, 30, 40]))
    axes[0].xaxis.set_major_formatter(FormatStrFormatter("%g"))
    axes[0].xaxis.set_minor_formatter(NullFormatter())
    axes[0].set_ylabel("top-1 (%), mean ± sd over seeds")
    handles = [Line2D([], [], ls="", marker="o", color=color, label=label)
               for key, (color, label) in MIXER_STYLE.items() if any(_mixer(row) == key for row in rows)]
    handles.append(Line2D([], [], color=MIXER_STYLE["attention"][0], marker=r"$\rightarrow$", ms=12, ls="",
                          label="the same network, conv -> window attention"))
    fig.legend(handles=handles, loc="outside lower center", ncols=3, fontsize=9, frameon=False)
    seeds = "-".join(map(str, sorted({min(r["seeds"] for r in rows), max(r["seeds"] for r in rows)})))
    fig.suptitle(f"The spatial mixer: depthwise conv, window attention, dense conv, Swin\n{_data_name(rows)}, "
                 f"{rows[0]['scale']} scale, {rows[0]['input_size']} px, {seeds} seeds each", fontsize=11)
    _save(fig, out_base)
