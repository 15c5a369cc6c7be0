"""Where a job loses time against its bare step (roadmap/tools/gap.py): the bare step as the job runs it, the parts
switched off, and a profiled window read into per-step parts."""

import json
import re

import pytest
import torch
from helpers import tiny_cfg
from torch.autograd import DeviceType
from torch.autograd.profiler_util import EventList, FunctionEvent

from roadmap.config.composition import build_model
from roadmap.errors import ConfigError
from roadmap.tools import speed
from roadmap.tools.benchmark import main
from roadmap.tools.gap import LIGHTNING, STEP_RANGE, VARIANTS, Gap, Window, part_of, read_window, report
from roadmap.training.recipe import build_mixup, ema_decay

STEP = LIGHTNING + STEP_RANGE
TINY = ("data=synthetic", "scale.input_size=32", "scale.batch_size=8", "scale.global_batch_size=8",
        "+step=separate_downsampling", "data.train_size=160")


def _event(name: str, start: float, end: float, thread: int = 1, device: DeviceType = DeviceType.CPU) -> FunctionEvent:
    return FunctionEvent(id=0, name=name, thread=thread, start_us=start, end_us=end, device_type=device)


def test_a_window_counts_each_part_once_exclusive_of_the_parts_inside_it():
    """Two steps of 10 ms: the optimizer step holds the training step (which holds Mixup) and the backward, so each
    part's own time is what its nested parts leave; a range of torch's own is no part; device intervals that
    overlap count once."""
    events = []
    for start in (0, 10_000, 20_000):  # three step starts: two whole steps
        events += [
            _event(LIGHTNING + "[_TrainingEpochLoop].train_dataloader_next", start, start + 500),
            _event(LIGHTNING + "[LightningModule]RoadmapModule.optimizer_step", start + 1_000, start + 9_000),
            _event(STEP, start + 1_100, start + 4_000),
            _event("mixup", start + 1_200, start + 1_500),
            _event("aten::addmm", start + 2_000, start + 3_000),  # torch's, inside the step: the step's own time
            _event(LIGHTNING + "[Strategy]SingleDeviceStrategy.backward", start + 4_000, start + 8_000),
            _event(LIGHTNING + "[Callback]EMA.on_train_batch_end", start + 9_000, start + 9_600),
            _event("Memcpy HtoD (Pinned -> Device)", start + 600, start + 1_600, device=DeviceType.CUDA),
            _event("kernel", start + 1_500, start + 7_500, device=DeviceType.CUDA),
        ]
    events.append(_event(LIGHTNING + "[Strategy]SingleDeviceStrategy.backward", 4_000, 8_000, thread=2))  # elsewhere
    window = read_window(EventList(events))
    assert window.steps == 2 and window.step_ms == pytest.approx(10.0)
    assert window.host_ms == pytest.approx({
        "loader: next batch": 0.5,  # the window runs from the first step's start to the last's: two calls in it
        "optimizer step": 8.0 - 2.9 - 4.0,
        "forward and loss": 2.9 - 0.3,
        "Mixup/CutMix": 0.3,
        "backward": 4.0 + 4.0 / 2,  # another thread's range counts too, once per step
        "EMA update": 0.6,
    })
    # Device work starting in the window: kernels at 1.5-7.5 and 11.5-17.5 ms, copies at 10.6-11.6 (overlapping
    # the second kernel: counted once) and 20.6-21.6.
    assert window.device_busy_ms == pytest.approx((6.0 + 6.9 + 1.0) / 2)
    assert window.host_to_device_ms == pytest.approx(1.0)


def test_the_report_reads_each_job_against_the_bare_step_around_it():
    """A part's cost is what the job spends beyond the bare step, less what the job without it spends: a machine
    that ran faster during one job does not make its part look free."""
    window = Window(steps=4, host_ms={"backward": 60.0, "EMA update": 5.0}, step_ms=80.0, device_busy_ms=None,
                    host_to_device_ms=None)
    gap = Gap("false", bare=[1000.0, 1000.0, 1250.0], batches_alone=4000.0,
              jobs={"job": (800.0, 1000.0), "no-ema": (1000.0, 1250.0)}, window=window, batch_size=100)
    text = report([gap], "# header")
    assert "Bare step: 1000 img/s, median of 3 rounds (1000-1250), 100.0 ms per batch of 100." in text
    assert "nothing trained): 4000 img/s, 25.0 ms per batch." in text
    assert "| the whole job | 800 | 1000 | 0.800 | 25.0 |  |" in text  # 125 ms against 100
    assert "| without the EMA | 1000 | 1250 | 0.800 | 20.0 | +5.0 |" in text  # 100 ms against 80: 5 ms less
    assert "| EMA update | 5.00 | 6.2% |" in text
    assert "| Lightning's loop outside its hooks | 15.00 | 18.8% |" in text  # 80 - 60 - 5


