"""The roadmap figure (the paper's Figure 2, redrawn for our runs) and two cost plots, top-1 against FLOPs and
against measured training throughput, drawn from a roadmap study's rows."""

import itertools
import math
import statistics
import warnings
from collections.abc import Sequence
from pathlib import Path

import matplotlib as mpl
from matplotlib.axes import Axes
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from roadmap.figures.common import GOAL_COLOR, LABEL_OFFSETS, STYLE, _data_name, _figure, _flops, _place_labels, _save
from roadmap.results.records import load_records
from roadmap.results.stats import SHARED
from roadmap.steps import GOAL, ROADMAP, STEPS

GROUPS = tuple(dict.fromkeys(step.group for step in ROADMAP))
GROUP_COLORS = dict(zip(GROUPS, mpl.colormaps["Dark2"].colors, strict=False))
STAR = "#5b7fc7"  # Figure 2's light blue for the FLOPs line
PAPER_GRAY = "0.8"
HATCH = "///"  # the steps the roadmap tried and did not adopt, as in Figure 2
THROUGHPUT_NOTE = ("FLOPs miss the real cost of depthwise convolutions, GELU and LayerNorm, which move more memory "
                   "per multiply-add:\nsteps of equal FLOPs can train at very different speeds. Throughput: training "
                   "images per second, measured.")
ROADMAP_FIGURES = ("roadmap", "accuracy_vs_gflops", "accuracy_vs_throughput")  # an experiment's files, <name>.png


def _context(rows: list[dict]) -> str:
    """What the numbers are: data set, scale, regime, input size and seeds, for the titles."""
    head = rows[0]
    seeds = sorted({row["seeds"] for row in rows})
    n = str(seeds[0]) if len(seeds) == 1 else f"{seeds[0]}-{seeds[-1]}"
    return (f"{_data_name(rows)}, {head['scale']} scale, {head['regime']} regime, "
            f"{head['input_size']} px, {n} seed{'s' * (seeds[-1] > 1)} per step")


def _ticks_within(lo: float, hi: float, n: int = 4) -> list[float]:
    return [tick for tick in MaxNLocator(n, steps=[1, 2, 5, 10]).tick_values(lo, hi) if lo <= tick <= hi]


def _group_brackets(ax: Axes, rows: list[dict]) -> None:
    """Figure 2's group labels: a bracket over each group's rows, its name to the left."""
    ax.axis("off")
    ax.set_xlim(0, 1)
    for group, members in itertools.groupby(enumerate(rows), key=lambda item: item[1]["group"]):
        rows_of_group = [i for i, _ in members]
        top, bottom = rows_of_group[0] - 0.3, rows_of_group[-1] + 0.3
        if len(rows_of_group) > 1:
            ax.plot([1, 0.9, 0.9, 1], [top, top, bottom, bottom], color="0.25", lw=1.2, clip_on=False)
        ax.text(0.84, (top + bottom) / 2, (group[0].upper() + group[1:]).replace(" ", "\n"), ha="right",
                va="center", fontsize=11, linespacing=1.1)


def _our_bars(ax: Axes, rows: list[dict], also: Sequence[float] = ()) -> list[tuple[float, float, float, float]]:
    """Our mean top-1 per step as Figure 2's bars, purple darkening down the roadmap, the axis spanning the values
    `also` too; returns the bar colours."""
    n = len(rows)
    mean = [row["top1_mean"] for row in rows]
    sd = [row["top1_sd"] or 0.0 for row in rows]
    ends = [*(m - s for m, s in zip(mean, sd, strict=True)), *(m + s for m, s in zip(mean, sd, strict=True)), *also]
    low, high = min(ends), max(ends)
    left = math.floor(low - 0.25 * max(high - low, 2.0))
    ax.set_xlim(left, left + (high - left) / 0.56)  # bars and their labels in the left 62%, the stars after
    colors = [mpl.colormaps["Purples"](0.45 + 0.45 * i / max(n - 1, 1)) for i in range(n)]
    bars = ax.barh(range(n), [m - left for m in mean], left=left, height=0.72, color=colors)
    for bar, row in zip(bars, rows, strict=True):
        if not row["adopted"]:
            bar.set(hatch=HATCH, edgecolor="white", linewidth=0)
    spread = [i for i, row in enumerate(rows) if row["top1_sd"] is not None]
    ax.errorbar([mean[i] for i in spread], spread, xerr=[sd[i] for i in spread], fmt="none", ecolor="0.15",
                elinewidth=1, capsize=3)
    for i in range(n):
        ax.annotate(f"{mean[i]:.1f}", (mean[i] + sd[i], i), xytext=(5, 0), textcoords="offset points", va="center",
                    fontsize=9, color="0.1")
    ax.set_yticks(range(n), [STEPS[row["step"]].label for row in rows], fontsize=10)
    ax.set_ylim(n - 0.5, -0.5)
    ax.set_xticks(_ticks_within(left, high, 5))
    ax.spines["bottom"].set_bounds(left, high)
    ax.set_xlabel(f"top-1 (%) on {_data_name(rows)} validation, mean ± sd over seeds")
    ax.tick_params(axis="y", length=0, labelleft=True)  # sharey hides the labels of all but the first column
    ax.spines["top"].set_visible(False)
    return colors


