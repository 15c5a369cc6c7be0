"""Tables of aggregated records: full-precision CSV for other tools, rounded markdown for people."""

import csv
import io
from pathlib import Path

from roadmap.results.records import atomic_write_text


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
            r["change"], r["name"], str(r["seeds"]), plus_minus(r["top1_mean"], r["top1_sd"]),
            f"{plus_minus(r['delta_top1_mean'], r['delta_top1_sd'], '+')} ({r['paired_seeds']})"
            if r["name"] != reference else "",
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


def plus_minus(mean: float | None, sd: float | None, sign: str = "") -> str:
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
            plus_minus(r["top1_mean"], r["top1_sd"]),
            "" if ci is None else f"[{r['top1_mean'] - ci:.2f}, {r['top1_mean'] + ci:.2f}]",
            f"{plus_minus(r['delta_top1_mean'], r['delta_top1_sd'], '+')} ({r['paired_seeds']})"
            if r["paired_seeds"] else "",
            plus_minus(r["top5_mean"], r["top5_sd"]),
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
