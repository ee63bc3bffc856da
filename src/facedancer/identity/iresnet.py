"""ArcFace iResNet-50/100 in insightface's ``arcface_torch`` layout, loading a user's ``backbone.pth``.

The module tree reproduces arcface_torch's key names exactly (``conv1``, ``bn1``, ``prelu``,
``layer1.0.{bn1,conv1,bn2,prelu,conv2,bn3,downsample.0,downsample.1}``, ..., ``bn2``, ``fc``, ``features``),
so a released state dict loads strictly. Input is RGB normalised to (x - 0.5) / 0.5, as in insightface's
own inference script. Dropout (training only) has no weights and is left out.

Features for IFSR are the stem (``stem``: conv1-bn1-prelu) and every residual block (``layer2.3``, ...).
The paper's IFSR margins belong to a different network (Keras ResNet-50, PAPER.md §1.1 port note):
with these encoders the margins must be recalibrated.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from functools import partial
from pathlib import Path

import torch
from torch import Tensor, nn

from facedancer.identity.base import IdentityEncoder, Stage
from facedancer.weights_io import load_strict, read_state_dict

#: residual blocks per stage, as insightface's iresnet50 / iresnet100
LAYOUTS: dict[int, tuple[int, int, int, int]] = {50: (3, 4, 14, 3), 100: (3, 13, 30, 3)}
STAGE_WIDTHS = (64, 128, 256, 512)
#: spatial side of layer4's output at 112 input
FINAL_SIDE = 7
BN_EPS = 1e-5


def conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride, padding=1, bias=False)


class IBasicBlock(nn.Module):
    """Pre-activation-style residual block: BN-conv-BN-PReLU-conv(stride)-BN, plus the shortcut."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin, eps=BN_EPS)
        self.conv1 = conv3x3(cin, cout)
        self.bn2 = nn.BatchNorm2d(cout, eps=BN_EPS)
        self.prelu = nn.PReLU(cout)
        self.conv2 = conv3x3(cout, cout, stride)
        self.bn3 = nn.BatchNorm2d(cout, eps=BN_EPS)
        self.downsample = None
        if stride != 1 or cin != cout:
            shortcut = nn.Conv2d(cin, cout, 1, stride, bias=False)
            self.downsample = nn.Sequential(shortcut, nn.BatchNorm2d(cout, eps=BN_EPS))

    def forward(self, x: Tensor) -> Tensor:
        out = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        return out + (x if self.downsample is None else self.downsample(x))


class IResNet(IdentityEncoder):
    """ArcFace iResNet with a 512-d raw embedding. Build it with :meth:`from_checkpoint`."""

    embedding_dim = 512

    def __init__(self, depth: int) -> None:
        super().__init__()
        if depth not in LAYOUTS:
            raise ValueError(f"iResNet depth must be one of {sorted(LAYOUTS)}, got {depth}")
        self.depth = depth
        self.name = f"arcface-iresnet{depth}"
        self.conv1 = conv3x3(3, STAGE_WIDTHS[0])
        self.bn1 = nn.BatchNorm2d(STAGE_WIDTHS[0], eps=BN_EPS)
        self.prelu = nn.PReLU(STAGE_WIDTHS[0])
        cin = STAGE_WIDTHS[0]
        for i, (blocks, width) in enumerate(zip(LAYOUTS[depth], STAGE_WIDTHS, strict=True), start=1):
            stage = [IBasicBlock(cin, width, 2)] + [IBasicBlock(width, width, 1) for _ in range(blocks - 1)]
            setattr(self, f"layer{i}", nn.Sequential(*stage))
            cin = width
        self.bn2 = nn.BatchNorm2d(cin, eps=BN_EPS)
        self.fc = nn.Linear(cin * FINAL_SIDE * FINAL_SIDE, self.embedding_dim)
        # arcface_torch calls the final BatchNorm1d ``features``; registered under that name for the
        # state-dict keys, while ``self.features`` stays IdentityEncoder's method (class attributes win)
        self.features = nn.BatchNorm1d(self.embedding_dim, eps=BN_EPS)  # type: ignore[method-assign]
        self.feature_names = ("stem", *(name for name, _ in self._blocks()))

    @property
    def embedding_bn(self) -> nn.BatchNorm1d:
        """The final BatchNorm1d (state-dict prefix ``features.``)."""
        return self._modules["features"]

    def _blocks(self) -> Iterator[tuple[str, nn.Module]]:
        for i in range(1, len(STAGE_WIDTHS) + 1):
            for j, block in enumerate(getattr(self, f"layer{i}")):
                yield f"layer{i}.{j}", block

    def _stem(self, x: Tensor) -> Tensor:
        return self.prelu(self.bn1(self.conv1(x)))

    def normalise(self, x: Tensor) -> Tensor:
        return (x - 0.5) / 0.5

    def stages(self) -> Iterator[tuple[str, Stage]]:
        yield "stem", self._stem
        yield from self._blocks()

    def head(self, h: Tensor) -> Tensor:
        return self.embedding_bn(self.fc(torch.flatten(self.bn2(h), 1)))

    @classmethod
    def from_checkpoint(cls, path: str | Path, depth: int) -> IResNet:
        """Load an arcface_torch ``backbone.pth`` (a plain state dict; never unpickles code); frozen.

        Keys must match exactly (a ``module.`` prefix from DistributedDataParallel is dropped);
        ``num_batches_tracked`` may be absent. Anything else is a :class:`CheckpointError` naming it.
        """
        state = read_state_dict(path)
        with torch.device("meta"):  # no random init: every tensor comes from the file
            net = cls(depth)
        for key, value in net.state_dict().items():
            if key.endswith("num_batches_tracked"):  # a training counter, absent from some releases
                state.setdefault(key, torch.zeros_like(value, device="cpu"))
        load_strict(net, state, path, f"iResNet-{depth}", partial(_depth_hint, depth=depth))
        return net.freeze()


def _stage_sizes(keys: Iterable[str]) -> tuple[int, ...]:
    """Blocks per stage found in a state dict's keys."""
    found = [k.split(".")[:2] for k in keys if k.startswith("layer")]
    return tuple(1 + max((int(b) for s, b in found if s == f"layer{i}"), default=-1) for i in range(1, 5))


def _depth_hint(state: Mapping[str, Tensor], depth: int) -> str:
    """What a misfit's blocks per stage say: a released backbone of the other depth is the usual mistake."""
    sizes = _stage_sizes(state)
    if sizes == LAYOUTS[depth]:
        return ""
    other = [d for d, layout in LAYOUTS.items() if layout == sizes]
    hint = f"; it looks like iResNet-{other[0]} (use arcface-iresnet{other[0]})" if other else ""
    return f"; blocks per stage {sizes}, expected {LAYOUTS[depth]}{hint}"
