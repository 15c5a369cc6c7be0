"""What a run or a multirun will cost, before anything runs: `python scripts/plan.py <run.py's overrides> [-m]`.

Each job is composed as run.py composes it, and a multirun's jobs are expanded as Hydra's basic sweeper expands
them (the command line's sweeps and the `hydra.sweeper.params` a config such as conf/ablation/*.yaml sets). Per
job, with no image read and nothing trained:

- the training set's size: Fashion-MNIST's, CIFAR's, the synthetic set's `train_size`, or an image folder's files
  counted per class folder where `data.root` exists (ImageNet-1k's 1,281,167 where it does not); `train_subset`;
- the optimizer steps, the peak lr and the warm-up, from the recipe fitted to the run exactly as the run fits it
  (roadmap/training/job.py's fit_to_run, roadmap/training/budget.py);
- GFLOPs per image at the run's input size (fvcore, roadmap/model/flops.py), once per distinct network;
- hours on a GPU from the training rates measured there (experiments/gpu/rates.csv): the reference network of
  the job's family (ConvNeXt-T for a network with a depthwise conv, ResNet-50 otherwise) scaled by its GFLOPs, as
  a whole job (ConvNeXt-T's whole-job figure, or a bare step times ConvNeXt-T's whole-job / bare-step ratio);
  each validation is a forward pass over the validation set, two where the EMA is evaluated too, at 3x the
  training rate;
- checkpoint disk (weights, optimizer state, the EMA's copy) and the loader workers one GPU needs
  (experiments/gpu/decoding.csv, measured by roadmap/tools/decoding.py).

An estimate: a step's rate follows its FLOPs only roughly (memory-bound layers, the batch, the loader), and far
from 224 px and full width not at all.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import math
import sys
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf, open_dict

from roadmap.config.composition import CONF_DIR, PRIMARY, TRAINING_PROCESS_CORES
from roadmap.errors import ConfigError
from roadmap.tools.decoding import RATES_CSV, REPO, Rate, path_shown, rates_of, read_rates
from roadmap.tools.sizes import Network, data_sizes, network
from roadmap.training.budget import Budget, fit_recipe
from roadmap.training.recipe import accumulation, gradual_warmup_epochs, scaled_lr
from roadmap.training.validation import sweep_jobs

DECODING_CSV = REPO / "experiments" / "gpu" / "decoding.csv"
DEFAULT_GPU = "H100"
VALIDATION_SPEEDUP = 3  # a forward pass against a training step (forward and backward, about 3x the work)
REFERENCES = {"convnext": "convnext_t", "resnet": "resnet50"}  # a job's family -> its reference network in rates.csv
# Optimizer state per parameter, in copies of the weights: SGD's momentum buffer, AdamW's two moments
OPTIMIZER_STATES = {"sgd": 1, "adamw": 2}
# ModelCheckpoint(save_top_k=1, save_last="link") keeps one file (last.ckpt links to it); an atomic save writes the
# next beside it before the rename
CHECKPOINT_FILES, CHECKPOINT_FILES_SAVING = 1, 2


# --- The jobs ------------------------------------------------------------------------------------------------


def _first_values(overrides: Sequence[str]) -> list[str]:
    """The overrides with each sweep at its first value: what Hydra's compose API accepts."""
    parsed = OverridesParser.create().parse_overrides(list(overrides))
    return list(BasicSweeper.split_arguments(parsed, None)[0][0]) if parsed else []


def _master(overrides: Sequence[str], multirun: bool) -> DictConfig:
    """The config Hydra starts from, with its `hydra` node; in a multirun, its task overrides are the command
    line's, sweeps included, as the sweeper reads them."""
    parsed = OverridesParser.create().parse_overrides(list(overrides))
    sweeps = [o.input_line for o in parsed if o.is_sweep_override()]
    if sweeps and not multirun:
        raise ConfigError(f"{' '.join(sweeps)}: a sweep needs -m (a multirun), as run.py does.")
    master = hydra_compose(PRIMARY, overrides=_first_values(overrides), return_hydra_config=True)
    with open_dict(master):
        master.hydra.overrides.task = [o.input_line for o in parsed if not o.is_hydra_override()]
    return master


