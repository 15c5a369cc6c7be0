"""Data modules: where the data comes from, subsets, transforms, and a training order fixed by (seed, epoch)."""

import gzip
import os
import shutil
from collections import Counter
from pathlib import Path

import lightning
import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelCheckpoint
from omegaconf import OmegaConf
from PIL import Image

from roadmap.config.composition import CONF_DIR, compose
from roadmap.data import (
    DEBIAN_FASHION_MNIST,
    FASHION_MNIST_FILES,
    CIFARData,
    FashionMNISTData,
    FolderData,
    SyntheticData,
    balanced_subset,
    count_classes,
    fashion_mnist,
)
from roadmap.data.sampling import BatchKey
from roadmap.errors import DataError

DEBIAN = Path(DEBIAN_FASHION_MNIST)
needs_debian = pytest.mark.skipif(
    not DEBIAN.is_dir(), reason=f"{DEBIAN} missing: apt-get install dataset-fashion-mnist")
COMMON_KEYS = {"num_classes", "in_chans", "input_size", "batch_size", "num_workers", "pin_memory",
               "persistent_workers", "train_subset", "val_subset", "augment", "seed"}


def augment(recipe: str = "original"):
    """The recipe's augment block, read from the recipe files (modern.yaml lists only its differences)."""
    block = OmegaConf.load(CONF_DIR / "recipe" / "original.yaml").augment
    if recipe == "modern":
        block = OmegaConf.merge(block, OmegaConf.load(CONF_DIR / "recipe" / "modern.yaml").augment)
    return block


def common(**overrides) -> dict:
    args = dict(num_classes=10, in_chans=3, input_size=32, batch_size=16, num_workers=0, pin_memory=False,
                persistent_workers=False, train_subset=200, val_subset=100, augment=augment(), seed=0)
    return {**args, **overrides}


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    """One cache for the tests that do not test the cache itself: Fashion-MNIST is unpacked once."""
    return tmp_path_factory.mktemp("cache")


def fashion(cache_dir: Path, root: str | None = None, **overrides) -> FashionMNISTData:
    return FashionMNISTData(root=root, download=False, cache_dir=str(cache_dir), **common(**overrides))


def first_batch(dm, epoch: int, num_workers: int | None = None):
    """The loader's first training batch of `epoch`, as the network gets it."""
    if num_workers is not None:
        dm.num_workers = num_workers
    loader = dm.train_dataloader()
    loader.sampler.set_epoch(epoch)
    return next(iter(loader))


# --- Fashion-MNIST ---------------------------------------------------------------------------------------


@needs_debian
def test_fashion_mnist_from_the_debian_folder(cache):
    dm = fashion(cache, train_subset=None, val_subset=None, input_size=40, batch_size=256)
    dm.setup()
    assert (len(dm.train_set), len(dm.val_set)) == (60000, 10000)
    assert Counter(dm.val_set.targets) == {c: 1000 for c in range(10)}
    # Grayscale, transformed once into memory, repeated to RGB per batch.
    assert dm.val_set.images.shape == (10000, 1, 40, 40) and dm.val_set.images.dtype == torch.uint8
    x, y = next(iter(dm.val_dataloader()))
    assert x.shape == (256, 3, 40, 40) and x.dtype == torch.float32 and y.shape == (256,)
    assert torch.equal(x[:, 0], x[:, 1]) and torch.equal(x[:, 0], x[:, 2])
    assert abs(x.mean().item()) < 0.3 and 0.8 < x.std().item() < 1.2  # normalised with the data set's stats
    x, _ = first_batch(dm, 0)
    assert x.shape == (256, 3, 40, 40) and x.dtype == torch.float32


@needs_debian
def test_fashion_mnist_grayscale_and_the_modern_recipe(cache):
    dm = fashion(cache, in_chans=1, augment=augment("modern"))
    x, _ = first_batch(dm, 0)
    assert x.shape == (16, 1, 32, 32) and x.dtype == torch.float32


@needs_debian
def test_subset_is_class_balanced_and_the_same_for_every_seed(cache):
    a, b = fashion(cache, train_subset=600, val_subset=100, seed=0), fashion(cache, train_subset=600, seed=7)
    a.setup(), b.setup()
    assert Counter(a.train_set.targets) == {c: 60 for c in range(10)}
    assert Counter(a.val_set.targets) == {c: 10 for c in range(10)}
    assert np.array_equal(a.train_set.indices, b.train_set.indices)
    assert np.array_equal(a.val_set.indices, b.val_set.indices)


