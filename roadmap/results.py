"""Run records (result.json): written atomically, so an interrupted write never leaves half a file; and their
aggregation over seeds into per-step tables (`python scripts/aggregate.py --runs multirun/...`)."""

import argparse
import csv
import io
import json
import math
import os
import re
import statistics
import tempfile
import traceback
import warnings
from collections import defaultdict
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from roadmap.ablation import FINAL_STEP, run_name
from roadmap.steps import ROADMAP, STEPS, roadmap_order


def atomic_write_text(path: Path, text: str) -> None:
    """Write to a temporary file beside `path`, then rename it over `path` (atomic on POSIX)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_failure(out_dir: Path, cfg: DictConfig, error: BaseException) -> None:
    """The record of a job that failed, so that a multirun's other jobs go on and the error stays on disk."""
    record = {"status": "failed", "name": cfg.name, "step": cfg.step, "deltas": list(cfg.deltas), "seed": cfg.seed,
              "error": f"{type(error).__name__}: {error}",
              "traceback": "".join(traceback.format_exception(error))}
    atomic_write_text(out_dir / "result.json", json.dumps(record, indent=2) + "\n")


class FailedJobs(Callback):
    """Hydra callback: after a multirun, name the jobs that failed and exit non-zero."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        records = Path(config.hydra.sweep.dir).rglob("result.json")
        failed = [str(p) for p in records if json.loads(p.read_text())["status"] == "failed"]
        if failed:
            raise SystemExit(f"{len(failed)} job(s) failed; their errors are in: {', '.join(failed)}")


# Aggregation: the records of many runs -> one row per roadmap step, tables and an experiment folder.

RECORDS = "records"  # an experiment folder keeps its runs' records here, as <name>-seed<seed>.json
RECORD_NAME = re.compile(r"result\.json|[\w+-]+-seed\d+\.json")  # a run's own record, or a collected one
REQUIRED = ("step", "seed", "deltas", "regime", "scale", "data", "input_size", "top1", "top5", "params", "gflops",
            "gflops_224", "train_images_per_second", "peak_memory_mb", "device")
SHARED = ("regime", "scale", "data", "input_size")  # rows are comparable only when their records agree on these


class RecordWarning(UserWarning):
    """A record that aggregation skips or overrides: named, never fatal, so one bad run spoils no table."""


def _read_record(path: Path) -> dict:
    """Parse one record, completed or failed; a ValueError says why it cannot be used at all."""
    try:
        record = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"unreadable JSON ({error})") from None
    if not isinstance(record, dict):
        raise ValueError("not a JSON object")
    if record.get("status") == "failed" and "deltas" in record and "seed" in record:
        record.setdefault("name", run_name(record["deltas"]))
        return record
    if record.get("status") != "completed":
        error = str(record.get("error", "")).partition("\n")[0]
        raise ValueError(f"status {record.get('status')!r}" + (f": {error}" if error else ""))
    missing = [key for key in REQUIRED if record.get(key) is None]
    if missing:
        raise ValueError(f"partial record, missing {', '.join(missing)}")
    if record["step"] not in STEPS:
        raise ValueError(f"unknown step {record['step']!r}")
    record.setdefault("name", run_name(record["deltas"]))  # records written before runs had names
    return record


def _sort_key(item: tuple[tuple[str, int], Any]) -> tuple[int, str, int]:
    (name, seed), _ = item
    return roadmap_order(name), name, seed


def _records(runs_dir: Path, roadmap_only: bool) -> dict[tuple[str, int], tuple[Path, dict]]:
    """Every usable record under `runs_dir` by (name, seed), roadmap steps first: the newest file wins a
    duplicate, and a completed record wins over a failed one. `roadmap_only` keeps the roadmap's steps."""
    found: dict[tuple[str, int], tuple[Path, dict]] = {}
    for path in sorted(p for p in runs_dir.rglob("*.json") if RECORD_NAME.fullmatch(p.name)):
        try:
            record = _read_record(path)
            if roadmap_only and record["name"] not in STEPS:
                # e.g. `+step=gelu +delta=[layer_norm]`: an ablation, which would corrupt the step's statistics
                raise ValueError(f"{record['name']} is an ablation, not a roadmap step")
            if roadmap_only and record["status"] == "failed":
                raise ValueError(f"status 'failed': {record['error']}")
        except (OSError, ValueError) as error:
            warnings.warn(f"skipping {path}: {error}", RecordWarning, stacklevel=3)
            continue
        key = (record["name"], record["seed"])
        if key in found:
            rank = {"failed": 0, "completed": 1}
            kept, dropped = sorted([found[key], (path, record)], reverse=True,
                                   key=lambda pr: (rank[pr[1]["status"]], pr[0].stat().st_mtime))
            warnings.warn(f"two records for {key[0]} seed {key[1]}: keeping {kept[0]}, skipping {dropped[0]}",
                          RecordWarning, stacklevel=3)
            found[key] = kept
        else:
            found[key] = (path, record)
    return dict(sorted(found.items(), key=_sort_key))


