"""Window attention in place of the spatial conv, against timm's Swin weight for weight; and Swin-T itself."""

import json

import pytest
import timm
import torch
from helpers import same_logits
from timm.models.swin_transformer import SwinTransformerBlock, WindowAttention
from torch import nn
from torchvision.ops.misc import Permute

from roadmap.config.composition import PAPER_SETTING, build_model, compose
from roadmap.errors import ConfigError
from roadmap.figures.roadmap import goal_runs
from roadmap.model.attention import WindowMixer, check_windows, fit_window, swin_stage_sizes
from roadmap.model.flops import complexity, count_params
from roadmap.results.stats import compare
from roadmap.steps import ORDER, STEPS
from roadmap.training.recipe import build_optimizer
from roadmap.training.validation import check_config

DIM, HEADS = 24, 3  # 8 channels a head: small, and still several heads


def mixer(shifted: bool, kernel_size: int = 7) -> WindowMixer:
    torch.manual_seed(0)
    module = WindowMixer(DIM, HEADS, kernel_size, shifted).eval()
    with torch.no_grad():  # nonzero biases: a bias left behind would show
        for parameter in module.parameters():
            parameter.normal_(0, 0.3)
    return module


def timm_attention(ours: WindowMixer, window: int) -> WindowAttention:
    """timm's WindowAttention for `window`, with our weights: its bias table is the centre of ours."""
    reference = WindowAttention(DIM, HEADS, window_size=window).eval()
    k = ours.kernel_size
    state = ours.attn.state_dict()
    table = state["relative_position_bias_table"].view(2 * k - 1, 2 * k - 1, HEADS)
    centre = slice(k - window, k + window - 1)
    state["relative_position_bias_table"] = table[centre, centre].reshape(-1, HEADS)
    reference.load_state_dict(state)
    return reference


@pytest.mark.parametrize("side", [7, 3])
def test_one_window_equals_timm_window_attention(side):
    """A map the kernel's window covers is one window: timm's attention on it, unshifted (nothing to shift across)
    even in a shifted block; on a 3 px map, with the centre of the 7 x 7 window's bias table."""
    ours = mixer(shifted=True)
    x = torch.randn(2, side, side, DIM)
    with torch.no_grad():
        expected = timm_attention(ours, side)(x.reshape(2, side * side, DIM)).view(2, side, side, DIM)
        torch.testing.assert_close(ours(x), expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("shifted", [False, True])
def test_windows_of_a_larger_map_equal_timm_swin_block(shifted):
    """On a 12 px map a 7 kernel gives 6 px windows (the rule), shifted by 3 in every other block: timm's Swin block
    with that window and shift, its attention part, with the same weights."""
    ours = mixer(shifted)
    block = SwinTransformerBlock(DIM, (12, 12), num_heads=HEADS, window_size=6, shift_size=3 if shifted else 0).eval()
    block.attn = timm_attention(ours, 6)
    x = torch.randn(2, 12, 12, DIM)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), block._attn(x), rtol=0, atol=1e-5)
        assert (ours(x) - mixer(not shifted)(x)).abs().max() > 0.1  # the shift changes the output


def test_only_the_window_offsets_of_the_bias_table_learn():
    """As SpatialConv's taps that meet only padding: a 6 px window reads the centre 11 x 11 of the 13 x 13 table."""
    ours = mixer(shifted=True).train()
    ours(torch.randn(2, 12, 12, DIM)).square().sum().backward()
    grad = ours.attn.relative_position_bias_table.grad.view(13, 13, HEADS).abs().sum(-1)
    assert (grad[1:12, 1:12] > 0).all() and grad[0].sum() == grad[-1].sum() == grad[:, 0].sum() == 0


def test_window_rule():
    """The largest window up to the kernel that tiles the map; the whole map where the kernel covers it."""
    kernel_7 = {56: 7, 28: 7, 14: 7, 7: 7, 12: 6, 6: 6, 3: 3, 2: 2, 1: 1, 8: 4, 13: 1}
    assert {side: fit_window(side, 7) for side in kernel_7} == kernel_7
    assert [fit_window(side, 3) for side in (56, 12, 7)] == [2, 3, 1]
    check_windows([12, 6, 3, 1], 7)  # the proxy: windows 6, 6, 3, 1
    with pytest.raises(ValueError, match=r"kernel_size=3 leaves stage 4's 7 px map a window of 1 px"):
        check_windows([56, 28, 14, 7], 3)