def test_balanced_subset_shares_out_remainders_and_small_classes():
    labels = [0] * 100 + [1] * 5 + [2] * 50
    counts = Counter(np.asarray(labels)[balanced_subset(labels, 30)].tolist())
    assert counts == {0: 13, 1: 5, 2: 12} or counts == {0: 12, 1: 5, 2: 13}
    counts = Counter(np.asarray(labels)[balanced_subset(labels, 10)].tolist())
    assert sorted(counts.values()) == [3, 3, 4]
    assert len(set(balanced_subset(labels, 10))) == 10
    assert np.array_equal(balanced_subset(labels, None), np.arange(155))


@needs_debian
def test_root_with_the_four_gz_files(tmp_path, monkeypatch):
    monkeypatch.setattr(fashion_mnist, "DEBIAN_FASHION_MNIST", str(tmp_path / "no_debian"))
    root = tmp_path / "root"
    root.mkdir()
    for name in FASHION_MNIST_FILES:
        os.symlink(DEBIAN / f"{name}.gz", root / f"{name}.gz")
    dm = fashion(tmp_path / "cache", root=str(root), train_subset=None, val_subset=None)
    dm.setup()
    assert (len(dm.train_set), len(dm.val_set)) == (60000, 10000)
    assert dm.source == f"data.root={root}"
    unpacked = dm.locate(False)[0] / "FashionMNIST" / "raw"
    assert unpacked.is_relative_to(tmp_path / "cache")
    with gzip.open(DEBIAN / "t10k-labels-idx1-ubyte.gz") as f:
        assert (unpacked / "t10k-labels-idx1-ubyte").read_bytes() == f.read()
    # torchvision's own layout, uncompressed, is read in place.
    layout = tmp_path / "tv"
    shutil.copytree(unpacked.parent.parent, layout, symlinks=True)
    raw = layout / "FashionMNIST" / "raw"
    assert fashion(tmp_path / "cache2", root=str(layout)).locate(False) == (layout, f"data.root={raw}")


@needs_debian
def test_without_a_root_the_debian_copy_is_read(cache):
    assert fashion(cache).locate(False)[1] == f"Debian's copy in {DEBIAN}"


def test_missing_fashion_mnist_names_the_three_ways(tmp_path, monkeypatch):
    monkeypatch.setattr(fashion_mnist, "DEBIAN_FASHION_MNIST", str(tmp_path / "no_debian"))
    dm = fashion(tmp_path / "cache")
    with pytest.raises(DataError) as error:
        dm.setup()
    message = str(error.value)
    for way in ("data.root=", "apt-get install dataset-fashion-mnist", "make install", "data.download=true"):
        assert way in message


# --- The training order -----------------------------------------------------------------------------------


@needs_debian
def test_train_batches_depend_only_on_seed_and_epoch(cache):
    modern = augment("modern")
    a, b = fashion(cache, augment=modern), fashion(cache, augment=modern)
    xa, ya = first_batch(a, 1)
    xb, yb = first_batch(b, 1)
    assert torch.equal(xa, xb) and torch.equal(ya, yb)  # same order and same augmentations
    x2, y2 = first_batch(a, 2)
    xs, ys = first_batch(fashion(cache, augment=modern, seed=1), 1)
    assert not torch.equal(ya, y2) and not torch.equal(xa, x2)
    assert not torch.equal(ya, ys) and not torch.equal(xa, xs)
    assert torch.equal(first_batch(a, 1)[0], xa)  # going back to an epoch gives it again


@needs_debian
def test_augmentations_do_not_depend_on_workers_nor_touch_the_global_rng(cache):
    dm = fashion(cache, augment=augment("modern"))
    state = torch.get_rng_state()
    x0, y0 = first_batch(dm, 3, num_workers=0)
    assert torch.equal(torch.get_rng_state(), state)  # the model's randomness is left alone
    x2, y2 = first_batch(dm, 3, num_workers=2)
    assert torch.equal(x0, x2) and torch.equal(y0, y2)


