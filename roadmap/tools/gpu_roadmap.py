"""`make gpu-roadmap`: the proxy roadmap on one GPU within a deadline, through the device data path (or, with
`--study rung-calibration`, the GPU rung's calibration: both ends under every conf/calibration/gpu_rung/ candidate).

In one run, within a deadline (`--deadline`: what a GPU reservation allows):

1. the probe: the ConvNeXt-T proxy job (`+step=separate_downsampling`, seed 0) under each `trainer.compile`
   setting asked for (eager, CUDA graphs captured without a compile, ...), each a whole job: its training img/s,
   its wall time compile included, and how many times a training step made the host wait for the GPU (CUDA's sync
   debug mode, counted from the first batch to the end of training);
2. the roadmap: every step x every seed, in `workers` processes sharing the GPU, under the setting whose probe job
   took the least wall time (or the one named), seeds in turn so that a run cut short still holds whole seeds;
   a job whose record is already in the output is skipped, so that the same command run again continues;
3. the report: each job's record goes to `<out>/records/` as soon as it is written, and `<out>/gpu-roadmap.md`
   (environment, probe, jobs, totals) is rewritten after each job; `--archive` packs both, with the workers'
   output (logs/), into one file after each job too (one file to copy back from a cluster's compute node).

`--quick` runs the same sections on the CPU in a minute (two steps, a subset, two workers), for the test.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tarfile
import tempfile
import time
import warnings
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field, replace
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

from roadmap.config.composition import compose, step_overrides
from roadmap.data.module import PIPELINES
from roadmap.results.records import RECORDS, atomic_write_text
from roadmap.steps import STEPS
from roadmap.tools.gpu_check import check_record, environment
from roadmap.tools.speed import CONVNEXT_STEP, data_throughput

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "experiments" / "fashion_mnist_proxy_gpu"
REPORT = "gpu-roadmap.md"
LOGS = "logs"  # each worker process's output
NO_WANDB = ("logger.wandb.enabled=false",)


@dataclass(frozen=True)
class Plan:
    """What one run trains: the probe job under each compile setting, then the study's jobs: every step of `steps`
    at every seed, under each calibration candidate of `candidates` where there are some."""

    common: tuple[str, ...]  # overrides of every job: scale, trainer, data pipeline, data root
    settings: tuple[bool | str, ...]  # trainer.compile values the probe tries
    steps: tuple[str, ...]
    seeds: tuple[int, ...]
    workers: int
    deadline_s: float  # no job starts after this many seconds of the run
    candidates: tuple[str, ...] = ()  # conf/calibration/gpu_rung/ names (the rung's calibration study)
    data_batches: int = 100  # timed batches of each data pipeline in the probe

    def jobs(self) -> list[tuple[str, ...]]:
        """Every step (and candidate) of one seed, then of the next: a run cut short still holds whole seeds."""
        candidates = [(f"+calibration/gpu_rung={c}",) for c in self.candidates] or [()]
        return [(*candidate, *step_overrides(step)[1:], f"seed={seed}")
                for seed in self.seeds for candidate in candidates for step in self.steps]

    @property
    def probe(self) -> tuple[str, ...]:
        """ConvNeXt-T, seed 0 (under the first candidate): one of the study's own jobs."""
        return next(job for job in self.jobs() if f"+step={CONVNEXT_STEP}" in job)


STUDIES = {  # --study: the steps, and the calibration candidates, of each study a run can make
    "roadmap": (tuple(STEPS), ()),
    "rung-calibration": (("baseline", CONVNEXT_STEP),
                         tuple(sorted((p.stem for p in (REPO / "conf" / "calibration" / "gpu_rung").glob("*.yaml")),
                                      key=lambda name: (name != "centre", name)))),  # the centre first
}
STUDY_OUT = {"roadmap": OUT, "rung-calibration": REPO / "experiments" / "gpu_rung_calibration"}


def full_plan(scale: str, workers: int, deadline_s: float, study: str = "roadmap") -> Plan:
    steps, candidates = STUDIES[study]
    scale_override = () if candidates else (f"scale={scale}",)  # a candidate names its own scale
    return Plan(common=(*scale_override, "trainer=gpu", "data.pipeline=device"), settings=(False, "cudagraphs"),
                steps=steps, seeds=(0, 1, 2), workers=workers, deadline_s=deadline_s, candidates=candidates)


def record_path(cfg: Any) -> str:
    """Where a job's record goes in the study's records/: `<name>-seed<seed>.json`, in its candidate's folder for a
    calibration study (as roadmap/studies/calibration.py reads them)."""
    name = f"{cfg.name}-seed{cfg.seed}.json"
    return f"{cfg.calibration}/{name}" if cfg.get("calibration") else name


