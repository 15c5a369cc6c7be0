"""Helpers shared by the tests."""

import json
import multiprocessing
import os
import runpy
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn
from wandb.proto.wandb_internal_pb2 import Record

from roadmap.config.composition import PAPER_SETTING, build_model, compose, step_overrides

# A tiny training budget: synthetic data, small images, one or two short epochs, no wandb unless asked.
TINY = ("data=synthetic", "scale.input_size=32", "scale.batch_size=8", "scale.global_batch_size=8",
        "scale.epochs=1", "logger.wandb.enabled=false")


def tiny_cfg(*overrides: str):
    return compose([*TINY, *overrides])


def step_model(step: str, regime: str = "resnet50", *extra: str) -> nn.Module:
    """The step's network at the paper's setting (full widths, 1000 classes)."""
    return build_model(compose([*PAPER_SETTING, *step_overrides(step, regime), *extra]))


def perturb_norms(model: nn.Module) -> nn.Module:
    """Random norm weights and biases, running statistics, layer scales and conv biases, in place. At their initial
    values (ones, zeros, 1e-6) two norms of one width are interchangeable and layer scale all but closes each
    block, so identical logits would not show that every tensor went to its own place."""
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if tensor.is_floating_point() and tensor.dim() == 1:
                noise = torch.rand(tensor.shape, generator=generator)
                scale = name.endswith(("weight", "running_var", "gamma"))
                tensor.copy_(0.5 + noise if scale else 0.2 * (noise - 0.5))
    return model


def same_logits(reference: nn.Module, ours: nn.Module, size: int, atol: float = 1e-5) -> float:
    torch.manual_seed(0)
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        diff = (reference.eval()(x) - ours.eval()(x)).abs().max().item()
    assert diff <= atol, f"max abs logit difference {diff}"
    return diff


def _wandb_records(path: Path) -> Iterator[Record]:
    """The records of an offline run's `.wandb` file: a 7-byte header (":W&B", magic, version), then LevelDB's log
    format, records split across 32 KiB blocks in chunks of (checksum, length, type: 1 whole, 2-4 first/middle/last)."""
    data, block, head = path.read_bytes(), 32768, 7
    assert data[:4] == b":W&B", f"{path} is not a wandb run file"
    pos, pending = head, b""
    while pos + head <= len(data):
        if block - pos % block < head:  # a block's tail too short for a chunk header is padding
            pos += block - pos % block
            continue
        length, kind = int.from_bytes(data[pos + 4:pos + 6], "little"), data[pos + 6]
        pending += data[pos + head:pos + head + length]
        pos += head + length
        if kind in (1, 4):
            record = Record()
            record.ParseFromString(pending)
            pending = b""
            yield record


def read_offline_run(run_dir: Path, wait_s: float = 60.0) -> dict[str, Any]:
    """What an offline wandb run logged, read back from its folder: group, name, job type, config, summary and the
    keys of its history (what a dashboard panel can plot). wandb's writer process may still be flushing the file
    when the run has finished (seen on a loaded machine): it is read again until the run's header and summary are
    there, for up to `wait_s` seconds."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            run = _read_offline_run(run_dir)
        except (ValueError, AssertionError):  # a record cut off mid-write
            if time.monotonic() > deadline:
                raise
        else:
            if ("group" in run and run["summary"]) or time.monotonic() > deadline:
                return run
        time.sleep(0.5)


def _read_offline_run(run_dir: Path) -> dict[str, Any]:
    (path,) = run_dir.glob("offline-run-*/run-*.wandb")

    def items(updates: Any) -> dict[str, Any]:
        return {"/".join(u.nested_key) or u.key: json.loads(u.value_json) for u in updates}

    run: dict[str, Any] = {"config": {}, "summary": {}, "history": set()}
    for record in _wandb_records(path):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run.update(group=record.run.run_group, name=record.run.display_name, job_type=record.run.job_type)
            run["config"].update(items(record.run.config.update))
        elif kind == "config":
            run["config"].update(items(record.config.update))
        elif kind == "summary":
            run["summary"].update(items(record.summary.update))
        elif kind == "history":
            run["history"] |= {item.key or "/".join(item.nested_key) for item in record.history.item}
    return run


# --- run.py as a user starts it, without a fresh interpreter's imports ------------------------------------

ROOT = Path(__file__).resolve().parent.parent


def _run_py(args: list[str], log: Path) -> None:
    """`python run.py <args>`, in a process forked from this one, its output into `log`. On one thread: OpenMP's
    threads do not survive a fork, and a child that computes on the pool its parent used hangs (as under a plain
    `pytest`, where the parent has trained on two threads; `make test`'s workers compute on one)."""
    torch.set_num_threads(1)
    out = os.open(log, os.O_WRONLY)
    os.dup2(out, 1)
    os.dup2(out, 2)
    # Left open: multiprocessing writes a SystemExit's message there after this function, as Python would.
    sys.stdout = sys.stderr = os.fdopen(1, "w", buffering=1, closefd=False)
    sys.argv = [str(ROOT / "run.py"), *args]
    runpy.run_path(sys.argv[0], run_name="__main__")


def start(args: list[str], log: Path) -> multiprocessing.Process:
    """run.py in the background, forked from this process, which has imported what it imports: a process of its own,
    killed by SIGKILL as any other, without the 6 s a fresh interpreter spends importing torch and Lightning."""
    log.touch()
    process = multiprocessing.get_context("fork").Process(target=_run_py, args=(args, log))
    process.start()
    return process


def finish(process: multiprocessing.Process, log: Path) -> str:
    process.join(timeout=300)
    assert process.exitcode == 0, log.read_text()[-5000:]
    return log.read_text()