@needs_debian
def test_training_batches_are_seeded_per_batch_by_their_place_in_training(cache):
    """One seeding per batch (not per image): a batch's augmentations follow from (seed, epoch, rank, number)."""
    dm = fashion(cache, augment=augment("modern"))
    dm.setup()
    key = BatchKey(epoch=2, rank=0, number=5, indices=(3, 1, 4, 1, 5, 9))
    x, y = dm.train_set[key]
    assert x.shape == (6, 3, 32, 32) and x.dtype == torch.float32
    assert torch.equal(y, torch.tensor([dm.train_set.targets[i] for i in key.indices]))
    assert torch.equal(dm.train_set[key][0], x)
    assert not torch.equal(dm.train_set[key._replace(number=6)][0], x)
    assert not torch.equal(dm.train_set[key._replace(epoch=3)][0], x)
    # The same images at another place of the batch are augmented differently: the batch is seeded, not each image.
    assert not torch.equal(dm.train_set[key._replace(indices=(1, 3, 4, 1, 5, 9))][0][1], x[0])


def test_a_batch_is_normalised_then_erased_image_by_image():
    dm = SyntheticData(train_size=16, val_size=4, **common())
    eraser = FashionMNISTData(root=None, download=False, cache_dir="unused",
                              **common(augment=OmegaConf.merge(augment(), {"random_erasing": 1.0})))
    raw = torch.full((8, 1, 16, 16), 128, dtype=torch.uint8)
    lightning.seed_everything(0)
    a = eraser.finish(raw, True)
    lightning.seed_everything(0)
    assert torch.equal(eraser.finish(raw, True), a)  # the random state decides it (the loader seeds it per batch)
    plain = eraser.finish(raw, False)
    assert a.shape == plain.shape == (8, 3, 16, 16)
    assert torch.equal(plain, plain[:1].expand(8, -1, -1, -1))  # evaluation: normalised, never erased
    assert all(not torch.equal(a[i], plain[i]) for i in range(8))  # probability 1: every image has a patch
    assert dm.finish(raw, True) is raw  # synthetic data is made normalised


@needs_debian
def test_zero_bit_posterize_does_not_crash(cache):
    """RandAugment at magnitude 10 makes PosterizeIncreasing keep 0 bits, which Pillow 13 rejects (pinned below)."""
    dm = fashion(cache, augment=OmegaConf.merge(augment("modern"), {"randaugment": "rand-m10-n4-mstd0-inc1"}),
                 batch_size=64)
    x, _ = first_batch(dm, 0)
    assert torch.isfinite(x).all()


