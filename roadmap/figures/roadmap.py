"""The roadmap figure (the paper's Figure 2, redrawn for our runs) and two cost plots, drawn from an experiment
folder's records alone, so a figure never needs a training run: `python scripts/figure.py --experiment DIR`."""

import argparse
import itertools
import math
import statistics
import warnings
from collections.abc import Sequence
from pathlib import Path

import matplotlib as mpl
import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.text import Annotation, Text
from matplotlib.ticker import FixedLocator, FormatStrFormatter, MaxNLocator, NullFormatter

from roadmap.config.ablation import FINAL_STEP
from roadmap.config.labels import STUDIES
from roadmap.results.records import RECORDS, load_records
from roadmap.results.stats import SHARED, aggregate, compare_folder
from roadmap.steps import GOAL, ROADMAP, STEPS
from roadmap.studies.calibration import CENTRE

STYLE = {
    "font.size": 10,
    "axes.spines.right": False,
    "svg.hashsalt": "roadmap",  # fixed element ids, so redrawing the same records rewrites the same SVG
}
GROUPS = tuple(dict.fromkeys(step.group for step in ROADMAP))
GROUP_COLORS = dict(zip(GROUPS, mpl.colormaps["Dark2"].colors, strict=False))
STAR = "#5b7fc7"  # Figure 2's light blue for the FLOPs line
PAPER_GRAY = "0.8"
GOAL_COLOR = "#e07b54"  # Figure 2's salmon for Swin
HATCH = "///"  # the steps the roadmap tried and did not adopt, as in Figure 2
# Where a point's label may go, in points from the point, in order of preference: nearest first, right before left.
LABEL_OFFSETS = sorted(((dx, dy) for dx in (8, -8, 18, -18, 32, -32, 50, -50)
                        for dy in (0, 10, -10, 20, -20, 30, -30, 45, -45, 60, -60)),
                       key=lambda offset: (math.hypot(*offset), offset[0] < 0))
THROUGHPUT_NOTE = ("FLOPs miss the real cost of depthwise convolutions, GELU and LayerNorm, which move more memory "
                   "per multiply-add:\nsteps of equal FLOPs can train at very different speeds. Throughput: training "
                   "images per second, measured.")


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)  # the Agg canvas: no display needed, and a renderer to measure labels with
    return fig


def _save(fig: Figure, out_base: Path) -> None:
    out_base.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_base.parent / f"{out_base.name}.png", dpi=150)
    fig.savefig(out_base.parent / f"{out_base.name}.svg", metadata={"Date": None})


def _data_name(rows: list[dict]) -> str:
    return rows[0]["data"].removesuffix("Data")  # the data module's class name, e.g. FashionMNISTData


def _context(rows: list[dict]) -> str:
    """What the numbers are: data set, scale, regime, input size and seeds, for the titles."""
    head = rows[0]
    seeds = sorted({row["seeds"] for row in rows})
    n = str(seeds[0]) if len(seeds) == 1 else f"{seeds[0]}-{seeds[-1]}"
    return (f"{_data_name(rows)}, {head['scale']} scale, {head['regime']} regime, "
            f"{head['input_size']} px, {n} seed{'s' * (seeds[-1] > 1)} per step")


def _flops(rows: list[dict]) -> tuple[list[float], str]:
    """Each row's FLOPs at the run's input size, in G or, for proxy networks, in M so the labels stay short."""
    gflops = [row["gflops"] for row in rows]
    px = rows[0]["input_size"]
    if max(gflops) < 0.1:
        return [g * 1000 for g in gflops], f"MFLOPs at {px}×{px} px"
    return gflops, f"GFLOPs at {px}×{px} px"


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


def _shared_area(boxes: np.ndarray, others: np.ndarray) -> np.ndarray:
    """For each box (x0, y0, x1, y1), the area it shares with `others`, summed."""
    width = np.minimum(boxes[:, None, 2], others[None, :, 2]) - np.maximum(boxes[:, None, 0], others[None, :, 0])
    height = np.minimum(boxes[:, None, 3], others[None, :, 3]) - np.maximum(boxes[:, None, 1], others[None, :, 1])
    return (width.clip(0) * height.clip(0)).sum(axis=1)


