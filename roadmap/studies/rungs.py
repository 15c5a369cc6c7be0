"""The roadmap across rungs: each change's Δ top-1 at every rung (the CPU proxy at 48 px, a GPU rung, the proxy
trained longer, ...) beside the paper's, and how well each rung ranks the changes as the paper does.

A rung is one study's records (an experiment's records/, or one setting's folder in it). A comparison is one row:
the network with a change against the network without it, paired by seed: the roadmap's steps against their
parents, or ConvNeXt-T against ConvNeXt-T with the change reverted (leave-one-out, the ladder study). The paper's Δ
is always its path's (Table 10): it never reverted a change. Per comparison, the Δ's 95% interval of the mean is
Student's t over its own seeds, or, for the rows in `pooled`, over the seed variance pooled across them
(more degrees of freedom where each has two seeds). Per rung, Spearman's rank correlation of the Δ with the
paper's (scipy). A change's reading across the rungs: `holds` where every rung gives it the same verdict (a gain
or a loss beyond noise, or neither), `moves` where they differ, which is what a finding that is an artefact of one
proxy looks like. Where a rung runs the first one's setting another way (the roadmap on a GPU against the CPU's,
both at the proxy), its means are compared with the first's too: they agree within max(1.0, 2 x the first's sd).

`python scripts/cross_rung.py --rung "CPU 48 px=experiments/fashion_mnist_proxy" --rung "GPU rung=..." --out DIR`.
"""

from __future__ import annotations

import argparse
import math
import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from scipy.stats import spearmanr, t

from roadmap.config.ablation import FINAL_STEP, run_name
from roadmap.results.records import RECORDS, atomic_write_text, load_records
from roadmap.results.stats import ci95, mean_sd
from roadmap.results.tables import plus_minus, to_csv
from roadmap.steps import ROADMAP, STEPS, chain, paper_delta

VERDICTS = {1: "gain", -1: "loss", 0: "within noise"}


@dataclass(frozen=True)
class Comparison:
    """One row: `network` against `without`, both run names, and the paper's Δ for the change."""

    change: str
    network: str
    without: str
    paper_delta: float


def path_comparisons(regime: str = "resnet50") -> list[Comparison]:
    """The roadmap's rows: each step against its parent."""
    return [Comparison(step.name, step.name, step.parent, paper_delta(step.name, regime))
            for step in ROADMAP if step.parent]


def revert_comparisons(changes: Sequence[str], final: str = FINAL_STEP, regime: str = "resnet50") -> list[Comparison]:
    """Leave-one-out's rows: `final` against `final` with the change reverted; the first step (the recipe), whose
    revert would train ConvNeXt-T under SGD, against the baseline instead, as the path has it."""
    rows = []
    for change in changes:
        if STEPS[change].parent == ROADMAP[0].name:
            rows.append(Comparison(change, change, ROADMAP[0].name, paper_delta(change, regime)))
        else:
            reverted = run_name([d for d in chain(final) if d != change])
            rows.append(Comparison(change, final, reverted, paper_delta(change, regime)))
    return rows


@dataclass(frozen=True)
class Rung:
    """One rung's runs: run name -> seed -> record."""

    label: str
    runs: dict[str, dict[int, dict]]

    @classmethod
    def of(cls, label: str, records: list[dict]) -> Rung:
        runs: dict[str, dict[int, dict]] = defaultdict(dict)
        for record in records:
            runs[record["name"]][record["seed"]] = record
        return cls(label, dict(runs))

    @property
    def head(self) -> dict:
        return next(iter(next(iter(self.runs.values())).values()))

    @property
    def regime(self) -> str:
        return self.head["regime"]

    @property
    def seeds(self) -> int:
        return max(len(runs) for runs in self.runs.values())

    def differences(self, comparison: Comparison) -> list[float]:
        """The network's top-1 minus the one without the change, per seed both have."""
        mine, theirs = self.runs.get(comparison.network, {}), self.runs.get(comparison.without, {})
        return [mine[seed]["top1"] - theirs[seed]["top1"] for seed in sorted(mine.keys() & theirs.keys())]

    def pooled_sd(self, comparisons: Sequence[Comparison]) -> tuple[float, int] | None:
        """The seed sd of a Δ pooled across `comparisons` (each weighted by its degrees of freedom), and its
        degrees of freedom; None with fewer than one."""
        groups = [d for d in map(self.differences, comparisons) if len(d) > 1]
        df = sum(len(d) - 1 for d in groups)
        if not df:
            return None
        return math.sqrt(sum(statistics.variance(d) * (len(d) - 1) for d in groups) / df), df

    def delta(self, comparison: Comparison,
              pooled: tuple[float, int] | None = None) -> tuple[float | None, float | None, float | None]:
        """The mean Δ and its 95% interval: over its own seeds, or the pooled sd's degrees of freedom; None where
        a side is missing, and no interval from one seed."""
        diffs = self.differences(comparison)
        if not diffs:
            return None, None, None
        mean, sd = mean_sd(diffs)
        if pooled is not None:
            half = float(t.ppf(0.975, pooled[1])) * pooled[0] / math.sqrt(len(diffs))
        else:
            half = ci95(sd, len(diffs))
        return (mean, None, None) if half is None else (mean, mean - half, mean + half)


def verdict(low: float | None, high: float | None) -> int | None:
    """+1 for a gain beyond noise (the interval above zero), -1 for a loss, 0 for neither; None without interval."""
    if low is None:
        return None
    return 1 if low > 0 else -1 if high < 0 else 0


