"""The wandb dashboard, built offline: each grid selects one study, and every key a panel, filter, grouping or
column reads is one that the runs it selects really log, read back from offline runs made here."""

import json
import socket
from pathlib import Path
from typing import Any

import pytest
import wandb_workspaces.reports.v2 as wr
from helpers import read_offline_run, tiny_cfg
from wandb_workspaces import expr

from roadmap.config.ablation import run_name
from roadmap.config.composition import compose
from roadmap.studies import figure
from roadmap.studies.summary_run import JOB_TYPE
from roadmap.tools import dashboard
from roadmap.training.job import train

DATA = ("data=synthetic",)  # the runs below train on synthetic data: their study keys say so


def write_record(path: Path, record: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record))


@pytest.fixture(scope="module")
def logged(tmp_path_factory) -> dict[str, dict[str, Any]]:
    """What a roadmap run logs, and what the summary runs that `scripts/figure.py --wandb` logs from its record
    do: as the roadmap's experiment, and as a leave-one-out experiment (with a variant of it, both records
    without labels, as records written before runs carried them: their key comes from their config)."""
    root = tmp_path_factory.mktemp("runs")
    record = train(tiny_cfg("+step=gelu", "study=roadmap", "logger.wandb.enabled=true", "trainer.log_every_n_steps=1",
                            "+trainer.limit_train_batches=2", "+trainer.limit_val_batches=1"), root / "run")
    write_record(root / "roadmap/records/gelu-seed0.json", record)
    figure.main(["--experiment", str(root / "roadmap"), "--wandb", "roadmap", "--wandb-dir", str(root / "s1")])
    unlabelled = {key: value for key, value in record.items() if key not in ("study", "study_key")}
    deltas = record["deltas"][:-1]
    write_record(root / "ablation/records/gelu-seed0.json", unlabelled)
    write_record(root / "ablation/records/variant-seed0.json",
                 {**unlabelled, "name": run_name(deltas), "deltas": deltas, "top1": record["top1"] - 1})
    figure.main(["--experiment", str(root / "ablation"), "--reference", "gelu", "--wandb", "leave_one_out",
                 "--wandb-dir", str(root / "s2")])
    return {"run": read_offline_run(root / "run/wandb"), "roadmap": read_offline_run(root / "s1/wandb"),
            "leave_one_out": read_offline_run(root / "s2/wandb")}


@pytest.fixture
def no_network(monkeypatch):
    def refuse(sock: socket.socket, address: Any) -> None:
        raise AssertionError(f"the dashboard went to the network ({address})")

    monkeypatch.setattr(socket.socket, "connect", refuse)


def conditions(filters: str) -> list[expr.Filters]:
    """A run set's filter conditions, which must all hold (no `or` anywhere)."""
    tree = expr.expr_to_filters(filters)
    assert tree.op == "AND" and all(leaf.op not in ("AND", "OR") for leaf in tree.filters), filters
    return tree.filters


def selection(grid: wr.PanelGrid) -> tuple[str, bool]:
    """The study key a grid's run set selects, and whether it selects summary runs (else training runs)."""
    (runset,) = grid.runsets
    leaves = conditions(runset.filters)
    keys = [leaf.value for leaf in leaves if (leaf.key.section, leaf.key.name) == ("config", "study_key")]
    kinds = [leaf for leaf in leaves if (leaf.key.section, leaf.key.name) == ("run", "jobType")]
    assert len(keys) == 1 and len(kinds) == 1 and len(leaves) == 2 and kinds[0].value == JOB_TYPE, runset.filters
    return keys[0], kinds[0].op == "="


def _metric(metric: Any) -> tuple[str, str]:
    if isinstance(metric, wr.Config):
        return "config", metric.name
    if isinstance(metric, wr.SummaryMetric):
        return "summary", metric.name
    return "run", expr.to_backend_name(metric.name if isinstance(metric, wr.Metric) else metric)


def _grouping(panel: wr.BarPlot | wr.LinePlot) -> set[tuple[str, str]]:
    return {_metric(panel.groupby)} if panel.groupby else set()


def _column(column: str) -> tuple[str, str]:
    section, name = column.split(":", 1)
    return section, name.removesuffix(".value")


def references(grid: wr.PanelGrid) -> set[tuple[str, str]]:
    """(where, key) of everything a grid reads from its runs: config, summary, history, a run attribute, or an
    image or table logged under that key."""
    (runset,) = grid.runsets
    refs = {(leaf.key.section, leaf.key.name) for leaf in conditions(runset.filters)}
    refs |= {("config", group.removeprefix("config.")) for group in runset.groupby}
    refs |= {_metric(order.name) for order in runset.order} | {_column(c) for c in runset.pinned_columns}
    for panel in grid.panels:
        if isinstance(panel, wr.BarPlot):  # a bar is a run's last value: its summary
            refs |= {("summary", metric) for metric in panel.metrics} | _grouping(panel)
        elif isinstance(panel, wr.ScatterPlot):
            refs |= {_metric(panel.x), _metric(panel.y)}
        elif isinstance(panel, wr.LinePlot):
            refs |= {("history", key) for key in (panel.x, *panel.y)} | _grouping(panel)
        elif isinstance(panel, wr.MediaBrowser):
            refs |= {("image-file", key) for key in panel.media_keys}
        elif isinstance(panel, wr.WeavePanelSummaryTable):
            refs.add(("table-file", panel.table_name))
        else:
            raise AssertionError(f"no rule for the keys of {type(panel).__name__}: add one")
    return refs


