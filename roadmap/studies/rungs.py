"""The roadmap across rungs: each step's Δ top-1 at every rung (the CPU proxy at 48 px, a GPU rung, ...) beside the
paper's, and how well each rung ranks the steps as the paper does.

A rung is one roadmap study's records (an experiment's records/). Per step, its Δ is the step minus its parent,
paired by seed, with the 95% interval of the mean (Student's t: roadmap/results/stats.py). Per rung, Spearman's rank
correlation of the steps' Δ with the paper's (scipy), over the steps both have. A step's reading across the rungs:
`holds` where every rung gives it the same verdict (a gain or a loss beyond noise, or neither), `moves` where
they differ, which is what a finding that is an artefact of one proxy looks like. Where a rung runs the first
one's setting another way (the roadmap on a GPU against the CPU's, both at the proxy), its step means are
compared with the first's too: they agree within max(1.0, 2 x the first's seed sd).

`python scripts/cross_rung.py --rung "CPU 48 px=experiments/fashion_mnist_proxy" --rung "GPU rung=..." --out DIR`.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from pathlib import Path

from scipy.stats import spearmanr

from roadmap.results.records import RECORDS, atomic_write_text, load_records
from roadmap.results.stats import aggregate, ci95
from roadmap.results.tables import plus_minus, to_csv
from roadmap.steps import ROADMAP, STEPS

VERDICTS = {1: "gain", -1: "loss", 0: "within noise"}


@dataclass(frozen=True)
class Rung:
    """One rung's steps, by name, as roadmap/results/stats.py aggregates them."""

    label: str
    rows: dict[str, dict]

    @classmethod
    def of(cls, label: str, records: list[dict]) -> Rung:
        return cls(label, {row["step"]: row for row in aggregate(records)})

    def delta(self, step: str) -> tuple[float | None, float | None, float | None]:
        """The step's mean Δ top-1 and its 95% interval (None where it or its parent is missing, or one seed)."""
        row = self.rows.get(step)
        if row is None or row["delta_top1_mean"] is None:
            return None, None, None
        half = ci95(row["delta_top1_sd"], row["paired_seeds"])
        mean = row["delta_top1_mean"]
        return (mean, None, None) if half is None else (mean, mean - half, mean + half)

    @property
    def regime(self) -> str:
        return next(iter(self.rows.values()))["regime"]


def verdict(low: float | None, high: float | None) -> int | None:
    """+1 for a gain beyond noise (the interval above zero), -1 for a loss, 0 for neither; None without interval."""
    if low is None:
        return None
    return 1 if low > 0 else -1 if high < 0 else 0


def cross_rung_rows(rungs: list[Rung]) -> list[dict]:
    """One row per roadmap step with a parent: the paper's Δ, each rung's Δ and interval, and the reading."""
    rows = []
    for step in ROADMAP:
        if step.parent is None:
            continue
        regime = rungs[0].regime
        row: dict = {"step": step.name,
                     "paper_delta": round(step.paper[regime].top1 - STEPS[step.parent].paper[regime].top1, 2)}
        verdicts = []
        for rung in rungs:
            mean, low, high = rung.delta(step.name)
            row.update({f"{rung.label}": mean, f"{rung.label} ci_low": low, f"{rung.label} ci_high": high})
            verdicts.append(verdict(low, high))
        known = [v for v in verdicts if v is not None]
        if len(known) < 2:
            row["reading"] = ""
        elif len(set(known)) == 1:
            row["reading"] = f"holds: {VERDICTS[known[0]]}"
        else:
            row["reading"] = "moves: " + ", ".join(f"{VERDICTS[v]} at {r.label}" for r, v in zip(rungs, verdicts,
                                                                                                    strict=True)
                                                  if v is not None)
        rows.append(row)
    return rows


def rank_correlation(rows: list[dict], label: str) -> tuple[float | None, int]:
    """Spearman's rho of a rung's Δ with the paper's over the steps it has, and their count."""
    pairs = [(row["paper_delta"], row[label]) for row in rows if row[label] is not None]
    if len(pairs) < 3:
        return None, len(pairs)
    rho = spearmanr(*zip(*pairs, strict=True)).statistic
    return (None if math.isnan(rho) else float(rho)), len(pairs)


def agreement(reference: Rung, other: Rung) -> list[dict]:
    """Per step both rungs ran: their top-1 means and whether they agree within max(1.0, 2 x the reference's seed
    sd), the test of a rung that changes only how the runs are made (the GPU's path against the CPU's)."""
    rows = []
    for step in ROADMAP:
        mine, theirs = reference.rows.get(step.name), other.rows.get(step.name)
        if mine is None or theirs is None:
            continue
        bound = max(1.0, 2 * (mine["top1_sd"] or 0.0))
        difference = theirs["top1_mean"] - mine["top1_mean"]
        rows.append({"step": step.name, "reference": mine["top1_mean"], "reference_sd": mine["top1_sd"],
                     "other": theirs["top1_mean"], "other_sd": theirs["top1_sd"], "difference": difference,
                     "bound": bound, "agrees": abs(difference) <= bound})
    return rows


