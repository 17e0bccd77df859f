"""The small CNN of seed 000: 3x3 convs with BatchNorm and ReLU, global average pooling, a linear head.

Channels are (32, 64, 128) x width, with 2x2 max-pooling after every conv but the last. Convs keep their bias, which
is what gives the seed's counts: 24,458 / 94,986 / 374,282 parameters at w = 0.5 / 1 / 2 on CIFAR-10. Depths other
than 3 continue the channel progression (doubling, capped at 256 x width) so the family also has a depth knob.
"""

from __future__ import annotations

from torch import nn

from tuneall.models._registry import register_builtin, scaled

BASE_CHANNELS = (32, 64, 128, 256)


def _layers(spatial_dims: int):
    if spatial_dims == 2:
        return nn.Conv2d, nn.BatchNorm2d, nn.MaxPool2d, nn.AdaptiveAvgPool2d
    return nn.Conv1d, nn.BatchNorm1d, nn.MaxPool1d, nn.AdaptiveAvgPool1d


class CNN(nn.Module):
    def __init__(self, width: float, depth: int, in_channels: int, num_classes: int, spatial_dims: int = 2):
        super().__init__()
        conv, bn, pool, gap = _layers(spatial_dims)
        layers: list[nn.Module] = []
        c_in = in_channels
        for i in range(depth):
            c_out = scaled(BASE_CHANNELS[min(i, len(BASE_CHANNELS) - 1)], width)
            layers += [conv(c_in, c_out, 3, padding=1), bn(c_out), nn.ReLU(inplace=True)]
            if i < depth - 1:
                # ceil_mode keeps pooling valid on inputs that are already 1 pixel wide (8x8 digits at depth >= 4).
                layers.append(pool(2, ceil_mode=True))
            c_in = c_out
        self.features = nn.Sequential(*layers)
        self.pool = gap(1)
        self.head = nn.Linear(c_in, num_classes)

    def forward(self, x):
        return self.head(self.pool(self.features(x)).flatten(1))


@register_builtin(
    "cnn3", default_depth=3, valid_depth=lambda d: 1 <= d <= 8, depth_rule="1 <= depth <= 8", width_unit=1 / 32
)
def cnn3(width: float, depth: int, in_channels: int, num_classes: int, spatial_dims: int) -> nn.Module:
    """Seed 000's 3-conv CNN with a width multiplier (1-D variant for signals)."""
    return CNN(width, depth, in_channels, num_classes, spatial_dims)
