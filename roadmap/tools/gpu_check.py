"""`make gpu-check`: the GPU path run end to end on the GPU at hand, in about 8 minutes on one H100.

It prints the device and the versions, times a training step of our ResNet-50 and ConvNeXt-T (both pointwise
variants) against timm's at 224 px in bf16 and channels-last, eager and compiled (roadmap/tools/speed.py), trains one
proxy step for one seed with `trainer=gpu` and checks its record, and trains paper-scale ConvNeXt-T on
synthetic 224-px data for 100 optimizer steps. The report goes to `experiments/gpu/<device>.md`.

`--quick` runs the same sections on the CPU, small and eager only, so that a test covers the script.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import lightning
import timm
import torch

from roadmap.config.composition import compose
from roadmap.results.records import atomic_write_text
from roadmap.tools.speed import CONVNEXT_STEP, Row, Settings, benchmark, default_specs, rows_to_markdown
from roadmap.training.job import train
from roadmap.training.system import device_name

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "experiments" / "gpu"
NO_WANDB = ("logger.wandb.enabled=false",)


@dataclass(frozen=True)
class Plan:
    """What one check runs: the step timing's settings and modes, and the two training jobs' overrides."""

    steps: Settings
    compiled: tuple[bool, ...]  # eager, and compiled where asked
    proxy: tuple[str, ...]
    paper: tuple[str, ...]
    paper_steps: int  # optimizer steps of the paper-scale job (one epoch of the synthetic set)


def paper_job(steps: int, batch: int, *extra: str) -> tuple[str, ...]:
    """Paper-scale ConvNeXt-T for one epoch of `steps` optimizer steps on synthetic data, one `batch` per step."""
    return ("scale=paper", f"+step={CONVNEXT_STEP}", "data=synthetic", "data.num_classes=1000",
            f"data.train_size={steps * batch}", f"scale.batch_size={batch}", f"scale.global_batch_size={batch}",
            "scale.epochs=1", *extra)


def full_plan(device: str = "cuda", paper_steps: int = 100) -> Plan:
    """The check on one GPU. The paper-scale job takes one 128-image batch per optimizer step (no accumulation
    to 4096: a hundred steps of the paper's global batch alone would outlast the check), loaded by 12 workers."""
    batch = 128
    return Plan(
        steps=Settings(device=device, batch_size=batch, image_size=224, steps=10, warmup=5, rounds=3, amp=True,
                       channels_last=True, compile=False, threads=torch.get_num_threads()),
        compiled=(False, True),
        proxy=(f"+step={CONVNEXT_STEP}", "scale=proxy", "seed=0", "trainer=gpu"),
        paper=paper_job(paper_steps, batch, "data.val_size=1024", "data.num_workers=12", "trainer=gpu"),
        paper_steps=paper_steps,
    )


def quick_plan() -> Plan:
    """The same sections on the CPU in about a minute: small shapes, eager only, synthetic data."""
    paper_steps, batch = 2, 4
    return Plan(
        steps=Settings(device="cpu", batch_size=2, image_size=32, steps=1, warmup=2, rounds=1, amp=True,
                       channels_last=True, compile=False, threads=torch.get_num_threads()),
        compiled=(False,),
        proxy=(f"+step={CONVNEXT_STEP}", "scale=proxy", "seed=0", "data=synthetic", "data.train_size=256",
               "data.val_size=64"),
        paper=paper_job(paper_steps, batch, "data.val_size=4", "scale.input_size=64"),
        paper_steps=paper_steps,
    )


def environment(device: str) -> list[str]:
    memory = ""
    if torch.device(device).type == "cuda":
        memory = f", {torch.cuda.get_device_properties(device).total_memory / 2**30:.0f} GiB"
    return [f"- device: {device_name(device)}{memory}",
            f"- torch {torch.__version__}, CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}",
            f"- timm {timm.__version__}, lightning {lightning.__version__}, Python {sys.version.split()[0]}"]


def pointwise_ratio(rows: list[Row]) -> str:
    """How much faster (or slower) the Linear pointwise layers train than the roadmap's 1x1 convolutions."""
    speed = {row.name: row.images_per_second for row in rows}
    ratio = speed["ours_convnext_t_linear"] / speed["ours_convnext_t_conv"]
    return f"ConvNeXt-T with nn.Linear pointwise layers trains at {ratio:.3f}x the speed of the 1x1-conv variant."


def check_record(record: dict[str, Any], accelerator: str, optimizer_steps: int | None = None) -> list[str]:
    """What is wrong with a job's record: each problem in words, none when the record is sound."""
    problems = []
    if record.get("status") != "completed":
        problems.append(f"status is {record.get('status')!r}, not 'completed'")
    if record["config"]["trainer"]["accelerator"] != accelerator:
        problems.append(f"it ran on {record['config']['trainer']['accelerator']}, not {accelerator}")
    if not 0 <= record["top1"] <= 100:
        problems.append(f"top-1 {record['top1']} is not a percentage")
    if not (record["train_images_per_second"] or 0) > 0:
        problems.append("no training throughput was measured")
    if optimizer_steps is not None and record["optimizer_steps"] != optimizer_steps:
        problems.append(f"{record['optimizer_steps']} optimizer steps instead of {optimizer_steps}")
    return problems


def job_lines(title: str, overrides: tuple[str, ...], out_dir: Path, accelerator: str,
              optimizer_steps: int | None = None) -> tuple[list[str], list[str]]:
    """Train one job and describe it; also return its record's problems."""
    started = time.perf_counter()
    record = train(compose([*overrides, *NO_WANDB]), out_dir)
    problems = check_record(record, accelerator, optimizer_steps)
    lines = [f"## {title}", "", f"`python run.py {' '.join(overrides)}`", "",
             f"- top-1 {record['top1']:.2f}% after {record['epochs']} epoch(s), {record['optimizer_steps']} optimizer "
             f"steps; {record['train_images_per_second']:.0f} training img/s; peak memory "
             f"{record['peak_memory_mb']:.0f} MB ({record['peak_memory_kind']}); {time.perf_counter() - started:.0f} s "
             "in all",
             "- record: " + ("sound" if not problems else "PROBLEMS: " + "; ".join(problems)), ""]
    return lines, problems


def run(plan: Plan, out: Path, work: Path) -> tuple[Path, list[str]]:
    """Every section in turn, the compiled timing last (its compilation is the slowest part). The report,
    `out/<device>.md`, is rewritten after each section, so a check stopped at a time limit keeps what it measured."""
    started = time.perf_counter()
    device = plan.steps.device
    accelerator = "gpu" if torch.device(device).type == "cuda" else "cpu"
    slug = re.sub(r"[^a-z0-9]+", "-", device_name(device).lower()).strip("-")
    path = out / f"{slug}.md"
    lines = ["# GPU check", "", f"`make gpu-check`, {time.strftime('%Y-%m-%d')}", "", *environment(device), ""]
    problems: list[str] = []

    def report(section: list[str]) -> None:
        lines.extend(section)
        print("\n".join(section), flush=True)
        atomic_write_text(path, "\n".join(lines) + "\n")

    def timing(compiled: bool) -> list[str]:
        settings = replace(plan.steps, compile=compiled)
        section = time.perf_counter()
        rows = benchmark(default_specs(drop_path=0.1), settings)
        return [f"## Training step, {'torch.compile' if compiled else 'eager'}", "",
                f"Batch {settings.batch_size}, {settings.image_size} px, bf16 autocast, channels-last, AdamW; "
                f"median of {settings.rounds} interleaved rounds of {settings.steps} steps "
                f"({time.perf_counter() - section:.0f} s)", "", rows_to_markdown(rows), "", pointwise_ratio(rows), ""]

    if False in plan.compiled:
        report(timing(compiled=False))
    for title, overrides, steps in (("One proxy step, one seed", plan.proxy, None),
                                    (f"Paper-scale ConvNeXt-T, {plan.paper_steps} optimizer steps on synthetic data",
                                     plan.paper, plan.paper_steps)):
        section, found = job_lines(title, overrides, work / title.split(",")[0].replace(" ", "_"), accelerator, steps)
        problems += found
        report(section)
    if True in plan.compiled:
        report(timing(compiled=True))
    report([f"Whole check: {time.perf_counter() - started:.0f} s."])
    return path, problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="the reduced check on the CPU (about a minute)")
    parser.add_argument("--out", type=Path, help="report folder (default experiments/gpu; with --quick, outputs/)")
    parser.add_argument("proxy_overrides", nargs="*", metavar="OVERRIDE",
                        help="added to the proxy job, e.g. data.root=DIR where Fashion-MNIST is not installed")
    args = parser.parse_args(argv)
    if not args.quick and not torch.cuda.is_available():
        parser.error("torch sees no GPU here: run on a GPU machine, or pass --quick for the reduced CPU check")
    plan = quick_plan() if args.quick else full_plan()
    plan = replace(plan, proxy=(*plan.proxy, *args.proxy_overrides))
    out = args.out or (REPO / "outputs" / "gpu-check" if args.quick else OUT)
    with tempfile.TemporaryDirectory() as work:
        path, problems = run(plan, out, Path(work))
    print(f"report: {path}")
    for problem in problems:
        print(f"problem: {problem}", file=sys.stderr)
    return 1 if problems else 0
