"""The project's wandb dashboard as code (wandb-workspaces): a report of one study, built offline, saved online.

`make wandb-dashboard` (after `make wandb-sync`) saves it. A report, not a workspace: a workspace filters all
its panels with one run set, a report each grid of panels with its own, so the leave-one-out study gets a section
of its own beside the roadmap's. Every run set selects one study key (roadmap/config/labels.py), so a proxy `gelu` is
never averaged with a paper-scale one, nor a roadmap step with the same network in the leave-one-out study.
Panels read only keys that a run of this project logs (tests/test_dashboard.py reads them back from runs made
in the test); `publish` is the one call that needs the network.
"""

import argparse
from collections.abc import Sequence
from dataclasses import dataclass

import wandb
import wandb_workspaces.reports.v2 as wr
from wandb_workspaces import expr
from wandb_workspaces.reports.v2.interface import PanelTypes

from roadmap.config.composition import compose
from roadmap.config.labels import STUDIES, study_key
from roadmap.figures.ablation import ABLATION_FIGURE
from roadmap.figures.roadmap import ROADMAP_FIGURES
from roadmap.studies.summary_run import JOB_TYPE, TABLE_KEY, figure_key, summary_group

# Within one study a step's runs share their name (their wandb group is the study key and the name): one bar, one
# curve and one colour per step, mean and sd over its seeds.
STEP = wr.Config("name")
# The runs table: a row per step, its seeds folded in (the run set groups by step).
RUN_COLUMNS = ("run:displayName", "config:name.value", "summary:deltas", "config:seed.value", "summary:top1",
               "summary:paper_top1", "summary:params", "summary:gflops", "summary:train_images_per_second",
               "summary:peak_memory_mb")


def _runs(key: str) -> wr.Runset:
    """The training runs of study `key`, grouped by step, in roadmap order."""
    return wr.Runset(name=key, filters=expr.And(expr.Config("study_key") == key, expr.Metric("JobType") != JOB_TYPE),
                     groupby=["config.name"], order=[wr.OrderBy(wr.SummaryMetric("roadmap_index"), ascending=True)],
                     pinned_columns=list(RUN_COLUMNS), lock_columns=True)


def _summary_runs(key: str) -> wr.Runset:
    """The summary runs of study `key` (roadmap/studies/summary_run.py), the newest first."""
    return wr.Runset(name=summary_group(key),
                     filters=expr.And(expr.Config("study_key") == key, expr.Metric("JobType") == JOB_TYPE),
                     order=[wr.OrderBy("CreatedTimestamp", ascending=False)])


def _grid(runset: wr.Runset, *panels: PanelTypes, table: bool = False) -> wr.PanelGrid:
    """Panels over one run set; its runs table shows only where `table` asks, not under every grid."""
    return wr.PanelGrid(runsets=[runset], panels=list(panels), hide_run_sets=not table)


def _bars(title: str, *metrics: str) -> wr.BarPlot:
    return wr.BarPlot(title=title, metrics=list(metrics), groupby=STEP, groupby_aggfunc="mean",
                      groupby_rangefunc="stddev", layout=wr.Layout(w=24, h=10))


def _against(x: str, title: str) -> wr.ScatterPlot:
    return wr.ScatterPlot(title=title, x=wr.SummaryMetric(x), y=wr.SummaryMetric("top1"), layout=wr.Layout(w=12))


def _curve(y: str, x: str) -> wr.LinePlot:
    return wr.LinePlot(title=y, x=x, y=[y], groupby=STEP, groupby_aggfunc="mean", groupby_rangefunc="stddev",
                       layout=wr.Layout(w=12))


def _figures(*names: str) -> wr.MediaBrowser:
    """The figures `scripts/figure.py` drew, as its summary run logged them."""
    return wr.MediaBrowser(title=", ".join(names), media_keys=[figure_key(name) for name in names],
                           layout=wr.Layout(w=24, h=14))


def _table() -> wr.WeavePanelSummaryTable:
    """The experiment's table (table.csv), as its summary run logged it."""
    return wr.WeavePanelSummaryTable(table_name=TABLE_KEY, layout=wr.Layout(w=24, h=10))


