"""The paper's networks in pure torch: no I/O, no OpenCV, nothing from the layers above."""

from facedancer.nn.discriminator import Discriminator, DiscriminatorConfig
from facedancer.nn.fusion import AFFA, FUSION_TYPES, make_fusion
from facedancer.nn.generator import PAPER_FUSION, Generator, GeneratorConfig
from facedancer.nn.layers import AdaIN, ResDown, ResUp, keras_init_, parameter_count, weights_digest
from facedancer.nn.mapping import MappingNetwork
from facedancer.nn.pretrained import Pretrained

__all__ = [
    "AFFA",
    "FUSION_TYPES",
    "PAPER_FUSION",
    "AdaIN",
    "Discriminator",
    "DiscriminatorConfig",
    "Generator",
    "GeneratorConfig",
    "MappingNetwork",
    "Pretrained",
    "ResDown",
    "ResUp",
    "keras_init_",
    "make_fusion",
    "parameter_count",
    "weights_digest",
]
