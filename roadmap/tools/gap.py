"""Where a whole training job loses time against its bare training step (`python scripts/bench.py gap`).

A job trains slower than its network's bare step (roadmap/tools/speed.py: forward, loss, backward, optimizer on
one batch already on the device) by what the run adds around it: the loader and the copy to the device, timm's
Mixup/CutMix, the EMA update, the loss check, Lightning's loop and callbacks. Per `trainer.compile` setting, in one
process and in this order:

1. the bare step, as the job runs it (device, precision, memory format, compile), timed before the jobs and
   again after each; and the job's batches alone (its data pipeline and the copy to the device): a loader slower
   than the bare step bounds the job whatever else it does;
2. the whole job, then the job without each part that a config can switch off (Mixup/CutMix, the EMA, both), each
   measured by its own clock over the same number of batches, after one short untimed job: what switching a part
   off saves is its cost;
3. the job once more under torch's profiler (Lightning's `PyTorchProfiler`, which names each of Lightning's hooks,
   beside the module's own `mixup` and `loss check`): per step, the host's time in each part, exclusive of the parts
   nested in it, the device's busy time and its copies from the host, over a window of steps after the first.

On a GPU the host's time in a part costs the step only where the device waits for it, so read part 3 beside part
2: a part with a large host time whose switching off gains nothing runs while the device is busy anyway. Each
window's trace (Chrome's format, for chrome://tracing or Perfetto) and torch's table of operators go to `--out`.
"""

from __future__ import annotations

import statistics
import tempfile
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from lightning.pytorch.profilers import PyTorchProfiler
from torch.autograd.profiler import EventList
from torch.profiler import ProfilerActivity

from roadmap.config.composition import compose
from roadmap.results.records import atomic_write_text
from roadmap.tools.speed import BareStep, data_throughput, job_record
from roadmap.training.system import device_name, training_device

# What a config can switch off, one part at a time and together.
NO_MIXUP = ("recipe.augment.mixup=0", "recipe.augment.cutmix=0")
NO_EMA = ("recipe.ema.use=never",)
VARIANTS: dict[str, tuple[str, tuple[str, ...]]] = {  # name -> (what the report calls it, overrides)
    "job": ("the whole job", ()),
    "no-mixup": ("without Mixup/CutMix", NO_MIXUP),
    "no-ema": ("without the EMA", NO_EMA),
    "neither": ("without either", (*NO_MIXUP, *NO_EMA)),
}
# Parts of a step as the profile names them: Lightning's actions (its profiler's "[pl][profile]" ranges), matched by
# how they begin, and the module's own ranges. The first match names a range; one matching none is not a part.
LIGHTNING = "[pl][profile]"
PARTS = (
    ("loader: next batch", "[_TrainingEpochLoop].train_dataloader_next"),
    ("copy to the device", "[Strategy]SingleDeviceStrategy.batch_to_device"),
    ("Mixup/CutMix", "mixup"),
    ("loss check", "loss check"),
    ("forward and loss", "[Strategy]SingleDeviceStrategy.training_step"),
    ("backward", "[Strategy]SingleDeviceStrategy.backward"),
    ("optimizer step", "[LightningModule]RoadmapModule.optimizer_step"),
    ("EMA update", "[Callback]EMA."),
    ("other callbacks", "[Callback]"),
    ("other hooks", "["),
)
STEP_RANGE = "[Strategy]SingleDeviceStrategy.training_step"  # one per training batch: the window's steps
# A short job first, untimed: the first job in a process read 244 img/s where the same compiled job after it read
# 310 (the CPU, a tiny ConvNeXt-T): its one-time costs would count against whichever variant ran first.
WARM_UP_BATCHES = 10
SKIP = 10  # batches before the profile's window: the loader's start, cuDNN's choices and a compile settle first


def part_of(name: str) -> str | None:
    """The part of a step a profiled range belongs to, or None for torch's own operators."""
    label = name.removeprefix(LIGHTNING)
    for part, start in PARTS:
        if label.startswith(start) and (start != "[" or name.startswith(LIGHTNING)):
            return part
    return None


@dataclass(frozen=True)
class Window:
    """Per step of a profiled window: the host's milliseconds in each part, exclusive of the parts nested in it,
    the step's wall milliseconds (from one step's start to the next's), the device's busy ones and its copies
    from the host (None without a GPU)."""

    steps: int
    host_ms: dict[str, float]
    step_ms: float
    device_busy_ms: float | None
    host_to_device_ms: float | None


def _merged_ms(intervals: Iterable[tuple[float, float]]) -> float:
    """Milliseconds covered by `intervals` (in microseconds), overlaps counted once."""
    covered, end = 0.0, float("-inf")
    for start, stop in sorted(intervals):
        if stop > end:
            covered += stop - max(start, end)
            end = stop
    return covered / 1000


