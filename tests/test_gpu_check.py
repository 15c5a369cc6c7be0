"""`make gpu-check` in its reduced CPU form, and its record check."""

import copy

from roadmap.tools.gpu_check import check_record, main


def test_the_quick_check_runs_every_section_and_writes_its_report(tmp_path):
    assert main(["--quick", "--out", str(tmp_path), "data.val_size=32"]) == 0
    [report] = tmp_path.glob("*.md")
    text = report.read_text()
    for section in ("torch ", "## Training step, eager", "ours_convnext_t_linear", "nn.Linear pointwise layers",
                    "## One proxy step", "## Paper-scale ConvNeXt-T, 2 optimizer steps"):
        assert section in text, section
    assert text.count("- record: sound") == 2
    assert "data.val_size=32`" in text  # an override for the proxy job reaches it


def test_a_record_that_ran_elsewhere_or_short_is_reported():
    record = {"status": "completed", "config": {"trainer": {"accelerator": "gpu"}}, "top1": 51.0,
              "train_images_per_second": 3000.0, "optimizer_steps": 100}
    assert check_record(record, "gpu", 100) == []
    cpu = copy.deepcopy(record)
    cpu["config"]["trainer"]["accelerator"] = "cpu"
    assert check_record(cpu, "gpu", 100) == ["it ran on cpu, not gpu"]
    assert check_record(record, "gpu", 99) == ["100 optimizer steps instead of 99"]
    assert check_record({**record, "train_images_per_second": None}, "gpu") == ["no training throughput was measured"]
