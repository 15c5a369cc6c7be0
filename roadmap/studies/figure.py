"""An experiment's figures, drawn from its folder's records alone, so that a figure never needs a training run: the
roadmap figure and its cost plots, or an ablation's chart, or the attention study's; then, if asked, the study's
summary run in wandb: `python scripts/figure.py --experiment DIR`."""

import argparse
from pathlib import Path

from roadmap.config.labels import STUDIES
from roadmap.figures.ablation import ABLATION_FIGURE, MIXERS_FIGURE, ablation_figure, mixers_figure
from roadmap.figures.roadmap import (
    ROADMAP_FIGURES,
    accuracy_vs_gflops,
    accuracy_vs_throughput,
    goal_runs,
    roadmap_figure,
)
from roadmap.results.records import RECORDS, load_records
from roadmap.results.stats import aggregate, compare_folder


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
