"""Training: the data, the paper's step, and the run around it.

    prepare.py, dataset_format.py    ``facedancer prepare`` and the format of what it writes
    data.py, feed.py                 crops, pairs and augmentation; one process's micro-batches
    losses.py, ifsr.py, vgg.py       the loss terms (PAPER.md §2-3)
    gan.py                           the paper's step: the losses of a micro-batch and the D/G update
    guard.py                         the non-finite guard around the update
    trainer.py                       one process's state: networks, feed, step count, checkpoints
    loop.py, hooks.py                the loop, and the logs, validation and checkpoints around it
    run.py, resume.py                a run: its directory and config, what a resume may change, ``train()``
    checkpoint.py, monitor.py        the files a run writes: checkpoints, metrics and TensorBoard
    distributed.py                   data parallelism over torch.distributed
    calibrate.py                     the IFSR pre-study (``facedancer calibrate-ifsr``)

The settings are the ``data`` and ``train`` sections of a preset (``facedancer.presets``). Submodules are
imported where used (the trainer pulls in tensorboard and the identity encoders).
"""
