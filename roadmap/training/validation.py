"""Every check of a composed config that needs no data, run right after composition; and a sweep checked whole.

Types are the schema's (roadmap/config/schema.py), checked by OmegaConf as Hydra composes. `check_config` checks the
ranges and relations, before any data is read or any model is built, in milliseconds, and calls the checks that
live beside what they check: the recipe's (roadmap/training/recipe.py), the budget rules' (roadmap/training/budget.py),
the deltas' (roadmap/config/ablation.py), the network's arguments (roadmap/model/network.py) and each data set's (the
`check` of its data module: a `data.root` that was given must hold the data set). Each failure is a ConfigError naming
the key, the value, what it must be and the fix; a value interpolated from another key is named by that key
(`data.batch_size` is `${scale.batch_size}`: an error names scale.batch_size, the key to change).

`CheckSweep` checks a whole multirun before its first job: it expands the sweep as Hydra's basic sweeper does
(its own `split_arguments`), composes each job as the sweeper will, runs `check_config` on it and builds its network
on the meta device (no memory, no weights). A Hydra callback rather than a sweeper subclass: Hydra instantiates
sweepers only from its `hydra_plugins` namespace package, which this project would have to install beside itself,
while a callback is configured like any other object (conf/train.yaml, `hydra.callbacks`).
"""

from __future__ import annotations

import inspect
import logging
import re
from collections.abc import Iterable, Iterator
from dataclasses import fields, is_dataclass
from difflib import get_close_matches
from functools import partial
from itertools import count
from pathlib import Path
from typing import Any

import lightning
import torch
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.config_loader import ConfigLoader
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.experimental.callback import Callback
from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from roadmap.config import schema
from roadmap.config.ablation import check_combination
from roadmap.config.composition import build_model, scaled_widths
from roadmap.config.labels import check_study
from roadmap.errors import ConfigError, need
from roadmap.model.attention import check_swin_arguments, check_windows
from roadmap.model.network import RoadmapNet, check_arguments, stage_sizes
from roadmap.model.weights import fitted_state, read_state
from roadmap.training.budget import check_rules
from roadmap.training.module import compile_options
from roadmap.training.recipe import check_mixup_batch, check_recipe, lr_rule

log = logging.getLogger(__name__)
NETWORK = "roadmap.model.network.RoadmapNet"  # what every conf/model/ file builds, but Swin's
SWIN = "roadmap.model.attention.swin_transformer"  # conf/model/swin_*.yaml: timm's Swin Transformer


def check_config(cfg: DictConfig) -> None:
    """Raise a ConfigError on the first value of `cfg` (a composed config, without its `hydra` node) that cannot
    run; a DataError where a `data.root` that was given does not hold the data set."""
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        raise ConfigError(f"{', '.join(missing)}: no value given (??? in the config); set it, e.g. {missing[0]}=...")
    try:
        OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException as error:  # an interpolation that does not resolve, or resolves to a wrong type
        raise ConfigError(" ".join(str(error).split())) from None
    undeclared = next(_undeclared(cfg), None)
    if undeclared is not None:
        key, declared = undeclared
        raise ConfigError(f"{key} is not a key of the config{_did_you_mean(key, declared)}; roadmap/config/schema.py "
                          "lists the keys.")
    check_study(cfg.study)
    need(0 <= cfg.seed < 2**32, "seed", cfg.seed, "an int in [0, 2^32)")
    if cfg.resume is not None and not Path(cfg.resume).is_file():
        raise ConfigError(f"resume={cfg.resume} is not a checkpoint file; pass <run dir>/checkpoints/last.ckpt.")
    check_recipe(cfg.recipe)
    _check_scale(cfg)
    _check_loader(cfg)
    check_mixup_batch(cfg.recipe.augment, cfg.data.batch_size)
    check_combination(list(cfg.deltas))
    _check_model(cfg)
    _check_trainer(cfg.trainer)
    get_class(cfg.data._target_).check(cfg.data)  # last: it looks for the data set's files (without reading them)


