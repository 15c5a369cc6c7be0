"""Beyond the single path: leave-one-out composition, free combinations, their names and their conflicts."""

import json

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from roadmap.config.ablation import (
    FINAL_STEP,
    check_combination,
    expand_reverts,
    leave_one_out,
    run_name,
    settings,
    sweep,
)
from roadmap.config.composition import CONF_DIR, build_model, compose
from roadmap.errors import ConfigError
from roadmap.steps import STEPS, chain
from roadmap.training.job import train

TINY = ("data=synthetic", "scale.input_size=32", "scale.batch_size=8", "scale.global_batch_size=8",
        "scale.epochs=1", "logger.wandb.enabled=false", "+trainer.limit_train_batches=1",
        "+trainer.limit_val_batches=1")


def resolved(cfg) -> dict:
    return {"model": OmegaConf.to_container(cfg.model, resolve=True), "recipe": cfg.recipe.name}


def with_deltas(deltas: list[str], *extra: str):
    return compose([f"+delta=[{','.join(deltas)}]", *extra])


def test_leave_one_out_reverts_each_delta_of_convnext_t_once():
    variants = leave_one_out()
    full = chain(FINAL_STEP)
    assert variants[""] == full and set(variants) == {"", *full}
    for reverted, deltas in variants.items():
        if reverted:
            assert deltas == [d for d in full if d != reverted]


@pytest.mark.parametrize("reverted", chain(FINAL_STEP))
def test_reverting_a_delta_changes_exactly_that_deltas_arguments(reverted):
    """ConvNeXt-T minus one delta differs from ConvNeXt-T only where that delta writes, and builds."""
    full = resolved(compose([f"+step={FINAL_STEP}"]))
    cfg = with_deltas(leave_one_out()[reverted])
    variant = resolved(cfg)
    changed = {f"model.{k}" for k, v in variant["model"].items() if full["model"][k] != v}
    if variant["recipe"] != full["recipe"]:
        changed.add("recipe")
    if reverted == "modern_recipe":  # the recipe brings stochastic depth, and the init of ConvNeXt-T's layer scale
        assert changed == {"recipe", "model.drop_path_rate", "model.layer_scale_init"}
    else:
        assert changed and changed <= settings(reverted), changed
    assert list(cfg.deltas) == leave_one_out()[reverted]
    build_model(cfg)  # every variant is a valid network


def test_all_deltas_on_the_plain_resnet_equal_the_last_step():
    assert resolved(with_deltas(chain(FINAL_STEP))) == resolved(compose([f"+step={FINAL_STEP}"]))


def test_leave_one_out_sweep_is_a_hydra_sweep_of_fourteen_delta_lists():
    text = OmegaConf.create({"s": "${leave_one_out:}"}).s
    assert text == sweep(leave_one_out().values())
    override = OverridesParser.create().parse_overrides([f"+delta={text}"])[0]
    assert override.is_sweep_override()
    assert [list(v) for v in override.sweep_iterator()] == list(leave_one_out().values())


def test_the_leave_one_out_config_sweeps_the_variants():
    params = OmegaConf.load(CONF_DIR / "ablation/leave_one_out.yaml").hydra.sweeper.params
    assert OmegaConf.to_container(params) == {"+delta": "${leave_one_out:}"}


def test_a_new_delta_applies_on_top_of_a_step():
    cfg = compose([f"+step={FINAL_STEP}", "+delta=pointwise_linear"])
    assert cfg.name == "separate_downsampling@+pointwise_linear" and cfg.model.pointwise == "linear"


@pytest.mark.parametrize("step", list(STEPS))
def test_a_steps_own_deltas_are_named_after_the_step(step):
    assert run_name(chain(step)) == step
    assert compose([] if step == "baseline" else [f"+step={step}"]).name == step


@pytest.mark.parametrize(("deltas", "name"), [
    (["patchify_stem", "gelu"], "baseline@+patchify_stem+gelu"),
    (["gelu", "patchify_stem"], "baseline@+patchify_stem+gelu"),  # one network, one name, in roadmap order
    (["modern_recipe", "patchify_stem"], "modern_recipe@+patchify_stem"),
    ([d for d in chain(FINAL_STEP) if d != "gelu"], "separate_downsampling@-gelu"),
    ([*chain("gelu"), "layer_norm"], "gelu@+layer_norm"),
    ([*chain(FINAL_STEP), "pointwise_linear"], "separate_downsampling@+pointwise_linear"),
])
def test_free_combination_names(deltas, name):
    assert run_name(deltas) == name
    cfg = with_deltas(deltas)
    assert cfg.name == name and list(cfg.deltas) == deltas