def unlogged(grid: wr.PanelGrid, run: dict[str, Any]) -> set[tuple[str, str]]:
    """What `grid` reads that `run` did not log (every run has wandb's run attributes)."""
    logged = {("run", name) for name in expr.FE_METRIC_NAME_MAP.values()}
    logged |= {(where, key) for where in ("config", "summary", "history") for key in run[where]}
    # an image or a table is logged as a dictionary: its kind under <key>/_type
    logged |= {(kind, key.removesuffix("/_type")) for key, kind in run["summary"].items() if key.endswith("/_type")}
    return references(grid) - logged


def grids(report: wr.Report) -> list[wr.PanelGrid]:
    return [block for block in report.blocks if isinstance(block, wr.PanelGrid)]


def test_every_panel_reads_what_the_runs_it_selects_log(logged, no_network):
    where = dashboard.target("roadmap", DATA)
    assert where.key == logged["run"]["config"]["study_key"] == "roadmap:synthetic:proxy:resnet50"
    runs = {(where.key, False): logged["run"], (where.key, True): logged["roadmap"],
            (where.ablation_key, True): logged["leave_one_out"],
            # a leave-one-out run is trained by the same train() as a roadmap run, so it logs the same keys
            (where.ablation_key, False): logged["run"]}
    shown = dashboard.report("entity", "project", where.key, where.ablation_key)
    seen = set()
    for grid in grids(shown):
        key, summary = selection(grid)
        run = runs[key, summary]
        seen.add((key, summary))
        assert not unlogged(grid, run), (key, summary)
        if (key, summary) != (where.ablation_key, False):  # the one grid with a stand-in run
            assert run["config"]["study_key"] == key and (run["job_type"] == JOB_TYPE) == summary
    assert seen == set(runs)
    assert logged["leave_one_out"]["group"] == f"{where.ablation_key}:summary"
    panels = [panel for grid in grids(shown) for panel in grid.panels]
    assert {"train/loss", "val/top1"} <= {key for p in panels if isinstance(p, wr.LinePlot) for key in p.y}
    assert {"figure/roadmap", "figure/ablation"} <= {key for p in panels if isinstance(p, wr.MediaBrowser)
                                                     for key in p.media_keys}
    shown._to_model()  # the spec as `publish` would send it, made offline


def test_a_panel_reading_what_no_run_logs_is_caught(logged):
    grid = grids(dashboard.report("entity", "project", "k", "l"))[0]
    grid.panels = [*grid.panels, wr.LinePlot(x="epoch", y=["val/top9"])]
    assert unlogged(grid, logged["run"]) == {("history", "val/top9")}


def test_each_grid_selects_one_study_key(no_network):
    where = dashboard.target("calibration", ["scale=paper", "regime=resnet200"])
    assert (where.key, where.ablation_key) == ("calibration:fashionmnist:paper:resnet200",
                                               "leave_one_out:fashionmnist:paper:resnet200")
    keys = [selection(grid)[0] for grid in grids(dashboard.report("e", "p", where.key, where.ablation_key))]
    assert keys == [where.key] * (len(keys) - 2) + [where.ablation_key] * 2  # the last section: leave-one-out


def test_entity_and_project_come_from_the_logger_config_unless_given(monkeypatch, capsys, no_network):
    wandb_settings = compose().logger.wandb
    where = dashboard.target("roadmap")
    assert (where.entity, where.project) == (wandb_settings.entity, wandb_settings.project)
    config = ["logger.wandb.entity=team", "logger.wandb.project=p"]
    assert dashboard.target("roadmap", config).entity == "team"
    assert dashboard.target("roadmap", config, entity="me", project="q") == dashboard.Target(
        "me", "q", "roadmap:fashionmnist:proxy:resnet50", "leave_one_out:fashionmnist:proxy:resnet50")
    published = []
    monkeypatch.setattr(dashboard, "publish", lambda spec: published.append(spec) or "https://wandb.example")
    dashboard.main(["--entity", "me", *config, *DATA])
    (spec,) = published  # the only online step, given the report as built offline
    assert (spec.entity, spec.project, spec.title) == ("me", "p", "ResNet to ConvNeXt roadmap: "
                                                       "roadmap:synthetic:proxy:resnet50")
    capsys.readouterr()
    dashboard.main(["--dry-run", "--project", "q", *config])
    assert json.loads(capsys.readouterr().out)["project"] == {"name": "q", "entityName": "team"}
    assert len(published) == 1