def origin(cfg: DictConfig, key: str) -> str:
    """The key whose value `key` holds: itself, or the key it interpolates (``${scale.batch_size}``), followed."""
    while True:
        parent, _, leaf = key.rpartition(".")
        node = OmegaConf.select(cfg, parent) if parent else cfg
        if not OmegaConf.is_interpolation(node, leaf):
            return key
        link = re.fullmatch(r"\$\{([\w.]+)\}", OmegaConf.to_container(node)[leaf])
        if link is None:  # computed (e.g. a resolver): the key itself is the one to set
            return key
        key = link.group(1)


def _positive(cfg: DictConfig, key: str, optional: bool = False) -> None:
    value = OmegaConf.select(cfg, key)
    ok = (optional and value is None) or (value is not None and value > 0)
    need(ok, origin(cfg, key), value, "positive" + (", or null" if optional else ""))


def _did_you_mean(key: str, choices: Iterable[str]) -> str:
    close = get_close_matches(key.rpartition(".")[2], list(choices), n=1)
    return f" (did you mean {close[0]}?)" if close else ""


def _undeclared(node: DictConfig, prefix: str = "") -> Iterator[tuple[str, set[str]]]:
    """Keys that a `+key=value` added to a part of the config whose schema does not declare them, each with the
    declared ones. The root takes the roadmap's own keys, and `trainer` any lightning.Trainer argument
    (`_check_trainer`)."""
    kind = OmegaConf.get_type(node)
    open_schema = not is_dataclass(kind) or kind in (schema.Train, schema.Trainer)
    declared = set() if open_schema else {f.name for f in fields(kind)}
    for key in node:
        if not open_schema and key not in declared:
            yield f"{prefix}{key}", declared
        elif not OmegaConf.is_interpolation(node, key) and isinstance(node[key], DictConfig):
            yield from _undeclared(node[key], f"{prefix}{key}.")


def _check_scale(cfg: DictConfig) -> None:
    scale = cfg.scale
    need(scale.width_multiplier > 0, "scale.width_multiplier", scale.width_multiplier, "positive")
    _positive(cfg, "scale.epochs")
    for key in ("global_batch_size", "val_every_n_epochs"):
        _positive(cfg, f"scale.{key}", optional=True)
    if scale.eval_resize_ratio is not None:
        need(0 < scale.eval_resize_ratio <= 1, "scale.eval_resize_ratio", scale.eval_resize_ratio,
             "in (0, 1], or null for the recipe's")
    lr_rule(scale.lr_scaling, cfg.recipe.optimizer.name)
    check_rules(scale.budget)


def _check_loader(cfg: DictConfig) -> None:
    """The data keys every data set shares, each named where it was set (most are scale.*)."""
    for key in ("input_size", "batch_size"):
        _positive(cfg, f"data.{key}")
    for key in ("train_subset", "val_subset"):
        _positive(cfg, f"data.{key}", optional=True)
    need(cfg.data.num_workers >= 0, "data.num_workers", cfg.data.num_workers, ">= 0 (0: load in the main process)")
    classes = cfg.data.num_classes
    need(classes is None or classes > 0, "data.num_classes", classes, "a positive number of classes")


def _check_model(cfg: DictConfig) -> None:
    """The network's arguments at the run's scale, checked as the network checks them, without building it; and an
    input from which every stage keeps at least one pixel."""
    args = OmegaConf.to_container(cfg.model, resolve=True)
    target = args.pop("_target_")
    need(target in (NETWORK, SWIN), "model._target_", cfg.model._target_, f"{NETWORK} or {SWIN}")
    args["widths"] = scaled_widths(cfg)
    if args["num_classes"] is None:  # data.num_classes: null, counted from the data set's class folders later
        args["num_classes"] = 1
    try:
        args = (check_swin_arguments if target == SWIN else check_arguments)(**args)
    except ValueError as error:
        raise ConfigError(f"model: {error}") from None
    if target == SWIN:  # its input size and windows are among its arguments
        return
    if args["weights"] is not None:  # the weights' names and shapes against the network's, built without memory
        with torch.device("meta"):
            net = RoadmapNet(**{**args, "weights": None})
        try:
            fitted_state(net, read_state(args["weights"]), f"model.weights={args['weights']}")
        except ValueError as error:
            raise ConfigError(str(error)) from None
    sizes = partial(stage_sizes, stem=args["stem"], patch_size=args["patch_size"], depths=args["depths"],
                    downsampling=args["downsampling"])
    if sizes(cfg.data.input_size)[-1] < 1:
        key = origin(cfg, "data.input_size")
        smallest = next(size for size in count(cfg.data.input_size) if sizes(size)[-1] >= 1)
        need(False, key, cfg.data.input_size, "large enough that the network's last stage sees at least one pixel "
             f"(its stages would see {sizes(cfg.data.input_size)} px)", f"Use {key}={smallest} or more.")
    if args["spatial_mixer"] == "window_attention":
        try:
            check_windows(sizes(cfg.data.input_size), args["kernel_size"])
        except ValueError as error:
            raise ConfigError(f"model: {error}") from None


