"""`python run.py` as a user calls it: good overrides run, bad ones fail with a message that helps."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(*overrides: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "run.py"), *overrides, f"hydra.run.dir={cwd}"],
                          capture_output=True, text=True, cwd=cwd, timeout=300)


def test_a_step_runs_and_reports_its_complexity(tmp_path):
    result = run("+step=separate_downsampling", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    log = (tmp_path / "run.log").read_text()
    assert "step separate_downsampling" in log and "params 28,589,128" in log


def test_unknown_step_fails_listing_the_valid_steps(tmp_path):
    result = run("+step=nonexistent", cwd=tmp_path)
    assert result.returncode != 0
    assert "step/nonexistent" in result.stderr
    assert "inverted_bottleneck" in result.stderr and "separate_downsampling" in result.stderr


def test_invalid_argument_fails_naming_it(tmp_path):
    result = run("+step=kernel_7", "model.kernel_size=6", cwd=tmp_path)
    assert result.returncode != 0
    assert "kernel_size=6 is invalid" in result.stderr
