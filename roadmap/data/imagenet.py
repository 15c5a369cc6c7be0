"""ImageNet-1k as users hold it, turned into the class folders `data=imagenet` reads, and checked.

    python scripts/prepare_imagenet.py --from archives SOURCE OUT [--subset imagenette|imagenet100|LIST.txt]
    python scripts/prepare_imagenet.py --from kaggle SOURCE OUT [--subset ...]
    python scripts/prepare_imagenet.py --check OUT [--subset ...]

OUT receives `train/<wnid>/*.JPEG` and `val/<wnid>/*.JPEG`, which `data=imagenet data.root=OUT` reads. Two forms:

- `archives`: the official ILSVRC2012 files in SOURCE (`ILSVRC2012_img_train.tar`, `ILSVRC2012_img_val.tar`,
  `ILSVRC2012_devkit_t12.tar.gz`). The images are copied out of the tars.
- `kaggle`: Kaggle's "ImageNet Object Localization Challenge" unpacked in SOURCE (`ILSVRC/Data/CLS-LOC/train/<wnid>/`,
  flat `ILSVRC/Data/CLS-LOC/val/`, `LOC_val_solution.csv`, `LOC_synset_mapping.txt`). No image is copied:
  `OUT/train/<wnid>` is a symbolic link to Kaggle's class folder and `OUT/val/<wnid>/<file>` one to each val image.

Class order and labels are torchvision's (`torchvision.datasets.ImageNet`, `ImageFolder`): the sorted wnids; the val
labels are read by torchvision's own `parse_devkit_archive`.

Everything that can be wrong with the input is checked before anything is written: each archive's md5 (as
torchvision's ARCHIVE_META gives it), the archives' tar structure, the labels of every val image, a subset's wnids,
the same classes in train and val. Then each class is written into `OUT/.partial/<split>/<wnid>` and renamed to
`OUT/<split>/<wnid>` when whole, so a run killed at any moment leaves only whole classes, and the same command run
again finishes the job (a half-written class is written again from its start). Last, the counts are checked against
ImageNet-1k's (or a subset's list), each shortfall named.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import shutil
import sys
import tarfile
import tempfile
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import scipy.io
from torchvision.datasets import imagenet as tv_imagenet
from torchvision.datasets.utils import calculate_md5

from roadmap.data.imagenet_classes import (
    IMAGENET_1K,
    PARTIAL,
    SUBSETS,
    VAL_PER_CLASS,
    WNID,
    Counts,
    check_prepared,
    choose,
    classes_apart,
    few,
    is_image,
    subset_wnids,
)
from roadmap.errors import DataError

# --- ImageNet-1k (ILSVRC2012), its forms, its subsets: the constants ---------------------------------------------

DOWNLOAD_PAGE = "https://image-net.org/challenges/LSVRC/2012/2012-downloads.php"
DEVKIT_DIR = "ILSVRC2012_devkit_t12"  # the devkit's top folder, as torchvision's parse_devkit_archive expects it
DEVKIT_META = f"{DEVKIT_DIR}/data/meta.mat"
DEVKIT_VAL_LABELS = f"{DEVKIT_DIR}/data/ILSVRC2012_validation_ground_truth.txt"
HASH_ORDER = ("devkit", "val", "train")  # smallest first: a bad small archive is reported before 138 GB are hashed
KAGGLE_TRAIN = "ILSVRC/Data/CLS-LOC/train"
KAGGLE_VAL = "ILSVRC/Data/CLS-LOC/val"
KAGGLE_VAL_LABELS = "LOC_val_solution.csv"
KAGGLE_SYNSETS = "LOC_synset_mapping.txt"
KAGGLE_FIX = ("SOURCE must be the folder Kaggle's download unpacks to (`kaggle competitions download -c "
              "imagenet-object-localization-challenge`), holding ILSVRC/ and the LOC_*.csv/txt files")
STATE_FILE = ".prepare-imagenet.json"  # in OUT: the verified archives and what OUT must hold
FORMS = ("archives", "kaggle")


# --- state: the archives already verified, what OUT must hold ------------------------------------------------------


def _read_state(out: Path) -> dict[str, Any]:
    try:
        return json.loads((out / STATE_FILE).read_text())
    except (OSError, ValueError):
        return {}


def _write_state(out: Path, state: Mapping[str, Any]) -> None:
    """Whole or not at all: written to a temporary name and renamed."""
    out.mkdir(parents=True, exist_ok=True)
    part = out / f"{STATE_FILE}.part"
    part.write_text(json.dumps(state, indent=1, sort_keys=True) + "\n")
    os.replace(part, out / STATE_FILE)


# --- writing one class, whole or not at all -------------------------------------------------------------------------


def _write_class(out: Path, split: str, wnid: str, fill: Callable[[Path], None]) -> bool:
    """Write `OUT/<split>/<wnid>` through `OUT/.partial/<split>/<wnid>`, which `fill` fills, renamed when whole.
    False where the class is there already (from an earlier run)."""
    final = out / split / wnid
    if os.path.lexists(final):
        return False
    temp = out / PARTIAL / split / wnid
    if temp.is_dir() and not temp.is_symlink():  # a killed run's half-written class: write it again from its start
        shutil.rmtree(temp)
    elif os.path.lexists(temp):
        temp.unlink()
    temp.parent.mkdir(parents=True, exist_ok=True)
    fill(temp)
    final.parent.mkdir(parents=True, exist_ok=True)
    os.replace(temp, final)
    return True


def _finish(out: Path) -> None:
    shutil.rmtree(out / PARTIAL, ignore_errors=True)


def _copy_member(tar: tarfile.TarFile, member: tarfile.TarInfo, folder: Path) -> None:
    """One image of a tar, written flat into `folder` under its base name."""
    source = tar.extractfile(member)
    if source is None:
        raise DataError(f"{member.name} in {tar.name} is not a file; the archive is damaged: download it again.")
    with source, open(folder / os.path.basename(member.name), "wb") as target:
        shutil.copyfileobj(source, target, 1 << 20)


# --- the official archives ------------------------------------------------------------------------------------------


@dataclass
class Devkit:
    """What the devkit says: the 1,000 classes (sorted), each val image's class (in the val files' sorted order), the
    training images of each class."""

    wnids: list[str]
    val_wnids: list[str]
    train_counts: dict[str, int]


def _archive(source: Path, key: str) -> tuple[Path, str]:
    """The path of one official archive and its md5, from torchvision's ARCHIVE_META."""
    name, md5 = tv_imagenet.ARCHIVE_META[key]
    path = source / name
    if not path.is_file():
        raise DataError(f"{path} is missing: download {name} from {DOWNLOAD_PAGE} into {source}, or point SOURCE at "
                        "the folder that holds the three ILSVRC2012 archives.")
    return path, md5