def _flops_stars(ax: Axes, rows: list[dict]) -> str:
    """Figure 2's FLOPs: stars on a dashed line, on a top axis of their own right of the bars; returns the unit."""
    flops, unit = _flops(rows)
    lo, hi = min(flops), max(flops)
    span = (hi - lo) or hi * 0.1
    start = lo - 0.66 * span / 0.24  # the stars span 66% to 90% of the width
    ax.set_xlim(start, start + span / 0.24)
    ax.plot(flops, range(len(rows)), "--", color=STAR, lw=1.4, marker="*", ms=13, mfc=STAR, mec="white", mew=0.6)
    for i, value in enumerate(flops):
        ax.annotate(f"{value:.3g}", (value, i), xytext=(10, 0), textcoords="offset points", va="center",
                    fontsize=8.5, color=STAR, bbox={"fc": "white", "ec": "none", "pad": 0.5, "alpha": 0.8})
    ax.set_xticks(_ticks_within(lo, hi, 3))
    ax.spines["top"].set_bounds(lo, hi)
    ax.spines["top"].set_color(STAR)
    for side in ("left", "bottom"):
        ax.spines[side].set_visible(False)
    ax.tick_params(axis="x", colors=STAR)
    ax.set_xlabel(f"{unit} (stars, ours)", color=STAR, loc="right")
    return unit


def _paper_bars(ax: Axes, rows: list[dict]) -> None:
    """The paper's top-1 per step in gray, on an axis of its own: ImageNet numbers, not comparable with ours."""
    paper = [row["paper_top1"] for row in rows]
    left, high = math.floor(min(paper)) - 1, max(paper)
    bars = ax.barh(range(len(rows)), [p - left for p in paper], left=left, height=0.72, color=PAPER_GRAY)
    for i, (bar, row) in enumerate(zip(bars, rows, strict=True)):
        if not row["adopted"]:
            bar.set(hatch=HATCH, edgecolor="white", linewidth=0)
        ax.annotate(f"{paper[i]:.1f}", (paper[i], i), xytext=(3, 0), textcoords="offset points", va="center",
                    fontsize=8.5, color="0.3")
    ax.set_xlim(left, high + 0.3 * (high - left))
    ax.set_xticks(_ticks_within(left, high, 3))
    ax.spines["bottom"].set_bounds(left, high)
    ax.tick_params(axis="y", labelleft=False, length=0)
    ax.spines["top"].set_visible(False)
    ax.set_title("the paper, for reference", fontsize=10, color="0.3")
    ax.set_xlabel(f"paper's top-1 (%)\nImageNet-1K, 224 px\n{rows[0]['regime']} regime", color="0.3")


def goal_runs(folder: Path, rows: list[dict]) -> dict | None:
    """The runs in `folder` of the model Figure 2 draws the roadmap against (Swin-T; Swin-B in the ResNet-200
    regime) that share the rows' data set, scale, regime and input size: its name, top-1 mean and sd over its
    seeds, its GFLOPs, and the paper's top-1 for it; None, with a warning, where there are none."""
    name, paper = GOAL[rows[0]["regime"]]
    runs = [r for r in load_records(folder, roadmap_only=False)
            if r.get("model_name") == name and all(r[key] == rows[0][key] for key in SHARED)]
    if not runs:
        warnings.warn(f"no {name} records in {folder} at the roadmap's " +
                      ", ".join(f"{key} {rows[0][key]}" for key in SHARED) + ": the figure has no goal line",
                      stacklevel=2)
        return None
    top1 = [r["top1"] for r in runs]
    return {"name": name, "top1_mean": statistics.fmean(top1), "seeds": len(runs), "gflops": runs[0]["gflops"],
            "input_size": runs[0]["input_size"],
            "top1_sd": statistics.stdev(top1) if len(top1) > 1 else None, "paper_top1": paper.top1}


def _goal_lines(ax: Axes, paper_ax: Axes, goal: dict) -> list[Line2D]:
    """Figure 2's goal, as lines across both panels: the goal model's top-1 from its own runs (a band of ± sd)
    across our bars, the paper's across the paper's; returns their legend entries."""
    label = goal["name"].replace("_", "-").title()  # swin_t: Swin-T
    mean, sd = goal["top1_mean"], goal["top1_sd"]
    ax.axvline(mean, color=GOAL_COLOR, ls="--", lw=1.4, zorder=3)
    if sd:
        ax.axvspan(mean - sd, mean + sd, color=GOAL_COLOR, alpha=0.15, lw=0, zorder=0)
    paper_ax.axvline(goal["paper_top1"], color=GOAL_COLOR, ls="--", lw=1.4, zorder=3)
    flops, unit = _flops([goal])
    spread = "" if sd is None else f" ± {sd:.2f}"
    return [Line2D([], [], color=GOAL_COLOR, ls="--", lw=1.4,
                   label=f"{label}, its own runs: {mean:.2f}{spread} ({goal['seeds']} seed{'s' * (goal['seeds'] > 1)}"
                   f", {flops[0]:.3g} {unit.split()[0]}); the paper's: {goal['paper_top1']:.1f}")]