def _expand(overrides: Sequence[str], multirun: bool) -> tuple[DictConfig, list[list[str]]]:
    """The master config and each job's overrides, in launch order: the basic sweeper's expansion in a multirun
    (roadmap/training/validation.py's sweep_jobs), else the one job. Within `initialize_config_dir`."""
    master = _master(overrides, multirun)
    if not multirun:
        return master, [list(master.hydra.overrides.task)]
    return master, [list(job) for job in sweep_jobs(master, GlobalHydra.instance().config_loader())]


def jobs_overrides(overrides: Sequence[str], multirun: bool = True) -> list[list[str]]:
    """Each job's overrides, in launch order, none composed."""
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        return _expand(overrides, multirun)[1]


def sweep_dir(overrides: Sequence[str]) -> str:
    """The folder a multirun of `overrides` writes to: the composed hydra.sweep.dir, resolved."""
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        return str(_master(overrides, multirun=True).hydra.sweep.dir)


# --- One job's plan ------------------------------------------------------------------------------------------


def read_decoding(path: Path = DECODING_CSV) -> dict[tuple[str, str], float] | None:
    """{(recipe, files): img/s per core} measured by roadmap/tools/decoding.py, or None where it was not."""
    if not path.is_file():
        return None
    with open(path, newline="") as file:
        return {(r["recipe"], r["files"]): float(r["img_s_per_core"]) for r in csv.DictReader(file)}


def _devices(trainer: DictConfig) -> tuple[int, str | None]:
    """Processes per node, and what was assumed where the config leaves it to the machine."""
    devices = trainer.devices
    if OmegaConf.is_list(devices):
        return len(devices), None
    if devices == "auto":
        return 1, "trainer.devices=auto: counted as 1 device per node"
    return int(devices), None


@dataclass
class Job:
    number: int
    overrides: list[str]
    name: str
    seed: int
    epochs: float
    train_images: int  # per epoch
    val_images: int
    images_seen: int  # epochs x training images
    images_trained: int  # optimizer steps x global batch (incomplete batches dropped): what the hours count
    global_batch: int
    accumulation: int
    steps_per_epoch: int
    steps: int
    optimizer: str
    peak_lr: float
    warmup_epochs: float
    warmup_from: float  # the lr the warm-up starts from: 0, or the recipe's base lr (the gradual warm-up)
    warmup: str  # the recipe's | gradual | none
    input_size: int
    width_multiplier: float
    params: int
    gflops: float
    family: str
    gpus: int
    rate: float  # img/s per GPU, training
    rate_source: str
    validations: int
    val_forwards: int  # forward passes per validation image: 1, or 2 with the EMA evaluated too
    train_hours: float
    val_hours: float
    hours: float
    gpu_hours: float
    checkpoint_gb: float  # the files a job keeps
    checkpoint_gb_saving: float  # during an atomic save
    recipe: str
    loader: bool  # images decoded by loader workers (an image folder), not held in memory
    workers_full: int | None
    workers_resized: int | None
    assumed: list[str] = field(default_factory=list)


def job_rate(net: Network, compiled: str, rates: Mapping[tuple[str, str, str], Rate]) -> tuple[float, str]:
    """(img/s per GPU of a whole training job, what it rests on): the family's reference network scaled by
    GFLOPs, as a whole job."""
    family = "convnext" if net.convnext_like else "resnet"
    whole = rates.get((REFERENCES["convnext"], "whole_job", compiled))
    reference = rates.get((REFERENCES[family], "whole_job", compiled))
    if reference is not None:
        factor, note = 1.0, ""
    else:
        reference = rates.get((REFERENCES[family], "bare_step", compiled))
        bare = rates.get((REFERENCES["convnext"], "bare_step", compiled))
        if reference is None or whole is None or bare is None:
            raise ConfigError(f"{path_shown(RATES_CSV)} lacks the {compiled} rates of {REFERENCES[family]} and "
                              "ConvNeXt-T that a job of this family needs.")
        factor = whole.img_s / bare.img_s
        note = f" x whole job / bare step {whole.img_s:g}/{bare.img_s:g} = {factor:.3f} ({whole.source})"
    rate = reference.img_s * reference.gflops_224 / net.gflops * factor
    who = "a network with a depthwise conv" if net.convnext_like else "a network without a depthwise conv"
    return rate, f"{who}: {reference.cite()} x {reference.gflops_224:g} GFLOPs / the job's GFLOPs{note}"