def verify_archives(source: Path, verified: Mapping[str, Any], log: Callable[[str], None] = print) -> dict[str, Any]:
    """Check each archive's md5 against torchvision's ARCHIVE_META, except an archive `verified` records with the
    same size and modification time (so a rerun does not hash 138 GB again); returns the records to keep."""
    records = {}
    for key in HASH_ORDER:
        path, md5 = _archive(source, key)
        stat = path.stat()
        record = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "md5": md5}
        name = str(path.resolve())
        if verified.get(name) != record:
            log(f"checking the md5 of {path} ({stat.st_size / 1e9:.1f} GB)")
            actual = calculate_md5(path)
            if actual != md5:
                raise DataError(f"{path} has md5 {actual}, not {md5} (torchvision's ARCHIVE_META): the file is "
                                f"partial or damaged. Download it again from {DOWNLOAD_PAGE} and rerun.")
        records[name] = record
    return records


def _damaged(path: Path, error: BaseException) -> DataError:
    return DataError(f"{path} cannot be read as a tar archive ({error}): it is partial or damaged. Download it again "
                     f"from {DOWNLOAD_PAGE} and rerun.")


def _members(tar: tarfile.TarFile, path: Path) -> list[tarfile.TarInfo]:
    """The files of a tar, read through to its end: a truncated archive fails here, before anything is written."""
    try:
        return [member for member in tar.getmembers() if member.isfile()]
    except (tarfile.TarError, EOFError, OSError) as error:
        raise _damaged(path, error) from error


def read_devkit(path: Path) -> Devkit:
    """The classes and val labels as torchvision reads them (`parse_devkit_archive`, `load_meta_file`), and the
    devkit's training-image count of each class (meta.mat's `num_train_images`)."""
    try:
        with tarfile.open(path) as tar:
            names = set(tar.getnames())
            missing = [name for name in (DEVKIT_META, DEVKIT_VAL_LABELS) if name not in names]
            if missing:
                raise DataError(f"{path} holds no {' and no '.join(missing)}: without them the val images have no "
                                f"labels. Download {path.name} again from {DOWNLOAD_PAGE}.")
            meta = scipy.io.loadmat(io.BytesIO(tar.extractfile(DEVKIT_META).read()), squeeze_me=True)["synsets"]
    except (tarfile.TarError, EOFError, OSError) as error:
        raise _damaged(path, error) from error
    train_counts = {str(s["WNID"]): int(s["num_train_images"]) for s in meta if int(s["num_children"]) == 0}
    with tempfile.TemporaryDirectory() as folder:  # torchvision's parser reads and writes in the archive's folder
        os.symlink(path.resolve(), Path(folder) / path.name)
        tv_imagenet.parse_devkit_archive(folder, path.name)
        wnid_to_classes, val_wnids = tv_imagenet.load_meta_file(folder)
    return Devkit(sorted(wnid_to_classes), list(val_wnids), train_counts)


