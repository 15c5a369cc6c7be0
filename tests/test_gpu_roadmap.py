"""`make gpu-roadmap` in its reduced CPU form: the probe, the jobs in worker processes, the records and the archive."""

import json
import re
import tarfile
from pathlib import Path

import pytest

from roadmap.tools.gpu_roadmap import REPORT, main, quick_plan

needs_debian = pytest.mark.skipif(not Path("/usr/share/datasets/fashion-mnist").is_dir(),
                                  reason="needs Debian's Fashion-MNIST")


@needs_debian
def test_the_quick_run_probes_trains_every_job_in_workers_and_archives_them(tmp_path):
    out, archive = tmp_path / "out", tmp_path / "returned" / "gpu-roadmap.tar.gz"
    assert main(["--quick", "--out", str(out), "--archive", str(archive)]) == 0
    records = sorted(p.name for p in (out / "records").glob("*.json"))
    assert records == ["baseline-seed0.json", "separate_downsampling-seed0.json"] == [
        f"{step}-seed0.json" for step in sorted(quick_plan().steps)]
    for path in (out / "records").glob("*.json"):
        record = json.loads(path.read_text())
        assert record["status"] == "completed" and record["data_pipeline"] == "device"
        assert record["config"]["trainer"]["compile"] is False
    report = (out / REPORT).read_text()
    assert "| False |" in report  # the probe's one setting, eager
    assert re.search(r"\| baseline \| \d+ \| \d+ \|", report)  # both pipelines' batches alone, timed
    assert "| baseline-seed0 |" in report and "sound |" in report
    assert "separate_downsampling-seed0 | | | | skipped: already there" in report  # the probe's job, kept
    assert "1 jobs trained, 0 failed, 1 skipped" in report
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
    assert {REPORT, "records/baseline-seed0.json", "records/separate_downsampling-seed0.json"} <= names
    assert any(name.startswith("logs/worker-") for name in names)  # the workers' output, not the run's
    assert main(["--quick", "--out", str(out), "--compile", "false"]) == 0  # again: every record is there
    assert "0 jobs trained, 0 failed, 2 skipped" in (out / REPORT).read_text()
