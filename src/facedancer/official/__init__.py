"""The authors' released Keras models (PAPER.md §4.2) as facedancer models, converted without TensorFlow."""

from facedancer.official.convert import convert_official
from facedancer.official.load import load_keras_discriminator, load_keras_generator

__all__ = ["convert_official", "load_keras_discriminator", "load_keras_generator"]
