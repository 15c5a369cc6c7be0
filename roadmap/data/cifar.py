"""CIFAR-10 and CIFAR-100 through torchvision, held in memory as uint8 arrays."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from torch.utils.data import Dataset
from torchvision import datasets
from torchvision.datasets.utils import check_integrity

from roadmap.data.datasets import ArrayImages
from roadmap.data.module import ImageData, Stats
from roadmap.errors import DataError, need

CIFAR_SETS = {"cifar10": datasets.CIFAR10, "cifar100": datasets.CIFAR100}  # data.name -> torchvision's class
CIFAR_STATS: dict[str, tuple[Stats, Stats]] = {  # per-channel statistics of the training images
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}


class CIFARData(ImageData):
    """CIFAR-10 or CIFAR-100 (50k/10k 32x32 RGB images) through torchvision, from `root` or downloaded there."""

    in_memory = True  # unpickled once into uint8 arrays: the device pipeline can serve it

    def __init__(
        self, *, name: Literal["cifar10", "cifar100"], root: str, download: bool, **common: Any
    ) -> None:
        super().__init__(**common)
        self.name = name
        self.root = Path(root).expanduser()
        self.download = download
        self.dataset = CIFAR_SETS[name]
        self.rgb_mean, self.rgb_std = CIFAR_STATS[name]

    @classmethod
    def check(cls, config: Mapping[str, Any]) -> None:
        """A known name, and torchvision's folder in `data.root` unless it may be downloaded there."""
        super().check(config)
        need(config["name"] in CIFAR_SETS, "data.name", config["name"], f"one of {list(CIFAR_SETS)}")
        root = Path(config["root"]).expanduser()
        folder = CIFAR_SETS[config["name"]].base_folder
        if not config["download"] and not (root / folder).is_dir():
            raise DataError(f"data.root={root} holds no {folder}/ folder ({config['name']}) and data.download=false. "
                            f"Put torchvision's {folder}/ folder there, or set data.download=true on a machine with "
                            "network.")

    def _damage(self) -> str | None:
        """The first file of the data set that is missing or damaged, checked by MD5 as torchvision checks them."""
        folder = self.root / self.dataset.base_folder
        meta = self.dataset.meta
        for filename, md5 in [*self.dataset.train_list, *self.dataset.test_list, (meta["filename"], meta["md5"])]:
            path = folder / filename
            if not path.is_file():
                return f"{path} is missing"
            if not check_integrity(str(path), md5):
                return f"{path} is damaged: its MD5 is not the published one, so it is truncated or corrupt"
        return None

    def _split(self, train: bool, download: bool) -> Dataset:
        try:
            return self.dataset(str(self.root), train=train, download=download)
        except (RuntimeError, OSError) as error:  # torchvision: "Dataset not found or corrupted"; URLError offline
            folder = self.root / self.dataset.base_folder
            damage = self._damage() if folder.is_dir() else None
            if damage:
                raise DataError(f"{damage}. Replace {folder} with an intact copy, or delete it and set "
                                "data.download=true to fetch it again.") from None
            how = "the download failed" if download else "download is off"
            raise DataError(
                f"{self.name} not found in data.root={self.root} and {how} ({error}). Put torchvision's "
                f"{folder.name}/ folder under data.root, or set data.download=true on a machine with network."
            ) from error

    def prepare_data(self) -> None:
        self._split(True, self.download)
        self._split(False, self.download)

    def load_splits(self) -> tuple[Dataset, Dataset]:
        """Both splits as uint8 arrays in memory (torchvision unpickles them once)."""
        self.source = f"data.root={self.root}"
        splits = (self._split(train, self.download) for train in (True, False))
        return tuple(ArrayImages(split.data, split.targets) for split in splits)
