"""ImageNet as users hold it: the prepare command on miniature official archives and Kaggle layouts, its checks and
its resume; timm's readers (data=timm) on a miniature tar. Never real ImageNet: a few 8x8 JPEGs per class."""

from __future__ import annotations

import io
import os
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
from omegaconf import OmegaConf
from PIL import Image
from torchvision.datasets import ImageFolder, ImageNet
from torchvision.datasets import imagenet as tv_imagenet
from torchvision.datasets.utils import calculate_md5

from roadmap.data import imagenet, imagenet_classes, timm_reader
from roadmap.data.imagenet import DEVKIT_META, DEVKIT_VAL_LABELS, prepare_archives, prepare_kaggle
from roadmap.data.imagenet_classes import PARTIAL, Counts, check_prepared, subset_wnids
from roadmap.data.timm_reader import TimmData, check_reader
from roadmap.errors import ConfigError, DataError

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"
# Four leaves, whose ILSVRC2012_IDs do not follow the sorted wnids (nor do the real ones), and one inner node.
IDS = {"n03000684": 1, "n01440764": 2, "n02979186": 3, "n02102040": 4}
WNIDS = sorted(IDS)
TRAIN_PER_CLASS = {wnid: 2 + i % 2 for i, wnid in enumerate(WNIDS)}  # 2, 3, 2, 3: the devkit's num_train_images
VAL_PER_CLASS = 2
MINI = Counts(classes=4, train_images=sum(TRAIN_PER_CLASS.values()), val_per_class=VAL_PER_CLASS)
NAMES = {key: name for key, (name, _) in tv_imagenet.ARCHIVE_META.items()}