def report(entity: str, project: str, key: str, ablation_key: str) -> wr.Report:
    """The dashboard of study `key` and of the leave-one-out study `ablation_key`; no network needed."""
    return wr.Report(entity=entity, project=project, title=f"ResNet to ConvNeXt roadmap: {key}", width="fluid",
                     description="Each grid shows the runs of one study key (study:data:scale:regime).", blocks=[
        wr.H2("The roadmap"),
        wr.P("Top-1 per step, mean and sd over its seeds, in roadmap order, beside the paper's ImageNet top-1; then "
             "the roadmap figure and the table that scripts/figure.py drew in the experiment folder, as committed."),
        _grid(_runs(key), _bars("top-1: ours (mean, sd) and the paper's", "top1", "paper_top1")),
        _grid(_summary_runs(key), _figures(ROADMAP_FIGURES[0]), _table()),
        wr.H2("Accuracy against cost"),
        _grid(_runs(key), _against("gflops", "top-1 against GFLOPs at the run's input size"),
              _against("train_images_per_second", "top-1 against training images per second")),
        _grid(_summary_runs(key), _figures(*ROADMAP_FIGURES[1:])),
        wr.H2("Training and validation curves"),
        _grid(_runs(key), _curve("train/loss", "trainer/global_step"), _curve("train/epoch_loss", "epoch"),
              _curve("val/loss", "epoch"), _curve("val/top1", "epoch")),
        wr.H2("Runs"),
        _grid(_runs(key), table=True),
        wr.H2("Leave-one-out"),
        wr.P("ConvNeXt-T with one delta reverted, for each delta (make leave-one-out)."),
        _grid(_runs(ablation_key), _bars("top-1 (mean, sd) per variant", "top1"),
              _against("gflops", "top-1 against GFLOPs")),
        _grid(_summary_runs(ablation_key), _figures(ABLATION_FIGURE), _table()),
    ])


@dataclass(frozen=True)
class Target:
    """Where the dashboard goes and which runs it shows."""

    entity: str | None  # None: the logged-in user's default entity
    project: str
    key: str  # the study's key
    ablation_key: str  # the leave-one-out study's, at the same data, scale and regime


def target(study: str, overrides: Sequence[str] = (), entity: str | None = None,
           project: str | None = None) -> Target:
    """The study keys of runs trained with `overrides` (as `run.py` composes them), and the entity and project
    given here, else those of the logger config (conf/logger/default.yaml, or `logger.wandb.*=` overrides)."""
    cfg = compose([f"study={study}", *overrides])
    return Target(entity=entity or cfg.logger.wandb.entity, project=project or cfg.logger.wandb.project,
                  key=study_key(cfg), ablation_key=study_key(compose(["study=leave_one_out", *overrides])))


def publish(spec: wr.Report) -> str:
    """Save the report to wandb and return its address: the only step that needs the network (and a login)."""
    spec.entity = spec.entity or wandb.Api().default_entity
    spec.save()
    return spec.url


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Save the project's wandb dashboard, a report of one study "
                                     "(and of the leave-one-out study), after `make wandb-sync`.")
    parser.add_argument("--entity", help="the wandb entity (default: logger.wandb.entity, else your default one)")
    parser.add_argument("--project", help="the wandb project (default: logger.wandb.project)")
    parser.add_argument("--study", choices=STUDIES, default="roadmap", help="the study shown (default: %(default)s)")
    parser.add_argument("--dry-run", action="store_true", help="print the report's spec as JSON; no network")
    parser.add_argument("overrides", nargs="*", help="the runs' Hydra overrides that change their study key, e.g. "
                        "data=cifar10 scale=paper regime=resnet200 (default: the defaults of conf/train.yaml)")
    args = parser.parse_args(argv)
    where = target(args.study, args.overrides, args.entity, args.project)
    spec = report(where.entity or "", where.project, where.key, where.ablation_key)
    if args.dry_run:
        print(spec._to_model().model_dump_json(by_alias=True, exclude_none=True, indent=1))
    else:
        print(f"dashboard: {publish(spec)}")
