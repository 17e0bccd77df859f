"""CIFAR ResNet (He et al. 2016, section 4.2): depth 6n+2, three stages of n basic blocks, widths w, 2w, 4w.

The base width is w = 16 x ``width``. Convs have no bias (BatchNorm follows every one). Where a block changes shape
(the first block of stages 2 and 3) the shortcut is option B, a strided 1x1 conv projection followed by BatchNorm;
everywhere else it is the identity. The two projections cost 2,752 parameters more than the paper's option A
(zero-padding): on CIFAR-10 ResNet-20 has 272,474 parameters (269,722 with option A) and ResNet-56 has 855,770
(853,018). Global adaptive average pooling lets the same network run on 32x32 CIFAR, 8x8 digits and 1-D signals
(``spatial_dims=1``).
"""

from __future__ import annotations

from torch import nn

from tuneall.models._registry import register_builtin, scaled

BASE_WIDTH = 16


def _layers(spatial_dims: int):
    """(conv, batchnorm, global pool) classes for images (2) or signals (1)."""
    if spatial_dims == 2:
        return nn.Conv2d, nn.BatchNorm2d, nn.AdaptiveAvgPool2d
    return nn.Conv1d, nn.BatchNorm1d, nn.AdaptiveAvgPool1d


class BasicBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN plus shortcut, then ReLU (post-activation, as in the CIFAR ResNet paper)."""

    def __init__(self, c_in: int, c_out: int, stride: int, spatial_dims: int):
        super().__init__()
        conv, bn, _ = _layers(spatial_dims)
        self.conv1 = conv(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = bn(c_out)
        self.conv2 = conv(c_out, c_out, 3, stride=1, padding=1, bias=False)
        self.bn2 = bn(c_out)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(conv(c_in, c_out, 1, stride=stride, bias=False), bn(c_out))

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    def __init__(self, width: float, depth: int, in_channels: int, num_classes: int, spatial_dims: int = 2):
        super().__init__()
        conv, bn, gap = _layers(spatial_dims)
        n = (depth - 2) // 6
        widths = [scaled(BASE_WIDTH * 2**i, width) for i in range(3)]
        self.stem = nn.Sequential(
            conv(in_channels, widths[0], 3, padding=1, bias=False), bn(widths[0]), nn.ReLU(inplace=True)
        )
        blocks: list[nn.Module] = []
        c_in = widths[0]
        for stage, c_out in enumerate(widths):
            for i in range(n):
                blocks.append(BasicBlock(c_in, c_out, 2 if stage > 0 and i == 0 else 1, spatial_dims))
                c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        self.pool = gap(1)
        self.head = nn.Linear(c_in, num_classes)
        for m in self.modules():
            if isinstance(m, (nn.Conv1d, nn.Conv2d)):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        return self.head(self.pool(self.blocks(self.stem(x))).flatten(1))


@register_builtin(
    "resnet",
    default_depth=20,
    valid_depth=lambda d: d >= 8 and (d - 2) % 6 == 0,
    depth_rule="depth = 6n+2 with n >= 1: 8, 14, 20, 26, ...",
    width_unit=1 / BASE_WIDTH,  # one channel of the stem
)
def resnet(width: float, depth: int, in_channels: int, num_classes: int, spatial_dims: int) -> nn.Module:
    """CIFAR ResNet-(6n+2), base width 16 x width, 1x1 projection shortcuts (option B)."""
    return ResNet(width, depth, in_channels, num_classes, spatial_dims)
