"""The ladder study: do the proxy's verdicts that go against the paper survive longer training?

Each length of training and regulariser rule is a rung (roadmap/studies/rungs.py): one folder of records under
`experiments/ladder/records/<scale name>/`. The one-pass rung is the records the leave-one-out study and the
roadmap already hold (`--one-pass`), copied there, so the table reads every length from one folder. Each row is a
change of conf/ablation/ladder.yaml: ConvNeXt-T against ConvNeXt-T with it reverted, and the recipe as ResNet-50
under both recipes. The reverts' intervals use the seed variance pooled across them (two seeds each); the recipe's
row, ResNet-50 under SGD, whose seeds scatter more, keeps its own.

`python scripts/ladder.py --runs multirun/ladder --one-pass experiments/leave_one_out/records
experiments/fashion_mnist_proxy/records --experiment experiments/ladder`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from omegaconf import OmegaConf

from roadmap.config.ablation import FINAL_STEP
from roadmap.config.composition import CONF_DIR
from roadmap.results.provenance import provenance_markdown, study_records, table_section, update_readme
from roadmap.results.records import RECORDS, atomic_write_text, collect, load_records
from roadmap.results.tables import to_csv
from roadmap.studies.rungs import Rung, cross_rung_rows, rank_correlation, revert_comparisons, to_markdown

STUDY = OmegaConf.load(CONF_DIR / "ablation" / "ladder.yaml").ablation
CHANGES = ("modern_recipe", *STUDY.reverts)  # the recipe first, as the path has it
INTRO = ("Each change's Δ top-1 (points): ConvNeXt-T minus ConvNeXt-T with the change reverted, paired by seed; the "
         "recipe as ResNet-50 under the modern recipe minus under its own. 95% intervals from the seed variance "
         "pooled across ConvNeXt-T's reverts (Student's t); the recipe's row, ResNet-50 under SGD, whose seeds scatter "
         "more, over its own seeds. The paper's Δ is its path's (Table 10): it reverted nothing. "
         "Reading: `holds` where every length gives the change the same verdict (gain or loss beyond noise, or "
         "within noise), `moves` where they differ.")


def rule(record: dict) -> str:
    """The regulariser rule a record's run used: `linear` (which `true` means) or `sqrt`."""
    setting = record["config"]["scale"]["budget"].get("regularization", False)
    return "linear" if setting is True else str(setting) if setting else "none"


def label(epochs: float, regulariser: str) -> str:
    return f"{epochs:g} pass{'' if epochs == 1 else 'es'}, {regulariser}"


def read_rungs(records_dir: Path) -> list[tuple[Rung, float, str]]:
    """Every rung under the study's records/, ordered by length then rule: the rung, its passes and its rule."""
    rungs = []
    for folder in sorted(p for p in records_dir.iterdir() if p.is_dir()):
        records = load_records(folder, roadmap_only=False)
        if not records:
            continue
        epochs, regulariser = records[0]["epochs"], rule(records[0])
        rungs.append((Rung.of(label(epochs, regulariser), records), epochs, regulariser))
    return sorted(rungs, key=lambda r: (r[1], r[2] != "linear"))


def copy_one_pass(sources: list[Path], records_dir: Path) -> None:
    """The one-pass runs of the ladder's networks, from the studies that made them, into `records_dir`."""
    names = {name for c in revert_comparisons(CHANGES) for name in (c.network, c.without)}
    copied: set[str] = set()
    for source in sources:  # the first source that holds a run gives it: leave-one-out's ConvNeXt-T, its reference
        for path in sorted(source.glob("*-seed*.json")):
            if path.name.rpartition("-seed")[0] in names and path.name not in copied:
                atomic_write_text(records_dir / path.name, path.read_text())
                copied.add(path.name)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="The ladder study's table and figure: the proxy's contested "
                                     "verdicts at each length of training.")
    parser.add_argument("--experiment", type=Path, default=Path("experiments/ladder"),
                        help=f"the study's folder: its {RECORDS}/<rung>/ and the table and figure it gets")
    parser.add_argument("--runs", type=Path, help="first copy the records of this sweep folder's rungs "
                        "(<scale name>/<run>/result.json) into the study's records")
    parser.add_argument("--one-pass", type=Path, nargs="*", default=[],
                        help="records folders holding the one-pass runs (leave-one-out's, the roadmap's)")
    args = parser.parse_args(argv)
    records_dir = args.experiment / RECORDS
    if args.runs:
        for rung_dir in sorted(p for p in args.runs.iterdir() if p.is_dir() and p.name.startswith("proxy")):
            collect(rung_dir, records_dir / rung_dir.name, roadmap_only=False)
    if args.one_pass:
        copy_one_pass(args.one_pass, records_dir / "proxy")
    if not records_dir.is_dir():
        raise SystemExit(f"{records_dir}: no such folder; run `make ladder` first")
    ladder = read_rungs(records_dir)
    rungs = [rung for rung, _, _ in ladder]
    comparisons = revert_comparisons(CHANGES)
    # ConvNeXt-T's reverts share a seed variance; ResNet-50 under SGD scatters more (experiments/seed_noise), so the
    # recipe's row keeps its own.
    rows = cross_rung_rows(rungs, comparisons, pooled=[c for c in comparisons if c.network == FINAL_STEP])
    markdown = to_markdown(rungs, rows, title="The ladder: the proxy's verdicts at each length of training",
                           intro=INTRO, first_column="change")
    atomic_write_text(args.experiment / "table.md", markdown)
    atomic_write_text(args.experiment / "table.csv", to_csv(rows))
    from roadmap.figures.ladder import ladder_figure  # matplotlib only where a figure is drawn

    rhos = ", ".join(f"{rung.label}: {rank_correlation(rows, rung.label)[0]:+.2f}" for rung in rungs
                     if rank_correlation(rows, rung.label)[0] is not None)
    ladder_figure(rows, [(rung.label, epochs, regulariser) for rung, epochs, regulariser in ladder],
                  args.experiment / "ladder", f"Fashion-MNIST at 48 px; Spearman's rho with the paper: {rhos}")
    records = [r for rung_dir in sorted(p for p in records_dir.iterdir() if p.is_dir())
               for r in study_records(rung_dir)]
    update_readme(args.experiment, {"table": table_section(markdown), "provenance": provenance_markdown(records)})
    print(markdown, end="")
