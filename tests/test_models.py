"""Every registered family builds, runs forward and backward on every dataset shape, and counts parameters exactly."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from tuneall.core.errors import ConfigError
from tuneall.models import check_arch, create_model, get_family, list_models, param_count

SHAPES = [(3, 32, 32), (1, 8, 8), (1, 40)]  # CIFAR, digits, MNIST-1D


def _valid_depths(name: str, n: int) -> list[int]:
    fam = get_family(name)
    return [d for d in range(1, 200) if fam.valid_depth(d)][:n]


def _arch_cases():
    cases = []
    for name in list_models():
        shallowest, second = _valid_depths(name, 2)
        cases += [(name, 0.5, shallowest), (name, 1.0, None), (name, 1.25, second)]
    return cases


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("name,width,depth", _arch_cases())
def test_forward_backward_every_family_and_shape(name, width, depth, shape):
    torch.manual_seed(0)
    model = create_model(name, width, depth, in_channels=shape[0], num_classes=7, spatial_dims=len(shape) - 1)
    x = torch.randn(4, *shape)
    out = model(x)
    assert out.shape == (4, 7)
    assert torch.isfinite(out).all()
    F.cross_entropy(out, torch.tensor([0, 1, 2, 3])).backward()
    for pname, p in model.named_parameters():
        # Every parameter must be on the gradient path (a None grad would be dead weight counted in |S|).
        assert p.grad is not None, pname
        assert torch.isfinite(p.grad).all(), pname
    assert any(p.grad.abs().sum() > 0 for p in model.parameters())


@pytest.mark.parametrize("width,expected", [(0.5, 24_458), (1.0, 94_986), (2.0, 374_282)])
def test_cnn3_counts_match_seed_000(width, expected):
    assert param_count("cnn3", width, 3, 3, 10, 2) == expected


@pytest.mark.parametrize(
    "name,width,depth,expected",
    [
        # Option-B projections add 2 x (1x1 conv + BN) = 2,752 to the option-A counts 269,722 / 853,018 / 1,727,962.
        ("resnet", 1.0, 20, 272_474),
        ("resnet", 1.0, 56, 855_770),
        ("resnet", 1.0, 110, 1_730_714),
        # Published WRN sizes: WRN-28-10 36.5M, WRN-16-8 11.0M, WRN-40-4 8.9M.
        ("wrn", 10.0, 28, 36_479_194),
        ("wrn", 8.0, 16, 10_961_370),
        ("wrn", 4.0, 40, 8_949_210),
    ],
)
def test_published_param_counts(name, width, depth, expected):
    assert param_count(name, width, depth, 3, 10, 2) == expected


def test_resnet_layer_structure():
    # ResNet-20: stem + 18 block convs are 3x3, plus exactly two 1x1 projections where the stage changes shape.
    model = create_model("resnet", 1.0, 20)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert sum(m.kernel_size == (3, 3) for m in convs) == 19
    assert sum(m.kernel_size == (1, 1) for m in convs) == 2
    assert all(m.bias is None for m in convs)
    assert model.head.in_features == 64


def test_wrn_layer_structure():
    # WRN-16-4 (n = 2): channels 16, 64, 128, 256; a projection in every group because all three change shape.
    model = create_model("wrn", 4.0, 16)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert [m.out_channels for m in convs if m.kernel_size == (1, 1)] == [64, 128, 256]
    assert sum(m.kernel_size == (3, 3) for m in convs) == 1 + 6 * 2
    assert all(m.bias is None for m in convs)
    assert convs[0].out_channels == 16  # the stem is not widened


def test_one_d_variant_uses_conv1d():
    # Same structure on signals: every 3x3 kernel becomes a 3-tap one, so the 1-D network is strictly smaller.
    assert param_count("resnet", 1.0, 20, 1, 10, 1) < param_count("resnet", 1.0, 20, 1, 10, 2)
    assert all(isinstance(m, nn.Conv1d) for m in create_model("wrn", 1.0, 10, 1, 10, 1).modules()
               if isinstance(m, (nn.Conv1d, nn.Conv2d)))


@pytest.mark.parametrize("name,unit", [("resnet", 1 / 16), ("wrn", 1 / 16)])
def test_width_unit_is_one_channel(name, unit):
    assert get_family(name).width_unit == unit
    # Every grid width builds integral channel counts: 7 units give 7 (resnet stem) or 7 (wrn group 1) channels.
    model = create_model(name, 7 * unit, None)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    first_scaled = convs[0] if name == "resnet" else convs[1]
    assert first_scaled.out_channels == 7


def test_unknown_family_lists_valid_ones():
    with pytest.raises(ConfigError) as err:
        create_model("resnet18", 1.0)
    msg = str(err.value)
    assert "resnet18" in msg and all(name in msg for name in list_models())


@pytest.mark.parametrize("name,depth", [("resnet", 21), ("resnet", 2), ("resnet", 0), ("wrn", 28 + 6 - 1),
                                        ("wrn", 4), ("wrn", 20)])
def test_invalid_depth(name, depth):
    with pytest.raises(ConfigError, match=f"depth {depth} is not valid for family '{name}'"):
        create_model(name, 1.0, depth)


@pytest.mark.parametrize("name", ["resnet", "wrn"])
def test_valid_depth_rules(name):
    offset = 2 if name == "resnet" else 4
    assert _valid_depths(name, 4) == [6 * n + offset for n in (1, 2, 3, 4)]
    assert check_arch(name, 1.0, None) == get_family(name).default_depth


@pytest.mark.parametrize("width", [0, 0.0, -1.0, math.nan, math.inf])
@pytest.mark.parametrize("name", ["cnn3", "resnet", "wrn"])
def test_bad_width(name, width):
    with pytest.raises(ConfigError, match="width must be"):
        create_model(name, width)


def test_bad_spatial_dims():
    with pytest.raises(ConfigError, match="spatial_dims"):
        create_model("wrn", 1.0, 10, spatial_dims=3)
