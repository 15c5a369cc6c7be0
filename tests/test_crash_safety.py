"""Crash safety (docs/crash-safety.md): a study killed at any moment, a torn checkpoint, a job whose record alone is
missing, or the same study started twice still ends with every record completed and equal to an uninterrupted run's."""

import json
import multiprocessing
import os
import random
import re
import shutil
import signal
import socket
import time
from pathlib import Path

import pytest
import torch
from helpers import finish, start
from lightning.pytorch.callbacks import Callback

from roadmap.config.composition import compose
from roadmap.training.checkpoints import AtomicCheckpointIO, flaw
from roadmap.training.job import skip_or_continue, train
from roadmap.training.lock import HOLDER, FolderHeld, hold

# The smoke scale's network (widths x 0.125) on a few synthetic batches: 3 epochs of 4 batches, validated after each,
# with Mixup, layer norm and an EMA, so that every state a checkpoint carries is in play.
SMALL = ("scale=smoke", "data=synthetic", "data.train_size=64", "data.val_size=32", "scale.input_size=32",
         "scale.batch_size=16", "scale.epochs=3", "logger.wandb.enabled=false", "+step=separate_downsampling")
FINAL = "epoch=2-step=12.ckpt"  # the last epoch's checkpoint
# What may differ between two runs of one job: when, how fast and how it ran, not what it computed (and the commit,
# which moves when another commit lands while the suite runs).
UNCOMPARED = {"wall_seconds", "started_at", "finished_at", "train_images_per_second",
              "train_images_per_second_per_device", "peak_memory_mb", "resumed_from", "skipped_checkpoints",
              "git_commit"}


def small(seed: int):
    return compose([*SMALL, f"seed={seed}"])


def assert_same_run(record: dict, reference: dict) -> None:
    """Equal to the digit in every key but the timings: metrics, loss curve, config, counts, labels."""
    assert record["status"] == "completed"
    assert record.keys() == reference.keys()
    differing = [key for key in record.keys() - UNCOMPARED if record[key] != reference[key]]
    assert not differing, {key: (record[key], reference[key]) for key in differing}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> dict[int, Path]:
    """Each seed's job run once, uninterrupted, in process: its folder (records, checkpoints)."""
    root = tmp_path_factory.mktemp("uninterrupted")
    for seed in range(3):
        train(small(seed), root / f"seed{seed}")
    return {seed: root / f"seed{seed}" for seed in range(3)}


def record(folder: Path) -> dict:
    return json.loads((folder / "result.json").read_text())


def copy_job(folder: Path, to: Path) -> Path:
    return Path(shutil.copytree(folder, to, symlinks=True))  # last.ckpt stays a link