def quick_plan() -> Plan:
    """The same sections on the CPU: a 512-image subset at 32 px, two steps, one seed, two workers."""
    return Plan(common=("scale=proxy", "scale.input_size=32", "scale.train_subset=512", "scale.val_subset=64",
                        "data.pipeline=device"),
                settings=(False,), steps=("baseline", CONVNEXT_STEP), seeds=(0,), workers=2, deadline_s=600,
                data_batches=3)


class SyncCount(Callback):
    """Counts the host's waits for the GPU while training: CUDA's sync debug mode warns at each, from the first
    training batch until the epoch's training ends (validation and checkpoints are not steps)."""

    def __init__(self) -> None:
        self.waits = self.batches = 0
        self._caught: list[warnings.WarningMessage] | None = None
        self._context: warnings.catch_warnings | None = None

    def on_train_batch_start(self, trainer: L.Trainer, module: L.LightningModule, batch: Any, idx: int) -> None:
        self.batches += 1
        if self._context is None and torch.cuda.is_available():
            self._context = warnings.catch_warnings(record=True)
            self._caught = self._context.__enter__()
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.stop()

    def on_validation_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.stop()

    def stop(self) -> None:
        if self._context is not None:
            torch.cuda.set_sync_debug_mode("default")
            self.waits += sum("synchroniz" in str(w.message) for w in self._caught)
            self._context.__exit__(None, None, None)
            self._context = None


@dataclass
class Done:
    """One finished job, as the report lists it."""

    job: str  # its record's path in records/, without .json
    seconds: float
    record: dict | None = None
    error: str | None = None
    skipped: bool = False
    extra: dict = field(default_factory=dict)


def run_job(overrides: tuple[str, ...], work: Path, records: Path, count_syncs: bool = False) -> Done:
    """Train one job into `work/<name>-seed<seed>/` and copy its record to `records/`; a job whose record is there
    already is skipped. Errors are returned, not raised: one failed job costs the run one job."""
    from roadmap.training.job import train  # here: a worker process imports Lightning once, in its first job

    cfg = compose([*overrides, *NO_WANDB])
    path = record_path(cfg)
    job = path.removesuffix(".json")
    if (records / path).is_file():
        return Done(job, 0.0, skipped=True)
    syncs = SyncCount() if count_syncs and torch.cuda.is_available() else None
    started = time.perf_counter()
    try:
        record = train(cfg, work / job, callbacks=[syncs] if syncs else [])
    except Exception as error:  # noqa: BLE001 (the report names it; the other jobs go on)
        return Done(job, time.perf_counter() - started, error=f"{type(error).__name__}: {error}")
    seconds = time.perf_counter() - started
    atomic_write_text(records / path, (work / job / "result.json").read_text())
    extra = {"waits_per_step": syncs.waits / syncs.batches} if syncs and syncs.batches else {}
    return Done(job, seconds, record=record, extra=extra)


def _worker_start(threads: int, logs: Path) -> None:
    """A worker's torch threads, and its output (progress bars, warnings) to its own log, not the run's."""
    torch.set_num_threads(threads)
    logs.mkdir(parents=True, exist_ok=True)
    log = open(logs / f"worker-{os.getpid()}.log", "w", buffering=1)  # noqa: SIM115 (open for the process's life)
    os.dup2(log.fileno(), 1)
    os.dup2(log.fileno(), 2)


def _setting(value: str) -> bool | str:
    return {"false": False, "true": True}.get(value, value)


class Report:
    """gpu-roadmap.md in `out`, rewritten whole after each section and job, and the archive with it."""

    def __init__(self, out: Path, archive: Path | None, logs: Path, command: str, device: str) -> None:
        self.out, self.archive, self.logs, self.started = out, archive, logs, time.perf_counter()
        when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        self.head = ["# The proxy roadmap on one GPU", "", f"`{command}`, {when}", "", *environment(device), ""]
        self.probe: list[str] = []
        self.jobs: list[Done] = []
        self.notes: list[str] = []

    def write(self) -> None:
        lines = [*self.head, *self.probe]
        if self.jobs:
            lines += ["## The roadmap", "", "| job | wall s | train img/s | top-1 | record |", "|---|---|---|---|---|"]
            for done in self.jobs:
                lines.append(_job_row(done))
            ran = [d for d in self.jobs if not d.skipped]
            lines += ["", f"{sum(d.record is not None for d in ran)} jobs trained, "
                      f"{sum(d.error is not None for d in ran)} failed, {sum(d.skipped for d in self.jobs)} skipped "
                      "(records already there)."]
        lines += ["", *self.notes, f"Whole run so far: {time.perf_counter() - self.started:.0f} s.", ""]
        atomic_write_text(self.out / REPORT, "\n".join(lines))
        if self.archive is not None:
            self.archive.parent.mkdir(parents=True, exist_ok=True)
            partial = self.archive.with_name(f".{self.archive.name}.partial")
            with tarfile.open(partial, "w:gz") as tar:
                tar.add(self.out / REPORT, arcname=REPORT)
                for folder, name in ((self.out / RECORDS, RECORDS), (self.logs, LOGS)):
                    if folder.is_dir():
                        tar.add(folder, arcname=name)
            os.replace(partial, self.archive)


