"""What ``train --resume RUN --set key=value`` may change, so that a run's config.yaml is always what ran.

Some settings are fixed for the life of a run, and changing one is refused with one line naming it:

- ``generator.*``, ``discriminator.*``, ``identity.*``: the checkpoint's weights are those networks';
- ``train.batch_size`` and ``train.seed``: the data position counts batches of that size in the order the
  seed draws (and the seed draws the validation split and the augmentation), so another value would
  silently remap where the run is in its data;
- ``data.val_identities``: it decides which identities are trained on;
- ``train.out_dir``: a resumed run stays in its own directory.

(The dataset itself must be the same too: the checkpoint records its manifest checksum, so ``data.root``
may move but not change; see ``Trainer.load``.) Everything else applies from the resumed step on. Adam's
``lr``, ``betas`` and ``eps`` and the schedule's ``lr_decay``/``lr_decay_steps`` live in the optimiser
and scheduler state that the checkpoint restores, so the trainer writes the new values into them
(``GAN.apply_optimiser_settings``). Every change is printed as a warning and recorded in the run's
``metrics.jsonl`` resume marker, and config.yaml holds the settings the run now uses.
"""

from __future__ import annotations

from typing import Any

from facedancer.errors import ConfigError

#: setting prefix -> why it cannot change on resume
FIXED = {
    "generator.": "the checkpoint holds weights for the recorded networks",
    "discriminator.": "the checkpoint holds weights for the recorded networks",
    "identity.": "the run was trained against the recorded identity encoder",
    "train.batch_size": "the data position counts batches of the recorded size",
    "train.seed": "the seed draws the data order, the validation split and the augmentation",
    "data.val_identities": "it decides which identities the run trains on",
    "train.out_dir": "a resumed run stays in its own directory",
}
#: settings held in the restored optimiser and scheduler state, which the trainer rewrites
OPTIMISER = ("train.lr", "train.betas", "train.eps", "train.lr_decay", "train.lr_decay_steps")


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"train": {"lr": 1}}`` -> ``{"train.lr": 1}``; lists and tuples compare as lists."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and not (value and all(isinstance(k, int) for k in value)):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = list(value) if isinstance(value, tuple) else value
    return flat


def changes(recorded: dict[str, Any], given: dict[str, Any]) -> dict[str, list[Any]]:
    """Every setting that differs between the run's recorded config and the resumed one: ``[old, new]``."""
    old, new = flatten(recorded), flatten(given)
    return {k: [old.get(k), new.get(k)] for k in sorted(old.keys() | new.keys()) if old.get(k) != new.get(k)}


def check(changed: dict[str, list[Any]], run_dir: object) -> None:
    """Refuse a change of a fixed setting, naming it."""
    for key, (old, new) in changed.items():
        why = fixed(key)
        if why is not None:
            raise ConfigError(
                f"--resume {run_dir}: {key} cannot change ({old!r} -> {new!r}) because {why}; "
                "drop that --set, or start a new run"
            )


def fixed(key: str) -> str | None:
    """Why ``key`` cannot change on resume (None: it can)."""
    for prefix, why in FIXED.items():
        if key == prefix or (prefix.endswith(".") and key.startswith(prefix)):
            return why
    return None


def describe(changed: dict[str, list[Any]]) -> str:
    """One line for the user: ``train.lr 0.0005 -> 0.0001, train.steps 200 -> 400``."""
    return ", ".join(f"{k} {old!r} -> {new!r}" for k, (old, new) in changed.items())
