"""Fashion-MNIST, the embedded default: found locally (a folder, Debian's package) or downloaded, decoded once."""

from __future__ import annotations

import gzip
import hashlib
import math
import os
import shutil
import struct
import tempfile
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset
from torchvision import datasets

from roadmap.data.datasets import ArrayImages
from roadmap.data.module import ImageData
from roadmap.errors import DataError

DEBIAN_FASHION_MNIST = "/usr/share/datasets/fashion-mnist"  # installed by `apt-get install dataset-fashion-mnist`
FASHION_MNIST_FILES = {  # each IDX file and the dimensions its header must give
    "train-images-idx3-ubyte": (60000, 28, 28),
    "train-labels-idx1-ubyte": (60000,),
    "t10k-images-idx3-ubyte": (10000, 28, 28),
    "t10k-labels-idx1-ubyte": (10000,),
}
CLASSES = 10
EXPECTED = f"Fashion-MNIST's four IDX files ({', '.join(f'{name}[.gz]' for name in FASHION_MNIST_FILES)})"


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
    except (EOFError, gzip.BadGzipFile, zlib.error) as error:
        Path(tmp).unlink(missing_ok=True)
        raise DataError(f"{source} is damaged: it cannot be unpacked ({error}), so the file is truncated or corrupt. "
                        "Replace it with an intact copy.") from None
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


def _given_root(root: Path) -> tuple[Path, dict[str, Path]]:
    """The folder of `data.root` that holds the IDX files (the root itself, or torchvision's FashionMNIST/raw/ in
    it) and the files; a DataError says what is missing. A root that was given is never passed over."""
    for folder in (root, root / "FashionMNIST" / "raw"):
        files = _idx_files(folder)
        if files is not None:
            return folder, files
    if not root.is_dir():
        problem = "does not exist" if not root.exists() else "is not a folder"
    else:
        missing = [name for name in FASHION_MNIST_FILES if not any(root.glob(f"{name}*"))]
        problem = f"lacks {', '.join(missing)}" if missing else "holds no complete set of them"
    raise DataError(
        f"data.root={root} {problem}: it must hold {EXPECTED}, or torchvision's FashionMNIST/raw/ folder with them. "
        "Point data.root at such a folder, or leave it out (data.root=null) to use Debian's copy or a download.")


def _check_idx(path: Path, dims: tuple[int, ...], shown: Path, fix: str) -> None:
    """Fail unless `path` is a whole IDX file of unsigned bytes with dimensions `dims` (and, for labels, classes
    0-9), naming `shown` (the file the user has: `path` or the .gz it was unpacked from). Without this, a
    truncated file fails deep in torchvision with a shape error."""
    header = 4 + 4 * len(dims)
    with path.open("rb") as f:
        head = f.read(header)
    if len(head) < header or head[:4] != bytes([0, 0, 0x08, len(dims)]):
        problem = f"it does not start as an IDX file of unsigned bytes with {len(dims)} dimensions"
    elif (found := struct.unpack(f">{len(dims)}I", head[4:])) != dims:
        problem = f"its header gives dimensions {found}, where Fashion-MNIST's are {dims}"
    elif (size := path.stat().st_size) != header + math.prod(dims):
        problem = f"it holds {size} bytes where its header needs {header + math.prod(dims)}: it is truncated"
    elif len(dims) == 1 and max(path.read_bytes()[header:]) >= CLASSES:
        problem = f"it holds labels outside 0-{CLASSES - 1}"
    else:
        return
    raise DataError(f"{shown} is damaged: {problem}. {fix}")


class FashionMNISTData(ImageData):
    """Fashion-MNIST: 60k/10k 28x28 grayscale images of 10 clothing classes (RGB when in_chans == 3).

    Read from `root` when one is given (the four IDX files, .gz or not, or torchvision's FashionMNIST/raw layout),
    and from nowhere else; with no root, from Debian's DEBIAN_FASHION_MNIST, then from an earlier download in
    `cache_dir`, then downloaded there by torchvision when `download` is true. .gz files are unpacked once into
    `cache_dir`. Every IDX file is checked whole before torchvision reads it; `source` says where the files were.
    """

    rgb_mean = (0.2860, 0.2860, 0.2860)
    rgb_std = (0.3530, 0.3530, 0.3530)
    in_memory = True  # decoded once into uint8 arrays: the device pipeline can serve it

    def __init__(self, *, root: str | None, download: bool, cache_dir: str, **common: Any) -> None:
        super().__init__(**common)
        self.root = root
        self.download = download
        self.cache_dir = Path(cache_dir).expanduser()

    @classmethod
    def check(cls, config: Mapping[str, Any]) -> None:
        """A `data.root` that was given must hold the data set: there is no fallback from it."""
        super().check(config)
        if config["root"] is not None:
            _given_root(Path(config["root"]).expanduser())

    def locate(self, download: bool) -> tuple[Path, str]:
        """The folder to give torchvision, its IDX files checked whole, and where they come from (for the record).
        Raises a DataError naming the folder or file that is missing or damaged, and every way to provide it."""
        if self.root is not None:
            folder, files = _given_root(Path(self.root).expanduser())
            return self._checked(folder, files, "Replace it with an intact copy."), f"data.root={folder}"
        files = _idx_files(Path(DEBIAN_FASHION_MNIST))
        if files is not None:
            fix = "Reinstall it (apt-get install --reinstall dataset-fashion-mnist), or give data.root=<folder>."
            return self._checked(Path(DEBIAN_FASHION_MNIST), files, fix), f"Debian's copy in {DEBIAN_FASHION_MNIST}"
        looked = [DEBIAN_FASHION_MNIST]
        download_root = self.cache_dir / "fashion_mnist" / "download"
        raw = download_root / "FashionMNIST" / "raw"
        if _idx_files(raw) is None:
            if not download:
                looked.append("no download (data.download=false)")
            else:
                try:
                    datasets.FashionMNIST(str(download_root), train=True, download=True)
                except Exception as error:  # torchvision raises RuntimeError or URLError when offline
                    looked.append(f"a download into {download_root} (failed: {str(error).strip().splitlines()[0]})")
        files = _idx_files(raw)
        if files is not None:
            return self._checked(raw, files, f"Delete {download_root} to download it afresh."), f"a download in {raw}"
        raise DataError(
            f"Fashion-MNIST not found; tried {'; '.join(looked)}. Provide it in one of three ways: "
            f"(1) data.root=<folder> holding {EXPECTED}; "
            f"(2) on Debian or Ubuntu, apt-get install dataset-fashion-mnist, which fills {DEBIAN_FASHION_MNIST} "
            "(`make install` does this when run as root); "
            "(3) data.download=true on a machine with network access."
        )

    def _checked(self, folder: Path, files: dict[str, Path], fix: str) -> Path:
        """The folder torchvision reads for `files`, each checked whole (`fix` says how to replace a damaged one)."""
        root = _torchvision_root(folder, files, self.cache_dir)
        for name, dims in FASHION_MNIST_FILES.items():
            _check_idx(root / "FashionMNIST" / "raw" / name, dims, files[name], fix)
        return root

    def prepare_data(self) -> None:
        self.locate(self.download)

    def load_splits(self) -> tuple[Dataset, Dataset]:
        """Both splits as uint8 arrays in memory: torchvision decodes the IDX files once."""
        root, self.source = self.locate(self.download)
        splits = (datasets.FashionMNIST(str(root), train=train) for train in (True, False))
        return tuple(ArrayImages(split.data.numpy(), split.targets) for split in splits)