def _job_row(done: Done) -> str:
    if done.skipped:
        return f"| {done.job} | | | | skipped: already there |"
    if done.error is not None:
        return f"| {done.job} | {done.seconds:.0f} | | | failed: {done.error.splitlines()[0]} |"
    record = done.record
    problems = check_record(record, record["config"]["trainer"]["accelerator"])
    return (f"| {done.job} | {done.seconds:.1f} | {record['train_images_per_second']:.0f} | "
            f"{record['top1']:.2f} | {'sound' if not problems else '; '.join(problems)} |")


def probe(plan: Plan, extra: tuple[str, ...], work: Path, out: Path, report: Report) -> bool | str:
    """The ConvNeXt-T proxy job under each compile setting; returns the setting whose job took the least wall time,
    and keeps that job's record as the roadmap's (the same config: the roadmap then skips it)."""
    data = [data_row(plan, extra, step) for step in ("baseline", CONVNEXT_STEP)]
    rows, walls, kept = [], {}, {}
    for setting in plan.settings:
        overrides = (*plan.probe, *plan.common, f"trainer.compile={str(setting).lower()}", *extra)
        folder = work / f"probe-{setting}"  # its work and its record, apart from the study's
        done = run_job(overrides, folder, folder, count_syncs=True)
        if done.record is None:
            rows.append(f"| {setting} | {done.seconds:.0f} | | | | failed: {done.error} |")
            continue
        walls[setting] = done.seconds
        kept[setting] = (folder, f"{done.job}.json")
        waits = done.extra.get("waits_per_step")
        rows.append(f"| {setting} | {done.seconds:.1f} | {done.record['train_images_per_second']:.0f} | "
                    f"{done.record['top1']:.2f} | {'n/a' if waits is None else f'{waits:.2f}'} | "
                    f"{done.record['data_pipeline']} |")
        report.probe = _probe_section(plan, extra, rows, data)
        report.write()
    report.probe = _probe_section(plan, extra, rows, data)
    if not walls:
        raise RuntimeError("the probe job failed under every compile setting; see the report")
    chosen = min(walls, key=walls.get)
    folder, path = kept[chosen]
    if not (out / RECORDS / path).exists():
        atomic_write_text(out / RECORDS / path, (folder / path).read_text())
    return chosen


def data_row(plan: Plan, extra: tuple[str, ...], step: str) -> str:
    """The training batches alone of one step's job (its recipe fitted to the run), per pipeline, on the device."""
    job = [o for o in (*plan.probe, *plan.common, *extra) if not o.startswith(("+step=", "data.pipeline="))]
    overrides = [*job, *step_overrides(step)[1:]]
    speeds = [data_throughput(overrides, pipeline, plan.data_batches) for pipeline in PIPELINES]
    return f"| {step} | " + " | ".join(f"{v:.0f}" for v in speeds) + " |"


def _probe_section(plan: Plan, extra: tuple[str, ...], rows: list[str], data: list[str]) -> list[str]:
    return ["## Probe: the data pipelines alone", "",
            f"Training img/s of the batches alone ({plan.data_batches} timed batches, waited for on the device; "
            "`scripts/bench.py data`): the original recipe (baseline) and the modern one (ConvNeXt-T), each fitted "
            "to the run's budget.", "",
            "| job | " + " | ".join(PIPELINES) + " |", "|---|" + "---|" * len(PIPELINES), *data, "",
            "## Probe: the ConvNeXt-T proxy job", "",
            f"`python run.py {' '.join((*plan.probe, *plan.common, *extra))} trainer.compile=<setting>`: one whole "
            "job each; wall s from start to record (compile and validation included); img/s: the record's training "
            "img/s (after 5 warm-up batches); waits: the host's waits for the GPU per training batch (CUDA's sync "
            "debug mode).", "",
            "| trainer.compile | wall s | train img/s | top-1 | waits per step | pipeline |",
            "|---|---|---|---|---|---|", *rows, ""]