def jpeg(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG")
    return buffer.getvalue()


def add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def tar_bytes(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in files.items():
            add(tar, name, data)
    return buffer.getvalue()


def val_order(extra: int = 0) -> list[str]:
    """The class of each val image, in the val files' order (shuffled, as ILSVRC2012's)."""
    order = [wnid for wnid in WNIDS for _ in range(VAL_PER_CLASS)]
    return [order[i] for i in np.random.default_rng(3).permutation(len(order))] + [WNIDS[0]] * extra


def meta_mat() -> bytes:
    fields = ("ILSVRC2012_ID", "WNID", "words", "gloss", "num_children", "wordnet_height", "num_train_images")
    rows = [(IDS[w], w, f"class {w}, thing", "a thing", 0, 0, TRAIN_PER_CLASS[w]) for w in IDS]
    rows.append((5, "n00001740", "entity", "that which exists", 2, 10, 0))  # not a leaf: not a class
    buffer = io.BytesIO()
    scipy.io.savemat(buffer, {"synsets": np.array(rows, dtype=[(f, "O") for f in fields])})
    return buffer.getvalue()


def make_archives(source: Path, *, ground_truth: bool = True, extra_val: int = 0,
                  train_classes: tuple[str, ...] = tuple(WNIDS)) -> None:
    """The three ILSVRC2012 archives, in miniature."""
    source.mkdir(parents=True, exist_ok=True)
    inner = {f"{w}.tar": tar_bytes({f"{w}_{i}.JPEG": jpeg(hash((w, i)) % 2**32) for i in range(TRAIN_PER_CLASS[w])})
             for w in train_classes}
    (source / NAMES["train"]).write_bytes(tar_bytes(inner))
    order = val_order()
    (source / NAMES["val"]).write_bytes(tar_bytes(
        {f"ILSVRC2012_val_{i + 1:08d}.JPEG": jpeg(1000 + i) for i in range(len(order) + extra_val)}))
    devkit = {DEVKIT_META: meta_mat()}
    if ground_truth:
        devkit[DEVKIT_VAL_LABELS] = "".join(f"{IDS[w]}\n" for w in order).encode()
    with tarfile.open(source / NAMES["devkit"], "w:gz") as tar:
        for name, data in devkit.items():
            add(tar, name, data)


@pytest.fixture
def md5_of(monkeypatch):
    """Point torchvision's ARCHIVE_META at the miniature archives' md5s (`md5_of(source, keys)`): the check runs."""
    def patch(source: Path, keys=("train", "val", "devkit")) -> None:
        for key in keys:
            monkeypatch.setitem(tv_imagenet.ARCHIVE_META, key, (NAMES[key], calculate_md5(source / NAMES[key])))
    return patch


def pairs(dataset) -> list[tuple[str, int]]:
    return [(os.path.basename(path), label) for path, label in dataset.samples]


def quiet(_: str) -> None:
    pass


# --- the official archives -------------------------------------------------------------------------------------


def test_archives_give_torchvision_imagenet_labels(tmp_path, md5_of):
    source, out, reference = tmp_path / "src", tmp_path / "out", tmp_path / "tv"
    make_archives(source)
    md5_of(source)
    found = prepare_archives(source, out, counts=MINI, log=quiet)
    assert found == {"classes": 4, "train": 10, "val": 8}
    reference.mkdir()
    for name in NAMES.values():
        (reference / name).symlink_to(source / name)
    for split in ("train", "val"):
        theirs, ours = ImageNet(str(reference), split=split), ImageFolder(str(out / split))
        assert ours.classes == theirs.wnids == WNIDS
        assert pairs(ours) == pairs(theirs) and len(pairs(ours)) == {"train": 10, "val": 8}[split]
    # each val image in the class the ground truth gives it (not the ID's position)
    val = dict(pairs(ImageFolder(str(out / "val"))))
    assert [WNIDS[val[f"ILSVRC2012_val_{i + 1:08d}.JPEG"]] for i in range(8)] == val_order()
    assert not (out / PARTIAL).exists()


def test_interrupted_prepare_is_finished_by_a_rerun_without_hashing_again(tmp_path, md5_of, monkeypatch):
    source, out = tmp_path / "src", tmp_path / "out"
    make_archives(source)
    md5_of(source)
    copy, calls = imagenet._copy_member, []

    def dies_on_the_sixth(*args):
        calls.append(args)
        if len(calls) == 6:  # train n01440764 (2) and val n01440764 (2) are whole; train n02102040 has 1 image of 3
            raise KeyboardInterrupt
        copy(*args)

    monkeypatch.setattr(imagenet, "_copy_member", dies_on_the_sixth)
    with pytest.raises(KeyboardInterrupt):
        prepare_archives(source, out, counts=MINI, log=quiet)
    assert sorted(os.listdir(out / "train")) == sorted(os.listdir(out / "val")) == ["n01440764"]
    assert os.listdir(out / PARTIAL / "train" / "n02102040") == ["n02102040_0.JPEG"]
    with pytest.raises(DataError, match="half-written by an interrupted prepare.*Run the prepare command again"):
        check_prepared(out, MINI)
    done = (out / "train" / "n01440764" / "n01440764_0.JPEG").stat()

    monkeypatch.setattr(imagenet, "_copy_member", copy)
    hashed = []
    monkeypatch.setattr(imagenet, "calculate_md5", lambda path: hashed.append(path) or "")
    assert prepare_archives(source, out, counts=MINI, log=quiet) == {"classes": 4, "train": 10, "val": 8}
    assert hashed == []  # the archives were verified by the first run, and have not changed since
    assert (out / "train" / "n01440764" / "n01440764_0.JPEG").stat().st_mtime_ns == done.st_mtime_ns  # not rewritten
    assert sorted(os.listdir(out / "train" / "n02102040")) == ["n02102040_0.JPEG", "n02102040_1.JPEG",
                                                                 "n02102040_2.JPEG"]
    assert not (out / PARTIAL).exists()


def test_md5_mismatch_names_the_archive_and_writes_nothing(tmp_path, md5_of):
    source, out = tmp_path / "src", tmp_path / "out"
    make_archives(source)
    md5_of(source, keys=("val", "devkit"))  # the train archive keeps ILSVRC2012's md5
    with pytest.raises(DataError, match=f"{NAMES['train']} has md5 .*partial or damaged. Download it again"):
        prepare_archives(source, out, counts=MINI, log=quiet)
    assert not out.exists()
    (source / NAMES["val"]).unlink()
    with pytest.raises(DataError, match=f"{NAMES['val']} is missing: download"):
        prepare_archives(source, out, counts=MINI, log=quiet)


def test_truncated_archive_is_refused_before_writing(tmp_path, md5_of):
    source, out = tmp_path / "src", tmp_path / "out"
    make_archives(source)
    train = source / NAMES["train"]
    train.write_bytes(train.read_bytes()[:3000])  # inside the second class's tar
    md5_of(source)  # the md5 of the truncated file: only the tar's structure can tell
    with pytest.raises(DataError, match=f"{NAMES['train']} cannot be read as a tar archive.*Download it again"):
        prepare_archives(source, out, counts=MINI, log=quiet)
    assert not out.exists()


def test_val_without_labels_is_refused(tmp_path, md5_of):
    source, out = tmp_path / "src", tmp_path / "out"
    make_archives(source, ground_truth=False)
    md5_of(source)
    with pytest.raises(DataError, match="ILSVRC2012_validation_ground_truth.txt.*no labels"):
        prepare_archives(source, out, counts=MINI, log=quiet)
    make_archives(source, extra_val=1)
    md5_of(source)
    with pytest.raises(DataError, match="9 images but .* labels 8: no label for ILSVRC2012_val_00000009.JPEG"):
        prepare_archives(source, out, counts=MINI, log=quiet)
    assert not out.exists()


def test_train_and_val_with_different_classes_are_refused(tmp_path, md5_of):
    source, out = tmp_path / "src", tmp_path / "out"
    make_archives(source, train_classes=tuple(WNIDS[:3]))
    md5_of(source)
    with pytest.raises(DataError, match=r"train and val have different classes: only in train .*: ; only in val "
                                        r".*: n03000684"):
        prepare_archives(source, out, counts=MINI, log=quiet)
    assert not out.exists()


def test_subsets_from_a_list(tmp_path, md5_of):
    source, out = tmp_path / "src", tmp_path / "out"
    make_archives(source)
    md5_of(source)
    with pytest.raises(DataError, match=r"names 6 class\(es\) not among the devkit's 4 classes .*: n03028079"):
        prepare_archives(source, out, subset=subset_wnids("imagenette"), counts=MINI, log=quiet)
    assert not out.exists()
    listed = tmp_path / "two.txt"
    listed.write_text("# two classes\nn02979186\nn01440764  # tench\n\n")
    assert subset_wnids(listed) == ["n02979186", "n01440764"]
    found = prepare_archives(source, out, subset=subset_wnids(listed), counts=MINI, log=quiet)
    assert found == {"classes": 2, "train": 4, "val": 4}
    assert ImageFolder(str(out / "val")).classes == ["n01440764", "n02979186"]
    assert imagenet.main(["--check", str(out)]) == 0  # against what the prepare recorded
    listed.write_text("n02979186\ntench\n")
    with pytest.raises(DataError, match=f"{listed}, line 2: 'tench' is not a wnid"):
        subset_wnids(listed)


def test_shipped_subset_lists():
    imagenette, imagenet100 = subset_wnids("imagenette"), subset_wnids("imagenet100")
    assert len(imagenette) == 10 and imagenette[0] == "n01440764" and imagenette[-1] == "n03888605"
    assert len(set(imagenet100)) == 100 and imagenet100[:2] == ["n02869837", "n01749939"]
    for name in ("imagenette", "imagenet100"):
        assert "Source:" in (imagenet_classes.SUBSET_DIR / f"{name}.txt").read_text()


def test_counts_check_names_what_is_missing(tmp_path, md5_of):
    source, out = tmp_path / "src", tmp_path / "out"
    make_archives(source)
    md5_of(source)
    prepare_archives(source, out, counts=MINI, log=quiet)
    with pytest.raises(DataError, match=r"train has 4 classes, not 1000.*4 val classes do not hold 50 images.*"
                                        r"train holds 10 images, not 1,281,167 \(\+1,281,157 to match\)"):
        check_prepared(out)  # ImageNet-1k's counts
    (out / "val" / "n02979186" / sorted(os.listdir(out / "val" / "n02979186"))[0]).unlink()
    (out / "train" / "n02102040" / "n02102040_1.JPEG").unlink()
    with pytest.raises(DataError, match=r"1 val classes do not hold 2 images: n02979186 \(1\).*1 train classes do "
                                        r"not hold their images: n02102040 \(2 of 3\).*9 images, not 10"):
        check_prepared(out, MINI, WNIDS, TRAIN_PER_CLASS)
    for path in (out / "train" / "n03000684").iterdir():
        path.unlink()
    (out / "train" / "n03000684").rmdir()
    with pytest.raises(DataError, match=r"only in val: n03000684.*1 of the 4 classes are missing: n03000684"):
        check_prepared(out, MINI, WNIDS)
    assert imagenet.main(["--check", str(out)]) == 1


# --- Kaggle's layout -----------------------------------------------------------------------------------------------


def make_kaggle(source: Path, *, unlabelled: int = 0) -> dict[str, str]:
    """Kaggle's ImageNet, in miniature; returns each val image's class."""
    data = source / "ILSVRC" / "Data" / "CLS-LOC"
    for wnid in WNIDS:
        (data / "train" / wnid).mkdir(parents=True)
        for i in range(TRAIN_PER_CLASS[wnid]):
            (data / "train" / wnid / f"{wnid}_{i}.JPEG").write_bytes(jpeg(i))
    (data / "val").mkdir()
    labels = {f"ILSVRC2012_val_{i + 1:08d}": wnid for i, wnid in enumerate(val_order(extra=unlabelled))}
    for image in labels:
        (data / "val" / f"{image}.JPEG").write_bytes(jpeg(7))
    rows = [f"{image},{wnid} 1 2 30 40 {wnid} 3 4 50 60" for image, wnid in list(labels.items())[:8]]
    (source / "LOC_val_solution.csv").write_text("ImageId,PredictionString\n" + "\n".join(rows) + "\n")
    (source / "LOC_synset_mapping.txt").write_text("".join(f"{w} class {w}\n" for w in WNIDS))
    return labels


def test_kaggle_links_without_copying_and_resumes(tmp_path):
    source, out = tmp_path / "kaggle", tmp_path / "out"
    labels = make_kaggle(source)
    half = out / PARTIAL / "val" / "n01440764"  # what a killed run leaves: a class half-linked
    half.mkdir(parents=True)
    (half / "ILSVRC2012_val_00000001.JPEG").symlink_to(tmp_path / "nowhere")
    assert prepare_kaggle(source, out, counts=MINI, log=quiet) == {"classes": 4, "train": 10, "val": 8}
    train = out / "train" / "n01440764"
    assert train.is_symlink() and train.resolve() == (source / "ILSVRC/Data/CLS-LOC/train/n01440764").resolve()
    val = ImageFolder(str(out / "val"))
    assert all(Path(path).is_symlink() for path, _ in val.samples)
    assert [(name, WNIDS[label]) for name, label in pairs(val)] == sorted(
        ((f"{image}.JPEG", wnid) for image, wnid in labels.items()), key=lambda p: (p[1], p[0]))
    assert pairs(ImageFolder(str(out / "train")))[:2] == [("n01440764_0.JPEG", 0), ("n01440764_1.JPEG", 0)]
    assert not (out / PARTIAL).exists()
    assert prepare_kaggle(source, out, counts=MINI, log=quiet)["val"] == 8  # a rerun finds it done
    moved = source.rename(tmp_path / "moved")  # the links break; a rerun from the new place mends them
    assert prepare_kaggle(moved, out, counts=MINI, log=quiet)["train"] == 10
    linked = [path for path, _ in ImageFolder(str(out / "val")).samples]
    assert len(linked) == 8 and all(Path(path).resolve().is_relative_to(moved.resolve()) for path in linked)


def test_kaggle_bad_input_is_refused_before_writing(tmp_path):
    source, out = tmp_path / "kaggle", tmp_path / "out"
    make_kaggle(source, unlabelled=1)
    with pytest.raises(DataError, match="1 val image.*no label in .*LOC_val_solution.csv: ILSVRC2012_val_00000009"):
        prepare_kaggle(source, out, counts=MINI, log=quiet)
    with pytest.raises(DataError, match="names 1 class.*not among the train classes.*n09999999"):
        prepare_kaggle(source, out, subset=["n01440764", "n09999999"], counts=MINI, log=quiet)
    (source / "LOC_val_solution.csv").unlink()
    with pytest.raises(DataError, match="LOC_val_solution.csv is missing.*kaggle competitions download"):
        prepare_kaggle(source, out, counts=MINI, log=quiet)
    assert not out.exists()


def test_command_line(tmp_path, capsys):
    source, out = tmp_path / "kaggle", tmp_path / "out"
    make_kaggle(source)
    assert imagenet.main(["--from", "kaggle", str(source), str(out)]) == 1  # ImageNet-1k's counts: not a miniature
    assert "train has 4 classes, not 1000" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        imagenet.main(["--check", str(source), str(out)])


# --- timm's readers: data=timm --------------------------------------------------------------------------------------


def common(**overrides):
    augment = OmegaConf.load(CONF_DIR / "recipe" / "original.yaml").augment
    return {**dict(num_classes=None, in_chans=3, input_size=8, batch_size=4, num_workers=0, pin_memory=False,
                   persistent_workers=False, train_subset=None, val_subset=None, augment=augment, seed=0),
            **overrides}


def test_timm_reads_a_tar_of_class_folders_in_sorted_class_order(tmp_path):
    classes = ["c10", "c9", "b2"]  # sorted: c10 before c9 (timm's own order would put c9 first)
    for split, count in (("train", 3), ("val", 2)):
        files = {f"{split}/{name}/{name}_{i}.jpg": jpeg(i) for name in classes for i in range(count)}
        (tmp_path / f"{split}.tar").write_bytes(tar_bytes(files))
    dm = TimmData(root=str(tmp_path), **common())
    assert dm.num_classes == 3
    train, val = dm.load_splits()
    assert train.classes == val.classes == sorted(classes)
    for raw in (train, val):
        names = [os.path.basename(raw.dataset.filename(i)) for i in range(len(raw))]
        assert [raw.classes[t] for t in raw.targets] == [name.split("_")[0] for name in names]
        image, label = raw[len(raw) - 1]
        assert image.mode == "RGB" and label == raw.targets[-1]
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (4, 3, 8, 8) and y.dtype == torch.int64
    TimmData.check({**common(), "root": str(tmp_path), "name": "", "train_split": "train", "val_split": "val"})
    (tmp_path / "val.tar").write_bytes(tar_bytes({f"val/{name}/x.jpg": jpeg(0) for name in classes[:2]}))
    with pytest.raises(DataError, match="val.* has no image of b2"):
        TimmData(root=str(tmp_path), **common())
    with pytest.raises(DataError, match="neither .*test .*nor .*test.tar exists"):
        TimmData.check({**common(), "root": str(tmp_path), "name": "", "train_split": "test", "val_split": "val"})


def test_timm_readers_that_need_a_package_or_random_access(monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)  # as if not installed
    with pytest.raises(ConfigError, match="needs the `datasets` package, which is not installed: pip install datasets"):
        check_reader("hfds/ILSVRC/imagenet-1k")
    with pytest.raises(ConfigError, match="wds/ reader streams images in shard order.*random access"):
        check_reader("wds/imagenet")
    check_reader("")
    assert timm_reader.PACKAGES["hfds"] == "datasets"
    config = OmegaConf.load(CONF_DIR / "data" / "timm.yaml")
    assert config._target_ == "roadmap.data.TimmData" and OmegaConf.is_missing(config, "root")
