"""The command line of scripts/aggregate.py: records -> statistics -> tables, in an experiment folder."""

import argparse
from pathlib import Path

from roadmap.config.ablation import FINAL_STEP
from roadmap.results.provenance import provenance_markdown, study_records, table_section, update_readme
from roadmap.results.records import RECORDS, collect, load_records
from roadmap.results.stats import aggregate, compare_folder
from roadmap.results.tables import comparison_markdown, to_markdown, write_tables


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
    out = args.out or (records_dir.parent if records_dir.name == RECORDS else records_dir)
    write_tables(rows, out, markdown)
    provenance = provenance_markdown(study_records(records_dir))
    update_readme(out, {"table": table_section(markdown), "provenance": provenance})
    print(markdown, end="")
