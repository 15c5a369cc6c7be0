"""Bad inputs, as a new user makes them: each is refused before training, naming the key or the file, by our code.

Each case goes the way `python run.py <overrides>` goes, in-process: Hydra composes the config (the schema's types,
roadmap/config/schema.py), then `train` checks it (roadmap/training/validation.py) and, for damaged data, reads the data
set. The case must end in an error that run.py or Hydra prints as its message alone with a non-zero exit: a ConfigError
raised by this project's code, or Hydra's own compact composition error; never an exception from deep inside a
library. Nothing may be written as a completed record. tests/test_run.py runs the same through run.py, once for
a single run and once for a sweep.
"""

import gzip
import os
import struct
import traceback
from pathlib import Path

import numpy as np
import pytest
from hydra.errors import CompactHydraException
from omegaconf import OmegaConf
from PIL import Image

from roadmap.config.ablation import FINAL_STEP, leave_one_out
from roadmap.config.composition import compose
from roadmap.data import FASHION_MNIST_FILES
from roadmap.errors import ConfigError
from roadmap.steps import REGIMES, STEPS
from roadmap.training.job import train
from roadmap.training.validation import check_config

PACKAGE = Path(__file__).resolve().parent.parent / "roadmap"
CONF = Path(__file__).resolve().parent.parent / "conf"
QUIET = ("logger.wandb.enabled=false",)


def idx(path: Path, dims: tuple[int, ...], payload: int | None = None) -> None:
    """An IDX file of unsigned bytes with header `dims` and `payload` bytes of data (all of them by default)."""
    size = int(np.prod(dims)) if payload is None else payload
    path.write_bytes(bytes([0, 0, 0x08, len(dims)]) + struct.pack(f">{len(dims)}I", *dims) + bytes(size))


def fashion_root(root: Path, first: str | None = None) -> Path:
    """A Fashion-MNIST root whose first file (train images) is made by the caller; the other three are stubs."""
    root.mkdir(parents=True)
    for name in list(FASHION_MNIST_FILES)[1:]:
        (root / name).write_bytes(b"stub")
    return root


def images(folder: Path, count: int = 1) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(folder / f"{i}.png")


@pytest.fixture(scope="module")
def broken(tmp_path_factory) -> Path:
    """Data sets as they arrive broken: empty, incomplete, truncated, corrupt."""
    tmp = tmp_path_factory.mktemp("broken")
    (tmp / "empty").mkdir()
    (tmp / "a_file").write_text("not a folder")
    three = tmp / "three_files"
    three.mkdir()
    for name in list(FASHION_MNIST_FILES)[:3]:
        (three / f"{name}.gz").write_bytes(gzip.compress(b"stub"))
    idx(fashion_root(tmp / "truncated") / "train-images-idx3-ubyte", (60000, 28, 28), payload=1000)
    idx(fashion_root(tmp / "other_dims") / "train-images-idx3-ubyte", (100, 28, 28))
    (fashion_root(tmp / "corrupt_gz") / "train-images-idx3-ubyte.gz").write_bytes(os.urandom(300))
    batches = tmp / "cifar" / "cifar-10-batches-py"
    batches.mkdir(parents=True)
    (batches / "data_batch_1").write_bytes(os.urandom(1000))
    for split in ("train", "val"):
        images(tmp / "empty_class" / split / "cat")
    images(tmp / "no_val" / "train" / "cat")
    (tmp / "empty_class" / "train" / "dog").mkdir()
    images(tmp / "empty_class" / "val" / "dog")
    return tmp


