"""CIFAR-10 and CIFAR-100 through torchvision, held in memory as uint8 arrays."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from torch.utils.data import Dataset
from torchvision import datasets

from roadmap.data.datasets import ArrayImages
from roadmap.data.module import ImageData, Stats

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
        """Both splits as uint8 arrays in memory (torchvision unpickles them once)."""
        splits = (self._split(train, self.download) for train in (True, False))
        return tuple(ArrayImages(split.data, split.targets) for split in splits)
