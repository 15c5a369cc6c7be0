"""The proxy calibration study's chart (roadmap/studies/calibration.py tabulates the study): the roadmap's two ends
under every candidate proxy, beside the minutes a run takes."""

import math
from pathlib import Path

import matplotlib as mpl
from matplotlib.axes import Axes
from matplotlib.ticker import FixedLocator, FormatStrFormatter, NullFormatter

from roadmap.figures.common import STYLE, _figure, _save

CENTRE = "proxy"  # the candidate that is the centre, conf/scale/calibration_centre.yaml, unchanged
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