def load_records(runs_dir: Path, roadmap_only: bool = True, completed_only: bool = True) -> list[dict]:
    """The completed records under `runs_dir` (run folders or an experiment's records/), roadmap steps first;
    with `completed_only=False` (and not `roadmap_only`) the failed ones too."""
    records = [r for _, r in _records(runs_dir, roadmap_only).values()]
    return [r for r in records if r["status"] == "completed" or not completed_only]


def collect(runs_dir: Path, records_dir: Path, roadmap_only: bool = True) -> list[Path]:
    """Copy each usable record to `records_dir/<name>-seed<seed>.json`: an experiment keeps its records, not
    its checkpoints. Outside the roadmap, failed records are kept too, to be listed with their error."""
    written = []
    for (name, seed), (path, _) in _records(runs_dir, roadmap_only).items():
        target = records_dir / f"{name}-seed{seed}.json"
        atomic_write_text(target, path.read_text())
        written.append(target)
    return written


def _mean_sd(values: list[float]) -> tuple[float | None, float | None]:
    """Mean and sample sd (ddof=1): None where there are too few values."""
    mean = statistics.fmean(values) if values else None
    return mean, statistics.stdev(values) if len(values) > 1 else None


def _ci95(sd: float | None, n: int) -> float | None:
    """Half-width of the 95% confidence interval of a mean of `n` seeds, Student t with n-1 df."""
    if sd is None:
        return None
    from scipy.stats import t  # here, not at the top: it costs every training job a second to import

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
        top1_mean, top1_sd = _mean_sd([r["top1"] for r in runs.values()])
        top5_mean, top5_sd = _mean_sd([r["top5"] for r in runs.values()])
        delta_mean, delta_sd = _mean_sd([runs[seed]["top1"] - parent[seed]["top1"] for seed in paired])
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
            "top1_ci95": _ci95(top1_sd, len(runs)),
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
        delta_mean, delta_sd = _mean_sd(diffs)
        top1_mean, top1_sd = _mean_sd([r["top1"] for r in runs.values()])
        first = runs[min(runs)]
        rows.append({
            "name": name,
            "change": _difference(first["deltas"], base_deltas),
            "seeds": len(runs),
            "top1_mean": top1_mean,
            "top1_sd": top1_sd,
            "delta_top1_mean": delta_mean,
            "delta_top1_sd": delta_sd,
            "delta_top1_ci95": _ci95(delta_sd, len(paired)),
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
    records = [r for _, r in _records(runs_dir, roadmap_only=False).values()]
    try:
        return compare([r for r in records if r["status"] == "completed"], reference,
                       [r for r in records if r["status"] == "failed"])
    except ValueError as error:
        raise SystemExit(str(error)) from None


def comparison_markdown(rows: list[dict]) -> str:
    head, reference = rows[0], rows[0]["name"]
    lines = [
        f"# Ablation against {reference}: {head['data']}, {head['scale']} scale, {head['regime']} regime, "
        f"{head['input_size']} px",
        "",
        f"Each row is {reference} with the deltas in `change` reverted (-) or added (+). Δ top-1: the variant",
        "minus the reference, paired by seed: mean ± sample sd, and the 95% CI of the mean (Student's t) over",
        f"the n seeds both ran. Sorted by Δ: the most harmful change to {reference} comes first. GFLOPs and",
        "params at the run's scale and input size; img/s: measured training throughput.",
        "",
        "| change | name | seeds | top-1 | Δ top-1 | 95% CI of Δ | GFLOPs | params | img/s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r["error"]:
            lines.append(f"| {r['change']} | {r['name']} | 0 | failed: {r['error']} | | | | | |")
            continue
        ci = r["delta_top1_ci95"]
        lines.append("| " + " | ".join([
            r["change"], r["name"], str(r["seeds"]), _pm(r["top1_mean"], r["top1_sd"]),
            f"{_pm(r['delta_top1_mean'], r['delta_top1_sd'], '+')} ({r['paired_seeds']})" if r["name"] != reference
            else "",
            "" if ci is None or r["name"] == reference else f"[{r['delta_top1_mean'] - ci:+.2f}, "
            f"{r['delta_top1_mean'] + ci:+.2f}]",
            f"{r['gflops']:.4g}", f"{r['params']:,}", f"{r['train_images_per_second_mean']:.0f}",
        ]) + " |")
    return "\n".join(lines) + "\n"


def to_csv(rows: list[dict]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def _pm(mean: float | None, sd: float | None, sign: str = "") -> str:
    """`mean ± sd` to 2 decimals; blank for no value, the mean alone for a single seed."""
    if mean is None:
        return ""
    return f"{mean:{sign}.2f}" + ("" if sd is None else f" ± {sd:.2f}")


def to_markdown(rows: list[dict]) -> str:
    head = rows[0]
    devices = ", ".join(sorted({r["device"] for r in rows}))
    lines = [
        f"# Roadmap results: {head['data']}, {head['scale']} scale, {head['regime']} regime, {head['input_size']} px",
        "",
        "Validation top-1/top-5 (%): mean ± sample sd over seeds; 95% CI of the mean from Student's t with n-1 df.",
        "Δ top-1: the change from the step's parent (the previous step; for the kernel sizes `move_up_dwconv`,",
        "for `gelu` `kernel_7`), paired by seed over the n seeds both ran. GFLOPs at the run's input size, one",
        f"multiply-add = one FLOP. Throughput: training images per second on {devices}.",
        f"Paper: ImageNet-1K top-1 and GFLOPs at 224 px for the {head['regime']} regime (`roadmap/steps.py`), a",
        "different data set and scale: compare the direction of each change, not the levels.",
        "",
        "| step | seeds | top-1 | 95% CI | Δ top-1 (n) | top-5 | GFLOPs | params | img/s | peak MB "
        "| paper top-1 | paper Δ | paper GFLOPs |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ci = r["top1_ci95"]
        cells = [
            r["step"] + ("" if r["adopted"] else " (not adopted)"),
            str(r["seeds"]),
            _pm(r["top1_mean"], r["top1_sd"]),
            "" if ci is None else f"[{r['top1_mean'] - ci:.2f}, {r['top1_mean'] + ci:.2f}]",
            f"{_pm(r['delta_top1_mean'], r['delta_top1_sd'], '+')} ({r['paired_seeds']})" if r["paired_seeds"] else "",
            _pm(r["top5_mean"], r["top5_sd"]),
            f"{r['gflops']:.4g}",
            f"{r['params']:,}",
            f"{r['train_images_per_second_mean']:.0f}",
            f"{r['peak_memory_mb_mean']:.0f}",
            f"{r['paper_top1']:.2f}",
            "" if r["paper_delta_top1"] is None else f"{r['paper_delta_top1']:+.2f}",
            f"{r['paper_gflops']:.2f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_tables(rows: list[dict], out_dir: Path, markdown: str) -> None:
    """`table.csv` (full precision, for other tools) and `table.md` (rounded, for people), each atomically."""
    atomic_write_text(out_dir / "table.csv", to_csv(rows))
    atomic_write_text(out_dir / "table.md", markdown)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Aggregate run records (result.json) into tables: per roadmap "
                                     "step, or, with --reference, per variant of an ablation study.")
    parser.add_argument("--runs", type=Path, required=True,
                        help="folder searched recursively for result.json (or an experiment's records/)")
    parser.add_argument("--collect-to", type=Path,
                        help=f"first copy the usable records here as <name>-seed<seed>.json (an experiment's "
                        f"{RECORDS}/), then aggregate all the records there")
    parser.add_argument("--out", type=Path, help=f"where table.csv and table.md go (default: the experiment folder, "
                        f"that is the parent of a {RECORDS}/ folder given to --collect-to or --runs, else --runs)")
    parser.add_argument("--reference", metavar="NAME",
                        help=f"an ablation study: compare every run to the run named NAME (e.g. {FINAL_STEP}, "
                        "ConvNeXt-T) instead of tabulating roadmap steps; failed variants are listed")
    args = parser.parse_args(argv)
    if not args.runs.is_dir():
        parser.error(f"--runs {args.runs}: no such folder")
    roadmap_only = args.reference is None
    if args.collect_to:
        collect(args.runs, args.collect_to, roadmap_only)
    records_dir = args.collect_to or args.runs  # an experiment's table covers all its records, earlier ones too
    if roadmap_only:
        rows = aggregate(load_records(records_dir))
        if not rows:
            raise SystemExit(f"no completed records under {records_dir}")
        markdown = to_markdown(rows)
    else:
        rows = compare_folder(records_dir, args.reference)
        markdown = comparison_markdown(rows)
    write_tables(rows, args.out or (records_dir.parent if records_dir.name == RECORDS else records_dir), markdown)
    print(markdown, end="")
