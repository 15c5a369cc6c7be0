"""Data modules: Fashion-MNIST (the embedded default), CIFAR-10/100, any ImageFolder (ImageNet) and synthetic tensors.

Every module shares one contract, so that a roadmap step compares to another on exactly the same data:

- transforms are timm's (`create_transform`), driven by the recipe's `augment` block, so both recipes
  augment as the paper's code does;
- `train_subset` / `val_subset` take a fixed, class-balanced sample drawn with a constant seed, so every
  run seed and every step sees the same images;
- the training data is a pure function of (seed, epoch): the sampler's order depends on nothing else,
  and each sample is augmented under random states seeded from (seed, epoch, index). A run resumed from
  a checkpoint therefore sees the same batches as an uninterrupted one, whatever `num_workers` and
  `persistent_workers` are.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import math
import os
import random
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import lightning
import numpy as np
import torch
from PIL import Image
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD, create_transform
from torch.utils.data import DataLoader, Dataset, Sampler, get_worker_info
from torchvision import datasets

log = logging.getLogger(__name__)

SUBSET_SEED = 20220110  # the paper's arXiv date; a constant, so that subsets never depend on the run seed
DEBIAN_FASHION_MNIST = "/usr/share/datasets/fashion-mnist"  # installed by `apt-get install dataset-fashion-mnist`
FASHION_MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
PADDING_LABEL = -1  # the label of validation padding under DDP, which the metrics skip
FOLDER_LAYOUT = "<root>/train/<class>/<image> and <root>/val/<class>/<image> (torchvision ImageFolder layout)"

Stats = tuple[float, ...]


def balanced_subset(labels: Sequence[int] | np.ndarray | torch.Tensor, size: int | None) -> np.ndarray:
    """Sorted indices of a class-balanced sample of `size` items (all of them when `size` is None or too big).

    Classes take turns: every class gives its i-th (shuffled) sample before any gives its (i+1)-th, so the
    counts differ by at most one, and a class with too few samples leaves its share to the others. The draw
    uses SUBSET_SEED, never the run seed: all seeds and all steps train on the same images.
    """
    labels = np.asarray(labels)
    if size is None or size >= len(labels):
        return np.arange(len(labels))
    if size < 1:
        raise ValueError(f"a subset needs at least one image, got {size}")
    rng = np.random.default_rng(SUBSET_SEED)
    classes = rng.permutation(np.unique(labels))
    index = np.concatenate([rng.permutation(np.flatnonzero(labels == c)) for c in classes])
    rank = np.concatenate([np.arange(np.count_nonzero(labels == c)) for c in classes])
    turn = np.concatenate([np.full(np.count_nonzero(labels == c), k) for k, c in enumerate(classes)])
    chosen = index[np.lexsort((turn, rank))[:size]]
    return np.sort(chosen)


@contextmanager
def _seeded(*key: int) -> Iterator[None]:
    """Seed torch's CPU generator, numpy and random (what timm and torchvision draw from) from `key`.

    Only the CPU generator is touched, not CUDA's. In the main process (num_workers=0) the old states
    are put back afterwards, so the model's own randomness (stochastic depth, Mixup) is left as it was;
    a worker process runs nothing else, and skips that (saving numpy's state costs ~0.1 ms).
    """
    words = np.random.SeedSequence(key).generate_state(2)
    seed = int(words[0]) << 32 | int(words[1])
    in_main = get_worker_info() is None
    saved = (torch.get_rng_state(), np.random.get_state(), random.getstate()) if in_main else None
    torch.default_generator.manual_seed(seed)
    np.random.seed(int(words[0]))
    random.seed(seed)
    try:
        yield
    finally:
        if saved is not None:
            torch.set_rng_state(saved[0])
            np.random.set_state(saved[1])
            random.setstate(saved[2])


class EpochSampler(Sampler[tuple[int, int]]):
    """Shuffles by (seed, epoch) alone and hands the epoch to the dataset with each index.

    It yields `(epoch, index)` keys: the dataset seeds each sample's augmentations from them, which
    holds in worker processes too (even persistent ones, whose copy of the dataset never sees
    `set_epoch`). `generator` is re-seeded with seed + epoch and given to the DataLoader, so the worker
    base seeds are a function of (seed, epoch) as well. Lightning calls `set_epoch` every epoch.

    Under DDP each of the `world_size` processes takes every `world_size`-th index of the one shared
    order, starting at its `rank`; the order is first padded by wrapping around, so that every process
    runs the same number of batches (as torch's DistributedSampler does).
    """

    def __init__(self, size: int, seed: int, epoch: int = 0, rank: int = 0, world_size: int = 1) -> None:
        self.size = size
        self.seed = seed
        self.rank, self.world_size = rank, world_size
        self.generator = torch.Generator()
        self.set_epoch(epoch)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.generator.manual_seed(self.seed + epoch)

    def __len__(self) -> int:
        return math.ceil(self.size / self.world_size)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        # Its own stream, not `generator`: the DataLoader draws from that one too, at times that differ
        # between a fresh and a resumed run.
        order = np.random.default_rng([self.seed, self.epoch]).permutation(self.size)
        order = np.resize(order, len(self) * self.world_size)[self.rank::self.world_size]
        return iter([(self.epoch, int(i)) for i in order])


class ValidationShard(Dataset):
    """One process's share of the validation set under DDP: every `world_size`-th image from `rank` on.

    Shares differ by at most one image; the shorter ones are padded with a copy labelled -1, which the
    metrics skip. So every process runs the same number of batches, and each image counts exactly once,
    where torch's DistributedSampler would count its padding twice.
    """

    def __init__(self, dataset: Dataset, rank: int, world_size: int) -> None:
        self.dataset = dataset
        self.indices = list(range(rank, len(dataset), world_size))
        self.length = math.ceil(len(dataset) / world_size)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> tuple[Any, int]:
        if i < len(self.indices):
            return self.dataset[self.indices[i]]
        image, _ = self.dataset[0]
        return image, PADDING_LABEL


class TransformedSubset(Dataset):
    """A subset of a raw dataset (PIL images or tensors, int labels) with its transform applied.

    Indexed by an int (no seeding) or by EpochSampler's `(epoch, index)` key, in which case the random
    transform runs under states seeded from (seed, epoch, index).
    """

    def __init__(
        self, raw: Dataset, indices: np.ndarray, transform: Callable | None, mode: str | None, seed: int
    ) -> None:
        self.raw = raw
        self.indices = indices
        self.transform = transform
        self.mode = mode  # PIL mode images are converted to ("RGB" or "L"); None leaves them as they are
        self.seed = seed
        self.targets = [int(t) for t in np.asarray(_targets(raw))[indices]]

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[Any, int]:
        if isinstance(key, tuple):
            epoch, index = key
            with _seeded(self.seed, epoch, index):
                return self._get(index)
        return self._get(key)

    def _get(self, index: int) -> tuple[Any, int]:
        image, label = self.raw[int(self.indices[index])]
        if self.mode is not None and isinstance(image, Image.Image) and image.mode != self.mode:
            image = image.convert(self.mode)
        if self.transform is not None:
            image = self.transform(image)
        return image, int(label)


def _targets(raw: Dataset) -> Sequence[int] | torch.Tensor:
    targets = getattr(raw, "targets", None)
    if targets is None:
        raise TypeError(f"{type(raw).__name__} has no `targets`: ImageData needs the labels to draw subsets")
    return targets


class ImageData(lightning.LightningDataModule):
    """The common data module: subsets, timm transforms, a (seed, epoch)-determined training order.

    Subclasses implement `load_splits()` (the raw train and val datasets: PIL images or tensors, int
    labels, a `targets` attribute) and set `rgb_mean` / `rgb_std`, the dataset's normalisation.
    """

    rgb_mean: Stats = IMAGENET_DEFAULT_MEAN
    rgb_std: Stats = IMAGENET_DEFAULT_STD

    def __init__(
        self,
        *,
        num_classes: int | None,
        in_chans: int,
        input_size: int,
        batch_size: int,
        num_workers: int,
        pin_memory: bool | None,
        persistent_workers: bool,
        train_subset: int | None,
        val_subset: int | None,
        augment: Mapping[str, Any],
        seed: int,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.in_chans = in_chans
        self.input_size = input_size
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.pin_memory = torch.cuda.is_available() if pin_memory is None else pin_memory
        self.persistent_workers = persistent_workers and num_workers > 0
        self.train_subset = train_subset
        self.val_subset = val_subset
        self.augment = augment
        self.seed = seed
        self.train_set: TransformedSubset | None = None
        self.val_set: TransformedSubset | None = None

    def load_splits(self) -> tuple[Dataset, Dataset]:
        """The raw (untransformed) training and validation datasets."""
        raise NotImplementedError

    @property
    def pil_mode(self) -> str:
        """The PIL mode images are converted to: grayscale sets become RGB for a 3-channel stem."""
        if self.in_chans not in (1, 3):
            raise ValueError(f"data.in_chans={self.in_chans}: image datasets give 1 (grayscale) or 3 (RGB)")
        return "RGB" if self.in_chans == 3 else "L"

    def stats(self) -> tuple[Stats, Stats]:
        """Normalisation mean and std per input channel."""
        if self.pil_mode == "RGB":
            return tuple(self.rgb_mean), tuple(self.rgb_std)
        return (float(np.mean(self.rgb_mean)),), (float(np.mean(self.rgb_std)),)

    def transform(self, train: bool) -> Callable | None:
        """timm's training or evaluation pipeline for the recipe's `augment` block."""
        aug = self.augment
        mean, std = self.stats()
        if not train:
            return create_transform(
                self.input_size, is_training=False, crop_pct=float(aug["eval_resize_ratio"]),
                interpolation=aug["interpolation"], mean=mean, std=std,
            )
        if aug.get("train_crop", "random_resized") != "random_resized":
            raise ValueError(f"recipe.augment.train_crop={aug['train_crop']!r}: only random_resized is implemented")
        return create_transform(
            self.input_size, is_training=True, train_crop_mode="rrc", scale=tuple(aug["train_crop_scale"]),
            hflip=float(aug["hflip"]), color_jitter=None, auto_augment=aug.get("randaugment"),
            interpolation=aug["interpolation"], re_prob=float(aug["random_erasing"]), re_mode="pixel",
            mean=mean, std=std,
        )

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        train_raw, val_raw = self.load_splits()
        classes = getattr(train_raw, "classes", None)
        if classes is not None and self.num_classes is not None and len(classes) != self.num_classes:
            raise ValueError(f"data.num_classes={self.num_classes}, but the dataset has {len(classes)} classes")
        mode = self.pil_mode if self.in_chans in (1, 3) else None
        train_idx = balanced_subset(_targets(train_raw), self.train_subset)
        val_idx = balanced_subset(_targets(val_raw), self.val_subset)
        if len(train_idx) < self.batch_size:
            raise ValueError(
                f"data.batch_size={self.batch_size} is larger than the training set ({len(train_idx)} images, "
                f"data.train_subset={self.train_subset}); training drops incomplete batches, so lower "
                "data.batch_size or use more images"
            )
        self.train_set = TransformedSubset(train_raw, train_idx, self.transform(True), mode, self.seed)
        self.val_set = TransformedSubset(val_raw, val_idx, self.transform(False), mode, self.seed)

    def _current_epoch(self) -> int:
        """The epoch Lightning is about to run: after a resume, the loader is built before `set_epoch` is called
        (and workers prefetch), so the sampler must start at the restored epoch rather than at 0."""
        trainer = self.trainer
        if trainer is None:
            return 0
        return int(trainer.fit_loop.epoch_progress.current.processed)

    def _shard(self) -> tuple[int, int]:
        """(rank, world size) of this process: under DDP each process loads its own share."""
        trainer = self.trainer
        return (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)

    def train_batches(self, world_size: int = 1) -> int:
        """Training batches per epoch in each of `world_size` processes (incomplete batches are dropped)."""
        if self.train_set is None:
            self.setup("fit")
        return math.ceil(len(self.train_set) / world_size) // self.batch_size

    def train_dataloader(self) -> DataLoader:
        if self.train_set is None:
            self.setup("fit")
        rank, world_size = self._shard()
        sampler = EpochSampler(len(self.train_set), self.seed, self._current_epoch(), rank, world_size)
        return DataLoader(
            self.train_set, batch_size=self.batch_size, sampler=sampler, generator=sampler.generator,
            drop_last=True, **self._loader_options(),
        )

    def val_dataloader(self) -> DataLoader:
        if self.val_set is None:
            self.setup("validate")
        rank, world_size = self._shard()
        val_set = self.val_set if world_size == 1 else ValidationShard(self.val_set, rank, world_size)
        return DataLoader(val_set, batch_size=self.batch_size, shuffle=False, **self._loader_options())

    def _loader_options(self) -> dict[str, Any]:
        return {
            "num_workers": self.num_workers,
            "pin_memory": self.pin_memory,
            "persistent_workers": self.persistent_workers,
        }


# --- Fashion-MNIST ---------------------------------------------------------------------------------------


def _idx_files(folder: Path) -> dict[str, Path] | None:
    """The four Fashion-MNIST IDX files in `folder`, each uncompressed or .gz; None if one is missing."""
    found = {}
    for name in FASHION_MNIST_FILES:
        plain, packed = folder / name, folder / f"{name}.gz"
        if plain.is_file():
            found[name] = plain
        elif packed.is_file():
            found[name] = packed
        else:
            return None
    return found


def _unpack(source: Path, target: Path) -> None:
    """Gunzip `source` to `target` atomically: concurrent runs never read a half-written file."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        with gzip.open(source, "rb") as src, os.fdopen(fd, "wb") as dst:
            shutil.copyfileobj(src, dst)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _link(source: Path, target: Path) -> None:
    """Symlink `target` to `source` atomically."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.link")
    tmp.unlink(missing_ok=True)
    os.symlink(source.resolve(), tmp)
    os.replace(tmp, target)


def _torchvision_root(folder: Path, files: dict[str, Path], cache_dir: Path) -> Path:
    """A folder torchvision's FashionMNIST reads (`<it>/FashionMNIST/raw/<name>`), made in the cache if needed.

    Uncompressed files in torchvision's own layout are used in place; otherwise .gz files are unpacked once
    and plain ones linked, under a cache folder keyed by the source folder.
    """
    if folder.name == "raw" and folder.parent.name == "FashionMNIST" and all(p.suffix != ".gz" for p in files.values()):
        return folder.parent.parent
    key = hashlib.sha1(str(folder.resolve()).encode()).hexdigest()[:12]
    root = cache_dir / "fashion_mnist" / key
    for name, source in files.items():
        target = root / "FashionMNIST" / "raw" / name
        if source.suffix == ".gz":
            if not target.is_file() or target.stat().st_mtime < source.stat().st_mtime:
                _unpack(source, target)
        elif not (target.exists() and target.resolve() == source.resolve()):
            _link(source, target)
    return root


class FashionMNISTData(ImageData):
    """Fashion-MNIST: 60k/10k 28x28 grayscale images of 10 clothing classes (RGB when in_chans == 3).

    Looked for in `root` (the four IDX files, .gz or not, or torchvision's FashionMNIST/raw layout), then in
    Debian's DEBIAN_FASHION_MNIST, then in an earlier download in `cache_dir`, then downloaded there by
    torchvision when `download` is true. .gz files are unpacked once into `cache_dir`.
    """

    rgb_mean = (0.2860, 0.2860, 0.2860)
    rgb_std = (0.3530, 0.3530, 0.3530)

    def __init__(self, *, root: str | None, download: bool, cache_dir: str, **common: Any) -> None:
        super().__init__(**common)
        self.root = root
        self.download = download
        self.cache_dir = Path(cache_dir).expanduser()

    def locate(self, download: bool) -> Path:
        """The folder to give torchvision; raises FileNotFoundError naming every way to provide the data."""
        looked = []
        candidates = []
        if self.root is not None:
            root = Path(self.root).expanduser()
            candidates += [root, root / "FashionMNIST" / "raw"]
            looked.append(f"data.root={root}")
        candidates.append(Path(DEBIAN_FASHION_MNIST))
        looked.append(DEBIAN_FASHION_MNIST)
        for folder in candidates:
            files = _idx_files(folder)
            if files is not None:
                return _torchvision_root(folder, files, self.cache_dir)
        if self.root is not None:
            log.warning("data.root=%s holds no Fashion-MNIST IDX files; looking elsewhere", self.root)

        download_root = self.cache_dir / "fashion_mnist" / "download"
        if _idx_files(download_root / "FashionMNIST" / "raw") is not None:
            return download_root
        if download:
            try:
                datasets.FashionMNIST(str(download_root), train=True, download=True)
                return download_root
            except Exception as error:  # torchvision raises RuntimeError or URLError when offline
                looked.append(f"a download into {download_root} (failed: {str(error).strip().splitlines()[0]})")
        else:
            looked.append("no download (data.download=false)")
        raise FileNotFoundError(
            f"Fashion-MNIST not found; tried {'; '.join(looked)}. Provide it in one of three ways: "
            f"(1) data.root=<folder> holding {', '.join(f'{n}[.gz]' for n in FASHION_MNIST_FILES)}; "
            f"(2) on Debian or Ubuntu, apt-get install dataset-fashion-mnist, which fills {DEBIAN_FASHION_MNIST} "
            "(`make install` does this when run as root); "
            "(3) data.download=true on a machine with network access."
        )

    def prepare_data(self) -> None:
        self.locate(self.download)

    def load_splits(self) -> tuple[Dataset, Dataset]:
        root = str(self.locate(self.download))
        return datasets.FashionMNIST(root, train=True), datasets.FashionMNIST(root, train=False)


# --- CIFAR ---------------------------------------------------------------------------------------------

CIFAR_STATS: dict[str, tuple[Stats, Stats]] = {  # per-channel statistics of the training images
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}


class CIFARData(ImageData):
    """CIFAR-10 or CIFAR-100 (50k/10k 32x32 RGB images) through torchvision, from `root` or downloaded there."""

    def __init__(
        self, *, name: Literal["cifar10", "cifar100"], root: str, download: bool, **common: Any
    ) -> None:
        if name not in CIFAR_STATS:
            raise ValueError(f"data.name={name!r}: expected one of {sorted(CIFAR_STATS)}")
        super().__init__(**common)
        self.name = name
        self.root = Path(root).expanduser()
        self.download = download
        self.rgb_mean, self.rgb_std = CIFAR_STATS[name]

    def _split(self, train: bool, download: bool) -> Dataset:
        cls = datasets.CIFAR10 if self.name == "cifar10" else datasets.CIFAR100
        try:
            return cls(str(self.root), train=train, download=download)
        except (RuntimeError, OSError) as error:  # torchvision: "Dataset not found or corrupted"; URLError offline
            how = "the download failed" if download else "download is off"
            raise FileNotFoundError(
                f"{self.name} not found in data.root={self.root} and {how} ({error}). Put torchvision's "
                f"{cls.base_folder}/ folder under data.root, or set data.download=true on a machine with network."
            ) from error

    def prepare_data(self) -> None:
        self._split(True, self.download)
        self._split(False, self.download)

    def load_splits(self) -> tuple[Dataset, Dataset]:
        return self._split(True, self.download), self._split(False, self.download)


# --- Image folders (ImageNet and the like) ----------------------------------------------------------------


def _class_folders(split: Path) -> list[str]:
    """The class folders of one split, sorted, as ImageFolder lists them; no image is read."""
    if not split.is_dir():
        raise FileNotFoundError(f"{split} does not exist; expected {FOLDER_LAYOUT}")
    classes = sorted(entry.name for entry in os.scandir(split) if entry.is_dir())
    if not classes:
        raise FileNotFoundError(f"{split} has no class folders; expected {FOLDER_LAYOUT}")
    return classes


def count_classes(root: str | os.PathLike) -> int:
    """The number of class folders in `<root>/train`, for `data.num_classes: null`."""
    return len(_class_folders(Path(root).expanduser() / "train"))


class SkippingImageFolder(datasets.ImageFolder):
    """ImageFolder that replaces an unreadable image by the next readable one (index + 1, wrapping).

    Batches stay full, and a warning names each bad file once per process, so a few corrupt files in a
    large folder dataset cost a few samples rather than the run.
    """

    def __init__(self, root: str | os.PathLike) -> None:
        super().__init__(str(root))
        self.reported: set[str] = set()

    def __getitem__(self, index: int) -> tuple[Any, int]:
        for offset in range(len(self.samples)):
            i = (index + offset) % len(self.samples)
            try:
                return super().__getitem__(i)
            except (OSError, ValueError, SyntaxError) as error:  # what PIL raises on unreadable or truncated files
                path = self.samples[i][0]
                if path not in self.reported:
                    self.reported.add(path)
                    warnings.warn(f"skipping unreadable image {path}: {error}", RuntimeWarning, stacklevel=2)
        raise RuntimeError(f"no readable image in {self.root}")


class FolderData(ImageData):
    """Any dataset in ImageFolder layout: ImageNet, Imagenette, ImageNet-100, ...

    `<root>/train/<class>/*` and `<root>/val/<class>/*`, with the same class folders in both. With
    `num_classes=None` the classes are counted from `<root>/train`. Unreadable images are skipped with a
    warning (see SkippingImageFolder). Normalised with ImageNet's statistics.
    """

    def __init__(self, *, root: str, **common: Any) -> None:
        super().__init__(**common)
        self.root = Path(root).expanduser()
        if self.num_classes is None:
            self.num_classes = count_classes(self.root)

    def load_splits(self) -> tuple[Dataset, Dataset]:
        train_classes = _class_folders(self.root / "train")
        val_classes = _class_folders(self.root / "val")
        if train_classes != val_classes:
            raise ValueError(
                f"{self.root / 'train'} and {self.root / 'val'} have different class folders: "
                f"only in train: {sorted(set(train_classes) - set(val_classes))}, "
                f"only in val: {sorted(set(val_classes) - set(train_classes))}"
            )
        return SkippingImageFolder(self.root / "train"), SkippingImageFolder(self.root / "val")


# --- Synthetic -----------------------------------------------------------------------------------------


class SyntheticImages(Dataset):
    """Standard-normal tensors of any shape with uniform random labels, each made from (seed, split, index)."""

    def __init__(self, size: int, shape: tuple[int, ...], num_classes: int, seed: int, split: int) -> None:
        self.size = size
        self.shape = shape
        self.key = (seed, split)
        labels = torch.Generator().manual_seed(int(np.random.SeedSequence(self.key).generate_state(1)[0]))
        self.targets = torch.randint(num_classes, (size,), generator=labels).tolist()

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        seed = int(np.random.SeedSequence((*self.key, index)).generate_state(1)[0])
        image = torch.randn(self.shape, generator=torch.Generator().manual_seed(seed))
        return image, self.targets[index]


class SyntheticData(ImageData):
    """Random tensors, already normalised, without augmentation: tests and timing runs need no data set."""

    def __init__(self, *, train_size: int, val_size: int, **common: Any) -> None:
        super().__init__(**common)
        if self.num_classes is None:
            raise ValueError("data.num_classes must be set for synthetic data")
        self.train_size = train_size
        self.val_size = val_size

    def transform(self, train: bool) -> Callable | None:
        return None

    def load_splits(self) -> tuple[Dataset, Dataset]:
        shape = (self.in_chans, self.input_size, self.input_size)
        return (
            SyntheticImages(self.train_size, shape, self.num_classes, self.seed, split=0),
            SyntheticImages(self.val_size, shape, self.num_classes, self.seed, split=1),
        )