def test_a_free_combination_trains_and_records_its_name_and_deltas(tmp_path):
    record = train(with_deltas(["patchify_stem", "gelu"], *TINY), tmp_path)
    on_disk = json.loads((tmp_path / "result.json").read_text())
    assert on_disk["name"] == record["name"] == "baseline@+patchify_stem+gelu"
    assert on_disk["deltas"] == ["patchify_stem", "gelu"] and on_disk["step"] == "baseline"


@pytest.mark.parametrize(("deltas", "message"), [
    (["kernel_5", "kernel_7"], "deltas kernel_5 and kernel_7 conflict: both set model.kernel_size"),
    (["width_96", "stage_ratio"], "List stage_ratio before width_96"),
    ([*chain("gelu"), "kernel_11"], "deltas kernel_7 and kernel_11 conflict"),
])
def test_conflicting_deltas_are_named(deltas, message):
    with pytest.raises(ValueError, match=message):
        check_combination(deltas)


@pytest.mark.parametrize("deltas", [["stage_ratio", "width_96"], chain(FINAL_STEP), ["patchify_stem", "gelu"]])
def test_compatible_deltas_pass(deltas):
    check_combination(deltas)


def test_a_conflicting_combination_fails_before_training(tmp_path):
    with pytest.raises(ValueError, match="kernel_5 and kernel_9 conflict"):
        train(with_deltas(["kernel_5", "kernel_9"], *TINY), tmp_path)
    assert not any(tmp_path.iterdir())  # no checkpoint, no record: nothing ran


def test_unknown_delta_is_named():
    with pytest.raises(ValueError, match="unknown delta 'kernel_4'"):
        settings("kernel_4")


def without(step: str, *reverted: str) -> list[str]:
    return [d for d in chain(step) if d not in reverted]


@pytest.mark.parametrize(("step", "reverted"), [
    (FINAL_STEP, ["patchify_stem"]), ("gelu", ["stage_ratio", "depthwise_conv"]), ("modern_recipe", ["modern_recipe"]),
])
def test_a_revert_is_the_steps_other_deltas_with_their_name(step, reverted):
    cfg = compose([f"+step={step}", f"revert=[{','.join(reverted)}]", "seed=3"])
    listed = with_deltas(without(step, *reverted), "seed=3")
    assert OmegaConf.to_container(cfg, resolve=True) == OmegaConf.to_container(listed, resolve=True)
    assert list(cfg.deltas) == without(step, *reverted) and cfg.name == run_name(without(step, *reverted))
    assert resolved(cfg) == resolved(listed)


def test_a_revert_of_convnext_t_is_named_as_leave_one_out_names_it():
    assert compose([f"+step={FINAL_STEP}", "revert=[patchify_stem]"]).name == "separate_downsampling@-patchify_stem"
    assert expand_reverts(["+step=gelu", "revert=gelu", "seed=0"]) == [f"+delta=[{','.join(chain('kernel_7'))}]",
                                                                      "seed=0"]


def test_overrides_without_a_revert_pass_unchanged():
    overrides = ["+step=gelu", "+delta=[layer_norm]", "seed=0,1", "-m"]
    assert expand_reverts(overrides) == overrides


def test_a_sweep_of_steps_with_a_revert_is_a_sweep_of_delta_lists():
    overrides = expand_reverts(["+step=gelu,separate_downsampling", "revert=[patchify_stem]", "seed=0,1"])
    assert overrides[1:] == ["seed=0,1"]
    parsed = OverridesParser.create().parse_overrides(overrides[:1])[0]
    assert parsed.key_or_group == "delta" and parsed.is_sweep_override()
    assert [list(v) for v in parsed.sweep_iterator()] == [without("gelu", "patchify_stem"),
                                                          without(FINAL_STEP, "patchify_stem")]


def test_a_revert_keeps_a_delta_added_on_top():
    assert expand_reverts([f"+step={FINAL_STEP}", "revert=[gelu]", "+delta=[pointwise_linear]"]) == [
        f"+delta=[{','.join([*without(FINAL_STEP, 'gelu'), 'pointwise_linear'])}]"]


@pytest.mark.parametrize(("overrides", "message"), [
    (["+step=gelu", "revert=[layer_norm]"], "cannot revert layer_norm: gelu does not apply it. Its deltas: "
                                            + ", ".join(chain("gelu"))),
    (["+step=gelu,layer_norm", "revert=[fewer_norms]"], "cannot revert fewer_norms: gelu does not apply it"),
    (["revert=[patchify_stem]", "seed=0"], r"cannot revert patchify_stem without \+step=<step>: the baseline"),
    (["+step=baseline", "revert=[gelu]"], "cannot revert gelu: baseline applies no delta"),
    (["+step=kernel_4", "revert=[gelu]"], "unknown step 'kernel_4'"),
])
def test_a_revert_the_step_does_not_hold_is_refused_before_anything_runs(overrides, message):
    with pytest.raises(ConfigError, match=message):
        expand_reverts(overrides)
    with pytest.raises(ConfigError, match=message):
        compose(overrides)