def test_a_map_the_window_cannot_hold_is_refused():
    """Refused at the run's input size, before any data is read: 52 px gives Swin a 13 px map, which no window from
    2 to 7 tiles; ConvNeXt's 3 kernel on 224 px leaves its 7 px stage 1 px windows."""
    with pytest.raises(ConfigError, match=r"window_size=7 leaves stage 1's 13 px map a window of 1 px"):
        check_config(compose(["model=swin_t", "scale.input_size=52"]))
    with pytest.raises(ConfigError, match=r"kernel_size=3 leaves stage 4's 7 px map"):
        check_config(compose(["scale=paper", "+step=move_up_dwconv", "+delta=[window_attention]"]))


def test_composes_from_move_up_dwconv_on_and_is_refused_before():
    """Every block's stride-1 spatial conv becomes attention, from the step that puts the spatial conv first;
    before it the check names the fix. Under stride downsampling each later stage's first block keeps its conv."""
    for step in STEPS:
        cfg = compose([f"+step={step}", "+delta=[window_attention]"])
        assert cfg.name == f"{step}@+window_attention"
        if ORDER[step] < ORDER["move_up_dwconv"]:
            with pytest.raises(ConfigError, match=r"spatial_position='middle'.*from the move_up_dwconv step on"):
                check_config(cfg)
            continue
        check_config(cfg)
        with torch.device("meta"):
            net = build_model(cfg)
        blocks = [block for stage in net.stages for block in stage.blocks]
        mixers = [block for block in blocks if isinstance(block.branch.spatial, WindowMixer)]
        strided = 0 if cfg.model.downsampling == "separate" else 3
        assert len(mixers) == len(blocks) - strided == 18 - strided, step
        assert [m.branch.spatial.shifted for m in mixers[:3]] == [False, True, False]  # stage 1: Swin's alternation


def test_bias_tables_are_kept_out_of_weight_decay():
    """As Swin trains them (timm's no_weight_decay): the tables join the norms and biases' group."""
    cfg = compose(["+step=separate_downsampling", "+delta=[window_attention]"])
    net = build_model(cfg)
    optimizer = build_optimizer(net, cfg.recipe, lr=1e-3)
    undecayed = {id(p) for group in optimizer.param_groups if group["weight_decay"] == 0 for p in group["params"]}
    tables = [p for name, p in net.named_parameters() if name.endswith("relative_position_bias_table")]
    assert len(tables) == 18 and all(id(p) in undecayed for p in tables)
    assert all(id(p) not in undecayed for name, p in net.named_parameters() if name.endswith("qkv.weight"))


@pytest.mark.parametrize("fused", [False, True])
def test_flops_count_the_attention_matmuls(fused):
    """fvcore counts q @ k and attn @ v as matmuls; fused into scaled_dot_product_attention, our handle counts the
    same. By hand, on a 12 px map (four 6 x 6 windows of 36 tokens, 8 channels a head), in multiply-adds."""
    ours = mixer(shifted=True)
    ours.attn.fused_attn = fused
    tokens, windows, window_tokens = 12 * 12, 4, 36
    linear = tokens * DIM * 3 * DIM + tokens * DIM * DIM  # qkv and the output projection
    products = 2 * windows * HEADS * window_tokens * window_tokens * (DIM // HEADS)  # scores and weighted sum
    counted = complexity(nn.Sequential(Permute([0, 2, 3, 1]), ours), input_size=12, in_chans=DIM)
    assert round(counted.gflops * 1e9) == linear + products


def test_swin_t_is_timm_swin_tiny():
    """At 224 px with full widths: timm's swin_tiny_patch4_window7_224, weight for weight (28,288,354 params; 4.5
    GFLOPs as the paper and timm count it)."""
    ours = build_model(compose([*PAPER_SETTING, "model=swin_t"]))
    reference = timm.create_model("swin_tiny_patch4_window7_224", pretrained=False)
    assert count_params(ours) == count_params(reference) == 28_288_354
    assert round(complexity(ours, 224).gflops, 1) == 4.5
    ours.load_state_dict(reference.state_dict())
    same_logits(reference, ours, 224, atol=1e-4)


@pytest.mark.parametrize(("name", "timm_name"), [("swin_s", "swin_small_patch4_window7_224"),
                                                 ("swin_b", "swin_base_patch4_window7_224")])
def test_swin_s_and_b_have_timm_shapes(name, timm_name):
    with torch.device("meta"):
        ours = build_model(compose([*PAPER_SETTING, f"model={name}"]))
        reference = timm.create_model(timm_name, pretrained=False)
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in reference.state_dict().items()}


