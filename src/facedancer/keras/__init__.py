"""Keras 2 HDF5 files without TensorFlow: read the graph and weights, match layers, convert the layout."""

from facedancer.keras.h5 import KerasGraph, Layer, read_keras
from facedancer.keras.match import Matcher, conv_weights, dense_weights, input_shape, norm_weights, prefixed, sublayers

__all__ = [
    "KerasGraph",
    "Layer",
    "Matcher",
    "conv_weights",
    "dense_weights",
    "input_shape",
    "norm_weights",
    "prefixed",
    "read_keras",
    "sublayers",
]