def read_window(events: EventList) -> Window:
    """The per-step figures of one profiled training window (its ranges, and its GPU kernels and copies)."""
    host = [e for e in events if e.device_type == torch.autograd.DeviceType.CPU]
    named = sorted(((e.time_range.start, e.time_range.end, part, e.thread) for e in host
                    if (part := part_of(e.name)) is not None), key=lambda r: (r[0], -r[1]))
    starts = sorted(e.time_range.start for e in host if e.name == LIGHTNING + STEP_RANGE)
    if len(starts) < 2:
        raise ValueError(f"the profiled window holds {len(starts)} training steps; profile two or more")
    steps = len(starts) - 1  # each step from its start to the next one's: the last is open-ended
    first, last = starts[0], starts[-1]
    host_us: dict[str, float] = defaultdict(float)
    for i, (start, end, part, thread) in enumerate(named):
        if not first <= start < last:
            continue
        inner = [(s, e) for s, e, _, t in named[i + 1:] if t == thread and start <= s and e <= end]
        outermost = [(s, e) for s, e in inner if not any(a <= s and e <= b and (a, b) != (s, e) for a, b in inner)]
        host_us[part] += (end - start) - sum(e - s for s, e in outermost)
    device = [e for e in events if e.device_type == torch.autograd.DeviceType.CUDA
              and first <= e.time_range.start < last]
    busy = _merged_ms((e.time_range.start, e.time_range.end) for e in device) if device else None
    copies = (sum(e.time_range.elapsed_us() for e in device if "HtoD" in e.name) / 1000) if device else None
    return Window(steps, {part: us / 1000 / steps for part, us in host_us.items()}, (last - first) / 1000 / steps,
                  busy and busy / steps, copies and copies / steps)


class WindowProfiler(PyTorchProfiler):
    """Lightning's PyTorchProfiler over `active` training steps after the first `skip`, keeping the window's
    figures (`window`) and writing its trace and operator table into `out` as `<name>.trace.json`, `<name>.txt`."""

    def __init__(self, out: Path, name: str, skip: int, active: int) -> None:
        self.out, self.trace_name = out, name
        self.window: Window | None = None
        super().__init__(schedule=torch.profiler.schedule(wait=skip - 1, warmup=1, active=active, repeat=1),
                         activities=[ProfilerActivity.CPU, *([ProfilerActivity.CUDA] if torch.cuda.is_available()
                                                             else [])],
                         on_trace_ready=self._keep, record_module_names=False)

    def _keep(self, profile: torch.profiler.profile) -> None:
        """The first window holding training steps (Lightning profiles validation's steps too, later)."""
        events = profile.events()
        if self.window is not None or not any(e.name == LIGHTNING + STEP_RANGE for e in events):
            return
        self.window = read_window(events)
        self.out.mkdir(parents=True, exist_ok=True)
        profile.export_chrome_trace(str(self.out / f"{self.trace_name}.trace.json"))
        sort = "self_cuda_time_total" if torch.cuda.is_available() else "self_cpu_time_total"
        atomic_write_text(self.out / f"{self.trace_name}.txt", events.key_averages().table(sort_by=sort, row_limit=40))

    def summary(self) -> str:
        """Nothing: Lightning's own table would be of the last window it profiled, a validation's."""
        return ""


@dataclass(frozen=True)
class Gap:
    """One `trainer.compile` setting's measurements."""

    setting: str
    bare: list[float]  # img/s of the bare step, every round: the first `rounds`, then one after each job
    batches_alone: float  # img/s of the run's data pipeline and the copy to the device, nothing trained
    jobs: dict[str, tuple[float, float]]  # variant -> (img/s, the bare step's img/s around it)
    window: Window | None
    batch_size: int


def measure(overrides: Sequence[str], setting: str, batches: int, steps: int, rounds: int, out: Path, runs: Path,
            variants: Sequence[str] = tuple(VARIANTS), profile_steps: int = 20) -> Gap:
    """Parts 1-3 of the module's description for `overrides` under `trainer.compile=<setting>`: the profile's files
    into `out`, the jobs' folders into `runs`. The bare step is timed again after each job, and each job is read
    against the mean of the bare step's rounds just before and after it, so that a drift in the machine's speed
    does not pass for a part's cost."""
    run = [*overrides, f"trainer.compile={setting}"]

    def job(name: str, extra: Sequence[str] = (), length: int = batches, profiler: WindowProfiler | None = None
            ) -> float:
        torch._dynamo.reset()  # each job compiles as a run of its own would, not from the last job's graphs
        return job_record([*run, *extra], length, runs / f"{setting}-{name}", profiler)["train_images_per_second"]

    cfg = compose(run)
    bare = BareStep(cfg)
    rates = bare(rounds, steps)
    batches_alone = data_throughput(run, None, batches)
    job("warm-up", length=min(batches, WARM_UP_BATCHES))  # untimed: see WARM_UP_BATCHES
    jobs = {}
    for name in variants:
        rate = job(name, VARIANTS[name][1])
        rates += bare(1, steps)
        jobs[name] = (rate, (rates[-2] + rates[-1]) / 2)
    window = None
    if profile_steps:
        skip = min(SKIP, max(batches - profile_steps - 1, 1))
        profiler = WindowProfiler(out, f"profile-compile-{setting}", skip, min(profile_steps, batches - skip))
        job("profiled", profiler=profiler)
        window = profiler.window
    return Gap(setting, rates, batches_alone, jobs, window, cfg.data.batch_size)


