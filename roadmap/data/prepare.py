"""A pre-resized copy of an ImageFolder dataset: `python scripts/resize_images.py SRC DST --size 256`.

Decoding full-size JPEGs is most of a training loader's work; a copy whose shorter side is already near the
crop size decodes several times faster. The copy keeps the class-folder layout and file names (each file keeps
its format); images already no larger than the target are copied byte for byte. Every file is written to a
temporary name and renamed, so an interrupted run leaves only complete files, and running it again skips them.
Unreadable images are skipped and listed.
"""

from __future__ import annotations

import argparse
import os
import shutil
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image
from torchvision.datasets.folder import IMG_EXTENSIONS

RESAMPLE = Image.Resampling.BICUBIC  # the modern recipe's interpolation


@dataclass
class ResizeReport:
    resized: int = 0
    copied: int = 0  # already no larger than the target size
    already_done: int = 0  # present in the copy from an earlier run
    unreadable: dict[str, str] = field(default_factory=dict)  # path relative to the source root -> PIL's error

    def summary(self) -> str:
        return (f"{self.resized} resized, {self.copied} copied as they were, {self.already_done} already done, "
                f"{len(self.unreadable)} unreadable")


def resized_size(width: int, height: int, size: int) -> tuple[int, int]:
    """(width, height) with the shorter side `size` and the aspect ratio kept."""
    scale = size / min(width, height)
    return (size, max(1, round(height * scale))) if width <= height else (max(1, round(width * scale)), size)


def _part_path(target: Path) -> Path:
    """Where `target` is written before its rename: hidden, and with no image extension, so ImageFolder
    ignores it; an interrupted run's leftover is overwritten by the next run."""
    return target.with_name(f".{target.name}.part")


def _resize_one(task: tuple[Path, Path, int, int]) -> str:
    """Write one image of the copy; returns 'resized', 'copied' or 'unreadable: <reason>'."""
    source, target, size, quality = task
    part = _part_path(target)
    try:
        with Image.open(source) as image:
            image_format = image.format
            new_size = resized_size(*image.size, size)
            if min(image.size) <= size:
                image.load()  # only to check that it decodes
                shutil.copyfile(source, part)
                status = "copied"
            else:
                image.draft("RGB", new_size)  # JPEG: decode at a reduced scale no smaller than new_size
                small = image.convert("RGB").resize(new_size, RESAMPLE)
                small.save(part, format=image_format, quality=quality)
                status = "resized"
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:  # what PIL raises on bad files
        part.unlink(missing_ok=True)
        return f"unreadable: {error}"
    os.replace(part, target)
    return status


def _images(root: Path) -> list[Path]:
    """The image files under `root` (relative paths), by ImageFolder's own extensions, sorted."""
    return sorted(
        (Path(folder) / name).relative_to(root)
        for folder, _, names in os.walk(root)
        for name in names
        if name.lower().endswith(IMG_EXTENSIONS)
    )


def resize_folder(source: str | os.PathLike, target: str | os.PathLike, size: int = 256, quality: int = 90,
                  workers: int | None = None) -> ResizeReport:
    """Copy every image under `source` to the same relative path under `target`, its shorter side reduced to
    `size` pixels (JPEG `quality`), over `workers` processes (default: every CPU). Files already in `target`
    are left alone, so an interrupted run resumes where it stopped (one run at a time per target)."""
    source, target = Path(source), Path(target)
    if not source.is_dir():
        raise FileNotFoundError(f"{source} is not a folder")
    report = ResizeReport()
    todo = []
    for relative in _images(source):
        if (target / relative).exists():
            report.already_done += 1
        else:
            (target / relative).parent.mkdir(parents=True, exist_ok=True)
            todo.append((relative, (source / relative, target / relative, size, quality)))
    with ProcessPoolExecutor(workers or os.cpu_count()) as pool:
        statuses = pool.map(_resize_one, [task for _, task in todo], chunksize=16)
        for (relative, _), status in zip(todo, statuses, strict=True):
            if status == "resized":
                report.resized += 1
            elif status == "copied":
                report.copied += 1
            else:
                report.unreadable[str(relative)] = status.removeprefix("unreadable: ")
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write a copy of an ImageFolder dataset with smaller images.")
    parser.add_argument("source", type=Path, help="dataset root (e.g. the folder holding train/ and val/)")
    parser.add_argument("target", type=Path, help="where the copy goes; rerun to finish an interrupted copy")
    parser.add_argument("--size", type=int, default=256, help="shorter side in pixels (256)")
    parser.add_argument("--quality", type=int, default=90, help="JPEG quality of resized images (90)")
    parser.add_argument("--workers", type=int, help="processes (default: every CPU)")
    args = parser.parse_args(argv)
    report = resize_folder(args.source, args.target, args.size, args.quality, args.workers)
    print(report.summary())
    for path, error in report.unreadable.items():
        print(f"unreadable: {path}: {error}")