def prepare_archives(source: str | os.PathLike, out: str | os.PathLike, subset: Sequence[str] | None = None,
                     counts: Counts = IMAGENET_1K, log: Callable[[str], None] = print) -> dict[str, int]:
    """OUT's class folders from the three official archives in SOURCE (the classes of `subset` only, if given);
    returns the checked counts.

    torchvision's `parse_train_archive` extracts the 138 GB outer tar, then each inner `<wnid>.tar`: twice the disk,
    and an interrupted run starts again. Here the outer tar's inner tars are streamed one class at a time into
    `OUT/.partial/train/<wnid>`, renamed when whole; the val images likewise, class by class. A class already in
    OUT is not written again.
    """
    source, out = Path(source).expanduser(), Path(out).expanduser()
    state = _read_state(out)
    verified = verify_archives(source, state.get("verified", {}), log)
    devkit_path, val_path, train_path = (_archive(source, key)[0] for key in ("devkit", "val", "train"))
    devkit = read_devkit(devkit_path)
    wanted = choose(subset, devkit.wnids, f"among the devkit's {len(devkit.wnids)} classes ({devkit_path.name})",
                     "the subset list")
    with ExitStack() as stack:
        try:
            train_tar = stack.enter_context(tarfile.open(train_path, "r:"))
            val_tar = stack.enter_context(tarfile.open(val_path, "r:"))
        except (tarfile.TarError, EOFError, OSError) as error:
            raise DataError(f"{train_path} or {val_path} cannot be opened as a tar ({error}): download it again "
                            f"from {DOWNLOAD_PAGE}.") from error
        inner = {Path(m.name).name.removesuffix(".tar"): m for m in _members(train_tar, train_path)}
        val_images = sorted(_members(val_tar, val_path), key=lambda m: os.path.basename(m.name))
        _check_archives(devkit, wanted, inner, val_images, train_path, val_path, devkit_path)

        if subset is not None:
            counts = Counts(len(wanted), None, counts.val_per_class)
        train_counts = {wnid: devkit.train_counts[wnid] for wnid in wanted if wnid in devkit.train_counts}
        _write_state(out, {"form": "archives", "source": str(source), "classes": wanted, "counts": asdict(counts),
                           "train_per_class": train_counts, "verified": verified})
        val_by_class: dict[str, list[tarfile.TarInfo]] = {wnid: [] for wnid in wanted}
        for member, wnid in zip(val_images, devkit.val_wnids, strict=True):
            if wnid in val_by_class:
                val_by_class[wnid].append(member)

        def train_class(wnid: str) -> Callable[[Path], None]:
            def fill(folder: Path) -> None:
                folder.mkdir()
                try:
                    with tarfile.open(fileobj=train_tar.extractfile(inner[wnid]), mode="r|") as class_tar:
                        for member in class_tar:
                            if member.isfile():
                                _copy_member(class_tar, member, folder)
                except (tarfile.TarError, EOFError) as error:
                    raise DataError(f"{inner[wnid].name} in {train_path} cannot be read ({error}): the archive is "
                                    f"damaged. Download it again from {DOWNLOAD_PAGE} and rerun.") from error
            return fill

        def val_class(wnid: str) -> Callable[[Path], None]:
            def fill(folder: Path) -> None:
                folder.mkdir()
                for member in val_by_class[wnid]:
                    _copy_member(val_tar, member, folder)
            return fill

        for number, wnid in enumerate(wanted, 1):
            for split, fill in (("train", train_class(wnid)), ("val", val_class(wnid))):
                if _write_class(out, split, wnid, fill):
                    log(f"{split}/{wnid} written ({number}/{len(wanted)})")
    _finish(out)
    return check_prepared(out, counts, wanted, train_counts)


