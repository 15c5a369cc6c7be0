"""Fitting a recipe to a run's length: each rule's values, what a record keeps, and scales that fit nothing."""

import pytest
import torch
from omegaconf import OmegaConf
from timm.data.auto_augment import rand_augment_transform
from torch import nn

from roadmap.config.composition import compose
from roadmap.training.budget import Budget, check_rules, fit_recipe
from roadmap.training.recipe import build_scheduler

ORIGINAL = compose().recipe
MODERN = compose(["+step=modern_recipe"]).recipe
ALL_RULES = {"warmup": True, "schedule": True, "ema": True, "regularization": True}


def lrs(recipe, steps_per_epoch: int) -> list[float]:
    """The lr of every optimizer step of a run under `recipe` at its base batch, as a fraction of its base lr, as
    Lightning steps the scheduler."""
    base = recipe.lr.base
    optimizer = torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=base)
    scheduler, interval = build_scheduler(optimizer, recipe, steps_per_epoch)
    assert interval == "step"
    out = []
    for t in range(round(recipe.epochs * steps_per_epoch)):
        out.append(optimizer.param_groups[0]["lr"] / base)
        scheduler.step_update(num_updates=t + 1)
    return out


def test_the_recipes_lengths_in_optimizer_steps():
    """ImageNet-1K's 1,281,167 images: 5,005 steps per epoch at batch 256, 313 at batch 4096."""
    assert Budget.of(ORIGINAL, 2, 468).recipe_steps == 90 * 5005 == 450_450
    assert Budget.of(MODERN, 2, 468).recipe_steps == 300 * 313 == 93_900
    assert Budget.of(MODERN, 2, 468).steps == 936


def test_at_the_recipes_own_length_nothing_changes():
    budget = Budget.of(MODERN, 300, 313)
    fitted, changes = fit_recipe(MODERN, budget, ALL_RULES)
    assert changes == {}
    assert OmegaConf.to_container(fitted) == OmegaConf.to_container(MODERN, resolve=True)


def test_without_rules_the_recipe_is_only_stretched():
    fitted, changes = fit_recipe(MODERN, Budget.of(MODERN, 3, 100), {})
    assert changes == {"epochs": {"recipe": 300, "used": 3},
                       "schedule.warmup_epochs": {"recipe": 20, "used": pytest.approx(0.2)}}
    seen = lrs(fitted, 100)
    assert seen[0] == 0 and max(seen) == pytest.approx(1.0) and seen.index(max(seen)) == 20  # 20 of 300 epochs
    fitted, changes = fit_recipe(ORIGINAL, Budget.of(ORIGINAL, 9, 5), {})
    assert fitted.schedule.step_epochs == pytest.approx(3) and "schedule.step_epochs" in changes


def test_schedule_rule_falls_linearly_to_zero_after_the_warmup():
    fitted, changes = fit_recipe(MODERN, Budget.of(MODERN, 3, 100), {"schedule": True})
    assert changes["schedule.name"] == {"recipe": "cosine", "used": "linear"}
    assert changes["schedule.min_lr"] == {"recipe": 1e-6, "used": 0.0}
    seen = lrs(fitted, 100)
    assert seen[20] == pytest.approx(1.0)
    after = seen[20:]
    steps = [a - b for a, b in zip(after, after[1:], strict=False)]
    assert all(d == pytest.approx(1 / 280) for d in steps)  # the same drop every step
    assert seen[-1] == pytest.approx(1 / 280)  # and zero one step after the last
    # The original recipe's tenfold drops become the same line, updated every step instead of every epoch.
    fitted, _ = fit_recipe(ORIGINAL, Budget.of(ORIGINAL, 3, 100), {"schedule": True})
    assert fitted.schedule.per_step and lrs(fitted, 100)[0] == 1.0 and lrs(fitted, 100)[-1] == pytest.approx(1 / 300)


def test_ema_rule_keeps_the_horizon_as_a_fraction_of_training():
    budget = Budget.of(MODERN, 2, 468)
    fitted, changes = fit_recipe(MODERN, budget, {"ema": True})
    decay = fitted.ema.decay
    assert changes["ema.decay"]["recipe"] == 0.9999
    assert decay == pytest.approx(1 - 1e-4 * 93_900 / 936)
    assert (1 / (1 - decay)) / budget.steps == pytest.approx((1 / 1e-4) / budget.recipe_steps)
    assert fit_recipe(ORIGINAL, budget, {"ema": True})[1].get("ema.decay") is None  # no EMA, nothing to fit