class InterruptAt(Callback):
    """A crash as epoch `epoch` starts, after the previous epoch's checkpoint was written."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_epoch_start(self, trainer, module):
        if trainer.current_epoch == self.epoch:
            raise KeyboardInterrupt


def test_a_save_cut_short_leaves_the_checkpoint_before_it(tmp_path, monkeypatch):
    io, path = AtomicCheckpointIO(), tmp_path / "last.ckpt"
    io.save_checkpoint({"global_step": 1}, path)

    def disk_full(checkpoint, f):
        f.write(b"PK\x03\x04 half a checkpoint")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(OSError, match="No space left"):
        io.save_checkpoint({"global_step": 2}, path)
    assert torch.load(path) == {"global_step": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]  # no temporary file left either


def test_a_checkpoint_is_trusted_only_when_it_loads_whole(uninterrupted, tmp_path):
    sound = uninterrupted[0] / "checkpoints" / FINAL
    assert flaw(sound) is None
    data = sound.read_bytes()
    (tmp_path / "cut.ckpt").write_bytes(data[: len(data) // 2])
    assert flaw(tmp_path / "cut.ckpt").startswith("it does not load (RuntimeError: PytorchStreamReader failed")
    (tmp_path / "empty.ckpt").touch()
    assert flaw(tmp_path / "empty.ckpt").startswith("it does not load")
    torch.save({"state_dict": {}, "global_step": 3}, tmp_path / "weights.ckpt")
    assert flaw(tmp_path / "weights.ckpt") == ("it lacks optimizer_states, lr_schedulers, loops, callbacks, epoch, "
                                              "loss_curve, rng_states")
    (tmp_path / "epoch=1-step=8.ckpt").write_bytes(data)  # another step's checkpoint under this name
    assert flaw(tmp_path / "epoch=1-step=8.ckpt") == "its global_step is 12, not the step of its name"


@pytest.mark.parametrize("older", [True, False], ids=["beside_a_sound_one", "alone"])
def test_a_torn_checkpoint_is_moved_aside_and_the_job_goes_on_from_the_sound_one_before_it(
        older, uninterrupted, tmp_path, caplog):
    job = tmp_path / "job"
    with pytest.raises((KeyboardInterrupt, SystemExit)):
        train(small(0), job, callbacks=[InterruptAt(1)])
    checkpoints = job / "checkpoints"
    sound = checkpoints / "epoch=0-step=4.ckpt"
    data = sound.read_bytes()
    if older:  # a save of epoch 1 killed half-way, as a save in place leaves it; epoch 0's is still there
        torn = checkpoints / "epoch=1-step=8.ckpt"
        torn.write_bytes(data[: len(data) // 2])
        os.utime(torn, ns=(sound.stat().st_mtime_ns + 10**9,) * 2)
    else:  # the only checkpoint cut to 50 kB through its link, as a user found it
        torn = sound
        with open(checkpoints / "last.ckpt", "r+b") as f:
            f.truncate(50_000)
    cfg = small(0)
    assert not skip_or_continue(cfg, job)
    warning = next(r.getMessage() for r in caplog.records if r.levelname == "WARNING")
    assert warning.startswith(f"{torn} cannot be resumed from: it does not load")
    assert cfg.resume == (str(sound) if older else None)
    resumed = train(cfg, job)
    assert_same_run(resumed, record(uninterrupted[0]))
    assert resumed["resumed_from"] == ("checkpoints/epoch=0-step=4.ckpt" if older else None)
    assert resumed["skipped_checkpoints"] == [f"checkpoints/unsound/{torn.name}"]
    assert (checkpoints / "unsound" / torn.name).read_bytes() == (data[: len(data) // 2] if older else data[:50_000])
    assert [path.name for path in checkpoints.glob("last*")] == ["last.ckpt"]  # no last-v1.ckpt beside it
    assert flaw(checkpoints / "last.ckpt") is None and (checkpoints / "last.ckpt").resolve().name == FINAL


def test_a_job_whose_record_alone_is_missing_writes_it_from_its_final_checkpoint(uninterrupted, tmp_path):
    """Killed between its last checkpoint and its record: the final checkpoint is validated, not trained on (the
    issue's KeyError 'val/top1'), and the record is the uninterrupted one, its throughput included."""
    job = copy_job(uninterrupted[0], tmp_path / "job")
    (job / "result.json").rename(job / ".result.json.k1ll3d.tmp")  # as a kill during its atomic write leaves it
    cfg = small(0)
    assert not skip_or_continue(cfg, job)
    assert not list(job.glob(".*.tmp"))
    assert cfg.resume == str(job / "checkpoints" / FINAL)
    written = train(cfg, job)
    reference = record(uninterrupted[0])
    assert_same_run(written, reference)
    assert written["resumed_from"] == f"checkpoints/{FINAL}" and written["skipped_checkpoints"] == []
    assert written["train_images_per_second"] == reference["train_images_per_second"]  # the clocks are checkpointed
    assert sorted(p.name for p in (job / "checkpoints").iterdir()) == [FINAL, "last.ckpt"]  # nothing trained or saved


def _hold_until_killed(folder: Path, holding) -> None:
    with hold(folder):
        holding.set()
        time.sleep(120)


def test_a_folder_has_one_holder_and_a_killed_holder_leaves_it_free(tmp_path):
    folder = tmp_path / "job"
    fork = multiprocessing.get_context("fork")
    holding = fork.Event()
    holder = fork.Process(target=_hold_until_killed, args=(folder, holding))
    holder.start()
    try:
        assert holding.wait(30)
        taken = rf"^{folder} is held by pid {holder.pid} on {socket.gethostname()} since "
        with pytest.raises(FolderHeld, match=taken), hold(folder):
            pass
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.join()
    assert (folder / HOLDER).read_text().startswith(f"pid {holder.pid} ")  # the dead holder's name is left...
    with hold(folder):  # ...but not its lock
        assert (folder / HOLDER).read_text().startswith(f"pid {os.getpid()} on ")
        with pytest.raises(FolderHeld, match=f"held by pid {os.getpid()} "), hold(folder):
            pass
    assert not (folder / HOLDER).exists()
    with hold(folder):  # released at the end of the block
        pass


def sweep_args(sweep: Path, seeds: str) -> list[str]:
    return [*SMALL, f"seed={seeds}", f"hydra.sweep.dir={sweep}", "hydra.sweep.subdir=seed${seed}", "-m"]


def progress(sweep: Path) -> set[str]:
    """What a study has written so far: its jobs' epoch checkpoints and records."""
    return {str(path.relative_to(sweep)) for pattern in ("*/checkpoints/epoch=*.ckpt", "*/result.json")
            for path in sweep.glob(pattern)}


def test_a_study_killed_at_random_moments_ends_with_the_uninterrupted_records(uninterrupted, tmp_path):
    """SIGKILL at seeded random moments of a two-job multirun, each kill followed by the same command, until it ends:
    the kills land in the jobs' set-up, training, validation, checkpoint saves and record writes.
    Once, this test holds one job's folder, as a first copy of the study still running would: the multirun skips
    that job, naming this process, and exits cleanly."""
    sweep, args = tmp_path / "sweep", sweep_args(tmp_path / "sweep", "0,1")
    schedule = random.Random(25)
    logs, killed = [], 0
    for attempt in range(12):
        logs.append(tmp_path / f"attempt{attempt}.log")
        process = start(args, logs[-1])
        while "Launching 2 jobs" not in logs[-1].read_text():  # the sweep is checked: its jobs start now
            assert process.exitcode is None, logs[-1].read_text()[-5000:]
            time.sleep(0.01)
        # Kills keyed to the study's own progress, whatever the machine's speed: at a random moment just after the
        # attempt writes its next checkpoint or record (within 0.1 s: the saves, the next epoch's start), or, every
        # third attempt, at a random moment of its first half second (set-up, the first batches, a resume).
        if attempt % 3 == 2:
            delay = schedule.uniform(0.0, 0.5)
        else:
            written = progress(sweep)
            while progress(sweep) == written and process.exitcode is None:
                time.sleep(0.005)
            delay = schedule.uniform(0.0, 0.1)
        process.join(timeout=delay)
        if process.exitcode == 0:  # the study ended before its kill
            break
        killed += 1
        process.kill()
        process.join()
    logs.append(tmp_path / "held.log")
    with hold(sweep / "seed1"):
        output = finish(start(args, logs[-1]), logs[-1])
    assert f"{sweep / 'seed1'} is held by pid {os.getpid()} on " in output  # and yet the multirun exited with 0
    logs.append(tmp_path / "last.log")
    finish(start(args, logs[-1]), logs[-1])

    outputs = "".join(log.read_text() for log in logs)
    print(f"killed {killed} times; jobs continued {outputs.count('continuing from')} times, "
          f"{outputs.count('holds the finished training')} of them from a final checkpoint")
    assert killed >= 4 and outputs.count("continuing from") >= 3
    for seed in (0, 1):
        written = record(sweep / f"seed{seed}")
        assert_same_run(written, record(uninterrupted[seed]))
        assert written["skipped_checkpoints"] == []  # no kill left a torn checkpoint
        links = [path.name for path in (sweep / f"seed{seed}" / "checkpoints").glob("last*")]
        assert links == ["last.ckpt"] and flaw(sweep / f"seed{seed}" / "checkpoints" / "last.ckpt") is None
    assert not list(sweep.rglob(".*.tmp"))  # nor an unfinished write


def test_two_copies_of_a_study_started_together_finish_it_between_them(uninterrupted, tmp_path):
    sweep, args = tmp_path / "sweep", sweep_args(tmp_path / "sweep", "0,1,2")
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    copies = [start(args, log) for log in logs]
    outputs = [finish(copy, log) for copy, log in zip(copies, logs, strict=True)]
    trained = [[int(seed) for seed in re.findall(r"seed (\d+): top-1", out)] for out in outputs]
    assert sorted(trained[0] + trained[1]) == [0, 1, 2]  # each job trained once, by one copy or the other
    for out, own, other in zip(outputs, trained, reversed(copies), strict=True):
        held = re.findall(r"is held by pid (\d+) ", out)  # running in the other copy
        assert all(int(pid) == other.pid for pid in held)
        assert len(held) + out.count("is already completed") == 3 - len(own)
        print(f"a copy trained {len(own)} jobs, skipped {len(held)} held by the other and "
              f"{out.count('is already completed')} completed")
    for seed in range(3):
        written = record(sweep / f"seed{seed}")
        assert_same_run(written, record(uninterrupted[seed]))
        assert written["resumed_from"] is None


def test_a_run_into_another_configs_folder_ends_with_a_clear_error_and_leaves_its_record(uninterrupted, tmp_path):
    """A single run ends as every refusal does, with the message alone; a multirun goes on with its other jobs, names
    the refused one at its end and exits non-zero, without overwriting the other record with a failed one."""
    sweep = tmp_path / "sweep"
    job = copy_job(uninterrupted[0], sweep / "seed1")
    before = (job / "result.json").read_bytes()
    refusal = (f"{job}/result.json holds the completed record of another config; point this run at another folder "
               "(hydra.run.dir=..., or hydra.sweep.dir=... in a multirun) or move that one away.")
    single, log = start([*SMALL, "seed=1", f"hydra.run.dir={job}"], tmp_path / "single.log"), tmp_path / "single.log"
    single.join(timeout=300)
    assert single.exitcode == 1 and "Traceback" not in log.read_text()
    assert log.read_text().splitlines()[-1] == f"Error: {refusal}"
    multi, log = start(sweep_args(sweep, "1,2"), tmp_path / "multi.log"), tmp_path / "multi.log"
    multi.join(timeout=300)
    assert multi.exitcode == 1 and log.read_text().splitlines()[-1] == f"a job was refused its folder: {refusal}"
    assert record(sweep / "seed2")["status"] == "completed"
    assert (job / "result.json").read_bytes() == before