def _check_archives(devkit: Devkit, wanted: list[str], inner: Mapping[str, tarfile.TarInfo],
                    val_images: list[tarfile.TarInfo], train_path: Path, val_path: Path, devkit_path: Path) -> None:
    """Before writing: every wanted class in the train archive, a label for each val image, the same classes in
    train and val."""
    labels = f"{DEVKIT_VAL_LABELS} in {devkit_path}"
    if len(val_images) > len(devkit.val_wnids):
        unlabelled = [os.path.basename(m.name) for m in val_images[len(devkit.val_wnids):]]
        raise DataError(f"{val_path} holds {len(val_images)} images but {labels} labels {len(devkit.val_wnids)}: "
                        f"no label for {few(unlabelled)}. The devkit and the val archive must be ILSVRC2012's: "
                        f"download both again from {DOWNLOAD_PAGE}.")
    if len(val_images) < len(devkit.val_wnids):
        raise DataError(f"{val_path} holds {len(val_images)} images but {labels} labels {len(devkit.val_wnids)}: "
                        f"the val archive is partial. Download it again from {DOWNLOAD_PAGE}.")
    unknown = sorted(set(inner) - set(devkit.wnids))
    if unknown:
        raise DataError(f"{train_path} holds {few(unknown)}, not among the devkit's classes ({devkit_path}): the two "
                        f"are not from the same release. Download both again from {DOWNLOAD_PAGE}.")
    train_classes, val_classes = set(inner), set(devkit.val_wnids)
    if train_classes != val_classes:
        raise DataError(f"train and val have different classes: "
                        f"{classes_apart(train_classes, val_classes, train_path, labels)}. Download the archives "
                        f"again from {DOWNLOAD_PAGE}.")
    missing = [wnid for wnid in wanted if wnid not in inner]
    if missing:
        raise DataError(f"{train_path} holds no {few(f'{w}.tar' for w in missing)}: the archive is partial. "
                        f"Download it again from {DOWNLOAD_PAGE}.")


# --- Kaggle's layout ------------------------------------------------------------------------------------------------


def _kaggle_path(source: Path, relative: str, kind: str) -> Path:
    path = source / relative
    if not (path.is_dir() if kind == "folder" else path.is_file()):
        raise DataError(f"{path} is missing (a {kind} of Kaggle's ImageNet): {KAGGLE_FIX}.")
    return path


def _kaggle_val_labels(path: Path) -> dict[str, str]:
    """ImageId -> wnid, from LOC_val_solution.csv (the prediction string's first token is the image's class)."""
    labels = {}
    with open(path, newline="") as file:
        reader = csv.DictReader(file)
        if not {"ImageId", "PredictionString"} <= set(reader.fieldnames or ()):
            raise DataError(f"{path} has columns {reader.fieldnames}, not ImageId,PredictionString: {KAGGLE_FIX}.")
        for row in reader:
            tokens = (row["PredictionString"] or "").split()
            if not tokens or not WNID.fullmatch(tokens[0]):
                raise DataError(f"{path}: the row of {row['ImageId']} names no wnid first ({tokens[:1]}); the file is "
                                "damaged: download it again.")
            labels[row["ImageId"]] = tokens[0]
    return labels