class Recorder(lightning.LightningModule):
    """Records the batches it trains on; learns nothing."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(()))
        self.seen: dict[tuple[int, int], tuple[torch.Tensor, torch.Tensor]] = {}

    def training_step(self, batch, index):
        x, y = batch
        self.seen[(self.current_epoch, index)] = (x.clone(), y.clone())
        return self.weight * x.mean()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.0)


def fit(dm, epochs: int, root: Path, ckpt_path: str | None = None) -> Recorder:
    lightning.seed_everything(0, workers=True)  # as the training code does
    module = Recorder()
    trainer = lightning.Trainer(
        max_epochs=epochs, accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
        enable_model_summary=False, limit_val_batches=0, default_root_dir=root,
        callbacks=[ModelCheckpoint(dirpath=root, save_top_k=-1, every_n_epochs=1)],
    )
    trainer.fit(module, datamodule=dm, ckpt_path=ckpt_path)
    return module


@needs_debian
@pytest.mark.parametrize("num_workers", [0, 1])
def test_a_resumed_run_sees_the_batches_of_an_uninterrupted_one(cache, tmp_path, monkeypatch, num_workers):
    monkeypatch.setenv("PL_GLOBAL_SEED", "0")  # restored after the test, as seed_everything sets them
    monkeypatch.setenv("PL_SEED_WORKERS", "1")
    options = dict(augment=augment("modern"), train_subset=48, num_workers=num_workers)
    whole = fit(fashion(cache, **options), 3, tmp_path / "whole").seen
    [after_first] = (tmp_path / "whole").glob("epoch=0-*.ckpt")
    resumed = fit(fashion(cache, **options), 3, tmp_path / "resumed", str(after_first)).seen
    assert sorted(resumed) == [(e, i) for e in (1, 2) for i in range(3)]
    for key, (x, y) in resumed.items():
        assert torch.equal(whole[key][1], y) and torch.equal(whole[key][0], x), key
    assert not torch.equal(whole[(1, 0)][1], whole[(2, 0)][1])


# --- Other data sets --------------------------------------------------------------------------------------


def make_folder(root: Path, splits=("train", "val"), classes=("cat", "dog")) -> None:
    rng = np.random.default_rng(0)
    for split in splits:
        for name in classes:
            (root / split / name).mkdir(parents=True)
            for i in range(3):
                pixels = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(root / split / name / f"{i}.png")


def test_folder_data_skips_corrupt_images_with_a_warning(tmp_path):
    make_folder(tmp_path)
    corrupt = tmp_path / "train" / "cat" / "1.png"
    corrupt.write_bytes(np.random.default_rng(1).bytes(500))
    assert count_classes(tmp_path) == 2
    dm = FolderData(root=str(tmp_path), **common(num_classes=None, batch_size=4, train_subset=None))
    assert dm.num_classes == 2
    dm.setup()
    with pytest.warns(RuntimeWarning, match=str(corrupt)):
        x, y = dm.train_set[BatchKey(0, 0, 0, tuple(range(len(dm.train_set))))]
    assert x.shape == (6, 3, 32, 32) and x.dtype == torch.float32
    assert y.tolist() == [0, 0, 0, 1, 1, 1]  # the next readable image (same class here) stands in
    x, y = first_batch(dm, 0)
    assert x.shape == (4, 3, 32, 32)


def test_folder_data_missing_split_or_different_classes(tmp_path):
    make_folder(tmp_path / "a", splits=("train",))
    with pytest.raises(DataError, match=str(tmp_path / "a" / "val")):
        FolderData(root=str(tmp_path / "a"), **common(num_classes=2, batch_size=2)).setup()
    with pytest.raises(DataError, match=str(tmp_path / "b" / "train")):
        count_classes(tmp_path / "b")
    make_folder(tmp_path / "c", splits=("train",))
    make_folder(tmp_path / "c", splits=("val",), classes=("cat", "cow"))
    with pytest.raises(ValueError, match="only in train: \\['dog'\\], only in val: \\['cow'\\]"):
        FolderData(root=str(tmp_path / "c"), **common(num_classes=2, batch_size=2)).setup()


def test_synthetic_shapes_and_determinism():
    def batch(seed):
        dm = SyntheticData(train_size=40, val_size=8, **common(num_classes=7, in_chans=5, input_size=12, seed=seed))
        return first_batch(dm, 0), next(iter(dm.val_dataloader()))

    (x, y), (vx, vy) = batch(0)
    assert x.shape == (16, 5, 12, 12) and vx.shape == (8, 5, 12, 12)
    assert y.min() >= 0 and y.max() < 7
    (x2, y2), (vx2, _) = batch(0)
    assert torch.equal(x, x2) and torch.equal(y, y2) and torch.equal(vx, vx2)
    assert not torch.equal(batch(1)[1][0], vx)


def test_batch_larger_than_the_training_set():
    dm = SyntheticData(train_size=40, val_size=8, **common(train_subset=12, batch_size=16))
    with pytest.raises(ValueError, match="data.batch_size=16.*12 images"):
        dm.setup()


def test_missing_cifar_names_root_and_download(tmp_path):
    dm = CIFARData(name="cifar10", root=str(tmp_path), download=False, **common())
    with pytest.raises(DataError, match="data.root=.*data.download=true"):
        dm.setup()


# --- Configs ----------------------------------------------------------------------------------------------


def test_every_data_config_has_a_target_and_the_common_keys():
    files = sorted((CONF_DIR / "data").glob("*.yaml"))
    assert {f.stem for f in files} == {"fashion_mnist", "cifar10", "cifar100", "imagenet", "synthetic", "timm"}
    for file in files:
        assert OmegaConf.load(file)._target_.startswith("roadmap.data."), file.name
        composed = compose([f"data={file.stem}"]).data  # conf/train.yaml adds the keys every data set shares
        assert set(composed) >= COMMON_KEYS, (file.name, COMMON_KEYS - set(composed))
    assert OmegaConf.is_missing(OmegaConf.load(CONF_DIR / "data" / "imagenet.yaml"), "root")


def test_composed_synthetic_config_trains():
    cfg = compose(["data=synthetic", "+step=modern_recipe"])
    dm = instantiate(cfg.data)
    assert isinstance(dm, SyntheticData) and dm.num_classes == 10
    x, y = first_batch(dm, 0)
    assert x.shape == (cfg.scale.batch_size, 3, cfg.scale.input_size, cfg.scale.input_size)
