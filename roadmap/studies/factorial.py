"""The factorial study's tables: effects.csv, interactions.csv, cost_effects.csv, views.csv and table.md, and the
three views of every change side by side: its Δ along the paper's path, its worth when reverted from ConvNeXt-T
(leave-one-out) and its factorial main effect, each with its 95% interval.

`python scripts/effects.py --runs multirun/factorial --collect-to experiments/factorial/records` (make factorial).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from roadmap.config.factorial import ROMAN
from roadmap.results.effects import CHAIN, HIGHER, MAIN, Analysis, Effect, analyse, did_not_train
from roadmap.results.provenance import provenance_markdown, study_records, table_section, update_readme
from roadmap.results.records import RECORDS, atomic_write_text, collect, load_records
from roadmap.results.stats import aggregate, ci95, compare, mean_sd
from roadmap.results.tables import to_csv
from roadmap.steps import paper_delta

VIEWS = ("path", "leave_one_out", "factorial")  # the three views, in the order tables and figures show them


def _interval(mean: float | None, sd: float | None, n: int) -> tuple[float | None, float | None, float | None]:
    half = ci95(sd, n)
    if mean is None or half is None:
        return mean, None, None
    return mean, mean - half, mean + half


def views(analysis: Analysis, path_records: list[dict], loo_records: list[dict]) -> list[dict]:
    """One row per factor: its Δ along the roadmap (the step minus its parent, paired by seed), its worth at the end
    (ConvNeXt-T minus ConvNeXt-T with it reverted, paired by seed) and its factorial main effect."""
    path = {row["step"]: row for row in aggregate(path_records)} if path_records else {}
    loo = {row["change"]: row for row in compare(loo_records)} if loo_records else {}
    mains = {e.term.name: e for e in analysis.top1.effects if e.term.kind == MAIN}
    regime = next((r["regime"] for r in [*path_records, *loo_records]), "resnet50")
    rows = []
    for factor in analysis.design.factors:
        step = path.get(factor, {})
        p = _interval(step.get("delta_top1_mean"), step.get("delta_top1_sd"), step.get("paired_seeds", 0))
        reverted = loo.get(f"-{factor}", {})
        # The variant minus the reference, negated: what the change is worth with every other change in place.
        r = _interval(reverted.get("delta_top1_mean"), reverted.get("delta_top1_sd"), reverted.get("paired_seeds", 0))
        r = tuple(None if v is None else -v for v in (r[0], r[2], r[1]))
        main = mains[factor]
        rows.append({"delta": factor, "paper": paper_delta(factor, regime), "paper_ci_low": None, "paper_ci_high": None,
                     "path": p[0], "path_ci_low": p[1], "path_ci_high": p[2],
                     "leave_one_out": r[0], "leave_one_out_ci_low": r[1], "leave_one_out_ci_high": r[2],
                     "factorial": main.effect, "factorial_ci_low": main.ci_low, "factorial_ci_high": main.ci_high,
                     "reading": reading([p, r, (main.effect, main.ci_low, main.ci_high)])})
    return rows


def reading(intervals: list[tuple[float | None, float | None, float | None]]) -> str:
    """How the views agree: `gain in every view`, `loss in every view`, `no effect in any view`, or `depends on
    context` (an interval excluding zero in some view and not in another, or opposite signs)."""
    signs = []
    for mean, low, high in intervals:
        if mean is None or low is None:
            continue
        signs.append(1 if low > 0 else -1 if high < 0 else 0)
    if not signs:
        return ""
    if all(s == 1 for s in signs):
        return "gain in every view"
    if all(s == -1 for s in signs):
        return "loss in every view"
    if all(s == 0 for s in signs):
        return "no effect in any view"
    return "depends on context"


def _effect_rows(effects: list[Effect], key: str) -> list[dict]:
    return [{key: e.term.name, "effect": e.effect, "ci_low": e.ci_low, "ci_high": e.ci_high,
             "beyond_noise": e.beyond_noise} for e in effects]


def cost_rows(analysis: Analysis) -> list[dict]:
    """Each change's average multiplicative effect on GFLOPs (exact) and training img/s (95% interval)."""
    speed = {e.term.name: e for e in analysis.images_per_second.effects if e.term.kind == MAIN}
    rows = []
    for e in analysis.gflops.effects:
        if e.term.kind == MAIN:
            s = speed[e.term.name]
            rows.append({"delta": e.term.name, "gflops_ratio": math.exp(e.effect),
                         "images_per_second_ratio": math.exp(s.effect), "ci_low": math.exp(s.ci_low),
                         "ci_high": math.exp(s.ci_high)})
    return rows