@mpl.rc_context(STYLE)
def roadmap_figure(rows: list[dict], out_base: Path, goal: dict | None = None) -> None:
    """Figure 2's layout for our runs: a bar per step (mean top-1, sd error bars), FLOPs as stars on a top axis,
    and the paper's ImageNet top-1 in a panel of its own, since the two data sets' accuracies share no scale;
    with `goal` (`goal_runs`), Swin's top-1 as a line across each, as Figure 2 draws Swin-T's 81.3."""
    fig = _figure(11, 0.42 * len(rows) + 2.4 + 0.3 * (goal is not None))
    groups_ax, ax, paper_ax = fig.subplots(1, 3, sharey=True, gridspec_kw={"width_ratios": [0.9, 4.8, 1.6]})
    _group_brackets(groups_ax, rows)
    colors = _our_bars(ax, rows, [goal["top1_mean"]] if goal else ())
    unit = _flops_stars(ax.twiny(), rows)
    _paper_bars(paper_ax, rows)
    middle = colors[len(colors) // 2]
    handles = [
        Patch(color=middle, label="our top-1 (mean)"),
        Line2D([], [], color="0.15", marker="|", ms=8, lw=1, label="± sd over seeds"),
        Patch(facecolor=middle, hatch=HATCH, edgecolor="white", lw=0, label="not adopted"),
        Line2D([], [], color=STAR, ls="--", marker="*", ms=11, mec="white", label=unit),
        Patch(color=PAPER_GRAY, label="paper's top-1 (ImageNet-1K)"),
    ]
    if goal:
        handles += _goal_lines(ax, paper_ax, goal)
    fig.legend(handles=handles, loc="outside lower center", ncols=3 if goal else len(handles), frameon=False,
               fontsize=9)
    fig.suptitle(f"ResNet → ConvNeXt roadmap: {_context(rows)}", fontsize=12)
    _save(fig, out_base)


@mpl.rc_context(STYLE)
def _scatter(rows: list[dict], out_base: Path, x: list[float], xlabel: str, title: str, note: str = "") -> None:
    """Mean top-1 (sd error bars) against a cost, each point named by its step and coloured by its group."""
    fig = _figure(9.5, 6.4 if note else 6.0)
    ax = fig.subplots()
    labels, points = [], []
    for row, xi in zip(rows, x, strict=True):
        color = GROUP_COLORS[row["group"]]
        ax.errorbar(xi, row["top1_mean"], yerr=row["top1_sd"], fmt="o", ms=7, color=color, capsize=3,
                    mfc=color if row["adopted"] else "white", mew=1.5)
        labels.append(ax.annotate(STEPS[row["step"]].label, (xi, row["top1_mean"]), xytext=LABEL_OFFSETS[0],
                                  textcoords="offset points", va="center", fontsize=8.5,
                                  arrowprops={"arrowstyle": "-", "color": "0.55", "lw": 0.6, "shrinkA": 1,
                                              "shrinkB": 5}))
        points.append((xi, row["top1_mean"], row["top1_sd"] or 0.0))
    ax.margins(x=0.2, y=0.12)  # room for the labels inside the axes
    ax.set_xlabel(xlabel)
    ax.set_ylabel("top-1 (%), mean ± sd over seeds")
    ax.spines["top"].set_visible(False)
    ax.grid(alpha=0.3)
    present = list(dict.fromkeys(row["group"] for row in rows))
    handles = [Line2D([], [], ls="", marker="o", color=GROUP_COLORS[g], label=g) for g in present]
    if not all(row["adopted"] for row in rows):
        handles.append(Line2D([], [], ls="", marker="o", color="0.3", mfc="white", mew=1.5, label="not adopted"))
    fig.legend(handles=handles, loc="outside right upper", title="step group", fontsize=9, frameon=False)
    fig.suptitle(f"{title}\n{_context(rows)}", fontsize=11)
    if note:
        fig.supxlabel(note, fontsize=8.5, color="0.3", x=0.02, ha="left")
    _place_labels(ax, labels, points)
    _save(fig, out_base)


def accuracy_vs_gflops(rows: list[dict], out_base: Path) -> None:
    flops, unit = _flops(rows)
    _scatter(rows, out_base, flops, unit, "Top-1 against FLOPs")


def accuracy_vs_throughput(rows: list[dict], out_base: Path) -> None:
    devices = ", ".join(sorted({row["device"] for row in rows}))
    _scatter(rows, out_base, [row["train_images_per_second_mean"] for row in rows],
             f"training throughput (images/s on {devices})", "Top-1 against measured training throughput",
             THROUGHPUT_NOTE)
