"""Data sets read where they lie by timm's readers (`timm.data.create_dataset`): nothing copied, nothing prepared.

`data=timm data.root=ROOT` reads each split from `ROOT/<split>` (`data.train_split`, `data.val_split`): a folder of
class folders, a `.tar` of class folders, or a `.tar` of per-class `.tar`s (ILSVRC2012_img_train.tar as downloaded),
or `ROOT/<split>.tar`. timm reads a tar in place, scanning it once (and, above 10 GB, keeping the scan beside it).
The labels follow the sorted class names, as ImageFolder's do (ImageNet's: the sorted wnids), the same in both splits.

`data.name=hfds/<name>` reads a Hugging Face dataset (the `datasets` package; `data.root` is its cache folder); its
labels stay the dataset's own. WebDataset shards (`wds/`) and the other streaming readers are refused: they serve
images in shard order, and the data module draws its fixed (seed, epoch) order and class-balanced subsets by index.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from timm.data import create_dataset
from torch.utils.data import Dataset

from roadmap.data.module import ImageData
from roadmap.errors import ConfigError, DataError

PACKAGES = {"hfds": "datasets"}  # reader prefix -> the package it needs (pip install <package>)
STREAMING = ("wds", "hfids", "tfds")  # timm's iterable readers, which have no random access


def _prefix(name: str) -> str:
    prefix, sep, _ = name.partition("/")
    return prefix.lower() if sep else ""


def check_reader(name: str) -> None:
    """A reader this module can use, with its package installed; else a ConfigError naming the fix."""
    prefix = _prefix(name)
    if prefix in STREAMING:
        raise ConfigError(
            f"data.name={name!r}: timm's {prefix}/ reader streams images in shard order, and the data module needs "
            "random access (its training order is fixed by seed and epoch, its subsets drawn by index). Unpack the "
            "shards into class folders, or a tar of class folders, and read that with data.root.")
    if prefix and prefix not in PACKAGES:
        raise ConfigError(f"data.name={name!r}: data=timm reads class folders or tars (data.name: '') and "
                          f"{', '.join(f'{p}/<name>' for p in PACKAGES)}; use one of those.")
    package = PACKAGES.get(prefix)
    if package and importlib.util.find_spec(package) is None:
        raise ConfigError(f"data.name={name!r} needs the `{package}` package, which is not installed: "
                          f"pip install {package}")


def split_path(root: str | os.PathLike, split: str) -> Path:
    """`ROOT/<split>` (a folder or a tar), or `ROOT/<split>.tar`."""
    root = Path(root).expanduser()
    for path in (root / split, root / f"{split}.tar"):
        if path.is_dir() or (path.is_file() and path.suffix == ".tar"):
            return path
    raise DataError(f"neither {root / split} (a folder of class folders or a .tar) nor {root / split}.tar exists; "
                    "set data.root to the folder that holds the splits, or name them with data.train_split and "
                    "data.val_split.")


def _reader_targets(reader: Any) -> list[int]:
    if hasattr(reader, "targets"):  # timm's tar reader
        return [int(t) for t in reader.targets]
    if hasattr(reader, "samples"):  # its folder reader: (path, target)
        return [int(t) for _, t in reader.samples]
    return [int(t) for t in reader.iter_targets()]  # Hugging Face datasets, without decoding an image


def _reader_names(reader: Any) -> dict[int, str]:
    """Source label -> class name."""
    mapping = getattr(reader, "class_to_idx", None) or getattr(reader, "class_name_to_idx", None) or {}
    return {int(index): str(name) for name, index in mapping.items()}


class TimmImages(Dataset):
    """A timm ImageDataset as the data module reads it: (PIL image, int label), with `targets` and `classes`; the
    labels renumbered to the positions of their class names in `classes`."""

    def __init__(self, dataset: Dataset, classes: Sequence[str], names: Mapping[int, str], where: str) -> None:
        self.dataset, self.classes = dataset, list(classes)
        position = {name: i for i, name in enumerate(self.classes)}
        unknown = sorted(set(names.values()) - set(position))
        if unknown:
            raise DataError(f"{where} has classes the training split has not: {', '.join(unknown[:10])}; train and "
                            "val must have the same classes.")
        self.relabel = {source: position[name] for source, name in names.items()}
        self.targets = [self.relabel[t] for t in _reader_targets(dataset.reader)]

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        image, target = self.dataset[index]
        return image, self.relabel[int(target)]


class TimmData(ImageData):
    """Any data set timm's `create_dataset` reads by index: class folders, tars, Hugging Face datasets (see the
    module's docstring). With `num_classes=None` the classes of the training split are counted."""

    def __init__(self, *, root: str | None, name: str = "", train_split: str = "train", val_split: str = "val",
                 **common: Any) -> None:
        super().__init__(**common)
        self.root = None if root is None else str(Path(root).expanduser())
        self.name, self.train_split, self.val_split = name, train_split, val_split
        self._loaded: tuple[TimmImages, TimmImages] | None = None
        if self.num_classes is None:
            self.num_classes = len(self.load_splits()[0].classes)

    @classmethod
    def check(cls, config: Mapping[str, Any]) -> None:
        """The reader is usable (its package installed), and a folder or tar split exists."""
        name = config.get("name") or ""
        check_reader(name)
        if not _prefix(name):
            if config.get("root") is None:
                raise ConfigError("data.root=None is invalid: data=timm reads folders and tars under data.root; set "
                                  "data.root=/path/to/data")
            for split in (config["train_split"], config["val_split"]):
                split_path(config["root"], split)
        # num_classes: null is allowed: the training split's classes are counted
        super().check({**config, "num_classes": config["num_classes"] or 0})

    def _dataset(self, split: str) -> Dataset:
        if _prefix(self.name):
            return create_dataset(self.name, root=self.root, split=split)
        return create_dataset("", root=str(split_path(self.root, split)), split=split, search_split=False)

    def load_splits(self) -> tuple[Dataset, Dataset]:
        if self._loaded is None:
            check_reader(self.name)
            train = self._dataset(self.train_split)
            names = _reader_names(train.reader)
            # A Hugging Face dataset keeps its own label order (ImageNet on the Hub: the synset order); folders and
            # tars take the sorted names, as ImageFolder (timm would sort the numbers within names by value).
            classes = [names[index] for index in sorted(names)] if _prefix(self.name) else sorted(names.values())
            val = self._dataset(self.val_split)
            where = f"{self.name or self.root} ({self.val_split})"
            val_set = TimmImages(val, classes, _reader_names(val.reader), where)
            missing = sorted(set(classes) - {classes[t] for t in set(val_set.targets)})
            if missing:
                more = " ..." if len(missing) > 10 else ""
                raise DataError(f"{where} has no image of {', '.join(missing[:10])}{more}; train and val must have "
                                "the same classes.")
            self._loaded = TimmImages(train, classes, names, f"{self.name or self.root} ({self.train_split})"), val_set
        self.source = f"data.name={self.name!r} data.root={self.root}"
        return self._loaded