# (overrides, what the message must name); {broken} is the fixture's folder.
BAD_INPUTS = {
    # The command line: types (checked by OmegaConf as Hydra composes) and keys.
    "seed not an int": (["seed=abc"], ["seed", "'abc'", "Integer"]),
    "batch not an int": (["scale.batch_size=many"], ["scale.batch_size", "'many'"]),
    "download not a bool": (["data.download=maybe"], ["data.download", "'maybe'"]),
    "wandb switch not a bool": (["logger.wandb.enabled=sometimes"], ["logger.wandb.enabled"]),
    "deterministic not a bool": (["trainer.deterministic=perhaps"], ["trainer.deterministic"]),
    "unknown study": (["study=roadmp"], ["study='roadmp'",
                                         "roadmap, leave_one_out, factorial, calibration, attention, ladder, free"]),
    "mixup not a number": (["recipe.augment.mixup=lots"], ["recipe.augment.mixup", "Float"]),
    "unknown key": (["sed=1"], ["sed"]),
    "added key misspelt": (["+scale.epoch=3"], ["scale.epoch ", "did you mean epochs"]),
    "added logger key misspelt": (["+logger.wandb.projet=x"], ["logger.wandb.projet", "did you mean project"]),
    # Run-level keys.
    "negative seed": (["seed=-1"], ["seed=-1", "[0, 2^32)"]),
    "resume from nothing": (["resume={broken}/none.ckpt"], ["resume=", "none.ckpt", "last.ckpt"]),
    # Scale.
    "batch of 0": (["scale.batch_size=0"], ["scale.batch_size=0", "positive"]),
    "no epochs": (["scale.epochs=0"], ["scale.epochs=0"]),
    "input too small for ConvNeXt": (["+step=separate_downsampling", "scale.input_size=28"],
                                     ["scale.input_size=28", "[7, 3, 1, 0]", "scale.input_size=32 or more"]),
    "data input too small": (["+step=patchify_stem", "+delta=[separate_downsampling]", "data.input_size=16"],
                             ["data.input_size=16", "[4, 2, 1, 0]"]),
    "no width": (["scale.width_multiplier=0"], ["scale.width_multiplier=0.0"]),
    "empty subset": (["scale.train_subset=0"], ["scale.train_subset=0"]),
    "negative global batch": (["scale.global_batch_size=-8"], ["scale.global_batch_size=-8"]),
    "unknown lr rule": (["scale.lr_scaling=cube"], ["scale.lr_scaling='cube'", "linear"]),
    "unknown budget rule": (["+scale.budget.warm_up=true"], ["scale.budget.warm_up", "schedule"]),
    "evaluation crop above the image": (["scale.eval_resize_ratio=1.2"], ["scale.eval_resize_ratio=1.2", "(0, 1]"]),
    # Recipe.
    "negative lr": (["recipe.lr.base=-0.1"], ["recipe.lr.base=-0.1"]),
    "negative weight decay": (["recipe.optimizer.weight_decay=-1"], ["recipe.optimizer.weight_decay=-1.0", ">= 0"]),
    "flip chance above 1": (["recipe.augment.hflip=1.5"], ["recipe.augment.hflip=1.5", "[0, 1]"]),
    "negative erasing": (["+step=modern_recipe", "recipe.augment.random_erasing=-0.1"],
                         ["recipe.augment.random_erasing=-0.1"]),
    "RandAugment timm rejects": (["recipe.augment.randaugment=rand-x9"],
                                 ["recipe.augment.randaugment='rand-x9'", "Unknown RandAugment config section"]),
    "RandAugment section timm ignores": (["recipe.augment.randaugment=rand-m9-mstdx"], ["timm would ignore mstdx"]),
    "EMA decay above 1": (["recipe.ema.decay=1.5"], ["recipe.ema.decay=1.5"]),
    "unknown optimizer": (["recipe.optimizer.name=adam"], ["recipe.optimizer.name='adam' is invalid"]),
    "crop range upside down": (["recipe.augment.train_crop_scale=[0.5,0.1]"], ["recipe.augment.train_crop_scale"]),
    "unknown interpolation": (["recipe.augment.interpolation=cubic"], ["recipe.augment.interpolation='cubic'"]),
    "odd batch under Mixup": (["+step=modern_recipe", "scale.batch_size=63"], ["data.batch_size=63", "even"]),
    # Deltas and the network.
    "conflicting deltas": (["+delta=[kernel_5,kernel_7]"], ["kernel_5 and kernel_7 conflict"]),
    "even kernel": (["+step=gelu", "model.kernel_size=4"], ["kernel_size=4", "odd"]),
    "even kernel, named before a missing root": (["+step=kernel_7", "model.kernel_size=6",
                                                   "data.root={broken}/none", "data.download=false"],
                                                  ["kernel_size=6 is invalid"]),
    "unknown network argument": (["+model.kernel=3"], ["'kernel'", "kernel_size"]),
    # Trainer.
    "no nodes": (["trainer.num_nodes=0"], ["trainer.num_nodes=0"]),
    "no devices": (["trainer.devices=0"], ["trainer.devices=0"]),
    "unknown Trainer argument": (["+trainer.limit_train_bathes=2"],
                                 ["trainer.limit_train_bathes", "did you mean limit_train_batches"]),
    # Data, as configured.
    "data batch of 0": (["data.batch_size=0"], ["data.batch_size=0"]),
    "negative workers": (["data.num_workers=-1"], ["data.num_workers=-1"]),
    "two channels": (["data.in_chans=2"], ["data.in_chans=2", "[1, 3]"]),
    "no classes": (["data.num_classes=0"], ["data.num_classes=0"]),
    "classes left out": (["data=synthetic", "data.num_classes=null"], ["data.num_classes=None", "ImageFolder"]),
    "empty synthetic set": (["data=synthetic", "data.train_size=0"], ["data.train_size=0"]),
    "ImageFolder without a root": (["data=imagenet"], ["data.root", "???"]),
    "unknown data set": (["data=mnist"], ["data/mnist", "fashion_mnist", "imagenet"]),
    "unknown CIFAR": (["data=cifar100", "data.name=cifar1000", "data.download=true"], ["data.name='cifar1000'"]),
    # Data sources: a root that was given must hold the data set.
    "root that does not exist": (["data.root=/no/such/folder"], ["data.root=/no/such/folder does not exist"]),
    "root that is a file": (["data.root={broken}/a_file"], ["a_file is not a folder"]),
    "empty root": (["data.root={broken}/empty"], ["empty lacks train-images-idx3-ubyte"]),
    "root missing a file": (["data.root={broken}/three_files"], ["three_files lacks t10k-labels-idx1-ubyte"]),
    "CIFAR root without CIFAR": (["data=cifar10", "data.root={broken}/empty"], ["empty holds no cifar-10-batches-py"]),
    "ImageFolder without val": (["data=imagenet", "data.root={broken}/no_val"], ["no_val/val does not exist"]),
    # Damaged data sets.
    "truncated IDX": (["data.root={broken}/truncated"],
                      ["truncated/train-images-idx3-ubyte is damaged", "1016 bytes", "47040016"]),
    "IDX of another shape": (["data.root={broken}/other_dims"], ["other_dims/train-images-idx3-ubyte is damaged",
                                                                "(100, 28, 28)"]),
    "corrupt .gz": (["data.root={broken}/corrupt_gz"], ["corrupt_gz/train-images-idx3-ubyte.gz is damaged"]),
    "corrupt CIFAR batch": (["data=cifar10", "data.root={broken}/cifar"],
                            ["cifar-10-batches-py/data_batch_1 is damaged", "MD5"]),
    "empty ImageFolder class": (["data=imagenet", "data.root={broken}/empty_class", "scale.batch_size=1"],
                                ["empty_class/train/dog holds no image"]),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_a_bad_input_is_refused_naming_it(case, broken, tmp_path, monkeypatch):
    overrides, named = BAD_INPUTS[case]
    overrides = [o.format(broken=broken) for o in overrides]
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # where Fashion-MNIST's files are unpacked
    with pytest.raises((CompactHydraException, ConfigError)) as caught:
        train(compose([*QUIET, *overrides]), tmp_path / "run")
    error = caught.value
    message = f"{error} {error.__cause__ or ''}"  # Hydra prints a composition error and its cause
    for part in named:
        assert part.format(broken=broken) in message, message
    if isinstance(error, ConfigError):  # raised by the project's own code, which run.py prints without a traceback
        assert Path(traceback.extract_tb(error.__traceback__)[-1].filename).is_relative_to(PACKAGE)
    assert not (tmp_path / "run" / "result.json").exists()


def test_the_table_covers_every_config_group():
    keys = " ".join(o for overrides, _ in BAD_INPUTS.values() for o in overrides)
    for group in ("scale.", "recipe.", "data.", "trainer.", "logger.", "model.", "seed=", "resume=", "+delta="):
        assert group in keys, group
    assert len(BAD_INPUTS) >= 25


@pytest.mark.parametrize("regime", REGIMES)
def test_every_roadmap_step_passes(regime):
    """The checks refuse no config the project itself runs: every step of both regimes, every leave-one-out
    variant (`make leave-one-out`) and every calibration candidate (`make calibration`)."""
    for step in STEPS:
        check_config(compose([f"regime={regime}", f"+step={step}"]))


def test_every_study_config_passes():
    for deltas in leave_one_out().values():
        check_config(compose([f"+delta=[{','.join(deltas)}]"]))
    for model in sorted(path.stem for path in (CONF / "model").glob("convnext_*.yaml")):
        check_config(compose([f"model={model}"]))
    # Each candidate changes the scale only; ConvNeXt is the stricter endpoint (its input must be 32 px or more).
    for candidate in sorted(path.stem for path in (CONF / "calibration").glob("*.yaml")):
        cfg = compose([f"+calibration={candidate}", f"+step={FINAL_STEP}"])
        if candidate == "input_28":  # ConvNeXt cannot run at 28 px: the Makefile runs ResNet-50 alone on it
            with pytest.raises(ConfigError, match=r"scale.input_size=28 .*\[7, 3, 1, 0\]"):
                check_config(cfg)
            check_config(compose([f"+calibration={candidate}", "+step=baseline"]))
        else:
            check_config(cfg)


def test_the_schema_keeps_interpolations_live():
    """data.augment is ${recipe.augment}: an override of the recipe, or the budget's fitted recipe, reaches the data."""
    cfg = compose(["+step=modern_recipe", "recipe.augment.hflip=0.1"])
    assert OmegaConf.is_interpolation(cfg.data, "augment") and cfg.data.augment.hflip == 0.1
    cfg.recipe.merge_with({"augment": {"random_erasing": 0.01}})  # as train() fits the recipe
    assert cfg.data.augment.random_erasing == 0.01


def test_every_scale_trainer_and_data_set_passes(broken):
    for scale in ("paper", "proxy", "smoke"):
        check_config(compose([f"scale={scale}", "+step=separate_downsampling"]))
    for trainer in ("cpu", "gpu", "ddp", "slurm"):  # no GPU is needed to check a GPU config (e.g. on a login node)
        check_config(compose([f"trainer={trainer}", "+trainer.limit_train_batches=10"]))
    check_config(compose(["data=synthetic", "data.in_chans=5"]))
    check_config(compose(["data=cifar10", "data.root=/no/such/folder", "data.download=true"]))
    check_config(compose(["data=imagenet", f"data.root={broken}/empty_class"]))  # classes counted, images not read