def test_swin_at_the_proxy():
    """The proxy's width multiplier (4 channels a head), windows fitted to its 12, 6, 3 and 2 px maps (6, 6, 3, 2,
    shifted only where a map holds more than one window), Swin's stochastic depth; a named model, not a step."""
    cfg = compose(["model=swin_t"])
    check_config(cfg)
    assert (cfg.name, cfg.step, cfg.model_name, cfg.recipe.name) == ("swin_t", None, "swin_t", "modern")
    assert [compose([f"model={m}"]).recipe.stochastic_depth for m in ("swin_t", "swin_s", "swin_b")] == [0.2, 0.3, 0.5]
    net = build_model(cfg)
    assert [stage.blocks[0].input_resolution[0] for stage in net.layers] == swin_stage_sizes(48, 4, 4) == [12, 6, 3, 2]
    assert [stage.blocks[0].attn.window_size[0] for stage in net.layers] == [6, 6, 3, 2]
    assert [block.shift_size for stage in net.layers for block in stage.blocks if any(block.shift_size)] == [(3, 3)]
    assert [stage.blocks[0].attn.qkv.in_features // stage.blocks[0].attn.num_heads for stage in net.layers] == [4] * 4
    assert net(torch.randn(2, 3, 48, 48)).shape == (2, 10)
    assert net(torch.randn(1, 3, 224, 224)).shape == (1, 10)  # the record's gflops_224 counts it at 224 px


def test_swin_is_its_own_row_and_the_roadmap_figure_goal(tmp_path):
    """A named model in an ablation table is itself, not the reference's deltas all reverted; the roadmap figure's
    goal line averages Swin-T's records at the roadmap's scale only."""
    base = {"status": "completed", "regime": "resnet50", "scale": "proxy", "data": "FashionMNISTData",
            "input_size": 48, "top5": 99.0, "params": 1, "gflops": 0.004, "gflops_224": 0.1,
            "train_images_per_second": 100.0, "peak_memory_mb": 1.0, "device": "cpu"}
    records = [{**base, "name": "separate_downsampling", "step": "separate_downsampling", "model_name": None,
                "deltas": ["modern_recipe", "separate_downsampling"], "seed": s, "top1": 86.0} for s in range(3)]
    records += [{**base, "name": "swin_t", "step": None, "model_name": "swin_t", "deltas": [], "seed": s,
                 "top1": 85.0 + s} for s in range(3)]
    rows = {row["name"]: row for row in compare(records, "separate_downsampling")}
    assert rows["swin_t"]["change"] == "swin_t" and rows["swin_t"]["delta_top1_mean"] == pytest.approx(0.0)
    for record in [*records, {**records[-1], "seed": 7, "top1": 10.0, "scale": "paper"}]:
        path = tmp_path / record["scale"] / f"{record['name']}-seed{record['seed']}.json"
        path.parent.mkdir(exist_ok=True)
        path.write_text(json.dumps(record))
    goal = goal_runs(tmp_path, [{"regime": "resnet50", "scale": "proxy", "data": "FashionMNISTData",
                                 "input_size": 48}])
    assert (goal["seeds"], goal["top1_mean"], goal["top1_sd"], goal["paper_top1"]) == (3, 86.0, 1.0, 81.3)
