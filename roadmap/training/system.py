"""What a run or a benchmark reads from the machine: the code's git commit, peak memory, the device and its name.

The standard library and torch only, so that the benchmark reads them as training does without loading Lightning.
"""

import contextlib
import platform
import resource
import subprocess
from pathlib import Path

import torch

from roadmap.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
PROC_SELF = Path("/proc/self")


def training_device(accelerator: str) -> str:
    """"cuda" or "cpu" for `trainer.accelerator`, refusing a GPU that torch cannot see."""
    if accelerator not in ("gpu", "cuda"):
        return "cpu"
    if not torch.cuda.is_available():
        raise ConfigError(f"trainer.accelerator={accelerator}, but torch sees no GPU here "
                          "(torch.cuda.is_available() is False): run on a GPU machine, or use trainer=cpu.")
    return "cuda"


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, timeout=10)
    except OSError:
        return None
    return out.stdout.strip() or None


def reset_peak_memory() -> None:
    """Start a fresh peak for this job: jobs of a multirun share one process."""
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    with contextlib.suppress(OSError):
        (PROC_SELF / "clear_refs").write_text("5")  # Linux: resets the peak resident set (VmHWM)


def proc_status_mb(field: str) -> float | None:
    """A memory field of /proc/self/status (Linux: VmRSS, VmHWM, ...) in MiB; None where there is none."""
    with contextlib.suppress(OSError):
        for line in (PROC_SELF / "status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    return None


def peak_memory_mb() -> tuple[float, str]:
    """GPU: the most memory torch allocated; CPU: the process's peak resident set since the reset."""
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20, "cuda_max_allocated"
    peak = proc_status_mb("VmHWM")
    if peak is not None:
        return peak, "process_peak_rss"
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "process_max_rss"


def device_name(device: str | torch.device) -> str:
    """The GPU's name, or the CPU's model (Linux's /proc/cpuinfo; else what `platform` knows, else "cpu")."""
    if torch.device(device).type == "cuda":
        return torch.cuda.get_device_name(torch.device(device))
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "cpu"
