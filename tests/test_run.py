"""`python run.py` as a user calls it: bad overrides fail at once with a message that helps."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(*overrides: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "run.py"), *overrides, f"hydra.run.dir={cwd}"],
                          capture_output=True, text=True, cwd=cwd, timeout=300)


def test_a_data_root_without_the_data_fails_without_falling_back(tmp_path):
    """The issue's first case: the run used to train on Debian's copy and record the root it was given."""
    result = run("data.root=/no/such/folder", cwd=tmp_path)
    assert result.returncode != 0
    assert "data.root=/no/such/folder does not exist" in result.stderr and "data.root=null" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "result.json").exists()


def test_a_sweep_is_checked_whole_before_its_first_job(tmp_path):
    """One bad value in job 9 of 12 stops the multirun before any job trains or anything is written."""
    seeds = [str(seed) for seed in range(12)]
    seeds[9] = "-1"
    sweep = tmp_path / "sweep"
    result = run("-m", "data=synthetic", f"seed={','.join(seeds)}", f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert result.returncode != 0
    assert "1 of the sweep's 12 jobs are invalid; nothing was run" in result.stderr
    assert "job 9 (data=synthetic seed=-1): seed=-1 is invalid" in result.stderr
    assert "Traceback" not in result.stderr
    assert not sweep.exists()  # no job folder, no multirun.yaml


def test_unknown_step_fails_listing_the_valid_steps(tmp_path):
    result = run("+step=nonexistent", cwd=tmp_path)
    assert result.returncode != 0
    assert "step/nonexistent" in result.stderr
    assert "inverted_bottleneck" in result.stderr and "separate_downsampling" in result.stderr