def _check_trainer(trainer: DictConfig) -> None:
    """Our keys' ranges, and any key added beyond the schema's (`+trainer.limit_train_batches=10`) must be a
    lightning.Trainer argument."""
    need(trainer.num_nodes >= 1, "trainer.num_nodes", trainer.num_nodes, "a positive number of nodes")
    need(trainer.log_every_n_steps >= 1, "trainer.log_every_n_steps", trainer.log_every_n_steps, "positive")
    compile_options(trainer.compile)  # false, true or a torch.compile mode
    devices = trainer.devices
    need(devices == "auto" or OmegaConf.is_list(devices) or (isinstance(devices, int) and devices >= 1),
         "trainer.devices", devices, "a positive count, auto, or a list of device indices")
    arguments = set(inspect.signature(lightning.Trainer).parameters)
    unknown = sorted(set(trainer) - {f.name for f in fields(schema.Trainer)} - arguments)
    if unknown:
        key = unknown[0]
        raise ConfigError(f"trainer.{key} is not a lightning.Trainer argument{_did_you_mean(key, arguments)}, nor "
                          "one of ours (conf/trainer/cpu.yaml).")


class CheckSweep(Callback):
    """Hydra callback: before a multirun's first job, compose, check and build every job of its sweep. One or more
    bad jobs stop the multirun before anything is trained or written, each named by its number and overrides."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        if config.hydra.sweeper._target_ != f"{BasicSweeper.__module__}.{BasicSweeper.__name__}":
            log.warning("the sweep is not checked before it starts: only Hydra's basic sweeper's jobs are known ahead")
            return
        loader = GlobalHydra.instance().config_loader()
        jobs = sweep_jobs(config, loader)
        failures = []
        for number, overrides in enumerate(jobs):
            try:
                job = loader.load_sweep_config(config, list(overrides))
                with open_dict(job):
                    del job["hydra"]
                check_config(job)
                job.model.weights = None  # checked above against the network's shapes; nothing to load on meta
                job.model.num_classes = job.data.num_classes or 1  # null: counted from the class folders later
                with torch.device("meta"):  # built, without memory: what the arguments' checks cannot see
                    build_model(job)
            except Exception as error:  # any failure is the job's, reported with its overrides
                cause = f": {error.__cause__}" if error.__cause__ is not None else ""
                failures.append(f"job {number} ({' '.join(overrides)}): {' '.join(f'{error}{cause}'.split())}")
        if failures:
            # SystemExit, as Hydra turns a callback's exceptions into warnings and would go on.
            raise SystemExit(f"{len(failures)} of the sweep's {len(jobs)} jobs are invalid; nothing was run:\n"
                             + "\n".join(failures))
        log.info("checked the sweep's %d jobs", len(jobs))


def sweep_jobs(config: DictConfig, loader: ConfigLoader) -> list[list[str]]:
    """The overrides of each job of a multirun, in launch order, as Hydra's basic sweeper expands them from the
    sweeper's params (e.g. conf/ablation/'s) and the command line."""
    params = [f"{key}={value}" for key, value in (config.hydra.sweeper.params or {}).items()]
    parser = OverridesParser.create(config_loader=loader)
    overrides = parser.parse_overrides([*params, *config.hydra.overrides.task])
    return [job for batch in BasicSweeper.split_arguments(overrides, None) for job in batch]
