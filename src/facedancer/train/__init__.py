"""Training: dataset preparation, pair sampling and augmentation, the losses, IFSR and its calibration,
and the trainer (AMP, DDP, exact resume, logging).

Submodules are imported where used (``facedancer.train.trainer`` pulls in tensorboard and the identity
encoders), so that ``facedancer.presets`` can import the config dataclasses without that weight.
"""
