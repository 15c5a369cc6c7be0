"""Seed statistics of run records: one row per roadmap step, or per variant of an ablation against a reference."""

import math
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

from scipy.stats import t

from roadmap.config.ablation import FINAL_STEP
from roadmap.results.records import load_records
from roadmap.steps import ROADMAP, STEPS

SHARED = ("regime", "scale", "data", "input_size")  # rows are comparable only when their records agree on these


def mean_sd(values: list[float]) -> tuple[float | None, float | None]:
    """Mean and sample sd (ddof=1): None where there are too few values."""
    mean = statistics.fmean(values) if values else None
    return mean, statistics.stdev(values) if len(values) > 1 else None


def ci95(sd: float | None, n: int) -> float | None:
    """Half-width of the 95% confidence interval of a mean of `n` seeds, Student t with n-1 df."""
    if sd is None:
        return None
    return float(t.ppf(0.975, n - 1)) * sd / math.sqrt(n)


def _shared(records: list[dict], key: str) -> Any:
    values = {record[key] for record in records}
    if len(values) > 1:
        raise ValueError(f"records mix {key} values: {', '.join(sorted(map(str, values)))}; aggregate them apart")
    return values.pop()


def aggregate(records: list[dict]) -> list[dict]:
    """One row per step present, in roadmap order: seed statistics, the paired change from the step's parent,
    cost, and the paper's values for the records' regime."""
    if not records:
        return []
    shared = {key: _shared(records, key) for key in SHARED}
    by_step: dict[str, dict[int, dict]] = defaultdict(dict)
    for record in records:
        by_step[record["step"]][record["seed"]] = record
    rows = []
    for step in ROADMAP:
        runs = by_step.get(step.name)
        if not runs:
            continue
        parent = by_step.get(step.parent, {}) if step.parent else {}
        paired = sorted(runs.keys() & parent.keys())
        top1_mean, top1_sd = mean_sd([r["top1"] for r in runs.values()])
        top5_mean, top5_sd = mean_sd([r["top5"] for r in runs.values()])
        delta_mean, delta_sd = mean_sd([runs[seed]["top1"] - parent[seed]["top1"] for seed in paired])
        first = runs[min(runs)]
        paper = step.paper[shared["regime"]]
        rows.append({
            "step": step.name,
            "parent": step.parent,
            "group": step.group,
            "adopted": step.adopted,
            "seeds": len(runs),
            "top1_mean": top1_mean,
            "top1_sd": top1_sd,
            "top1_ci95": ci95(top1_sd, len(runs)),
            "top5_mean": top5_mean,
            "top5_sd": top5_sd,
            "delta_top1_mean": delta_mean,
            "delta_top1_sd": delta_sd,
            "paired_seeds": len(paired),
            "gflops": first["gflops"],
            "gflops_224": first["gflops_224"],
            "params": first["params"],
            "train_images_per_second_mean": statistics.fmean(r["train_images_per_second"] for r in runs.values()),
            "peak_memory_mb_mean": statistics.fmean(r["peak_memory_mb"] for r in runs.values()),
            "paper_top1": paper.top1,
            "paper_delta_top1": (round(paper.top1 - STEPS[step.parent].paper[shared["regime"]].top1, 2)
                                 if step.parent else None),
            "paper_gflops": paper.gflops,
            "device": ", ".join(sorted({r["device"] for r in runs.values()})),
            **shared,
        })
    return rows


def _difference(deltas: list[str], reference: list[str]) -> str:
    """A variant's deltas relative to the reference's: ``-x`` for each reverted, ``+y`` for each added."""
    reverted = [f"-{d}" for d in reference if d not in deltas]
    return " ".join(reverted + [f"+{d}" for d in deltas if d not in reference]) or "(reference)"


def compare(records: list[dict], reference: str = FINAL_STEP, failures: list[dict] = ()) -> list[dict]:
    """One row per variant of an ablation study, sorted by its paired top-1 change from the reference network
    (the run named `reference`): what it reverts or adds, seed statistics, cost. A variant whose every job
    failed gets a row with its error instead of numbers: listed, not dropped."""
    by_name: dict[str, dict[int, dict]] = defaultdict(dict)
    for record in records:
        by_name[record["name"]][record["seed"]] = record
    if reference not in by_name:
        raise ValueError(f"no completed record of the reference {reference!r}; names found: {sorted(by_name)}")
    shared = {key: _shared(records, key) for key in SHARED}
    base = by_name[reference]
    base_deltas = base[min(base)]["deltas"]
    rows = []
    for name, runs in by_name.items():
        paired = sorted(runs.keys() & base.keys())
        diffs = [runs[seed]["top1"] - base[seed]["top1"] for seed in paired]
        delta_mean, delta_sd = mean_sd(diffs)
        top1_mean, top1_sd = mean_sd([r["top1"] for r in runs.values()])
        first = runs[min(runs)]
        rows.append({
            "name": name,
            # a named model (swin_t) is no set of deltas on the reference's: it is itself
            "change": first["name"] if first.get("model_name") else _difference(first["deltas"], base_deltas),
            "seeds": len(runs),
            "top1_mean": top1_mean,
            "top1_sd": top1_sd,
            "delta_top1_mean": delta_mean,
            "delta_top1_sd": delta_sd,
            "delta_top1_ci95": ci95(delta_sd, len(paired)),
            "paired_seeds": len(paired),
            "gflops": first["gflops"],
            "gflops_224": first["gflops_224"],
            "params": first["params"],
            "train_images_per_second_mean": statistics.fmean(r["train_images_per_second"] for r in runs.values()),
            "error": None,
            "deltas": " ".join(first["deltas"]),
            **shared,
        })
    rows.sort(key=lambda r: (r["name"] != reference, r["delta_top1_mean"] if r["paired_seeds"] else math.inf))
    for name in dict.fromkeys(f["name"] for f in failures if f["name"] not in by_name):
        failed = [f for f in failures if f["name"] == name]
        rows.append({**dict.fromkeys(rows[0]), "name": name, "change": _difference(failed[0]["deltas"], base_deltas),
                     "seeds": 0, "paired_seeds": 0, "error": failed[0]["error"].partition("\n")[0],
                     "deltas": " ".join(failed[0]["deltas"]), **shared})
    return rows


def compare_folder(runs_dir: Path, reference: str) -> list[dict]:
    """`compare` over every record under `runs_dir`, completed or failed (one failed job with no completed
    record of the same name and seed is a failure); a missing reference exits with its message."""
    records = load_records(runs_dir, roadmap_only=False, completed_only=False)
    try:
        return compare([r for r in records if r["status"] == "completed"], reference,
                       [r for r in records if r["status"] == "failed"])
    except ValueError as error:
        raise SystemExit(str(error)) from None