def report(gaps: Sequence[Gap], header: str) -> str:
    """The measurements as Markdown: per setting, the jobs against the bare step, then the profiled step's parts."""
    lines = [header, ""]
    for gap in gaps:
        bare = statistics.median(gap.bare)
        lines += [f"## trainer.compile={gap.setting}", "",
                  f"Bare step: {bare:.0f} img/s, median of {len(gap.bare)} rounds ({min(gap.bare):.0f}-"
                  f"{max(gap.bare):.0f}), {1000 * gap.batch_size / bare:.1f} ms per batch of {gap.batch_size}. The "
                  f"batches alone (the run's data pipeline and the copy to the device, nothing trained): "
                  f"{gap.batches_alone:.0f} img/s, {1000 * gap.batch_size / gap.batches_alone:.1f} ms per batch.", "",
                  "| job | img/s | bare step around it, img/s | job / bare step | ms per batch beyond the bare step | "
                  "saved against the whole job, ms |", "|---|---|---|---|---|---|"]
        beyond = {name: 1000 * gap.batch_size * (1 / rate - 1 / around) for name, (rate, around) in gap.jobs.items()}
        for name, (rate, around) in gap.jobs.items():
            saved = f"{beyond['job'] - beyond[name]:+.1f}" if "job" in beyond and name != "job" else ""
            lines.append(f"| {VARIANTS[name][0]} | {rate:.0f} | {around:.0f} | {rate / around:.3f} | "
                         f"{beyond[name]:.1f} | {saved} |")
        if gap.window is not None:
            lines += ["", *window_table(gap.window)]
        lines.append("")
    return "\n".join(lines)


def window_table(window: Window) -> list[str]:
    device = ("" if window.device_busy_ms is None else
              f"; the device busy {window.device_busy_ms:.1f} ms ({window.device_busy_ms / window.step_ms:.0%}), "
              f"copies from the host {window.host_to_device_ms:.1f} ms")
    lines = [f"Profiled, {window.steps} steps: {window.step_ms:.1f} ms a step{device} (the profiler's own work "
             "lengthens a profiled step; the rates above are unprofiled).", "",
             "| part of a step | host ms per step | of the step |", "|---|---|---|"]
    named = 0.0
    for part, _ in PARTS:
        if part in window.host_ms:
            named += window.host_ms[part]
            lines.append(f"| {part} | {window.host_ms[part]:.2f} | {window.host_ms[part] / window.step_ms:.1%} |")
    rest = window.step_ms - named
    lines.append(f"| Lightning's loop outside its hooks | {rest:.2f} | {rest / window.step_ms:.1%} |")
    return lines


def describe(overrides: Sequence[str], batches: int) -> str:
    cfg = compose(overrides)
    device = training_device(cfg.trainer.accelerator)
    return (f"# Where the job loses time against its bare step\n\n`{' '.join(overrides)}`: {cfg.name} at the "
            f"{cfg.scale.name} scale, batch {cfg.data.batch_size}, {cfg.data.input_size} px, "
            f"{cfg.trainer.precision}, {'channels-last' if cfg.trainer.channels_last else 'NCHW'}, data "
            f"{cfg.data._target_.rsplit('.', 1)[-1]} ({cfg.data.num_workers} workers); jobs of {batches} batches; "
            f"{device_name(device)}, torch {torch.__version__}")


def main(overrides: Sequence[str], settings: Sequence[str], batches: int, steps: int, rounds: int, out: Path,
         variants: Sequence[str], profile_steps: int) -> list[Gap]:
    """Measure every setting, print the report and write it to `out/gap.md` after each setting."""
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        raise SystemExit(f"unknown --variants {sorted(unknown)}; choose from {list(VARIANTS)}")
    header = describe(overrides, batches)
    gaps: list[Gap] = []
    with tempfile.TemporaryDirectory() as runs:  # the jobs' folders: their rates are all that is kept
        for setting in settings:
            gaps.append(measure(overrides, setting, batches, steps, rounds, out, Path(runs), variants, profile_steps))
            text = report(gaps, header)
            atomic_write_text(out / "gap.md", text + "\n")
    print(text)
    return gaps