def _signed(value: float | None) -> str:
    return "" if value is None else f"{value:+.2f}"


def _ci(low: float | None, high: float | None, fmt: str = "+.2f") -> str:
    return "" if low is None else f"[{low:{fmt}}, {high:{fmt}}]"


def _diverged_note(analysis: Analysis) -> list[str]:
    if not analysis.diverged:
        return []
    runs = "; ".join(f"`{r['name']}` seed {r['seed']} ({r['top1']:.2f} %)" for r in analysis.diverged)
    return [f"Left out of the top-1 fit, as their training diverged (top-1 under twice chance; the loss stuck at "
            f"ln(classes)): {runs}. Their row's other seeds stay in; their costs stay in the cost fits.", ""]


def to_markdown(analysis: Analysis, records: list[dict], view_rows: list[dict]) -> str:
    design, head = analysis.design, records[0]
    resolution = ROMAN.get(design.resolution, str(design.resolution))
    wlp = ", ".join(f"A{n}={a}" for n, a in enumerate(design.word_length_pattern()[:4], start=3))
    fixed = head["config"]["ablation"]["fixed"]
    lines = [
        f"# Factorial study: {head['data']}, {head['scale']} scale, {head['regime']} regime, {head['input_size']} px",
        "",
        f"A two-level fractional factorial design over {len(design.factors)} changes, {design.rows} rows "
        f"(resolution {resolution}; word-length pattern {wlp}; generators `{design.generators}`), each row run "
        f"with seeds {', '.join(map(str, analysis.seeds))}: {analysis.runs} runs. Held on in every row: "
        f"{', '.join(fixed) or 'nothing'}. Effect: mean with the change minus mean without it (statsmodels OLS on ±1 "
        f"coding, saturated), 95% interval from the {analysis.top1.error}.",
        "",
        *_diverged_note(analysis),
        "### Main effects on top-1 (points)",
        "",
        "| change | effect | 95% CI | GFLOPs × | img/s × | 95% CI of img/s × |",
        "|---|---|---|---|---|---|",
    ]
    costs = {row["delta"]: row for row in cost_rows(analysis)}
    for e in analysis.top1.effects:
        if e.term.kind == MAIN:
            c = costs[e.term.name]
            lines.append(f"| {e.term.name}{' *' if e.beyond_noise else ''} | {e.effect:+.2f} | "
                         f"{_ci(e.ci_low, e.ci_high)} | {c['gflops_ratio']:.2f} | {c['images_per_second_ratio']:.2f} | "
                         f"{_ci(c['ci_low'], c['ci_high'], '.2f')} |")
    lines += [
        "",
        "\\* the interval excludes zero. GFLOPs × and img/s ×: the change's average multiplicative effect (the main "
        "effect on the log scale, exponentiated); img/s from the "
        f"{analysis.images_per_second.error}, measured on {head['device']}.",
        "",
        "### Alias chains of two-factor interactions (points of top-1)",
        "",
        "Each chain is one column of the design: its effect is the sum of its members' (a member after `-` counts "
        "negatively), and the data cannot tell them apart.",
        "",
        "| chain | effect | 95% CI |",
        "|---|---|---|",
    ]
    for e in analysis.top1.effects:
        if e.term.kind == CHAIN:
            lines.append(f"| {e.term.name}{' *' if e.beyond_noise else ''} | {e.effect:+.2f} | "
                         f"{_ci(e.ci_low, e.ci_high)} |")
    higher = [e for e in analysis.top1.effects if e.term.kind == HIGHER]
    if higher:
        lines += ["", f"The model's other {len(higher)} columns hold interactions of three or more changes only: "
                  + "; ".join(f"{e.effect:+.2f} {_ci(e.ci_low, e.ci_high)}" for e in higher) + "."]
    lines += [
        "",
        "### Three views of every change (points of top-1, 95% intervals)",
        "",
        "Path: the step minus its parent along the paper's roadmap (experiments/fashion_mnist_proxy). Leave-one-out: "
        "ConvNeXt-T minus ConvNeXt-T with the change reverted (experiments/leave_one_out). Factorial: the main "
        "effect above, averaged over every other change. The paper's: its step's Δ on ImageNet (Table 10), the only "
        "view it measured; the reading is the proxy's views' alone.",
        "",
        "| change | paper (ImageNet, its path) | path | leave-one-out | factorial | reading |",
        "|---|---|---|---|---|---|",
    ]
    for row in view_rows:
        cells = [f"{_signed(row[v])} {_ci(row[f'{v}_ci_low'], row[f'{v}_ci_high'])}".strip() for v in VIEWS]
        lines.append(f"| {row['delta']} | {row['paper']:+.2f} | " + " | ".join(cells) + f" | {row['reading']} |")
    return "\n".join(lines) + "\n"


