"""Composition of the roadmap: steps, deltas, regimes and models, through Hydra's compose API."""

from pathlib import Path

import pytest
import torch
from helpers import step_model
from hydra.errors import MissingConfigException
from omegaconf import OmegaConf

from roadmap.config.composition import CONF_DIR, build_model, compose, step_overrides
from roadmap.model.flops import count_params
from roadmap.steps import REGIMES, ROADMAP, STEPS, chain

GOLDEN_CHAINS = OmegaConf.to_container(OmegaConf.load(Path(__file__).parent / "golden/step_chains.yaml"))


def model_args(*overrides: str) -> dict:
    return OmegaConf.to_container(compose(overrides).model, resolve=True)


def test_golden_chain_of_every_step():
    assert list(GOLDEN_CHAINS) == list(STEPS)
    for step in ROADMAP:
        cfg = compose(step_overrides(step.name))
        assert cfg.step == step.name
        assert list(cfg.deltas) == GOLDEN_CHAINS[step.name], step.name
        assert chain(step.name) == GOLDEN_CHAINS[step.name]


def test_step_files_and_delta_files_match_the_roadmap():
    assert {p.stem for p in (CONF_DIR / "step").glob("*.yaml")} == set(STEPS)
    # Every step's delta, and the deltas beyond the paper's path.
    assert {p.stem for p in (CONF_DIR / "delta").glob("*.yaml")} == set(STEPS) - {"baseline"} | {"pointwise_linear",
                                                                                                 "window_attention"}


@pytest.mark.parametrize("regime", REGIMES)
def test_each_step_changes_only_its_own_delta(regime):
    """A step's network differs from its parent's exactly in the arguments its delta sets."""
    for step in ROADMAP[1:]:
        delta = OmegaConf.load(CONF_DIR / "delta" / f"{step.name}.yaml")
        parent = model_args(*step_overrides(step.parent, regime))
        child = model_args(*step_overrides(step.name, regime))
        changed = {k for k in child if child[k] != parent[k]}
        if step.name == "modern_recipe":  # the recipe brings stochastic depth; layer scale waits for ConvNeXt
            assert changed == {"drop_path_rate"}
            assert compose(step_overrides(step.name, regime)).recipe.name == "modern"
        else:
            assert changed and changed <= set(delta["model"]), (step.name, changed)


def test_every_delta_applies_alone_to_the_baseline():
    """Deltas are atomic: each one alone changes the plain ResNet-50 in its own arguments only."""
    base = model_args()
    for step in ROADMAP[1:]:
        cfg = compose([f"+delta={step.name}"])
        assert list(cfg.deltas) == [step.name] and cfg.step == "baseline"
        args = OmegaConf.to_container(cfg.model, resolve=True)
        changed = {k for k in args if args[k] != base[k]}
        expected = {"drop_path_rate"} if step.name == "modern_recipe" else set(
            OmegaConf.load(CONF_DIR / "delta" / f"{step.name}.yaml")["model"])
        assert changed and changed <= expected, (step.name, changed)


def test_deltas_combine_in_any_order():
    args = model_args("+delta=[gelu,patchify_stem]")
    assert (args["activation"], args["stem"], args["block"]) == ("gelu", "patchify", "bottleneck")
    assert model_args("+delta=[patchify_stem,gelu]") == args


def test_no_step_is_resnet50_with_the_original_recipe():
    assert compose(["+step=baseline"]) == compose()
    cfg = compose()
    assert cfg.step == "baseline" and dict(cfg.deltas) == {}
    assert cfg.recipe.name == "original" and cfg.recipe.optimizer.name == "sgd"
    assert cfg.recipe.lr.base == 0.1 and cfg.recipe.epochs == 90


def test_modern_recipe_is_table_5():
    r = compose(["+step=modern_recipe"]).recipe
    assert (r.optimizer.name, r.optimizer.weight_decay, r.lr.base, r.lr.base_batch_size) == ("adamw", 0.05, 4e-3, 4096)
    assert (r.epochs, r.schedule.warmup_epochs, r.schedule.min_lr) == (300, 20, 1e-6)
    assert (r.augment.randaugment, r.augment.mixup, r.augment.cutmix) == ("rand-m9-mstd0.5-inc1", 0.8, 1.0)
    assert (r.augment.random_erasing, r.augment.label_smoothing, r.layer_scale) == (0.25, 0.1, 1e-6)
    assert (r.ema.decay, r.ema.use, r.stochastic_depth) == (0.9999, "no_batchnorm", 0.1)
    assert compose(["+step=modern_recipe", "regime=resnet200"]).recipe.stochastic_depth == 0.5


@pytest.mark.parametrize("regime", REGIMES)
@pytest.mark.parametrize("step", list(STEPS))
def test_every_step_runs_forward(step, regime):
    model = step_model(step, regime).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, 64, 64)).shape == (2, 1000)


@pytest.mark.parametrize(("model", "params_millions"), [  # paper Table 2: 22M, 87M, 306M
    ("convnext_iso_s", 22), ("convnext_iso_b", 87), ("convnext_iso_l", 306)])
def test_isotropic_convnext(model, params_millions):
    net = step_model("baseline", "resnet50", f"model={model}")
    assert round(count_params(net) / 1e6) == params_millions
    with torch.no_grad():
        assert net.eval()(torch.randn(1, 3, 64, 64)).shape == (1, 1000)


def test_step_of_the_end_equals_the_convnext_config():
    step = model_args("+step=separate_downsampling")
    family = model_args("model=convnext_t")
    assert {k for k in step if step[k] != family[k]} == {"pointwise"}  # the roadmap keeps 1x1 convs


def test_unknown_step_lists_the_valid_steps():
    with pytest.raises(MissingConfigException) as error:
        compose(["+step=nonexistent"])
    message = str(error.value)
    assert "nonexistent" in message
    for name in STEPS:
        assert name in message


@pytest.mark.parametrize(("override", "argument"), [
    ("model.kernel_size=4", "kernel_size"), ("model.norm=group", "norm"), ("model.stem=vit", "stem")])
def test_invalid_model_value_names_the_argument(override, argument):
    cfg = compose(["+step=gelu", override])
    with pytest.raises(ValueError, match=rf"argument {argument}="):
        build_model(cfg)
