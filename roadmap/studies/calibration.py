"""The proxy calibration study: candidate proxies compared on the roadmap's two ends, ResNet-50 and ConvNeXt-T.

A candidate is one config in conf/calibration/: the study's centre (conf/scale/calibration_centre.yaml, the
proxy before it) with one thing changed (training images, epochs, width, input size, batch size, the
evaluation's framing, one budget rule turned off or on), or two candidates together. `make calibration` trains
both ends under every candidate with three seeds; this module tabulates, per candidate and network, the seed
mean and sd of top-1 on the full test set, the EMA's top-1, the final training loss, the minutes per run and
the training img/s, so that the proxy is chosen by how well it trains and how little its seeds scatter, at what cost.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from roadmap.config.ablation import FINAL_STEP
from roadmap.figures.calibration import CENTRE, calibration_figure
from roadmap.results.provenance import provenance_markdown, table_section, update_readme
from roadmap.results.records import RECORDS, collect, load_records
from roadmap.results.tables import write_tables

ENDPOINTS = ("baseline", FINAL_STEP)  # ResNet-50 under the original recipe, ConvNeXt-T under the modern one


def _changed(scale: dict[str, Any], centre: dict[str, Any], prefix: str = "scale.") -> list[str]:
    """`key=value` for every scale setting in which a candidate differs from the centre."""
    out = []
    for key in sorted(scale.keys() | centre.keys()):
        mine, theirs = scale.get(key), centre.get(key)
        if isinstance(mine, dict) and isinstance(theirs, dict):
            out += _changed(mine, theirs, f"{prefix}{key}.")
        elif mine != theirs and key != "name":
            out.append(f"{prefix}{key}={mine}")
    return out


def summarize(by_candidate: dict[str, list[dict]], default: dict[str, Any] | None = None) -> list[dict]:
    """One row per (candidate, endpoint) with records, the centre first, then the candidates in name order; a
    network that failed under a candidate (and never completed) gets a row with its error. A row's `default` says
    whether its candidate is the `default` scale (today's `scale=proxy`), the one the calibration chose."""
    scales = {name: next(r["config"]["scale"] for r in records if r["status"] == "completed")
              for name, records in by_candidate.items() if any(r["status"] == "completed" for r in records)}
    centre = scales.get(CENTRE)
    chosen = {name for name, scale in scales.items() if default is not None and _changed(scale, default) == []}
    rows = []
    for name in sorted(by_candidate, key=lambda n: (n != CENTRE, n)):
        for endpoint in ENDPOINTS:
            runs = [r for r in by_candidate[name] if r["name"] == endpoint and r["status"] == "completed"]
            failed = [r for r in by_candidate[name] if r["name"] == endpoint and r["status"] == "failed"]
            if not runs:
                if failed:
                    rows.append({"candidate": name, "change": " ".join(_changed(scales[name], centre))
                                 if centre and name in scales else "", "network": endpoint, "seeds": 0,
                                 "default": name in chosen,
                                 "error": failed[0]["error"].partition("\n")[0]})
                continue
            top1 = [r["top1"] for r in runs]
            ema = [r["ema_top1"] for r in runs if r.get("ema_top1") is not None]
            rows.append({
                "candidate": name,
                "change": " ".join(_changed(scales[name], centre)) if centre and name != CENTRE else "",
                "network": endpoint,
                "default": name in chosen,
                "seeds": len(runs),
                "top1_mean": statistics.fmean(top1),
                "top1_sd": statistics.stdev(top1) if len(top1) > 1 else None,
                "ema_top1_mean": statistics.fmean(ema) if ema else None,
                "final_train_loss_mean": statistics.fmean(r["train_loss"][-1] for r in runs),
                "minutes_mean": statistics.fmean(r["wall_seconds"] for r in runs) / 60,
                "train_images_per_second_mean": statistics.fmean(r["train_images_per_second"] for r in runs),
                "optimizer_steps": runs[0].get("optimizer_steps"),
                "epochs": runs[0]["epochs"],
                "train_images": runs[0]["config"]["scale"]["train_subset"] or "all",
                "width_multiplier": runs[0]["config"]["scale"]["width_multiplier"],
                "input_size": runs[0]["input_size"],
                "batch_size": runs[0]["batch_size"],
                "val_images": runs[0]["val_images"],
                "device": ", ".join(sorted({r["device"] for r in runs})),
                "error": None,
            })
    return rows


def _number(value: float | None, digits: int = 2) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def to_markdown(rows: list[dict]) -> str:
    devices = ", ".join(sorted({r["device"] for r in rows if not r["error"]}))
    lines = [
        "# Proxy calibration: Fashion-MNIST, the roadmap's two ends under candidate proxies",
        "",
        f"Each candidate is the centre (`{CENTRE}`, conf/scale/calibration_centre.yaml) with the change shown;",
        f"baseline is ResNet-50 under the original recipe, {FINAL_STEP} is ConvNeXt-T under the modern one. Top-1",
        "(%) on the full 10,000-image test set: mean ± sample sd over seeds; EMA: the EMA weights' top-1 where the",
        "recipe keeps one; loss: the last epoch's mean training loss; minutes: wall time of one run (start to",
        f"record); img/s: training throughput. Measured on {devices}, one run at a time.",
        "",
        *[line for name in dict.fromkeys(r["candidate"] for r in rows if r["default"])
          for line in (f"The default scale (`scale=proxy`, conf/scale/proxy.yaml) is candidate `{name}`.", "")],
        "| candidate | change | network | seeds | top-1 | sd | EMA top-1 | loss | minutes | img/s | steps |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r["error"]:
            lines.append(f"| {r['candidate']} | {r['change'].replace('scale.', '')} | {r['network']} | 0 | failed: "
                         f"{r['error']} | | | | | | |")
            continue
        lines.append("| " + " | ".join([
            r["candidate"], r["change"].replace("scale.", "") or "(the centre)", r["network"], str(r["seeds"]),
            _number(r["top1_mean"]), _number(r["top1_sd"]), _number(r["ema_top1_mean"]),
            _number(r["final_train_loss_mean"], 3), _number(r["minutes_mean"], 1),
            f"{r['train_images_per_second_mean']:.0f}", str(r["optimizer_steps"]),
        ]) + " |")
    return "\n".join(lines) + "\n"


def load(records_dir: Path) -> dict[str, list[dict]]:
    """The records of each candidate, completed and failed: `records_dir/<candidate>/<name>-seed<seed>.json`."""
    return {folder.name: load_records(folder, roadmap_only=False, completed_only=False)
            for folder in sorted(records_dir.iterdir()) if folder.is_dir()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Tabulate and draw the proxy calibration study.")
    parser.add_argument("--runs", type=Path, help="a calibration sweep (<dir>/<candidate>/<name>-seed<n>/result.json)"
                        " whose records are first collected into the experiment")
    parser.add_argument("--experiment", type=Path, default=Path("experiments/proxy_calibration"),
                        help=f"the study's folder: its {RECORDS}/<candidate>/ and the table and figure it gets")
    args = parser.parse_args(argv)
    records_dir = args.experiment / RECORDS
    if args.runs is not None:
        for folder in sorted(p for p in args.runs.iterdir() if p.is_dir()):
            collect(folder, records_dir / folder.name, roadmap_only=False)
    if not records_dir.is_dir():
        raise SystemExit(f"no records: {records_dir} does not exist (run `make calibration`)")
    from roadmap.config.composition import compose  # Hydra only where the default scale is composed

    by_candidate = load(records_dir)
    rows = summarize(by_candidate, OmegaConf.to_container(compose().scale, resolve=True))
    if not rows:
        raise SystemExit(f"no completed records under {records_dir}")
    markdown = to_markdown(rows)
    write_tables(rows, args.experiment, markdown)
    records = [{**record, "candidate": name} for name, made in by_candidate.items() for record in made]
    update_readme(args.experiment, {"table": table_section(markdown),
                                    "provenance": provenance_markdown(records, lambda r: r["candidate"])})
    calibration_figure(rows, args.experiment / "calibration")
    print(markdown, end="")