def _place_labels(ax: Axes, labels: list[Annotation], points: list[tuple[float, float, float]]) -> None:
    """Move each point's label (annotating (x, y) with error bar +-sd) to the nearest spot, right before left,
    where it covers no other label, point or error bar: several steps share their FLOPs or throughput, so labels
    beside their points would sit on each other. Crowded points choose first; a label moved away gets a leader line."""
    fig = ax.get_figure()
    fig.canvas.draw()  # the constrained layout fixes the axes, and so where everything lands
    renderer = fig.canvas.get_renderer()
    pt = fig.dpi / 72
    xy = np.array([(x, y) for x, y, _ in points])
    sd = np.array([s for _, _, s in points])
    centres = ax.transData.transform(xy)
    bottoms = ax.transData.transform(np.c_[xy[:, 0], xy[:, 1] - sd])[:, 1]
    tops = ax.transData.transform(np.c_[xy[:, 0], xy[:, 1] + sd])[:, 1]
    markers = np.c_[centres - 5 * pt, centres + 5 * pt]
    error_bars = np.c_[centres[:, 0] - 4 * pt, bottoms, centres[:, 0] + 4 * pt, tops]
    obstacles = np.concatenate([markers, error_bars])
    frame = ax.get_window_extent(renderer).extents[None, :]
    offsets = np.array(LABEL_OFFSETS) * pt
    distances = np.linalg.norm(centres[:, None] - centres[None], axis=-1)
    for i in np.argsort(-(distances < 60 * pt).sum(axis=1), kind="stable"):
        size = Text.get_window_extent(labels[i], renderer)
        x0 = centres[i, 0] + offsets[:, 0] - np.where(offsets[:, 0] < 0, size.width, 0)
        y0 = centres[i, 1] + offsets[:, 1] - size.height / 2
        boxes = np.c_[x0 - pt, y0 - pt, x0 + size.width + pt, y0 + size.height + pt]
        area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        clash = _shared_area(boxes, obstacles) + area - _shared_area(boxes, frame)  # 0: a free spot in the axes
        best = int(np.argmin(clash))  # the first free spot, else the least covering one
        obstacles = np.concatenate([obstacles, boxes[best:best + 1]])
        labels[i].xyann = LABEL_OFFSETS[best]
        labels[i].set_horizontalalignment("right" if LABEL_OFFSETS[best][0] < 0 else "left")
        labels[i].arrow_patch.set_visible(best > 0)


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


ENDPOINT_STYLE = {"baseline": ("#7b4fa0", "o", "ResNet-50 (baseline, original recipe)"),  # Figure 2's purple
                  "separate_downsampling": ("#d08a1e", "s", "ConvNeXt-T (separate_downsampling, modern recipe)")}
CHOSEN_BAND = "#fbeec9"


def _endpoint_panel(ax: Axes, runs: list[dict | None], network: str, centre: dict | None) -> None:
    """One end of the roadmap under every candidate (a row each): mean top-1 with its seed sd as an error bar, the
    numbers in a column right of the axes, and the centre's mean as a dashed line to read each change against."""
    color, marker, label = ENDPOINT_STYLE[network]
    for y, row in enumerate(runs):
        if row is None or row["error"]:
            ax.annotate("failed" if row else "not run in this study", (0.5, y), xycoords=("axes fraction", "data"),
                        ha="center", va="center", fontsize=8.5, color="0.55", style="italic",
                        bbox={"fc": "white", "ec": "none", "pad": 1})
            continue
        ax.errorbar(row["top1_mean"], y, xerr=row["top1_sd"], fmt=marker, ms=6, color=color, capsize=2.5,
                    mfc=color if row["default"] else "white", mew=1.4, elinewidth=1.2)
        sd = "" if row["top1_sd"] is None else f" ± {row['top1_sd']:.2f}"
        ax.annotate(f"{row['top1_mean']:.2f}{sd}", (1.02, y), xycoords=("axes fraction", "data"), va="center",
                    fontsize=8.5, color="0.15", fontweight="bold" if row["default"] else "normal")
    if centre is not None:
        ax.axvline(centre["top1_mean"], color=color, ls="--", lw=0.9, alpha=0.7)
    ax.set_title(label, fontsize=10, color=color, loc="left")
    ax.set_xlabel("top-1 (%), mean ± sd over seeds\n(dashed: the centre, `proxy`)")
    ax.grid(axis="x", alpha=0.3)
    ax.spines["top"].set_visible(False)


