"""`make bench`, the command line of the measurements (not tests) in speed.py and loader.py: training speed of our
networks against timm's, of a run against its bare step, of the data pipelines and of the image-folder loader.

`python scripts/bench.py [train] ...` times forward + backward + AdamW step of our ResNet-50 and ConvNeXt-T
(the roadmap's first and last steps, built from the configs) against timm's `resnet50` and `convnext_tiny`:
same process, input, batch, dtype and device, models interleaved round by round so that a change in the
machine's load hits every model alike; the median round is reported, with each model's peak memory.

`python scripts/bench.py loader --root DIR ...` times the training DataLoader alone (the modern recipe's
augmentations) per number of workers, on an ImageFolder and optionally on its pre-resized copy
(roadmap/data/prepare.py).

`python scripts/bench.py job <run.py overrides>` measures how much of the CPU a run spends training: the run's own
training img/s (data, step, logging) against the bare training step of the same network, shape and optimizer;
`--pipelines loader,device` runs the job once per data pipeline in each round.

`python scripts/bench.py gap <run.py overrides>` says where a whole job loses time against its bare step, per
`trainer.compile` setting: the job with Mixup/CutMix, the EMA or both switched off, and one job under torch's
profiler, its step's parts named (roadmap/tools/gap.py).

`python scripts/bench.py data <run.py overrides>` times the training batches alone, per data pipeline (timm's
per-image loader, or the data set held on the device: roadmap/data/device.py), as a run would make them: the recipe
fitted to the run's budget, on the device the trainer would use.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

import torch

from roadmap.config.composition import PAPER_SETTING, compose
from roadmap.data.prepare import resize_folder
from roadmap.errors import ConfigError
from roadmap.results.records import atomic_write_text
from roadmap.tools.decoding import main as decoding_main
from roadmap.tools.loader import LOADER_SETTING, loader_throughput, make_fake_folder
from roadmap.tools.speed import (
    CONVNEXT_STEP,
    Settings,
    benchmark,
    data_throughput,
    default_specs,
    describe,
    job_throughput,
    rows_to_markdown,
    step_throughput,
)
from roadmap.training.system import device_name

# Per device: the CPU's defaults finish the whole comparison in a few minutes on 2 cores.
DEFAULTS = {
    "cuda": {"batch_size": 128, "image_size": 224, "steps": 10, "warmup": 5, "rounds": 5},
    "cpu": {"batch_size": 16, "image_size": 128, "steps": 1, "warmup": 2, "rounds": 5},
}


def job_main(args: argparse.Namespace) -> None:
    cfg = compose(args.overrides)
    print(f"{' '.join(args.overrides) or '(no overrides)'}: {cfg.name} at the {cfg.scale.name} scale, batch "
          f"{cfg.data.batch_size}, {cfg.data.input_size} px, {'channels-last' if cfg.trainer.channels_last else 'NCHW'}"
          f"; {device_name('cpu')}, {torch.get_num_threads()} torch threads")
    variants = {p: (f"data.pipeline={p}",) for p in args.pipelines} if args.pipelines else {"job": ()}
    rows: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):  # bare step, job(s), bare step, ...: a drift in the machine's speed hits all
            names = list(variants)[r % len(variants):] + list(variants)[:r % len(variants)]
            for name in names:
                bare = statistics.median(step_throughput(cfg, 3, args.steps))
                job = job_throughput([*args.overrides, *variants[name]], args.batches, Path(tmp) / f"{name}{r}")
                rows[name].append((bare, job))
                label = "" if name == "job" else f" {name}"
                print(f"round {r}{label}: bare step {bare:.0f} img/s, job {job:.0f} img/s, job / bare {job / bare:.3f}")
    for name, pairs in rows.items():
        bare, job = (statistics.median(column) for column in zip(*pairs, strict=True))
        ratio = statistics.median(j / b for b, j in pairs)
        label = "" if name == "job" else f" {name}"
        print(f"median{label}: bare step {bare:.0f} img/s, job {job:.0f} img/s, job / bare {ratio:.3f}")


def gap_main(args: argparse.Namespace) -> None:
    from roadmap.tools.gap import main as gap  # here: it imports Lightning

    gap(args.overrides, args.compile, args.batches, args.steps, args.rounds, args.out, args.variants,
        args.profile_steps)


def data_main(args: argparse.Namespace) -> None:
    cfg = compose(args.overrides)
    print(f"{' '.join(args.overrides) or '(no overrides)'}: {cfg.name}, {cfg.recipe.name} recipe, batch "
          f"{cfg.data.batch_size}, {cfg.data.input_size} px, on {cfg.trainer.accelerator} "
          f"({device_name('cuda' if cfg.trainer.accelerator == 'gpu' else 'cpu')}), {torch.get_num_threads()} torch "
          f"threads; {args.batches} batches per pipeline per round\n")
    speeds: dict[str, list[float]] = {p: [] for p in args.pipelines}
    for r in range(args.rounds):
        for pipeline in args.pipelines[r % len(args.pipelines):] + args.pipelines[:r % len(args.pipelines)]:
            speeds[pipeline].append(data_throughput(args.overrides, pipeline, args.batches))
    print("| pipeline | img/s (median) | img/s (rounds) |\n|---|---|---|")
    for pipeline, rounds in speeds.items():
        print(f"| {pipeline} | {statistics.median(rounds):.0f} | {', '.join(f'{v:.0f}' for v in rounds)} |")


def _at_least_2(text: str) -> int:
    """Memory is measured in the warm-up steps after the first, once every model holds its AdamW state."""
    if int(text) < 2:
        raise argparse.ArgumentTypeError("at least 2: memory is measured in the warm-up steps after the first")
    return int(text)


def _words(text: str) -> list[str]:
    return [word.strip() for word in text.split(",") if word.strip()]


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",")]


def train_main(args: argparse.Namespace) -> None:
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    defaults = DEFAULTS["cuda" if torch.device(device).type == "cuda" else "cpu"]
    settings = Settings(
        device=device, amp=args.amp, channels_last=args.channels_last, compile=args.compile,
        threads=torch.get_num_threads(),
        **{key: getattr(args, key) if getattr(args, key) is not None else value for key, value in defaults.items()},
    )
    specs = default_specs(args.drop_path)
    if args.models:
        unknown = set(args.models) - {spec.name for spec in specs}
        if unknown:
            raise SystemExit(f"unknown --models {sorted(unknown)}; choose from {[spec.name for spec in specs]}")
        specs = [spec for spec in specs if spec.name in args.models]
    step_pointwise = compose([*PAPER_SETTING, f"+step={CONVNEXT_STEP}"]).model.pointwise
    print("Training throughput: forward + backward + AdamW step, 1000 classes, one random batch")
    print(f"device: {describe(settings)}")
    print(f"stochastic depth {args.drop_path} on both ConvNeXt-T (ours: recipe.stochastic_depth, timm: drop_path_rate)"
          f", none on the ResNet-50s; the roadmap step {CONVNEXT_STEP} uses model.pointwise={step_pointwise}")
    print("peak memory: weights + AdamW state + the most a training step added, "
          + ("CUDA max allocated\n" if torch.device(device).type == "cuda" else "peak resident set growth (VmHWM)\n"))
    rows = benchmark(specs, settings)
    print(rows_to_markdown(rows))
    if args.json:
        record = {"settings": asdict(settings), "device_name": device_name(device), "drop_path": args.drop_path,
                  "rows": [asdict(row) for row in rows]}
        atomic_write_text(args.json, json.dumps(record, indent=2) + "\n")


def loader_main(args: argparse.Namespace) -> None:
    if args.make_fake and not args.root.exists():
        make_fake_folder(args.root)
    folders = {"original": args.root}
    if args.resized:
        report = resize_folder(args.root, args.resized, size=args.size)
        print(f"pre-resized copy at {args.resized}: {report.summary()}")
        folders["resized"] = args.resized
    print(f"ImageFolder loader, modern recipe ({' '.join(LOADER_SETTING)}), batch {args.batch_size}, "
          f"{args.batches} timed batches per setting; {device_name('cpu')}, {os.cpu_count()} CPUs, "
          f"{torch.get_num_threads()} torch threads in the main process (a worker uses 1)\n")
    print("| folder | workers | img/s |\n|---|---|---|")
    for label, folder in folders.items():
        for count, speed in loader_throughput(folder, args.workers, args.batch_size, args.batches).items():
            print(f"| {label} | {count} | {speed:.1f} |")


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "decode":  # its options are its own module's (roadmap/tools/decoding.py)
        decoding_main(argv[1:])
        return
    if not argv or argv[0] not in ("train", "loader", "job", "gap", "data", "-h", "--help"):
        argv = ["train", *argv]  # the sub-command defaults to train
    parser = argparse.ArgumentParser(description="Benchmark training speed (ours vs timm) or the ImageFolder loader.")
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="training img/s and peak memory, ours against timm (the default)")
    train.add_argument("--device", help="cpu, cuda, cuda:1, ... (default: cuda when present)")
    train.add_argument("--batch-size", type=int, help="default: 128 on CUDA, 16 on CPU")
    train.add_argument("--image-size", type=int, help="default: 224 on CUDA, 128 on CPU")
    train.add_argument("--steps", type=int, help="timed steps per model per round (default: 10 on CUDA, 1 on CPU)")
    train.add_argument("--warmup", type=_at_least_2,
                       help="untimed steps per model first, where memory is measured (default: 5 on CUDA, 2 on CPU)")
    train.add_argument("--rounds", type=int, help="interleaved rounds; the median is reported (default 5)")
    train.add_argument("--models", type=lambda s: s.split(","), help="comma-separated subset (default: all)")
    train.add_argument("--drop-path", type=float, default=0.1, help="both ConvNeXt-Ts' stochastic depth (0.1)")
    train.add_argument("--channels-last", action="store_true", help="model and input in channels-last layout")
    train.add_argument("--amp", action="store_true", help="bfloat16 autocast")
    train.add_argument("--compile", action="store_true", help="torch.compile every model")
    train.add_argument("--json", type=Path, help="also write the numbers to this file")
    train.set_defaults(run=train_main)

    loader = commands.add_parser("loader", help="training DataLoader img/s per number of workers")
    loader.add_argument("--root", type=Path, required=True, help="ImageFolder root: <root>/train/<class>/<image>")
    loader.add_argument("--make-fake", action="store_true", help="create a fake ImageNet-like --root if missing")
    loader.add_argument("--resized", type=Path, help="also build (or finish) a pre-resized copy here and time it")
    loader.add_argument("--size", type=int, default=256, help="shorter side of the pre-resized copy (256)")
    loader.add_argument("--workers", type=_ints, default=[0, 1, 2], help="comma-separated worker counts (0,1,2)")
    loader.add_argument("--batch-size", type=int, default=16)
    loader.add_argument("--batches", type=int, default=40, help="timed batches per setting (40)")
    loader.set_defaults(run=loader_main)

    job = commands.add_parser("job", help="a run's training img/s against its network's bare training step")
    job.add_argument("overrides", nargs="*", help="the run's overrides, as for run.py (e.g. +step=gelu)")
    job.add_argument("--rounds", type=int, default=3, help="bare-step / job pairs; the medians are reported (3)")
    job.add_argument("--steps", type=int, default=10, help="timed bare steps per measurement (10)")
    job.add_argument("--batches", type=int, default=60, help="training batches of each job (60)")
    job.add_argument("--pipelines", type=lambda s: s.split(","),
                     help="comma-separated data pipelines, one job each per round (default: the config's)")
    job.set_defaults(run=job_main)

    gap = commands.add_parser("gap", help="where a job loses time against its bare step: parts switched off, a profile")
    gap.add_argument("overrides", nargs="*", help="the run's overrides, as for run.py (e.g. scale=paper trainer=gpu)")
    gap.add_argument("--compile", type=_words, default=["false", "true"],
                     help="comma-separated trainer.compile settings, each measured in full (false,true)")
    gap.add_argument("--batches", type=int, default=100, help="training batches of each job (100)")
    gap.add_argument("--steps", type=int, default=10, help="timed bare steps per round (10)")
    gap.add_argument("--rounds", type=int, default=3, help="rounds of the bare step; the median is reported (3)")
    gap.add_argument("--variants", type=_words, default=["job", "no-mixup", "no-ema", "neither"],
                     help="comma-separated jobs to time: job, no-mixup, no-ema, neither (all four)")
    gap.add_argument("--profile-steps", type=int, default=20,
                     help="steps in the profiled job's window, after its first 10 (20; 0: no profile)")
    gap.add_argument("--out", type=Path, default=Path("outputs/gap"),
                     help="where the report (gap.md) and each profile's trace and operator table go (outputs/gap)")
    gap.set_defaults(run=gap_main)

    data = commands.add_parser("data", help="training batches per second of each data pipeline, alone")
    data.add_argument("overrides", nargs="*", help="the run's overrides, as for run.py (e.g. +step=modern_recipe)")
    data.add_argument("--pipelines", type=lambda s: s.split(","), default=["loader", "device"],
                      help="comma-separated data pipelines (loader,device)")
    data.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the median is reported (3)")
    data.add_argument("--batches", type=int, default=50, help="timed batches per pipeline per round (50)")
    data.set_defaults(run=data_main)

    commands.add_parser("decode", add_help=False, help="the loader's work per image in CPU time per core, per recipe, "
                        "and the loader workers one GPU needs (decode --help)")

    args = parser.parse_args(argv)
    try:
        args.run(args)
    except ConfigError as error:  # a bad override: its message names it and the fix, a traceback would bury it
        sys.exit(f"error: {error}")