def _same_setting(a: Rung, b: Rung) -> bool:
    first = next(iter(a.rows.values()))
    second = next(iter(b.rows.values()))
    return all(first[key] == second[key] for key in ("scale", "input_size", "data"))


def _cell(mean: float | None, low: float | None, high: float | None) -> str:
    if mean is None:
        return ""
    return f"{mean:+.2f}" + ("" if low is None else f" [{low:+.2f}, {high:+.2f}]")


def to_markdown(rungs: list[Rung], rows: list[dict]) -> str:
    labels = [rung.label for rung in rungs]
    lines = [
        "# The roadmap across rungs",
        "",
        "Δ top-1 of each step over its parent (points), paired by seed: mean and the 95% interval of the mean "
        "(Student's t). The paper's Δ: ImageNet-1K, Table 10. Reading: `holds` where every rung gives the step the "
        "same verdict (gain or loss beyond noise, or within noise), `moves` where the rungs differ.",
        "",
        "| rung | data | scale | input px | seeds | steps |",
        "|---|---|---|---|---|---|",
    ]
    for rung in rungs:
        head = next(iter(rung.rows.values()))
        seeds = max(row["seeds"] for row in rung.rows.values())
        lines.append(f"| {rung.label} | {head['data']} | {head['scale']} | {head['input_size']} | {seeds} | "
                     f"{len(rung.rows)} |")
    lines += ["", "| step | paper Δ | " + " | ".join(labels) + " | reading |",
              "|---|---|" + "---|" * len(labels) + "---|"]
    for row in rows:
        cells = [_cell(row[label], row[f"{label} ci_low"], row[f"{label} ci_high"]) for label in labels]
        lines.append(f"| {row['step']} | {row['paper_delta']:+.2f} | " + " | ".join(cells) + f" | {row['reading']} |")
    lines += ["", "Spearman's rank correlation of each rung's Δ with the paper's:", ""]
    for label in labels:
        rho, n = rank_correlation(rows, label)
        lines.append(f"- {label}: " + ("n/a" if rho is None else f"{rho:+.2f}") + f" over {n} steps")
    for other in rungs[1:]:
        if not _same_setting(rungs[0], other):
            continue
        agreed = agreement(rungs[0], other)
        lines += ["", f"## {other.label} against {rungs[0].label}: the same runs made another way", "",
                  f"Top-1 means (± seed sd); they agree where they differ by at most max(1.0, 2 x {rungs[0].label}'s "
                  f"sd). {sum(r['agrees'] for r in agreed)} of {len(agreed)} steps agree.", "",
                  f"| step | {rungs[0].label} | {other.label} | difference | bound | agrees |",
                  "|---|---|---|---|---|---|"]
        for r in agreed:
            means = f"{plus_minus(r['reference'], r['reference_sd'])} | {plus_minus(r['other'], r['other_sd'])}"
            lines.append(f"| {r['step']} | {means} | {r['difference']:+.2f} | {r['bound']:.2f} | "
                         f"{'yes' if r['agrees'] else 'no'} |")
    return "\n".join(lines) + "\n"


def _rung_argument(text: str) -> tuple[str, Path]:
    label, sep, folder = text.partition("=")
    if not sep or not label or not folder:
        raise argparse.ArgumentTypeError(f"--rung {text!r}: expected LABEL=FOLDER (an experiment or its {RECORDS}/)")
    return label, Path(folder)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Each roadmap step's Δ at every rung beside the paper's, and each "
                                     "rung's rank correlation with the paper.")
    parser.add_argument("--rung", type=_rung_argument, action="append", required=True, metavar="LABEL=FOLDER",
                        help=f"a rung's records: an experiment folder (its {RECORDS}/ is read) or a records folder; "
                        "twice or more, in the order of the table's columns")
    parser.add_argument("--out", type=Path, help="write rungs.md and rungs.csv here (default: print only)")
    args = parser.parse_args(argv)
    rungs = []
    for label, folder in args.rung:
        records_dir = folder / RECORDS if (folder / RECORDS).is_dir() else folder
        records = load_records(records_dir) if records_dir.is_dir() else []
        if not records:
            raise SystemExit(f"--rung {label}={folder}: no completed roadmap records in {records_dir}")
        rungs.append(Rung.of(label, records))
    if len({rung.regime for rung in rungs}) > 1:
        raise SystemExit("the rungs' records follow different regimes; compare rungs of one regime")
    rows = cross_rung_rows(rungs)
    markdown = to_markdown(rungs, rows)
    if args.out:
        atomic_write_text(args.out / "rungs.md", markdown)
        atomic_write_text(args.out / "rungs.csv", to_csv(rows))
    print(markdown, end="")
