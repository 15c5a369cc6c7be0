"""docs/paper-scale.md's commands as written: each parses and runs in-process (the preparation and the copy with
their data-reading work stubbed, the cost plan for real), and the numbers the guide quotes are the plan's."""

import re
import shlex
from pathlib import Path

import pytest

from roadmap.data import imagenet, prepare
from roadmap.tools import plan

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "paper-scale.md"


def guide_commands(script: str) -> list[list[str]]:
    """The guide's `python scripts/<script>` commands (continuation lines joined, comments dropped), as argv."""
    blocks = re.findall(r"```bash\n(.*?)```", GUIDE.read_text(), re.S)
    lines = [line.split(" #")[0] for block in blocks for line in block.replace("\\\n", " ").splitlines()]
    return [shlex.split(line)[2:] for line in lines if line.startswith(f"python scripts/{script}")]


def test_the_guides_preparation_commands_parse_and_reach_their_work(monkeypatch):
    calls = []
    counts = {"classes": 1000, "train": 1_281_167, "val": 50_000}
    for name in ("prepare_archives", "prepare_kaggle", "check_out"):
        monkeypatch.setattr(imagenet, name, lambda *a, _name=name, **k: calls.append((_name, a, k)) or counts)
    monkeypatch.setattr(prepare, "resize_folder", lambda *a: calls.append(("resize_folder", a, {})) or
                        prepare.ResizeReport())
    commands = guide_commands("prepare_imagenet.py")
    assert len(commands) == 3
    for argv in commands:
        assert imagenet.main(argv) == 0, argv
    assert [c[0] for c in calls] == ["prepare_archives", "prepare_archives", "check_out"]
    assert len(calls[1][2]["subset"]) == 100  # --subset imagenet100: the shipped list
    for argv in guide_commands("resize_images.py"):
        prepare.main(argv)
    assert calls[-1][0] == "resize_folder" and calls[-1][1][2] == 256


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
