"""Evaluation: the measuring instruments of PAPER.md §4 (identity retrieval, pose, expression, FID),
the protocols that sample (target, source) pairs, and the runner and report behind ``facedancer eval``.

Each instrument is validated on real data in the tests and ``benchmarks/``: pose estimators on
AFLW2000-3D, the recogniser by retrieval on LFW, FID by its response to blur. Optional dependencies
(dlib, onnxruntime, scipy) come with ``pip install 'facedancer-pytorch[eval]'`` and are imported on use.
"""

from facedancer.eval.expression import expression_error
from facedancer.eval.fid import InceptionFeatures, fid, frechet_distance, statistics
from facedancer.eval.fsanet import FSANet
from facedancer.eval.identity import (
    DlibRecogniser,
    EncoderRecogniser,
    Recogniser,
    cosine_similarity,
    load_recogniser,
    mean_cosine,
    nearest_identity,
    retrieval_top1,
)
from facedancer.eval.pose import ANGLES, PoseEstimator, load_estimator, mae_per_angle, pose_error
from facedancer.eval.protocols import Media, Plan, Sample, SamplingConfig, make_plan
from facedancer.eval.report import Report, merge
from facedancer.eval.runner import Instruments, Partial, RunConfig, Shard, run_shard
from facedancer.eval.tddfa import TDDFA, expression_coefficients

__all__ = [
    "ANGLES",
    "TDDFA",
    "DlibRecogniser",
    "EncoderRecogniser",
    "FSANet",
    "InceptionFeatures",
    "Instruments",
    "Media",
    "Partial",
    "Plan",
    "PoseEstimator",
    "Recogniser",
    "Report",
    "RunConfig",
    "Sample",
    "SamplingConfig",
    "Shard",
    "cosine_similarity",
    "expression_coefficients",
    "expression_error",
    "fid",
    "frechet_distance",
    "load_estimator",
    "load_recogniser",
    "mae_per_angle",
    "make_plan",
    "mean_cosine",
    "merge",
    "nearest_identity",
    "pose_error",
    "retrieval_top1",
    "run_shard",
    "statistics",
]