@mpl.rc_context(STYLE)
def calibration_figure(rows: list[dict], out_base: Path) -> None:
    """The calibration study (roadmap/studies/calibration.py), one row per candidate proxy, sorted by ResNet-50's top-1
    (the end the candidates move most, and which every candidate trains): each end's mean top-1 ± seed sd, its numbers
    beside it, and the minutes a run takes; the chosen proxy's row is shaded. Every number is found along its row."""
    by_candidate: dict[str, dict[str, dict]] = {}
    for row in rows:
        by_candidate.setdefault(row["candidate"], {})[row["network"]] = row
    baseline, final = ENDPOINT_STYLE

    def rank(name: str) -> tuple[float, str]:
        row = by_candidate[name].get(baseline)
        return (-row["top1_mean"] if row and not row["error"] else math.inf, name)

    names = sorted(by_candidate, key=rank)
    fig = _figure(13, 0.3 * len(names) + 2.2)
    axes = fig.subplots(1, 3, sharey=True, gridspec_kw={"width_ratios": [3, 3, 2]})
    centre = by_candidate.get(CENTRE, {})
    for ax, network in zip(axes[:2], (baseline, final), strict=True):
        _endpoint_panel(ax, [by_candidate[n].get(network) for n in names], network, centre.get(network))
    minutes_ax = axes[2]
    for network, shift in ((baseline, -0.13), (final, 0.13)):
        color, marker, _ = ENDPOINT_STYLE[network]
        runs = [(y, by_candidate[n].get(network)) for y, n in enumerate(names)]
        runs = [(y, row) for y, row in runs if row and not row["error"]]
        minutes_ax.plot([row["minutes_mean"] for _, row in runs], [y + shift for y, _ in runs], ls="", ms=5,
                        marker=marker, color=color, mfc="white", mew=1.2)
    chosen = {name for name, runs in by_candidate.items() if any(row["default"] for row in runs.values())}
    for y, name in enumerate(names):
        cost = [f"{by_candidate[name][n]['minutes_mean']:.1f}" if n in by_candidate[name]
                and not by_candidate[name][n]["error"] else "-" for n in (baseline, final)]
        minutes_ax.annotate(" / ".join(cost), (1.02, y), xycoords=("axes fraction", "data"), va="center",
                            fontsize=8.5, color="0.15")
        if name in chosen:
            for ax in axes:
                ax.axhspan(y - 0.5, y + 0.5, color=CHOSEN_BAND, zorder=0, lw=0)
    minutes_ax.set_xscale("log")  # most candidates cost 1-3 minutes a run, a few many more
    minutes_ax.xaxis.set_major_locator(FixedLocator([0.5, 1, 2, 4, 8, 16, 32]))
    minutes_ax.xaxis.set_major_formatter(FormatStrFormatter("%g"))
    minutes_ax.xaxis.set_minor_formatter(NullFormatter())
    minutes_ax.set_title("minutes per run", fontsize=10, loc="left")
    minutes_ax.set_xlabel("ResNet-50 / ConvNeXt-T, one run at a time\n(minutes, log scale)")
    minutes_ax.grid(axis="x", alpha=0.3)
    minutes_ax.spines["top"].set_visible(False)
    axes[0].set_yticks(range(len(names)), fontsize=9, labels=[
        name + " (the centre)" * (name == CENTRE) + " (scale=proxy)" * (name in chosen) for name in names])
    for tick, name in zip(axes[0].get_yticklabels(), names, strict=True):
        tick.set_fontweight("bold" if name in chosen else "normal")
    axes[0].set_ylim(len(names) - 0.5, -0.5)
    axes[0].tick_params(axis="y", length=0)
    for ax in axes[1:]:
        ax.tick_params(axis="y", length=0, labelleft=False)
    shown = [row for row in rows if not row["error"]]
    seeds = sorted({row["seeds"] for row in shown})
    fig.suptitle("Proxy calibration: each candidate proxy on the roadmap's two ends, sorted by ResNet-50's top-1\n"
                 f"Fashion-MNIST, full test set, {'-'.join(map(str, sorted({seeds[0], seeds[-1]})))} seeds each; a "
                 "candidate changes one or two things of the centre; filled and shaded: the chosen proxy "
                 f"({', '.join(sorted({row['device'] for row in shown}))})", fontsize=11)
    _save(fig, out_base)


