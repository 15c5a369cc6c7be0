"""Aggregation of run records over seeds, the tables, the experiment folder and its figures, on hand-made records."""

import json
import math
import os
import re
import statistics
from pathlib import Path

import pytest

from roadmap.figures.roadmap import roadmap_figure
from roadmap.results import stats, tables
from roadmap.results.records import RecordWarning, atomic_write, atomic_write_text, collect, load_records
from roadmap.results.stats import aggregate
from roadmap.steps import ROADMAP, STEPS, chain
from roadmap.studies import figure
from roadmap.studies.aggregate import main as aggregate_main

T_975_2DF = 4.303  # Student t quantile for a 95% interval from 3 seeds


def record(step: str, seed: int, top1: float, **changes: object) -> dict:
    """A completed record as run.py writes it, less what aggregation does not read."""
    paper = STEPS[step].paper["resnet50"]
    return {"status": "completed", "step": step, "deltas": chain(step), "seed": seed, "regime": "resnet50",
            "scale": "proxy", "data": "FashionMNISTData", "input_size": 48, "top1": top1, "top5": 90.0 + seed,
            "params": 400_000, "gflops": paper.gflops / 1000, "gflops_224": paper.gflops / 50,
            "train_images_per_second": 100.0 * paper.gflops + seed, "peak_memory_mb": 800.0 + seed, "device": "cpu",
            **changes}


