"""Fashion-MNIST, the embedded default: found locally (a folder, Debian's package) or downloaded, decoded once."""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset
from torchvision import datasets

from roadmap.data.datasets import ArrayImages
from roadmap.data.module import ImageData

log = logging.getLogger(__name__)

DEBIAN_FASHION_MNIST = "/usr/share/datasets/fashion-mnist"  # installed by `apt-get install dataset-fashion-mnist`
FASHION_MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


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
        """Both splits as uint8 arrays in memory: torchvision decodes the IDX files once."""
        root = str(self.locate(self.download))
        splits = (datasets.FashionMNIST(root, train=train) for train in (True, False))
        return tuple(ArrayImages(split.data.numpy(), split.targets) for split in splits)