def test_regularization_rule_scales_every_regulariser_by_the_passes_over_the_data():
    fitted, changes = fit_recipe(MODERN, Budget.of(MODERN, 3, 100), {"regularization": True})
    s = 3 / 300
    aug = fitted.augment
    evaluated = 0.875**2  # the evaluation's centre crop: 224 of 256
    assert list(aug.train_crop_scale) == pytest.approx([evaluated - s * (evaluated - 0.08),
                                                        evaluated + s * (1 - evaluated)])
    assert list(aug.train_crop_ratio) == pytest.approx([0.75**s, 1.3333333**s])
    assert (aug.mixup_prob, aug.random_erasing, aug.label_smoothing) == pytest.approx((1.0 * s, 0.25 * s, 0.1 * s))
    assert (aug.mixup, aug.cutmix) == (0.8, 1.0)  # when a batch is mixed, it is mixed as the recipe says
    assert fitted.stochastic_depth == pytest.approx(0.1 * s)
    assert aug.randaugment == "rand-m9-mstd0.5-inc1-p0.005"
    ops = rand_augment_transform(aug.randaugment, {}).ops  # timm reads it
    assert all(op.prob == pytest.approx(0.005) and op.magnitude == 9 for op in ops)
    assert fit_recipe(OmegaConf.merge(MODERN, {"augment": {"randaugment": "rand-m9-p0.3"}}), Budget.of(MODERN, 3, 100),
                      {"regularization": True})[0].augment.randaugment == "rand-m9-p0.003"
    assert changes["stochastic_depth"] == {"recipe": 0.1, "used": pytest.approx(0.001)}
    original, _ = fit_recipe(ORIGINAL, Budget.of(ORIGINAL, 9, 100), {"regularization": True})
    assert list(original.augment.train_crop_scale) == pytest.approx([0.875**2 - 0.1 * (0.875**2 - 0.08),
                                                                     0.875**2 + 0.1 * (1 - 0.875**2)])
    assert original.augment.randaugment is None and original.augment.mixup == 0 and original.augment.mixup_prob == 0.1


def test_warmup_rule_gives_a_recipe_without_warmup_the_papers_fraction_of_the_run():
    fitted, changes = fit_recipe(ORIGINAL, Budget.of(ORIGINAL, 2, 468), {"warmup": True, "schedule": True})
    assert changes["schedule.warmup_epochs"] == {"recipe": 0, "used": pytest.approx(2 * 20 / 300)}
    seen = lrs(fitted, 468)
    assert seen[0] == 0 and seen.index(max(seen)) == round(936 * 20 / 300) == 62 and seen[-1] < seen[62] / 100
    assert all(a < b for a, b in zip(seen[:62], seen[1:63], strict=True))  # rising linearly to the peak
    modern, changes = fit_recipe(MODERN, Budget.of(MODERN, 3, 100), {"warmup": True})
    assert modern.schedule.warmup_epochs == pytest.approx(0.2)  # its own 20 of 300 epochs, stretched: kept


def test_a_scales_evaluation_framing_replaces_the_recipes_and_centres_the_training_crops():
    """scale.eval_resize_ratio=1.0 evaluates the whole image; the regularization rule's crops shrink towards it."""
    fitted, changes = fit_recipe(ORIGINAL, Budget.of(ORIGINAL, 9, 100), {"regularization": True}, 1.0)
    assert changes["augment.eval_resize_ratio"] == {"recipe": 0.875, "used": 1.0}
    assert list(fitted.augment.train_crop_scale) == pytest.approx([1 - 0.1 * (1 - 0.08), 1.0])
    _, changes = fit_recipe(ORIGINAL, Budget.of(ORIGINAL, 90, 5005), {"regularization": True}, None)
    assert changes == {}  # null keeps the recipe's


@pytest.mark.parametrize(("rules", "message"), [
    ({"warm_up": True}, r"scale.budget.warm_up is not a budget rule; the rules are warmup, schedule, ema, regul"),
    ({"ema": "yes"}, r"scale.budget.ema='yes' is invalid: it must be true or false")])
def test_bad_rules_are_named(rules, message):
    with pytest.raises(ValueError, match=message):
        check_rules(rules)


def test_scales_choose_their_rules():
    assert set(compose().scale.budget) <= set(ALL_RULES)
    assert compose(["scale=paper"]).scale.budget == {} and compose(["scale=smoke"]).scale.budget == {}