def prepare_kaggle(source: str | os.PathLike, out: str | os.PathLike, subset: Sequence[str] | None = None,
                   counts: Counts = IMAGENET_1K, log: Callable[[str], None] = print) -> dict[str, int]:
    """OUT's class folders from Kaggle's layout in SOURCE, as symbolic links (no image is copied): `train/<wnid>`
    links to Kaggle's class folder, and `val/<wnid>/<file>` to each val image (Kaggle's val folder is flat). Each
    class is made in `OUT/.partial` and renamed when whole. Returns the checked counts."""
    source, out = Path(source).expanduser().resolve(), Path(out).expanduser()
    train = _kaggle_path(source, KAGGLE_TRAIN, "folder")
    val = _kaggle_path(source, KAGGLE_VAL, "folder")
    labels_path = _kaggle_path(source, KAGGLE_VAL_LABELS, "file")
    synsets_path = _kaggle_path(source, KAGGLE_SYNSETS, "file")
    synsets = [line.split()[0] for line in synsets_path.read_text().splitlines() if line.strip()]
    train_classes = sorted(entry.name for entry in os.scandir(train) if entry.is_dir())
    if subset is None and set(train_classes) != set(synsets):
        raise DataError(f"{train} holds {len(train_classes)} class folders, {synsets_path} lists {len(synsets)}: "
                        f"missing {few(sorted(set(synsets) - set(train_classes)))}; not listed "
                        f"{few(sorted(set(train_classes) - set(synsets)))}. The download is partial: {KAGGLE_FIX}.")
    wanted = choose(subset, train_classes, f"among the train classes ({train})", "the subset list")
    labels = _kaggle_val_labels(labels_path)
    images = sorted(name for name in os.listdir(val) if is_image(name))
    unlabelled = [name for name in images if Path(name).stem not in labels]
    if unlabelled:
        raise DataError(f"{len(unlabelled)} val image(s) in {val} have no label in {labels_path}: {few(unlabelled)}. "
                        f"Download {KAGGLE_VAL_LABELS} again: {KAGGLE_FIX}.")
    val_classes = {labels[Path(name).stem] for name in images}
    if subset is None and val_classes != set(train_classes):
        raise DataError(f"train and val have different classes: "
                        f"{classes_apart(train_classes, val_classes, train, labels_path)}. {KAGGLE_FIX}.")
    without_val = [wnid for wnid in wanted if wnid not in val_classes]
    if without_val:
        raise DataError(f"train and val have different classes: {few(without_val)} have no val image in {val} "
                        f"({labels_path}). {KAGGLE_FIX}.")

    if subset is not None:
        counts = Counts(len(wanted), None, counts.val_per_class)
    _write_state(out, {"form": "kaggle", "source": str(source), "classes": wanted, "counts": asdict(counts),
                       "train_per_class": None, "verified": {}})
    val_by_class: dict[str, list[str]] = {wnid: [] for wnid in wanted}
    for name in images:
        wnid = labels[Path(name).stem]
        if wnid in val_by_class:
            val_by_class[wnid].append(name)
    for number, wnid in enumerate(wanted, 1):
        link = out / "train" / wnid
        if link.is_symlink() and Path(os.readlink(link)) != train / wnid:  # an earlier run from another SOURCE
            link.unlink()
        written = _write_class(out, "train", wnid, lambda temp, wnid=wnid: temp.symlink_to(train / wnid, True))
        folder = out / "val" / wnid
        if folder.is_dir() and any(Path(os.readlink(p)).parent != val for p in folder.iterdir() if p.is_symlink()):
            shutil.rmtree(folder)  # linked from another SOURCE by an earlier run: link again

        def fill(folder: Path, wnid: str = wnid) -> None:
            folder.mkdir()
            for name in val_by_class[wnid]:
                (folder / name).symlink_to(val / name)

        if _write_class(out, "val", wnid, fill) or written:
            log(f"train/{wnid} and val/{wnid} linked ({number}/{len(wanted)})")
    _finish(out)
    return check_prepared(out, counts, wanted)


def check_out(out: str | os.PathLike, subset: Sequence[str] | None = None) -> dict[str, int]:
    """Check OUT against what its prepare recorded (or ImageNet-1k's counts, or `subset`'s list)."""
    state = _read_state(Path(out).expanduser())
    if subset is not None:
        return check_prepared(out, Counts(len(subset), None, VAL_PER_CLASS), sorted(subset),
                              state.get("train_per_class"))
    if "counts" in state:
        return check_prepared(out, Counts(**state["counts"]), state.get("classes"), state.get("train_per_class"))
    return check_prepared(out)


# --- the command ----------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Turn ImageNet-1k as downloaded into the class folders `data=imagenet data.root=OUT` reads, "
                    "and check them. Rerun the same command to finish an interrupted run.")
    parser.add_argument("--from", dest="form", choices=FORMS,
                        help="archives: the three official ILSVRC2012 files in SOURCE (images copied); kaggle: "
                             "Kaggle's unpacked download in SOURCE (images linked, not copied)")
    parser.add_argument("--check", action="store_true", help="check an existing OUT without preparing it")
    parser.add_argument("--subset", help=f"only these classes: {' or '.join(SUBSETS)}, or a text file of wnids")
    parser.add_argument("paths", nargs="+", metavar="PATH", help="SOURCE OUT, or OUT alone with --check")
    args = parser.parse_args(argv)
    if args.check == bool(args.form) or len(args.paths) != (1 if args.check else 2):
        parser.error("give --from archives|kaggle SOURCE OUT, or --check OUT")
    try:
        subset = subset_wnids(args.subset) if args.subset else None
        if args.check:
            found = check_out(args.paths[0], subset)
        else:
            prepare = prepare_archives if args.form == "archives" else prepare_kaggle
            found = prepare(*args.paths, subset=subset)
    except DataError as error:
        print(error, file=sys.stderr)
        return 1
    print(f"{found['classes']} classes, {found['train']:,} train and {found['val']:,} val images: complete. "
          f"Train with data=imagenet data.root={args.paths[-1]}")
    return 0
