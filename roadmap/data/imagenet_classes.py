"""ImageNet-1k's classes and counts: the numbers a prepared copy must hold, the subsets by name, and the check of a
prepared copy (roadmap/data/imagenet.py prepares it)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torchvision.datasets.folder import IMG_EXTENSIONS

from roadmap.errors import DataError

NUM_CLASSES = 1000
TRAIN_IMAGES = 1_281_167
VAL_IMAGES = 50_000
VAL_PER_CLASS = 50
SUBSET_DIR = Path(__file__).parent / "subsets"
SUBSETS = ("imagenette", "imagenet100")  # SUBSET_DIR/<name>.txt, each naming its source
PARTIAL = ".partial"  # in OUT, beside train/ and val/ (which ImageFolder would read a hidden class folder from)
WNID = re.compile(r"n\d{8}")


@dataclass(frozen=True)
class Counts:
    """What a prepared set must hold; the defaults are ImageNet-1k's. `train_images=None` leaves the total unchecked
    (a subset: each class is checked against the devkit's count where the devkit was read)."""

    classes: int = NUM_CLASSES
    train_images: int | None = TRAIN_IMAGES
    val_per_class: int = VAL_PER_CLASS


IMAGENET_1K = Counts()


def few(items: Iterable[Any], limit: int = 10) -> str:
    """`a, b, c` or `a, b, ... (12 in all)`: a list for a message."""
    items = [str(item) for item in items]
    shown = ", ".join(items[:limit])
    return shown if len(items) <= limit else f"{shown}, ... ({len(items)} in all)"


def classes_apart(train: Iterable[str], val: Iterable[str], train_where: str = "", val_where: str = "") -> str:
    """`only in train (where): a, b; only in val (where): c`: how two splits' classes differ, for a message."""
    train, val = set(train), set(val)
    train_at, val_at = (f" ({where})" if where else "" for where in (train_where, val_where))
    return f"only in train{train_at}: {few(sorted(train - val))}; only in val{val_at}: {few(sorted(val - train))}"


def is_image(name: str) -> bool:
    return name.lower().endswith(IMG_EXTENSIONS) and not name.startswith(".")


# --- subsets ------------------------------------------------------------------------------------------------------


def subset_wnids(subset: str | os.PathLike) -> list[str]:
    """The wnids of a subset: `imagenette`, `imagenet100` (the lists in roadmap/data/subsets/) or a text file of
    wnids, one a line (`#` starts a comment)."""
    path = SUBSET_DIR / f"{subset}.txt" if str(subset) in SUBSETS else Path(subset).expanduser()
    if not path.is_file():
        raise DataError(f"--subset {subset}: no such list. Name one of {', '.join(SUBSETS)}, or a text file of "
                        "wnids, one a line.")
    wnids: list[str] = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        word = line.split("#", 1)[0].strip()
        if not word:
            continue
        if not WNID.fullmatch(word):
            raise DataError(f"{path}, line {number}: {word!r} is not a wnid (n and 8 digits, e.g. n01440764); "
                            "write one wnid a line.")
        if word in wnids:
            raise DataError(f"{path}, line {number}: {word} is listed twice; list each class once.")
        wnids.append(word)
    if not wnids:
        raise DataError(f"{path} lists no wnid; write one wnid a line.")
    return wnids


def choose(subset: Sequence[str] | None, known: Sequence[str], where: str, list_name: str) -> list[str]:
    """The sorted classes to prepare: `subset` (each of which must be `known`), or every known class."""
    if subset is None:
        return sorted(known)
    unknown = sorted(set(subset) - set(known))
    if unknown:
        raise DataError(f"{list_name} names {len(unknown)} class(es) not {where}: {few(unknown)}. Correct the list "
                        "or remove them from it.")
    return sorted(subset)


# --- the check ------------------------------------------------------------------------------------------------------


def images_in(folder: Path) -> int:
    return sum(1 for entry in os.scandir(folder) if is_image(entry.name) and entry.is_file())


def check_prepared(out: str | os.PathLike, counts: Counts = IMAGENET_1K, classes: Sequence[str] | None = None,
                   train_per_class: Mapping[str, int] | None = None) -> dict[str, int]:
    """Check that OUT holds what `data=imagenet` must read: the same class folders in train/ and val/ (`classes`,
    where given), `counts.classes` of them, `counts.val_per_class` val images in each, at least one training image in
    each (the devkit's count where `train_per_class` gives it) and `counts.train_images` in all. Raises a DataError
    naming each shortfall; returns {"classes", "train", "val"}."""
    out = Path(out).expanduser()
    rerun = "Run the prepare command again to finish it."
    if any(path.is_file() or path.is_symlink() for path in (out / PARTIAL).rglob("*")):
        raise DataError(f"{out / PARTIAL} holds a class left half-written by an interrupted prepare. {rerun}")
    found = {}
    for split in ("train", "val"):
        if not (out / split).is_dir():
            raise DataError(f"{out / split} does not exist. {rerun}")
        found[split] = sorted(entry.name for entry in os.scandir(out / split) if entry.is_dir())
    train, val = found["train"], found["val"]
    problems = []
    if train != val:
        problems.append(f"train and val have different classes: {classes_apart(train, val)}"
                        f"; only in val: {few(sorted(set(val) - set(train)))}")
    if classes is not None:
        missing = sorted(set(classes) - set(train) | set(classes) - set(val))
        extra = sorted(set(train) - set(classes))
        if missing:
            problems.append(f"{len(missing)} of the {len(classes)} classes are missing: {few(missing)}")
        if extra:
            problems.append(f"{len(extra)} classes are not in the list: {few(extra)} (remove them)")
    if len(train) != counts.classes:
        problems.append(f"train has {len(train)} classes, not {counts.classes}")
    val_counts = {wnid: images_in(out / "val" / wnid) for wnid in val}
    train_counts = {wnid: images_in(out / "train" / wnid) for wnid in train}
    wrong_val = [f"{wnid} ({n})" for wnid, n in val_counts.items() if n != counts.val_per_class]
    if wrong_val:
        problems.append(f"{len(wrong_val)} val classes do not hold {counts.val_per_class} images: {few(wrong_val)}")
    expected = {wnid: (train_per_class or {}).get(wnid) for wnid in train}
    wrong_train = [f"{wnid} ({n}{f' of {expected[wnid]}' if expected[wnid] else ''})"
                   for wnid, n in train_counts.items() if n == 0 or (expected[wnid] and n != expected[wnid])]
    if wrong_train:
        problems.append(f"{len(wrong_train)} train classes do not hold their images: {few(wrong_train)}")
    total = sum(train_counts.values())
    if counts.train_images is not None and total != counts.train_images:
        problems.append(f"train holds {total:,} images, not {counts.train_images:,} "
                        f"({counts.train_images - total:+,} to match)")
    if problems:
        raise DataError(f"{out} is not complete: " + "; ".join(problems) + f". {rerun} If it still fails, the source "
                        "is partial: download it again.")
    return {"classes": len(train), "train": total, "val": sum(val_counts.values())}
