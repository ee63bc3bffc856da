"""VGG16 ``pool1``-``pool5`` features for the perceptual loss, without torchvision.

The layer indices match torchvision's ``vgg16().features`` so that its ImageNet state dict
(``vgg16-397923af.pth``, registered as the user asset ``vgg16``) loads directly; the classifier is
ignored. The file is read with ``torch.load(weights_only=True)``: tensors only, never pickled code.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from facedancer.weights_io import load_strict, read_state_dict

#: torchvision's configuration "D": conv widths, "M" = 2x2 max pool
VGG16_LAYERS = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class VGG16Features(nn.Module):
    """Images in [-1, 1] -> the five pooling outputs; frozen, in eval mode.

    ``input`` "imagenet" applies the normalisation torchvision weights were trained with; "raw" feeds the
    [-1, 1] image as is, as the official code fed its Keras VGG16 (PAPER.md §3.1).
    """

    def __init__(self, input: str = "imagenet") -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for spec in VGG16_LAYERS:
            if spec == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(channels, int(spec), 3, padding=1), nn.ReLU(inplace=True)]
                channels = int(spec)
        self.features = nn.Sequential(*layers)
        self.normalise = input == "imagenet"
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False).eval()

    @classmethod
    def from_torchvision(cls, path: str | Path, input: str = "imagenet") -> VGG16Features:
        """torchvision's ImageNet state dict; its ``classifier.*`` tensors are not needed and not read."""
        state = read_state_dict(path, "torchvision VGG16 state dict")
        model = cls(input)
        wanted = {k.removeprefix("features."): v for k, v in state.items() if k.startswith("features.")}
        load_strict(model.features, wanted, path, "torchvision VGG16 features")
        return model

    def train(self, mode: bool = True) -> VGG16Features:
        return super().train(False)  # frozen network: always eval

    def forward(self, images: Tensor) -> list[Tensor]:
        x = ((images + 1) / 2 - self.mean) / self.std if self.normalise else images
        out = []
        for layer in self.features:
            x = layer(x)
            if isinstance(layer, nn.MaxPool2d):
                out.append(x)
        return out
