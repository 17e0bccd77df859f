"""Wide ResNet (Zagoruyko & Komodakis 2016): WRN-d-k with depth d = 6n+4 and widen factor k = ``width``.

Channels are 16 (stem, not widened), 16k, 32k, 64k; three groups of n pre-activation basic blocks
(BN-ReLU-conv3x3-BN-ReLU-conv3x3), a strided 1x1 conv projection shortcut wherever a block changes shape, and a
final BN-ReLU before global average pooling and the linear head. Convs have no bias and there is no dropout. This is
the reference implementation's layout: WRN-28-10 has 36,479,194 parameters on CIFAR-10. Fractional widen factors
round 16k to the nearest channel, so the width grid (``width_unit``) is 1/16.
"""

from __future__ import annotations

from torch import nn

from tuneall.models._registry import register_builtin, scaled
from tuneall.models.resnet import _layers

STEM_WIDTH = 16


class PreActBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int, spatial_dims: int):
        super().__init__()
        conv, bn, _ = _layers(spatial_dims)
        self.bn1 = bn(c_in)
        self.conv1 = conv(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn2 = bn(c_out)
        self.conv2 = conv(c_out, c_out, 3, stride=1, padding=1, bias=False)
        self.relu = nn.ReLU(inplace=False)  # bn1's input is also the identity shortcut, so it must not be overwritten
        self.shortcut: nn.Module | None = None
        if stride != 1 or c_in != c_out:
            self.shortcut = conv(c_in, c_out, 1, stride=stride, bias=False)

    def forward(self, x):
        pre = self.relu(self.bn1(x))
        out = self.conv2(self.relu(self.bn2(self.conv1(pre))))
        # As in the reference code, the projection sees the pre-activated input; the identity sees x itself.
        return out + (x if self.shortcut is None else self.shortcut(pre))


class WideResNet(nn.Module):
    def __init__(self, width: float, depth: int, in_channels: int, num_classes: int, spatial_dims: int = 2):
        super().__init__()
        conv, bn, gap = _layers(spatial_dims)
        n = (depth - 4) // 6
        self.stem = conv(in_channels, STEM_WIDTH, 3, padding=1, bias=False)
        blocks: list[nn.Module] = []
        c_in = STEM_WIDTH
        for group in range(3):
            c_out = scaled(STEM_WIDTH * 2**group, width)
            for i in range(n):
                blocks.append(PreActBlock(c_in, c_out, 2 if group > 0 and i == 0 else 1, spatial_dims))
                c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        self.final = nn.Sequential(bn(c_in), nn.ReLU(inplace=True))
        self.pool = gap(1)
        self.head = nn.Linear(c_in, num_classes)
        for m in self.modules():
            if isinstance(m, (nn.Conv1d, nn.Conv2d)):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        return self.head(self.pool(self.final(self.blocks(self.stem(x)))).flatten(1))


@register_builtin(
    "wrn",
    default_depth=16,
    valid_depth=lambda d: d >= 10 and (d - 4) % 6 == 0,
    depth_rule="depth = 6n+4 with n >= 1: 10, 16, 22, 28, ...",
    width_unit=1 / STEM_WIDTH,  # one channel of the first widened group (16k)
)
def wrn(width: float, depth: int, in_channels: int, num_classes: int, spatial_dims: int) -> nn.Module:
    """Wide ResNet-(6n+4)-k with widen factor k = width, pre-activation blocks, 1x1 projection shortcuts."""
    return WideResNet(width, depth, in_channels, num_classes, spatial_dims)