FRESH = "fresh_seeds"  # <experiment>/fresh_seeds/records/: the best row again, on seeds the design never used


def fresh_seeds_markdown(records: list[dict], fresh: list[dict]) -> str:
    """The best row's lead over the design's average row, in the design and on fresh seeds. The best of many rows
    is picked partly for its luck, which fresh seeds do not share: the share of its lead they keep is what of it
    was the network's."""
    by_row: dict[str, list[float]] = {}
    for record in records:
        if not did_not_train(record):
            by_row.setdefault(record["name"], []).append(record["top1"])
    means = {name: sum(v) / len(v) for name, v in by_row.items()}
    average = sum(means.values()) / len(means)
    row = fresh[0]["name"]
    ranked = sorted(means, key=means.get, reverse=True)
    again = [r["top1"] for r in fresh]
    mean, low, high = _interval(*mean_sd(again), len(again))
    lead, kept = means[row] - average, mean - average
    return "\n".join([
        "", "### The best row on fresh seeds", "",
        f"`{row}` ranked {ranked.index(row) + 1} of {len(means)} rows in the design, at {means[row]:.2f} over seeds "
        f"{', '.join(str(r['seed']) for r in records if r['name'] == row)}, {lead:+.2f} above the design's average "
        f"row ({average:.2f}). On fresh seeds {', '.join(str(r['seed']) for r in fresh)}: {mean:.2f} "
        f"{_ci(low, high, '.2f')} ({', '.join(f'{v:.2f}' for v in again)}), {kept:+.2f} above that average: "
        f"{kept / lead:.0%} of its lead survives its selection.", ""])


def write_report(experiment: Path, path_records: Path | None, loo_records: Path | None) -> Analysis:
    """Analyse `experiment/records/` and write the tables and figures beside them, and the README's generated
    sections (the table and the records' provenance)."""
    from roadmap.figures.factorial import half_normal_figure, views_figure  # matplotlib only where drawn

    records = load_records(experiment / RECORDS, roadmap_only=False)
    if not records:
        raise SystemExit(f"no completed records under {experiment / RECORDS}")
    try:
        analysis = analyse(records)
    except ValueError as error:
        raise SystemExit(str(error)) from None
    view_rows = views(analysis, load_records(path_records) if path_records else [],
                      load_records(loo_records, roadmap_only=False) if loo_records else [])
    mains = [e for e in analysis.top1.effects if e.term.kind == MAIN]
    chains = [e for e in analysis.top1.effects if e.term.kind == CHAIN]
    atomic_write_text(experiment / "effects.csv", to_csv(_effect_rows(mains, "delta")))
    atomic_write_text(experiment / "interactions.csv", to_csv(_effect_rows(chains, "chain")))
    atomic_write_text(experiment / "cost_effects.csv", to_csv(cost_rows(analysis)))
    atomic_write_text(experiment / "views.csv", to_csv(view_rows))
    markdown = to_markdown(analysis, records, view_rows)
    fresh = load_records(experiment / FRESH / RECORDS, roadmap_only=False) if (experiment / FRESH).is_dir() else []
    if fresh:
        markdown += fresh_seeds_markdown(records, fresh)
    atomic_write_text(experiment / "table.md", markdown)
    update_readme(experiment, {"table": table_section(markdown),
                               "provenance": provenance_markdown(study_records(experiment / RECORDS))})
    half_normal_figure(analysis, experiment / "effects")
    views_figure(view_rows, experiment / "views")
    print(markdown, end="")
    return analysis


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Analyse a factorial study's records: main effects, alias chains, "
                                     "cost effects and the three views of every change, with tables and figures.")
    parser.add_argument("--experiment", type=Path, required=True, help="the study's folder (its records/ inside)")
    parser.add_argument("--runs", type=Path, help=f"first collect the records under this folder into {RECORDS}/")
    parser.add_argument("--path", type=Path, help="the roadmap's records, for the path view")
    parser.add_argument("--leave-one-out", type=Path, help="the leave-one-out study's records, for its view")
    parser.add_argument("--fresh-runs", type=Path, help=f"first collect the best row's runs on fresh seeds under this "
                        f"folder into {FRESH}/{RECORDS}/")
    args = parser.parse_args(argv)
    if args.runs:
        collect(args.runs, args.experiment / RECORDS, roadmap_only=False)
    if args.fresh_runs:
        collect(args.fresh_runs, args.experiment / FRESH / RECORDS, roadmap_only=False)
    write_report(args.experiment, args.path, args.leave_one_out)