def test_a_window_of_one_step_is_refused():
    with pytest.raises(ValueError, match="holds 1 training steps"):
        read_window(EventList([_event(STEP, 0, 10)]))


def test_parts_are_named_by_lightnings_hooks_and_the_modules_own_ranges():
    assert part_of(LIGHTNING + "[Callback]EMA.on_train_batch_end") == "EMA update"
    assert part_of(LIGHTNING + "[Callback]TQDMProgressBar.on_train_batch_end") == "other callbacks"
    assert part_of(LIGHTNING + "[LightningModule]RoadmapModule.on_before_batch_transfer") == "other hooks"
    assert part_of("loss check") == "loss check" and part_of("mixup") == "Mixup/CutMix"
    assert part_of("[pl][module]torch.nn.Conv2d: stem") is None and part_of("aten::conv2d") is None


def test_each_variant_switches_off_what_it_names():
    for name, (_, overrides) in VARIANTS.items():
        cfg = tiny_cfg("+step=separate_downsampling", *overrides)
        mixup = build_mixup(cfg.recipe.augment, cfg.data.num_classes, cfg.data.batch_size)
        ema = ema_decay(build_model(cfg), cfg.recipe)
        assert (mixup is None) == (name in ("no-mixup", "neither")), name
        assert (ema is None) == (name in ("no-ema", "neither")), name


def test_the_bare_step_runs_in_the_jobs_precision_and_compile_setting(monkeypatch):
    built, compiled, dtypes = [], [], []

    def build(cfg):
        model = build_model(cfg)
        model.register_forward_hook(lambda module, args, out: dtypes.append(out.dtype))
        built.append(model)
        return model

    monkeypatch.setattr(speed, "build_model", build)
    monkeypatch.setattr(torch.nn.Module, "compile", lambda self, **options: compiled.append(options))
    cfg = tiny_cfg("+step=separate_downsampling", "trainer.precision=bf16-mixed", "trainer.compile=reduce-overhead")
    speeds = speed.step_throughput(cfg, rounds=2, steps=1)
    assert len(speeds) == 2 and min(speeds) > 0
    assert set(dtypes) == {torch.bfloat16} and compiled == [{"mode": "reduce-overhead"}]
    dtypes.clear()
    speed.step_throughput(tiny_cfg("+step=separate_downsampling"), rounds=1, steps=1)  # trainer=cpu: 32-true
    assert set(dtypes) == {torch.float32} and len(compiled) == 1
    with pytest.raises(ConfigError, match=r"trainer.precision=16-mixed: the bare step is timed in"):
        speed.step_throughput(tiny_cfg("trainer.precision=16-mixed"), rounds=1, steps=1)


def test_the_gap_command_times_the_jobs_and_profiles_one(tmp_path, capsys):
    main(["gap", *TINY, "--compile", "false", "--variants", "job,no-ema", "--batches", "16", "--steps", "1",
          "--rounds", "1", "--profile-steps", "5", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    report = (tmp_path / "gap.md").read_text()
    assert report.strip() in out
    assert "separate_downsampling at the proxy scale, batch 8, 32 px, 32-true" in report
    assert "median of 3 rounds" in report  # one before the jobs, then one after each of the two
    assert int(re.search(r"nothing trained\): (\d+) img/s", report).group(1)) > 0
    rows = re.findall(r"^\| (the whole job|without the EMA) \| (\d+) \| (\d+) \| ([\d.]+) \|", report, re.MULTILINE)
    assert [row[0] for row in rows] == ["the whole job", "without the EMA"]
    for _, job, bare, ratio in rows:  # each job read against the bare step's rounds around it
        assert int(job) > 0 and float(ratio) == pytest.approx(int(job) / int(bare), abs=0.01)
    assert "Profiled, 4 steps:" in report  # five step starts: four whole steps
    for part in ("forward and loss", "backward", "optimizer step", "EMA update", "Mixup/CutMix"):
        assert re.search(rf"^\| {re.escape(part)} \| [\d.]+ \|", report, re.MULTILINE), part
    trace = json.loads((tmp_path / "profile-compile-false.trace.json").read_text())
    assert any(e.get("name") == STEP for e in trace["traceEvents"])
    assert "Self CPU" in (tmp_path / "profile-compile-false.txt").read_text()


def test_an_unknown_variant_is_refused(tmp_path):
    with pytest.raises(SystemExit, match=r"unknown --variants \['no-loader'\]"):
        main(["gap", *TINY, "--variants", "job,no-loader", "--out", str(tmp_path)])


@pytest.mark.skipif(torch.cuda.is_available(), reason="refused only where there is no GPU")
def test_a_gpu_job_on_a_machine_without_one_is_refused_by_name(tmp_path):
    with pytest.raises(SystemExit, match=r"error: trainer.accelerator=gpu, but torch sees no GPU here"):
        main(["gap", *TINY, "trainer=gpu", "--out", str(tmp_path)])