def cross_rung_rows(rungs: list[Rung], comparisons: Sequence[Comparison] | None = None,
                    pooled: Sequence[Comparison] = ()) -> list[dict]:
    """One row per comparison (default: the roadmap's steps): the paper's Δ, each rung's Δ and interval, and the
    reading. The rows in `pooled` share one seed variance per rung, pooled across them (networks of one family, whose
    seeds scatter alike); the others' intervals are their own seeds'."""
    comparisons = path_comparisons(rungs[0].regime) if comparisons is None else comparisons
    pools = {rung.label: rung.pooled_sd(pooled) if pooled else None for rung in rungs}
    rows = []
    for comparison in comparisons:
        row: dict = {"step": comparison.change, "paper_delta": comparison.paper_delta}
        verdicts = []
        for rung in rungs:
            mean, low, high = rung.delta(comparison, pools[rung.label] if comparison in pooled else None)
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
    """Spearman's rho of a rung's Δ with the paper's over the rows it has, and their count."""
    pairs = [(row["paper_delta"], row[label]) for row in rows if row[label] is not None]
    if len(pairs) < 3:
        return None, len(pairs)
    rho = spearmanr(*zip(*pairs, strict=True)).statistic
    return (None if math.isnan(rho) else float(rho)), len(pairs)


def agreement(reference: Rung, other: Rung) -> list[dict]:
    """Per roadmap step both rungs ran: their top-1 means and whether they agree within max(1.0, 2 x the
    reference's seed sd), the test of a rung that changes only how the runs are made (the GPU's path against the
    CPU's)."""
    rows = []
    for step in ROADMAP:
        mine, theirs = reference.runs.get(step.name), other.runs.get(step.name)
        if not mine or not theirs:
            continue
        mine_mean, mine_sd = mean_sd([r["top1"] for r in mine.values()])
        their_mean, their_sd = mean_sd([r["top1"] for r in theirs.values()])
        bound = max(1.0, 2 * (mine_sd or 0.0))
        difference = their_mean - mine_mean
        rows.append({"step": step.name, "reference": mine_mean, "reference_sd": mine_sd, "other": their_mean,
                     "other_sd": their_sd, "difference": difference, "bound": bound,
                     "agrees": abs(difference) <= bound})
    return rows


def _same_setting(a: Rung, b: Rung) -> bool:
    return all(a.head[key] == b.head[key] for key in ("scale", "input_size", "data"))


def _cell(mean: float | None, low: float | None, high: float | None) -> str:
    if mean is None:
        return ""
    return f"{mean:+.2f}" + ("" if low is None else f" [{low:+.2f}, {high:+.2f}]")


PATH_TITLE = "The roadmap across rungs"
PATH_INTRO = ("Δ top-1 of each step over its parent (points), paired by seed: mean and the 95% interval of the mean "
              "(Student's t). The paper's Δ: ImageNet-1K, Table 10. Reading: `holds` where every rung gives the step "
              "the same verdict (gain or loss beyond noise, or within noise), `moves` where the rungs differ.")


def to_markdown(rungs: list[Rung], rows: list[dict], title: str = PATH_TITLE, intro: str = PATH_INTRO,
                first_column: str = "step") -> str:
    labels = [rung.label for rung in rungs]
    lines = [f"# {title}", "", intro, "", "| rung | data | scale | input px | passes | seeds | runs |",
             "|---|---|---|---|---|---|---|"]
    for rung in rungs:
        head = rung.head
        lines.append(f"| {rung.label} | {head['data']} | {head['scale']} | {head['input_size']} | "
                     f"{head.get('epochs', '')} | {rung.seeds} | {len(rung.runs)} |")
    lines += ["", f"| {first_column} | paper Δ | " + " | ".join(labels) + " | reading |",
              "|---|---|" + "---|" * len(labels) + "---|"]
    for row in rows:
        cells = [_cell(row[label], row[f"{label} ci_low"], row[f"{label} ci_high"]) for label in labels]
        lines.append(f"| {row['step']} | {row['paper_delta']:+.2f} | " + " | ".join(cells) + f" | {row['reading']} |")
    lines += ["", "Spearman's rank correlation of each rung's Δ with the paper's:", ""]
    for label in labels:
        rho, n = rank_correlation(rows, label)
        lines.append(f"- {label}: " + ("n/a" if rho is None else f"{rho:+.2f}") + f" over {n} {first_column}s")
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


def read_rung(label: str, folder: Path) -> Rung:
    """A rung from an experiment folder (its records/ is read) or a records folder; exits naming an empty one."""
    records_dir = folder / RECORDS if (folder / RECORDS).is_dir() else folder
    records = load_records(records_dir, roadmap_only=False) if records_dir.is_dir() else []
    if not records:
        raise SystemExit(f"--rung {label}={folder}: no completed records in {records_dir}")
    return Rung.of(label, records)


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
    rungs = [read_rung(label, folder) for label, folder in args.rung]
    if len({rung.regime for rung in rungs}) > 1:
        raise SystemExit("the rungs' records follow different regimes; compare rungs of one regime")
    rows = cross_rung_rows(rungs)
    markdown = to_markdown(rungs, rows)
    if args.out:
        atomic_write_text(args.out / "rungs.md", markdown)
        atomic_write_text(args.out / "rungs.csv", to_csv(rows))
    print(markdown, end="")