MIXER_STYLE = {  # a network's spatial mixer: colour and legend label
    "depthwise": ("#5b3f94", "depthwise conv"),
    "attention": ("#3c8dbc", "window attention in its place"),
    "dense": ("0.45", "dense conv (space and channels at once)"),
    "goal": (GOAL_COLOR, "Swin (timm's; its own blocks)"),
}
WINDOW_ATTENTION = "+window_attention"


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
            twin = row["name"].removesuffix(WINDOW_ATTENTION)
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


ROADMAP_FIGURES = ("roadmap", "accuracy_vs_gflops", "accuracy_vs_throughput")  # an experiment's files, <name>.png
ABLATION_FIGURE = "ablation"
MIXERS_FIGURE = "mixers"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Draw the roadmap figure and the cost plots of an experiment.")
    parser.add_argument("--experiment", type=Path, required=True,
                        help=f"an experiment folder: reads its {RECORDS}/*.json, writes the figures beside them")
    parser.add_argument("--reference", metavar="NAME",
                        help="an ablation study: draw each variant's change from the run named NAME (ablation.png)")
    parser.add_argument("--mixers", action="store_true",
                        help="with --reference, the attention study: draw its networks by spatial mixer (mixers.png)")
    parser.add_argument("--goal", type=Path, metavar="RECORDS",
                        help="the roadmap figure: draw Swin's top-1 (Swin-T; Swin-B in the ResNet-200 regime) from "
                        "its records in RECORDS as a line, as Figure 2 draws Swin-T's (e.g. experiments/attention/"
                        "records)")
    parser.add_argument("--wandb", metavar="STUDY", choices=STUDIES,
                        help="then log the figures and the table to wandb as the summary run of STUDY (the study of "
                        "records that do not name theirs), with conf/logger's settings (offline by default)")
    parser.add_argument("--wandb-dir", type=Path, default=Path("outputs/summary"),
                        help="where the offline summary run is written, for `make wandb-sync` (default: %(default)s)")
    args = parser.parse_args(argv)
    folder = args.experiment / RECORDS
    if args.reference:
        rows = compare_folder(folder, args.reference)
        names: tuple[str, ...] = (MIXERS_FIGURE,) if args.mixers else (ABLATION_FIGURE,)
        (mixers_figure if args.mixers else ablation_figure)(rows, args.experiment / names[0])
    else:
        rows = aggregate(load_records(folder))
        if not rows:
            raise SystemExit(f"no completed records in {folder}")
        goal = goal_runs(args.goal, rows) if args.goal else None
        roadmap_figure(rows, args.experiment / ROADMAP_FIGURES[0], goal)
        for name, draw in zip(ROADMAP_FIGURES[1:], (accuracy_vs_gflops, accuracy_vs_throughput), strict=True):
            draw(rows, args.experiment / name)
        names = ROADMAP_FIGURES
    if args.wandb:
        from roadmap.studies.summary_run import log_summary_run  # wandb only for those who ask

        run = log_summary_run(load_records(folder, roadmap_only=not args.reference), args.wandb, rows,
                              {name: args.experiment / f"{name}.png" for name in names}, args.wandb_dir)
        if run:
            print(f"summary run: {run}")