def roadmap(plan: Plan, setting: bool | str, extra: tuple[str, ...], work: Path, out: Path, report: Report) -> None:
    """Every job of the plan in `plan.workers` processes; none starts after the deadline."""
    records = out / RECORDS
    records.mkdir(parents=True, exist_ok=True)
    jobs = []
    for job in plan.jobs():
        overrides = (*job, *plan.common, f"trainer.compile={str(setting).lower()}", *extra)
        path = record_path(compose([*overrides, *NO_WANDB]))
        if (records / path).is_file():  # done in an earlier run, or by the probe
            report.jobs.append(Done(path.removesuffix(".json"), 0.0, skipped=True))
        else:
            jobs.append(overrides)
    threads = max(1, (os.cpu_count() or 1) // plan.workers)
    started = time.perf_counter()
    report.notes = [f"Roadmap: {len(jobs)} jobs to train under trainer.compile={setting}, {plan.workers} worker "
                    f"processes of {threads} torch threads sharing the device."]
    with ProcessPoolExecutor(plan.workers, mp_context=get_context("spawn"), initializer=_worker_start,
                             initargs=(threads, report.logs)) as pool:
        pending: set[Future] = set()
        queue = list(jobs)
        while queue or pending:
            while queue and len(pending) < plan.workers and time.perf_counter() - report.started < plan.deadline_s:
                pending.add(pool.submit(run_job, queue.pop(0), work, records))
            if not pending:
                break
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                report.jobs.append(future.result())
            trained = [d for d in report.jobs if d.record is not None]
            report.notes = [*report.notes[:1],
                            f"Roadmap wall time so far: {time.perf_counter() - started:.0f} s for {len(trained)} jobs "
                            f"trained; {len(queue)} not started" + (" (the deadline came)." if queue and not pending
                                                                    else ".")]
            report.write()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="the reduced run on the CPU (about a minute)")
    parser.add_argument("--out", type=Path, help=f"records and report (default {OUT.relative_to(REPO)}, or "
                        "experiments/gpu_rung_calibration for that study; with --quick, outputs/gpu-roadmap)")
    parser.add_argument("--archive", type=Path, help="also pack the report and records into this .tar.gz after each "
                        "job (one file to copy back from a compute node: --archive gpu-roadmap.tar.gz)")
    parser.add_argument("--study", choices=list(STUDIES), default="roadmap",
                        help="the roadmap (every step), or the GPU rung's calibration (both ends under every "
                        "conf/calibration/gpu_rung/ candidate; --scale does not apply)")
    parser.add_argument("--scale", default="proxy", help="the roadmap's scale (proxy; gpu_rung for the second rung)")
    parser.add_argument("--workers", type=int, default=3, help="training processes sharing the GPU (3)")
    parser.add_argument("--deadline", type=float, default=480, help="seconds after which no job starts (480)")
    parser.add_argument("--probe", type=lambda s: tuple(_setting(v) for v in s.split(",")),
                        help="trainer.compile settings the probe tries (false,cudagraphs; e.g. false,reduce-overhead)")
    parser.add_argument("--compile", type=_setting, help="the roadmap's trainer.compile (default: the probe's fastest)")
    parser.add_argument("--seeds", type=lambda s: tuple(int(v) for v in s.split(",")), help="default 0,1,2")
    parser.add_argument("overrides", nargs="*", metavar="OVERRIDE",
                        help="added to every job, e.g. data.root=DIR where Fashion-MNIST is not installed")
    args = parser.parse_args(argv)
    if not args.quick and not torch.cuda.is_available():
        parser.error("torch sees no GPU here: run on a GPU machine, or pass --quick for the reduced CPU run")
    plan = quick_plan() if args.quick else full_plan(args.scale, args.workers, args.deadline, args.study)
    if args.probe:
        plan = replace(plan, settings=args.probe)
    if args.seeds:
        plan = replace(plan, seeds=args.seeds)
    out = args.out or (REPO / "outputs" / "gpu-roadmap" if args.quick else STUDY_OUT[args.study])
    device = "cuda" if torch.cuda.is_available() and not args.quick else "cpu"
    command = "python3 scripts/gpu_roadmap.py " + " ".join(argv if argv is not None else sys.argv[1:])
    extra = tuple(args.overrides)
    with tempfile.TemporaryDirectory() as work:
        report = Report(out, args.archive, Path(work) / LOGS, re.sub(r"\s+", " ", command).strip(), device)
        chosen = args.compile if args.compile is not None else probe(plan, extra, Path(work), out, report)
        report.write()
        roadmap(plan, chosen, extra, Path(work), out, report)
        report.write()
    failed = [d for d in report.jobs if d.error is not None]
    print(f"report: {out / REPORT}" + (f", archive: {args.archive}" if args.archive else ""))
    for done in failed:
        print(f"failed: {done.job}: {done.error}", file=sys.stderr)
    return 1 if failed else 0
