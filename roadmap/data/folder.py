"""Any data set in ImageFolder layout (ImageNet, Imagenette, ...): decoded per image, in the loader's workers."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset
from torchvision import datasets

from roadmap.data.module import ImageData

FOLDER_LAYOUT = "<root>/train/<class>/<image> and <root>/val/<class>/<image> (torchvision ImageFolder layout)"


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
