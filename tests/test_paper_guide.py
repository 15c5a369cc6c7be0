"""docs/paper-scale.md's commands as written, run in-process: the preparation, its check and the copy on
miniature archives, the cost plan for real; and the numbers the guide quotes are the plan's."""

import re
import shlex
from pathlib import Path

import pytest
from test_imagenet import NAMES, TRAIN_PER_CLASS, VAL_PER_CLASS, WNIDS, make_archives
from torchvision.datasets import imagenet as tv_imagenet
from torchvision.datasets.utils import calculate_md5

from roadmap.data import imagenet, prepare
from roadmap.data.imagenet_classes import Counts
from roadmap.tools import plan

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "paper-scale.md"


def guide_commands(script: str) -> list[list[str]]:
    """The guide's `python scripts/<script>` commands (continuation lines joined, comments dropped), as argv."""
    blocks = re.findall(r"```bash\n(.*?)```", GUIDE.read_text(), re.S)
    lines = [line.split(" #")[0] for block in blocks for line in block.replace("\\\n", " ").splitlines()]
    return [shlex.split(line)[2:] for line in lines if line.startswith(f"python scripts/{script}")]


def test_the_guides_data_commands_run_as_written_on_miniature_archives(tmp_path, monkeypatch):
    """The guide's preparation, check and copy, on miniature official archives in its own paths: each archive's md5
    checked against the miniature's, ImageNet-1k's counts replaced by the miniature's. The subset command, whose
    100 classes no miniature holds, is checked to reach the preparation with the shipped list."""
    source, out = tmp_path / "downloads" / "imagenet", tmp_path / "datasets" / "imagenet"
    make_archives(source)
    for key in ("train", "val", "devkit"):
        monkeypatch.setitem(tv_imagenet.ARCHIVE_META, key, (NAMES[key], calculate_md5(source / NAMES[key])))
    miniature = Counts(len(WNIDS), sum(TRAIN_PER_CLASS.values()), VAL_PER_CLASS)
    real = imagenet.prepare_archives
    subsets = []

    def prepare_archives(src, dst, subset=None, **kwargs):
        if subset is not None:  # the ImageNet-100 line: its list reaches the preparation
            subsets.append(subset)
            return {"classes": len(subset), "train": 0, "val": 0}
        return real(src, dst, counts=miniature, log=lambda _: None)

    monkeypatch.setattr(imagenet, "prepare_archives", prepare_archives)
    at = {"/downloads/imagenet": str(source), "/datasets/": f"{tmp_path / 'datasets'}/"}

    def here(argv: list[str]) -> list[str]:
        for guide_path, path in at.items():
            argv = [arg.replace(guide_path, path) for arg in argv]
        return argv

    commands = guide_commands("prepare_imagenet.py")
    assert len(commands) == 3
    for argv in commands:
        assert imagenet.main(here(argv)) == 0, argv
    assert len(subsets) == 1 and len(subsets[0]) == 100  # --subset imagenet100: the shipped list
    assert sorted(p.name for p in (out / "train").iterdir()) == WNIDS
    (copy,) = guide_commands("resize_images.py")
    prepare.main(here(copy))
    assert sorted(p.name for p in (tmp_path / "datasets" / "imagenet-256" / "val").iterdir()) == WNIDS


def test_the_guides_plan_is_the_paper_scale_roadmap_and_its_cost_is_the_guides():
    (argv,) = guide_commands("plan.py")
    assert argv[0] == "-m"
    result = plan.plan(argv[1:], multirun=True)
    assert result["totals"]["jobs"] == 17 * 3
    hours = round(result["totals"]["gpu_hours"], -1)
    text = GUIDE.read_text()
    assert f"about **{hours:,.0f} H100-hours**" in text
    assert f"costs about {hours:,.0f} H100-hours" in " ".join((GUIDE.parents[1] / "README.md").read_text().split())
    assert f"{result['totals']['checkpoint_gb']:.1f} GB of checkpoints" in text
    workers = result["totals"]["workers_per_gpu_full"], result["totals"]["workers_per_gpu_resized"]
    assert "and {} loader workers per GPU from full-size JPEGs ({} from the 256-px".format(*workers) in text
    by_name = {job["name"]: job for job in result["jobs"]}
    assert f"ConvNeXt-T {by_name['separate_downsampling']['hours']:.0f} h a run" in text
    assert f"ResNet-50 {by_name['baseline']['hours']:.0f} h" in text
    assert by_name["baseline"]["peak_lr"] == pytest.approx(1.6) and by_name["baseline"]["warmup"] == "gradual"