def plan_job(number: int, overrides: Sequence[str], cfg: DictConfig, rates: Mapping[tuple[str, str, str], Rate],
             decoding: Mapping[tuple[str, str], float] | None) -> Job:
    """One job's plan from its composed config (without its `hydra` node)."""
    train_images, val_images, classes, source = data_sizes(cfg.data)
    assumed = [source]
    with open_dict(cfg):
        cfg.data.num_classes = classes
        cfg.model.weights = None  # the plan counts shapes; nothing is loaded
    devices, note = _devices(cfg.trainer)
    assumed += [note] if note else []
    nodes = int(cfg.trainer.num_nodes)
    world = devices * nodes
    batch = cfg.data.batch_size
    global_batch = cfg.scale.global_batch_size or batch * world
    accumulate = accumulation(global_batch, batch, devices, nodes)
    if train_images < batch:
        raise ConfigError(f"data.batch_size={batch} is larger than the training set ({train_images} images).")
    steps_per_epoch = max(1, (math.ceil(train_images / world) // batch) // accumulate)  # datamodule.train_batches
    epochs = cfg.scale.epochs
    budget = Budget.of(cfg.recipe, epochs, steps_per_epoch)
    fitted, _ = fit_recipe(cfg.recipe, budget, cfg.scale.budget, cfg.scale.eval_resize_ratio)
    lr = scaled_lr(fitted, global_batch, cfg.scale.lr_scaling)
    gradual = gradual_warmup_epochs(fitted, lr)
    if gradual:
        warmup, start, kind = gradual, float(fitted.lr.base), "gradual"
    else:
        warmup, start = float(fitted.schedule.warmup_epochs), 0.0
        kind = "the recipe's" if warmup else "none"
    net = network(cfg, fitted)
    compiled = "compiled" if cfg.trainer.compile else "eager"
    rate, rate_source = job_rate(net, compiled, rates)
    images_trained = budget.steps * global_batch
    every = cfg.scale.val_every_n_epochs or epochs  # as the run's Trainer: check_val_every_n_epoch
    validations = max(1, int(epochs // every))
    forwards = 2 if net.ema else 1
    train_hours = images_trained / (rate * world) / 3600
    val_hours = validations * val_images * forwards / (VALIDATION_SPEEDUP * rate * world) / 3600
    hours = train_hours + val_hours
    optimizer = fitted.optimizer.name
    copies = 1 + OPTIMIZER_STATES[optimizer] + (1 if net.ema else 0)
    checkpoint_gb = net.params * 4 * copies / 1e9
    loader = cfg.data._target_.endswith("FolderData")
    workers: dict[str, int | None] = {"full": None, "resized": None}
    if loader and decoding is not None:
        for files in workers:
            per_core = decoding.get((fitted.name, files))
            workers[files] = math.ceil(rate / per_core) if per_core else None
    return Job(
        number=number, overrides=list(overrides), name=cfg.name, seed=cfg.seed, epochs=epochs,
        train_images=train_images, val_images=val_images, images_seen=round(epochs * train_images),
        images_trained=images_trained, global_batch=global_batch, accumulation=accumulate,
        steps_per_epoch=steps_per_epoch, steps=budget.steps, optimizer=optimizer, peak_lr=lr, warmup_epochs=warmup,
        warmup_from=start, warmup=kind, input_size=cfg.data.input_size, width_multiplier=cfg.scale.width_multiplier,
        params=net.params, gflops=net.gflops, family="convnext" if net.convnext_like else "resnet", gpus=world,
        rate=rate, rate_source=rate_source, validations=validations, val_forwards=forwards, train_hours=train_hours,
        val_hours=val_hours, hours=hours, gpu_hours=hours * world, checkpoint_gb=checkpoint_gb * CHECKPOINT_FILES,
        checkpoint_gb_saving=checkpoint_gb * CHECKPOINT_FILES_SAVING, recipe=fitted.name, loader=loader,
        workers_full=workers["full"], workers_resized=workers["resized"], assumed=assumed)


# --- The whole plan ------------------------------------------------------------------------------------------


def plan(overrides: Sequence[str], multirun: bool = False, gpu: str = DEFAULT_GPU, rates_csv: Path = RATES_CSV,
         decoding_csv: Path = DECODING_CSV) -> dict[str, Any]:
    """The plan of `python run.py <overrides> [-m]`: {"gpu", "jobs", "totals", "notes"}."""
    rates = rates_of(gpu, read_rates(rates_csv))
    decoding = read_decoding(decoding_csv)
    logging.getLogger("fvcore").setLevel(logging.ERROR)
    jobs = []
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        master, expanded = _expand(overrides, multirun)
        loader = GlobalHydra.instance().config_loader()
        for number, job_overrides in enumerate(expanded):
            cfg = loader.load_sweep_config(master, list(job_overrides))
            with open_dict(cfg):
                del cfg["hydra"]
            try:
                jobs.append(plan_job(number, job_overrides, cfg, rates, decoding))
            except ConfigError as error:
                raise ConfigError(f"job {number} ({' '.join(job_overrides)}): {error}") from None
    return {"gpu": gpu, "jobs": [asdict(job) for job in jobs], "totals": totals(jobs, decoding is not None),
            "notes": notes(jobs, decoding_csv if decoding is not None else None)}


def totals(jobs: Sequence[Job], decoded: bool) -> dict[str, Any]:
    def most(key: str) -> int | None:
        values = [getattr(j, key) for j in jobs if getattr(j, key) is not None]
        return max(values) if values else None

    workers = {"workers_per_gpu_full": most("workers_full"), "workers_per_gpu_resized": most("workers_resized")}
    cores = {f"cores_per_gpu_{k}": None if workers[f"workers_per_gpu_{k}"] is None
             else workers[f"workers_per_gpu_{k}"] + TRAINING_PROCESS_CORES for k in ("full", "resized")}
    return {
        "jobs": len(jobs),
        "gpu_hours": sum(j.gpu_hours for j in jobs),
        "hours_one_after_another": sum(j.hours for j in jobs),
        "images_trained": sum(j.images_trained for j in jobs),
        "optimizer_steps": sum(j.steps for j in jobs),
        "checkpoint_gb": sum(j.checkpoint_gb for j in jobs),
        "checkpoint_gb_saving": sum(j.checkpoint_gb_saving for j in jobs),
        **workers,
        **cores,
        "decoding_measured": decoded,
        "loader_jobs": sum(j.loader for j in jobs),
    }


def notes(jobs: Sequence[Job], decoding_csv: Path | None) -> list[str]:
    """What the estimates rest on and what was assumed, each said once."""
    out = []
    for line in dict.fromkeys([*(a for j in jobs for a in j.assumed), *(f"rate: {j.rate_source}" for j in jobs)]):
        out.append(line)
    if any(j.input_size != 224 or j.width_multiplier != 1 for j in jobs):
        out.append("GFLOPs far from a full-width network at 224 px set no GPU's pace (memory, the loader, the "
                   "launch of each kernel do): read those jobs' hours as a floor, not an estimate")
    out.append(f"hours: optimizer steps x global batch / (rate x GPUs); each validation is {VALIDATION_SPEEDUP}x "
               "faster than training (forward only), over the validation set, twice where the EMA is evaluated too")
    out.append(f"checkpoints: parameters x 4 bytes x (weights + optimizer state: SGD 1, AdamW 2 + the EMA's copy), "
               f"{CHECKPOINT_FILES} file kept per job (save_top_k=1, last.ckpt a link), {CHECKPOINT_FILES_SAVING} "
               "during an atomic save")
    if any(j.loader for j in jobs):
        if decoding_csv is None:
            out.append(f"workers: {path_shown(DECODING_CSV)} is missing (python -m roadmap.tools.decoding --out "
                       "experiments/gpu measures it): no loader workers estimated")
        else:
            out.append(f"workers per GPU: ceil(job img/s per GPU / img/s per core of the job's recipe), from "
                       f"{path_shown(decoding_csv)} (CPU time per core on the machine that measured it), for full-size "
                       f"JPEGs and the pre-resized copy; cores per GPU = workers + {TRAINING_PROCESS_CORES}")
    return out


# --- Output --------------------------------------------------------------------------------------------------


def _hours(value: float) -> str:
    return f"{value:.2g}" if value < 0.1 else f"{value:,.2f}" if value < 10 else f"{value:,.0f}"


def _warmup(job: Mapping[str, Any]) -> str:
    if job["warmup"] == "none":
        return "none"
    start = "0" if job["warmup_from"] == 0 else f"{job['warmup_from']:g}"
    return f"{job['warmup_epochs']:.3g} ep from {start}" + (" (gradual)" if job["warmup"] == "gradual" else "")


def to_text(result: Mapping[str, Any]) -> str:
    head = ["#", "name", "seed", "epochs", "images/epoch", "images seen", "steps", "peak lr", "warm-up", "GFLOPs",
            "ref", "img/s/GPU", "GPUs", "hours", "GPU-h"]
    rows = [[str(j["number"]), j["name"], str(j["seed"]), f"{j['epochs']:g}", f"{j['train_images']:,}",
             f"{j['images_seen']:,}", f"{j['steps']:,}", f"{j['peak_lr']:.4g}", _warmup(j),
             f"{j['gflops']:.3g}", REFERENCES[j["family"]], f"{j['rate']:,.0f}", str(j["gpus"]), _hours(j["hours"]),
             _hours(j["gpu_hours"])]
            for j in result["jobs"]]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    lines = ["  ".join(c.rjust(w) if i not in (1, 8, 10) else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths,
                                                                                                     strict=True)))
             for r in [head, *rows]]
    t = result["totals"]
    lines += ["", f"on {result['gpu']}: {t['jobs']} job(s), {t['gpu_hours']:,.1f} GPU-hours "
              f"({t['hours_one_after_another']:,.1f} h with each job on its own GPUs, one after another), "
              f"{t['optimizer_steps']:,} optimizer steps",
              f"checkpoints: {t['checkpoint_gb']:,.2f} GB kept in all, {t['checkpoint_gb_saving']:,.2f} GB if every "
              "job were mid-save"]
    if t["loader_jobs"]:
        if t["decoding_measured"]:
            lines.append(f"loader workers one GPU needs: {t['workers_per_gpu_full']} from full-size JPEGs, "
                         f"{t['workers_per_gpu_resized']} from the pre-resized copy (cores per GPU: "
                         f"{t['cores_per_gpu_full']} / {t['cores_per_gpu_resized']})")
        else:
            lines.append("loader workers: not estimated, experiments/gpu/decoding.csv is missing")
    lines += ["", "Estimates rest on:", *(f"- {note}" for note in result["notes"])]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="What `python run.py <overrides> [-m]` would cost: per job and in all, before anything runs.",
        epilog="e.g. python scripts/plan.py -m +step=kernel_7,gelu seed=0,1,2 scale=paper data=imagenet "
               "data.root=/datasets/imagenet trainer=gpu")
    parser.add_argument("overrides", nargs="*", help="run.py's overrides")
    parser.add_argument("-m", "--multirun", action="store_true", help="every job of the multirun")
    parser.add_argument("--gpu", default=DEFAULT_GPU,
                        help=f"the device of {path_shown(RATES_CSV)} (default {DEFAULT_GPU})")
    parser.add_argument("--json", type=Path, help="also write the plan (jobs and totals) as JSON to this file")
    parser.add_argument("--sweep-dir", action="store_true",
                        help="print only the folder the multirun would write to (hydra.sweep.dir), and exit")
    args = parser.parse_intermixed_args(argv)
    warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.* is deprecated")  # fvcore traces with it
    try:
        if args.sweep_dir:
            print(sweep_dir(args.overrides))
            return
        result = plan(args.overrides, args.multirun, args.gpu)
    except ConfigError as error:
        sys.exit(f"error: {error}")
    print(to_text(result))
    if args.json is not None:
        from roadmap.results.records import atomic_write_text

        atomic_write_text(args.json, json.dumps(result, indent=2) + "\n")