def write(path: Path, content: dict | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def rows_by_step(records: list[dict]) -> dict[str, dict]:
    return {row["step"]: row for row in aggregate(records)}


def test_seed_statistics_and_paper_values():
    top1 = [50.0, 52.0, 57.0]
    row = rows_by_step([record("modern_recipe", seed, value) for seed, value in enumerate(top1)])["modern_recipe"]
    sd = statistics.stdev(top1)
    assert row["seeds"] == 3
    assert row["top1_mean"] == pytest.approx(53.0)
    assert row["top1_sd"] == pytest.approx(sd)
    assert row["top1_ci95"] == pytest.approx(T_975_2DF * sd / math.sqrt(3), rel=1e-4)
    assert row["top5_mean"] == pytest.approx(91.0) and row["top5_sd"] == pytest.approx(1.0)
    assert row["train_images_per_second_mean"] == pytest.approx(100 * 4.09 + 1)
    assert row["peak_memory_mb_mean"] == pytest.approx(801.0)
    assert (row["paper_top1"], row["paper_gflops"], row["paper_delta_top1"]) == (78.82, 4.09, 2.69)
    assert (row["group"], row["adopted"], row["parent"]) == ("training", True, "baseline")
    line = next(line for line in tables.to_markdown([row]).splitlines() if line.startswith("| modern_recipe"))
    assert f"53.00 ± {sd:.2f}" in line and f"[{53 - row['top1_ci95']:.2f}, {53 + row['top1_ci95']:.2f}]" in line


def test_a_single_seed_has_no_spread_and_no_parent_no_delta():
    row = rows_by_step([record("stage_ratio", 0, 60.0)])["stage_ratio"]
    assert row["top1_sd"] is row["top1_ci95"] is row["top5_sd"] is None
    assert row["delta_top1_mean"] is row["delta_top1_sd"] is None and row["paired_seeds"] == 0


def test_deltas_are_paired_by_seed_and_skip_seeds_the_parent_lacks():
    parent = [record("baseline", 0, 40.0), record("baseline", 1, 44.0)]  # seed 2 failed
    child = [record("modern_recipe", 0, 45.0), record("modern_recipe", 1, 46.0), record("modern_recipe", 2, 80.0)]
    row = rows_by_step(parent + child)["modern_recipe"]
    assert row["paired_seeds"] == 2
    assert row["delta_top1_mean"] == pytest.approx(3.5)  # (5 + 2) / 2; unpaired means would say 15.67
    assert row["delta_top1_sd"] == pytest.approx(statistics.stdev([5.0, 2.0]))


def test_kernel_steps_compare_with_move_up_dwconv_and_gelu_with_kernel_7():
    top1 = {"move_up_dwconv": 50.0, "kernel_5": 60.0, "kernel_7": 55.0, "kernel_9": 53.0, "kernel_11": 70.0,
            "gelu": 58.0}
    rows = aggregate([record(step, 0, value) for step, value in reversed(top1.items())])
    assert [row["step"] for row in rows] == [step.name for step in ROADMAP if step.name in top1]
    deltas = {row["step"]: row["delta_top1_mean"] for row in rows}
    assert deltas == {"move_up_dwconv": None, "kernel_5": 10.0, "kernel_7": 5.0, "kernel_9": 3.0, "kernel_11": 20.0,
                      "gelu": 3.0}
    assert [row["adopted"] for row in rows] == [True, True, True, False, False, True]


def test_mixed_regimes_raise_naming_them():
    with pytest.raises(ValueError, match="regime values: resnet200, resnet50"):
        aggregate([record("baseline", 0, 40.0), record("baseline", 1, 41.0, regime="resnet200")])


def test_bad_records_are_named_in_a_warning_and_skipped(tmp_path):
    good = [write(tmp_path / f"multirun/{seed}-gelu-seed{seed}/result.json", record("gelu", seed, 50.0 + seed))
            for seed in range(2)]
    failed = {"status": "failed", "step": "gelu", "seed": 2, "error": "RuntimeError: out of memory\nmore",
              "traceback": "..."}
    bad = {
        "unreadable JSON": write(tmp_path / "multirun/3/result.json", '{"status": "compl'),
        "missing top1": write(tmp_path / "multirun/4/result.json", {k: v for k, v in record("gelu", 4, 1.0).items()
                                                                   if k != "top1"}),
        "status 'failed': RuntimeError: out of memory": write(tmp_path / "multirun/5/result.json", failed),
        "gelu@+layer_norm is an ablation, not a roadmap step": write(tmp_path / "multirun/6/result.json",
                                                 record("gelu", 6, 1.0, deltas=[*chain("gelu"), "layer_norm"])),
    }
    write(tmp_path / "multirun/0-gelu-seed0/wandb/wandb-summary.json", "{}")  # not a record: not read
    with pytest.warns(RecordWarning) as caught:
        records = load_records(tmp_path)
    messages = [str(w.message) for w in caught]
    assert len(messages) == len(bad)
    for reason, path in bad.items():
        assert any(str(path) in message and reason in message for message in messages), (reason, messages)
    assert [r["seed"] for r in records] == [0, 1]
    assert aggregate(records)[0]["top1_mean"] == pytest.approx(50.5)
    assert all(path.exists() for path in good)


def test_a_duplicate_keeps_the_newest_record(tmp_path):
    newer = write(tmp_path / "a/result.json", record("gelu", 0, 10.0))
    older = write(tmp_path / "b/result.json", record("gelu", 0, 20.0))  # read second, but older
    os.utime(newer, (2_000_000_000, 2_000_000_000))
    os.utime(older, (1_000_000_000, 1_000_000_000))
    with pytest.warns(RecordWarning, match=re.escape(f"keeping {newer}, skipping {older}")):
        records = load_records(tmp_path)
    assert [r["top1"] for r in records] == [10.0]


def test_collect_copies_completed_records_only(tmp_path):
    runs = tmp_path / "multirun"
    sources = [write(runs / f"{i}/result.json", record(step, seed, 50.0))
               for i, (step, seed) in enumerate([("kernel_7", 0), ("baseline", 1)])]
    write(runs / "2/result.json", {"status": "failed", "step": "gelu", "seed": 0, "error": "boom"})
    with pytest.warns(RecordWarning, match="status 'failed'"):
        written = collect(runs, tmp_path / "exp/records")
    assert [p.name for p in written] == ["baseline-seed1.json", "kernel_7-seed0.json"]
    assert sorted(p.name for p in (tmp_path / "exp/records").iterdir()) == [p.name for p in written]
    assert written[0].read_text() == sources[1].read_text()


def test_aggregate_cli_collects_into_an_experiment_and_writes_its_tables(tmp_path, capsys):
    runs, experiment = tmp_path / "multirun", tmp_path / "experiments/fmnist"
    for seed in range(3):
        write(runs / f"{seed}/result.json", record("baseline", seed, 40.0 + seed))
        write(runs / f"m{seed}/result.json", record("modern_recipe", seed, 45.0 + 2 * seed))
    aggregate_main(["--runs", str(runs), "--collect-to", str(experiment / "records")])
    assert len(list((experiment / "records").glob("*.json"))) == 6
    csv_lines = (experiment / "table.csv").read_text().splitlines()
    assert csv_lines[0].startswith("step,parent,group,adopted,seeds,top1_mean,top1_sd,top1_ci95")
    assert [line.split(",")[0] for line in csv_lines[1:]] == ["baseline", "modern_recipe"]
    markdown = (experiment / "table.md").read_text()
    assert capsys.readouterr().out == markdown
    assert "| modern_recipe | 3 | 47.00 ± 2.00 |" in markdown and "| +6.00 ± 1.00 (3) |" in markdown


def test_figures_from_an_experiment_folder(tmp_path):
    for i, step in enumerate(ROADMAP):
        for seed in range(3):
            write(tmp_path / f"records/{step.name}-seed{seed}.json", record(step.name, seed, 40 + i + 2 * seed))
    figure.main(["--experiment", str(tmp_path)])
    for name in ("roadmap", "accuracy_vs_gflops", "accuracy_vs_throughput"):
        assert (tmp_path / f"{name}.png").stat().st_size > 30_000
        assert (tmp_path / f"{name}.svg").read_text().rstrip().endswith("</svg>")


def test_svg_output_is_deterministic(tmp_path):
    rows = aggregate([record(step, seed, 50.0 + seed) for step in ("baseline", "kernel_9") for seed in range(2)])
    roadmap_figure(rows, tmp_path / "a")
    roadmap_figure(rows, tmp_path / "b")
    assert (tmp_path / "a.svg").read_bytes() == (tmp_path / "b.svg").read_bytes()


def variant(reverted: str | None, seed: int, top1: float, **changes: object) -> dict:
    """A leave-one-out record: ConvNeXt-T (the last step) without `reverted`, applied as +delta=[...]."""
    deltas = [d for d in chain(ROADMAP[-1].name) if d != reverted]
    return record("baseline", seed, top1, deltas=deltas, **changes)


def test_ablation_rows_are_paired_changes_from_the_reference_sorted_most_harmful_first(tmp_path):
    runs = tmp_path / "multirun"
    for seed in range(3):
        write(runs / f"full{seed}/result.json", variant(None, seed, 60.0 + seed))
        write(runs / f"gelu{seed}/result.json", variant("gelu", seed, 58.0 + 3 * seed))  # -2, 0, +2
        write(runs / f"ln{seed}/result.json", variant("layer_norm", seed, 50.0 + seed))  # -10 each
    write(runs / "k/result.json", {"status": "failed", "name": "separate_downsampling@-kernel_7", "step": "baseline",
                                   "deltas": variant("kernel_7", 0, 0)["deltas"], "seed": 0,
                                   "error": "ValueError: no network\ndetails"})
    experiment = tmp_path / "exp"
    aggregate_main(["--runs", str(runs), "--collect-to", str(experiment / "records"),
                  "--reference", "separate_downsampling"])
    assert len(list((experiment / "records").glob("*.json"))) == 10  # the failed record is kept
    rows = stats.compare_folder(experiment / "records", "separate_downsampling")
    assert [r["change"] for r in rows] == ["(reference)", "-layer_norm", "-gelu", "-kernel_7"]
    ln, gelu, failed = rows[1:]
    assert (ln["delta_top1_mean"], ln["delta_top1_sd"], ln["paired_seeds"]) == (-10.0, 0.0, 3)
    assert gelu["delta_top1_mean"] == pytest.approx(0.0) and gelu["delta_top1_sd"] == pytest.approx(2.0)
    assert gelu["delta_top1_ci95"] == pytest.approx(T_975_2DF * 2 / math.sqrt(3), rel=1e-4)
    assert ln["name"] == "fewer_norms@+separate_downsampling" and gelu["name"] == "separate_downsampling@-gelu"
    assert failed["error"] == "ValueError: no network" and failed["seeds"] == 0
    markdown = (experiment / "table.md").read_text()
    assert "| -gelu | separate_downsampling@-gelu | 3 | 61.00 ± 3.00 | +0.00 ± 2.00 (3) |" in markdown
    assert "| -kernel_7 | separate_downsampling@-kernel_7 | 0 | failed: ValueError: no network |" in markdown
    figure.main(["--experiment", str(experiment), "--reference", "separate_downsampling"])
    assert (experiment / "ablation.png").stat().st_size > 20_000
    first = (experiment / "ablation.svg").read_bytes()
    figure.main(["--experiment", str(experiment), "--reference", "separate_downsampling"])
    assert (experiment / "ablation.svg").read_bytes() == first  # redrawing the same records rewrites the same SVG


def test_ablation_without_its_reference_says_so(tmp_path):
    write(tmp_path / "records/a.json", variant("gelu", 0, 50.0))
    write(tmp_path / "records/separate_downsampling-gelu-seed0.json", variant("gelu", 0, 50.0))
    with pytest.raises(SystemExit, match="no completed record of the reference 'separate_downsampling'"):
        aggregate_main(["--runs", str(tmp_path / "records"), "--reference", "separate_downsampling"])


SHIPPED = Path(__file__).resolve().parent.parent / "experiments" / "fashion_mnist_proxy"


@pytest.mark.skipif(not (SHIPPED / "records").is_dir(), reason="no shipped proxy roadmap yet")
def test_shipped_roadmap_is_rebuilt_from_its_records(tmp_path):
    """`make figure` on the committed records reproduces the committed table, every step with 3 seeds."""
    rows = aggregate(load_records(SHIPPED / "records"))
    assert [row["step"] for row in rows] == list(STEPS)
    assert all(row["seeds"] == 3 for row in rows)
    collect(SHIPPED / "records", tmp_path / "records")
    aggregate_main(["--runs", str(tmp_path / "records"), "--out", str(tmp_path)])
    assert (tmp_path / "table.csv").read_text() == (SHIPPED / "table.csv").read_text()
    figure.main(["--experiment", str(tmp_path)])
    for name in ("roadmap", "accuracy_vs_gflops", "accuracy_vs_throughput"):
        assert (tmp_path / f"{name}.png").stat().st_size > 30_000


SHIPPED_ABLATION = Path(__file__).resolve().parent.parent / "experiments" / "leave_one_out"


@pytest.mark.skipif(not (SHIPPED_ABLATION / "records").is_dir(), reason="no shipped leave-one-out study yet")
def test_shipped_leave_one_out_is_rebuilt_from_its_records(tmp_path):
    """`make figure` reproduces the committed leave-one-out table: every delta of ConvNeXt-T reverted, 3 seeds."""
    aggregate_main(["--runs", str(SHIPPED_ABLATION / "records"), "--out", str(tmp_path),
                  "--reference", "separate_downsampling"])
    assert (tmp_path / "table.csv").read_text() == (SHIPPED_ABLATION / "table.csv").read_text()
    rows = stats.compare(load_records(SHIPPED_ABLATION / "records", roadmap_only=False), "separate_downsampling")
    reverted = {row["change"].removeprefix("-") for row in rows if row["change"].startswith("-")}
    assert reverted == set(chain("separate_downsampling"))
    assert all(row["seeds"] == row["paired_seeds"] == 3 for row in rows[1:])


def test_an_atomic_write_replaces_whole_or_not_at_all_with_the_mode_of_a_plain_write(tmp_path):
    path = tmp_path / "result.json"
    atomic_write_text(path, "old")
    plain = tmp_path / "plain.json"
    plain.write_text("x")
    assert path.stat().st_mode == plain.stat().st_mode  # not mkstemp's 0600: a cluster's group reads records

    def torn(f):
        f.write(b"half")
        raise KeyboardInterrupt  # a kill mid-write

    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, torn)
    assert path.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["plain.json", "result.json"]
