"""Any data set in ImageFolder layout (ImageNet, Imagenette, ...): decoded per image, in the loader's workers."""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset
from torchvision import datasets
from torchvision.datasets.folder import IMG_EXTENSIONS, has_file_allowed_extension

from roadmap.data.module import ImageData
from roadmap.errors import DataError

FOLDER_LAYOUT = "<root>/train/<class>/<image> and <root>/val/<class>/<image> (torchvision ImageFolder layout)"


def _class_folders(split: Path) -> list[str]:
    """The class folders of one split, sorted, as ImageFolder lists them; no image is read."""
    if not split.is_dir():
        raise DataError(f"{split} does not exist; data.root must hold {FOLDER_LAYOUT}")
    classes = sorted(entry.name for entry in os.scandir(split) if entry.is_dir())
    if not classes:
        raise DataError(f"{split} has no class folders; data.root must hold {FOLDER_LAYOUT}")
    return classes


def count_classes(root: str | os.PathLike) -> int:
    """The number of class folders in `<root>/train`, for `data.num_classes: null`."""
    return len(_class_folders(Path(root).expanduser() / "train"))


def _has_images(folder: Path) -> bool:
    """Whether ImageFolder finds an image in `folder` (any file below it with an image extension)."""
    return any(has_file_allowed_extension(path.name, IMG_EXTENSIONS) and path.is_file() for path in folder.rglob("*"))


class SkippingImageFolder(datasets.ImageFolder):
    """ImageFolder that replaces an unreadable image by the next readable one (index + 1, wrapping).

    Batches stay full, and a warning names each bad file once per process, so a few corrupt files in a
    large folder dataset cost a few samples rather than the run.
    """

    def __init__(self, root: str | os.PathLike) -> None:
        try:
            super().__init__(str(root))
        except FileNotFoundError as error:  # torchvision: "Found no valid file for the classes ..."
            empty = [str(path) for path in sorted(Path(root).iterdir()) if path.is_dir() and not _has_images(path)]
            raise DataError(f"{', '.join(empty) or root} holds no image ({', '.join(IMG_EXTENSIONS)}): every class "
                            "folder needs at least one. Add its images, or remove the folder from both splits."
                            ) from error
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

    @classmethod
    def check(cls, config: Mapping[str, Any]) -> None:
        """`data.root` holds both splits' class folders (their images are read by the loader); `data.num_classes:
        null` is their count."""
        root = Path(config["root"]).expanduser()
        classes = _class_folders(root / "train")
        _class_folders(root / "val")
        super().check({**config, "num_classes": len(classes)})  # null is allowed: the folders are counted

    def load_splits(self) -> tuple[Dataset, Dataset]:
        self.source = f"data.root={self.root}"
        train_classes = _class_folders(self.root / "train")
        val_classes = _class_folders(self.root / "val")
        if train_classes != val_classes:
            raise ValueError(
                f"{self.root / 'train'} and {self.root / 'val'} have different class folders: "
                f"only in train: {sorted(set(train_classes) - set(val_classes))}, "
                f"only in val: {sorted(set(val_classes) - set(train_classes))}"
            )
        return SkippingImageFolder(self.root / "train"), SkippingImageFolder(self.root / "val")
