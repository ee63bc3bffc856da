"""The FaceDancer trainer: the paper's step in one readable method, and the run around it.

One optimiser step (PAPER.md §3.1-3.4, the official code unless a config option says otherwise):

    z_s = E(X_s), z_t = E(X_t)                    frozen identity encoder on augmented images
    Y   = G(X_t, z_s)
    L_D = adv_D(D(X_s), D(Y.detach())) + R1(X_s)  real images are the *sources*
    L_G = adv_G(D(Y)) + 5 rec + 10 id + 1 cyc(G(Y, z_t)) + 0.2 p + 1 IFSR
    simultaneous (official): both losses from this one pass, G's adversarial term through D's
    pre-update weights, then both Adam steps; alternating: D steps first, then G against the new D.

Around it: Adam(1e-4, betas (0, 0.99), eps 1e-7) with lr x0.97 per 100k steps (continuous), gradient
accumulation, AMP (bf16, or fp16 with a GradScaler; CPU stays fp32), channels_last, optional
torch.compile of G, data parallelism over torch.distributed (``distributed.py``), a numbered run
directory with its resolved ``config.yaml``, ``metrics.jsonl`` and TensorBoard logs, periodic
validation, atomic checkpoints every N steps and on SIGTERM/SIGINT, exact resume, and a guard that stops
on a non-finite loss *before* the optimiser step so the last checkpoint stays good.

Resume takes the newest readable checkpoint (an unreadable one is named in a warning and the previous one
used), applies the settings ``resume.py`` allows to change and refuses the others, and marks the
resumption in ``metrics.jsonl``. Unreadable crops are skipped with a warning and counted
(``data/unreadable`` in the metrics); a write that fails (a full disk) stops the run with one line.
"""

from __future__ import annotations

import contextlib
import math
import random
import re
import shutil
import signal
import threading
import warnings
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import yaml
from safetensors.torch import load_file
from torch import Tensor, nn
from torch.utils.data import DataLoader

from facedancer import assets
from facedancer.atomic import atomic_path
from facedancer.config import from_dict, to_dict
from facedancer.errors import CheckpointError, ConfigError, InputError, OutputError, TrainingError
from facedancer.identity import load_encoder, load_model_encoder, prepare
from facedancer.io.failures import reason
from facedancer.nn import Discriminator, Generator
from facedancer.nn.pretrained import WEIGHTS_NAME, Pretrained, read_meta
from facedancer.presets import Preset
from facedancer.train import checkpoint, distributed
from facedancer.train import resume as resume_rules
from facedancer.train.data import (
    MAX_UNREADABLE_IN_A_ROW,
    CropIndex,
    PairDataset,
    PairSampler,
    augment,
    ignore_stop_signals,
    seeded,
    validation_pairs,
)
from facedancer.train.ifsr import IFSRLoss, Margins
from facedancer.train.losses import (
    CycleLoss,
    EncoderPass,
    IdentityLoss,
    PerceptualLoss,
    R1Penalty,
    ReconstructionLoss,
    make_adversarial,
    same_pair_mean,
    shallow_blocks,
)
from facedancer.train.monitor import Monitor
from facedancer.train.vgg import VGG16Features

CONFIG_FILE = "config.yaml"
#: the validation identities of a run, one per line: never trained on, so fair to evaluate on
HELD_OUT = "held_out_identities.txt"
_TARGET_STREAM, _SOURCE_STREAM = 0, 1


@dataclass
class Batch:
    target: Tensor
    source: Tensor
    same: Tensor
    z_source: Tensor
    z_target: Tensor
    #: the target's encoder blocks that IFSR and the perceptual loss compare against
    target_features: dict[str, Tensor]


@dataclass
class Result:
    run_dir: Path
    step: int
    #: "finished", or the name of the signal that stopped the run (after its checkpoint was written)
    status: str
    checkpoint: Path | None
    #: crops that could not be read and were replaced by the next readable one
    unreadable: int = 0


def resolve_device(name: str, world: distributed.World) -> torch.device:
    if name == "auto":
        return torch.device(f"cuda:{world.local_rank}" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"train.device={name!r} is not a device (auto, cpu, cuda, cuda:N)") from None
    if device.type not in ("cpu", "cuda") or (device.type == "cuda" and not torch.cuda.is_available()):
        raise ConfigError(f"train.device={name!r} is not available here (auto picks what is)")
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", world.local_rank)
    return device


def resolve_precision(name: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype (None = fp32). bf16 on CPU is ~290x slower here, so CPU runs must be fp32."""
    if name == "auto":
        return torch.bfloat16 if device.type == "cuda" and torch.cuda.is_bf16_supported() else None
    if name != "fp32" and device.type != "cuda":
        raise ConfigError(f"train.precision={name} needs a GPU; on {device.type} use fp32 (or auto)")
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[name]


def resolve_perceptual(preset: Preset) -> Preset:
    """Fix ``loss.perceptual: auto`` to what this machine has, so the run's config says what ran."""
    loss = preset.train.loss
    if loss.perceptual != "auto":
        return preset
    choice = "vgg16" if assets.status("vgg16").ok else "identity"
    return replace(preset, train=replace(preset.train, loss=replace(loss, perceptual=choice)))


def new_run_dir(out_dir: str | Path, name: str) -> Path:
    """``out_dir/NNNNN-name``, numbered after the highest existing run (stylegan3's convention)."""
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
        numbers = [int(p.name[:5]) for p in out.iterdir() if p.is_dir() and p.name[:5].isdigit()]
        run = out / f"{max(numbers, default=-1) + 1:05d}-{name or 'run'}"
        run.mkdir()
    except OSError as e:
        raise OutputError(f"cannot create a run directory in {out}: {reason(e)}") from None
    return run


def write_config(preset: Preset, run_dir: Path) -> None:
    with atomic_path(run_dir / CONFIG_FILE) as tmp:
        tmp.write_text(yaml.safe_dump(to_dict(preset), sort_keys=False), encoding="utf-8")


def initialise(generator: Generator, discriminator: Discriminator, model_dir: Path, preset: Preset) -> dict[str, Any]:
    """Load ``train.init``: G from ``model_dir``, D from its ``discriminator/`` (a converted model) or the
    ``discriminator/`` beside it (a training checkpoint's ``generator/``), else D starts from scratch.

    Weights only: the networks must be the preset's, and the identity encoder the model was made for.
    Returns what the run's checkpoints record of where they started (and the weights' licence, which a
    fine-tuned model inherits).
    """
    meta = read_meta(model_dir)
    encoder = meta.get("identity_encoder")
    if encoder and encoder != preset.identity.encoder:
        raise ConfigError(f"--init {model_dir} was made for {encoder}, this preset uses {preset.identity.encoder}")
    inside, beside = model_dir / "discriminator", model_dir.parent / "discriminator"
    d_dir = inside if inside.is_dir() else beside if model_dir.name == "generator" and beside.is_dir() else None
    pairs = [(generator, model_dir, preset.generator)] + (
        [(discriminator, d_dir, preset.discriminator)] if d_dir else []
    )
    for net, directory, config in pairs:
        cls, found = Pretrained.read_config(directory)
        if cls is not type(net):
            raise ConfigError(f"--init {directory} holds a {cls.__name__}, not a {type(net).__name__}")
        differ = [
            f.name
            for f in fields(config)
            if f.name != "keras_init" and getattr(found, f.name) != getattr(config, f.name)
        ]
        if differ:
            raise ConfigError(
                f"--init {directory}: its {cls.__name__} differs from the preset's in {', '.join(differ)} "
                f"({', '.join(f'{k}={getattr(found, k)!r}' for k in differ)}); use a preset or --set that matches"
            )
        net.load_weights(cls.from_pretrained(directory).state_dict(), source=directory)
    if d_dir is None:
        warnings.warn(f"--init {model_dir} has no discriminator: D starts from random weights", stacklevel=2)
    return {"init": str(model_dir), **({"licence": meta["licence"]} if "licence" in meta else {})}


class Trainer:
    def __init__(
        self,
        preset: Preset,
        run_dir: Path,
        world: distributed.World | None = None,
        encoder: nn.Module | None = None,
        resuming: bool = False,
    ) -> None:
        """``resuming``: a checkpoint will be loaded, so ``train.init``'s weights are not (``load`` restores
        what the checkpoints record of them)."""
        cfg = preset.train
        self.preset, self.cfg, self.run_dir = preset, cfg, run_dir
        self.world = world or distributed.World()
        self.device = resolve_device(cfg.device, self.world)
        self.amp_dtype = resolve_precision(cfg.precision, self.device)
        self.channels_last = cfg.channels_last == "on" or (cfg.channels_last == "auto" and self.device.type == "cuda")
        if preset.data.root is None:
            raise ConfigError("data.root is not set: give a folder made by `facedancer prepare` (--set data.root=DIR)")
        crops = CropIndex.open(preset.data.root, preset.data.source)  # a dataset problem shows before any work

        # every RNG a library might draw from in the training path, so that a run is its seed's
        torch.manual_seed(cfg.seed)
        np.random.seed(cfg.seed)
        random.seed(cfg.seed)
        fmt = torch.channels_last if self.channels_last else torch.contiguous_format
        self.generator = Generator(preset.generator)
        self.discriminator = Discriminator(preset.discriminator)
        self.init_meta: dict[str, Any] = {}
        if cfg.init and not resuming:
            self.init_meta = initialise(self.generator, self.discriminator, Path(cfg.init), preset)
        self.generator.to(self.device, memory_format=fmt)
        self.discriminator.to(self.device, memory_format=fmt)
        for model in (self.generator, self.discriminator):
            distributed.broadcast_parameters(model, self.world)
        self.g_forward = torch.compile(self.generator) if cfg.compile else self.generator
        if encoder is None:
            name = preset.identity.encoder
            encoder = load_model_encoder(cfg.init, name) if cfg.init else load_encoder(name)
        self.encoder = encoder.to(self.device)
        self._build_losses()

        adam = {"lr": cfg.lr, "betas": cfg.betas, "eps": cfg.eps}
        self.opt_g = torch.optim.Adam(self.generator.parameters(), **adam)
        self.opt_d = torch.optim.Adam(self.discriminator.parameters(), **adam)
        decay = lambda step: cfg.lr_decay ** (step / cfg.lr_decay_steps)  # noqa: E731
        self.sched_g = torch.optim.lr_scheduler.LambdaLR(self.opt_g, decay)
        self.sched_d = torch.optim.lr_scheduler.LambdaLR(self.opt_d, decay)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype == torch.float16)

        self.train_crops, val_crops = crops.split(preset.data.val_identities, cfg.seed)
        if self.world.main:  # the identities never trained on, for `facedancer eval --identities`
            with atomic_path(run_dir / HELD_OUT) as tmp:
                tmp.write_text("".join(f"{name}\n" for name in val_crops.identity_names()), encoding="utf-8")
        self.dataset = PairDataset(self.train_crops, preset.generator.image_size)
        self._sampler(0)  # fewer crops than a batch is a config error, found before any file is written
        self.val_pairs = validation_pairs(val_crops, preset.data.val_pairs, cfg.seed) if preset.data.val_pairs else []
        self.val_dataset = PairDataset(val_crops, preset.generator.image_size)
        self.step = 0
        self.position = 0  # micro-batches this rank has consumed
        self._batches = None
        self._stop: str | None = None
        self.unreadable: set[str] = set()
        self.monitor = Monitor(run_dir, cfg.tensorboard) if self.world.main else None
        self._resumed: dict[str, Any] | None = None  # the resume marker fit() writes first
        # process-wide switches, set last (after every config check) and restored by close()
        self._deterministic_before = torch.are_deterministic_algorithms_enabled()
        if cfg.deterministic:
            torch.use_deterministic_algorithms(True)
            torch.backends.cudnn.benchmark = False
        elif self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True

    # --- construction ---------------------------------------------------------------------------
    def _build_losses(self) -> None:
        preset, lc = self.preset, self.cfg.loss
        self.adversarial = make_adversarial(lc.adversarial)
        self.r1 = R1Penalty(lc.r1_gamma)
        self.identity = IdentityLoss()
        self.reconstruction = ReconstructionLoss(lc.reconstruction)
        self.cycle = CycleLoss()
        if lc.perceptual == "auto":
            raise ConfigError("resolve loss.perceptual=auto with resolve_perceptual() before building a Trainer")
        self.perceptual = PerceptualLoss(lc.perceptual_scale, official=lc.reconstruction == "official")
        self.vgg = None
        self.perceptual_blocks: list[str] = []
        if lc.perceptual == "vgg16" and lc.perceptual_weight:
            self.vgg = VGG16Features.from_torchvision(assets.resolve("vgg16"), lc.vgg_input).to(self.device)
        elif lc.perceptual == "identity" and lc.perceptual_weight:
            self.perceptual_blocks = lc.identity_blocks or shallow_blocks(self.encoder)
        self.ifsr = None
        if preset.ifsr.enabled:
            if preset.ifsr.margins is None:
                raise ConfigError(
                    f"IFSR is enabled but ifsr.margins is not set for {preset.identity.encoder}: run "
                    "`facedancer calibrate-ifsr` and --set ifsr.margins=FILE (or ifsr.enabled=false)"
                )
            margins = Margins.load(preset.ifsr.margins)
            if margins.encoder != preset.identity.encoder:
                raise ConfigError(
                    f"IFSR margins {preset.ifsr.margins} were measured on {margins.encoder}, "
                    f"but this run uses {preset.identity.encoder}"
                )
            self.ifsr = IFSRLoss(margins.margins, preset.ifsr.scale, preset.ifsr.reduction)
        try:
            self.encode = EncoderPass(self.encoder, [*(self.ifsr.blocks if self.ifsr else []), *self.perceptual_blocks])
        except ValueError as e:
            raise ConfigError(
                f"IFSR margins or loss.identity_blocks do not fit {preset.identity.encoder}: {e}"
            ) from None
        self.weights = {
            "adv": lc.adversarial_weight,
            "rec": lc.reconstruction_weight,
            "id": lc.identity_weight,
            "cyc": lc.cycle_weight,
            "p": lc.perceptual_weight if (self.vgg is not None or self.perceptual_blocks) else 0.0,
            "ifsr": preset.ifsr.weight if self.ifsr else 0.0,
        }

    def _autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    # --- data -----------------------------------------------------------------------------------
    def _sampler(self, start: int) -> PairSampler:
        cfg, data = self.cfg, self.preset.data
        size = len(self.train_crops)
        return PairSampler(size, cfg.batch_size, data.same_ratio, cfg.seed, self.world.rank, self.world.size, start)

    def _loader(self) -> DataLoader:
        workers = self.preset.data.workers
        return DataLoader(
            self.dataset,
            batch_sampler=self._sampler(self.position),
            num_workers=workers,
            pin_memory=self.device.type == "cuda",
            persistent_workers=workers > 0,
            worker_init_fn=ignore_stop_signals if workers else None,
        )

    def _note_unreadable(self, reports: list[str]) -> None:
        """Count and warn about crops the dataset replaced; stop when the dataset is clearly gone."""
        for report in filter(None, reports):
            names = report.split("\n")
            if len(names) >= MAX_UNREADABLE_IN_A_ROW:
                root = self.train_crops.root
                raise InputError(
                    f"{len(names)} crops in a row could not be read ({root / names[0]} ... {names[-1]}): "
                    f"is {root} still there and complete? Rerun `facedancer prepare SRC {root}` to rebuild it"
                )
            for name in names:
                if name in self.unreadable:
                    continue
                self.unreadable.add(name)
                if len(self.unreadable) <= 5:
                    warnings.warn(
                        f"skipping unreadable crop {self.train_crops.root / name} (the next crop takes its place)",
                        stacklevel=2,
                    )
                elif len(self.unreadable) == 6:
                    warnings.warn("more unreadable crops: counted as data/unreadable in metrics.jsonl", stacklevel=2)

    def _to_device(self, x: Tensor) -> Tensor:
        fmt = torch.channels_last if self.channels_last else torch.contiguous_format
        return x.to(self.device, non_blocking=True).contiguous(memory_format=fmt)

    @torch.no_grad()
    def _embed(self, images: Tensor) -> Tensor:
        return self.encoder(prepare(images.float(), self.encoder.input_size))

    def next_batch(self) -> Batch:
        """The next micro-batch, augmented (target and source drawn separately) and embedded."""
        if self._batches is None:
            self._batches = iter(self._loader())
        raw = next(self._batches)
        self._note_unreadable(raw["unreadable"])
        aug = self.preset.data.augment
        key = (self.cfg.seed, self.position, self.world.rank)
        self.position += 1
        target = augment(self._to_device(raw["target"]), aug, seeded(*key, _TARGET_STREAM))
        source = augment(self._to_device(raw["source"]), aug, seeded(*key, _SOURCE_STREAM))
        same = raw["same"].to(self.device)
        with torch.no_grad():
            z_target, target_features = self.encode(target)
        return Batch(target, source, same, self._embed(source), z_target, target_features)

    # --- the step -------------------------------------------------------------------------------
    def discriminator_loss(self, b: Batch, swap: Tensor, fake: Tensor | None = None) -> dict[str, Tensor]:
        """L_D's terms; ``fake``: D's logits of the swap when the caller has them already (simultaneous)."""
        real_images = b.source.detach().requires_grad_(self.r1.gamma > 0)
        real = self.discriminator(real_images)
        if fake is None:
            fake = self.discriminator(swap.detach())
        terms = {"adv": self.adversarial.discriminator(real.float(), fake.float())}
        if self.r1.gamma > 0:
            # the GradScaler's scale as a tensor: get_scale() would wait for the GPU on every micro-batch
            scale = self.scaler.scale(torch.ones((), device=self.device)) if self.scaler.is_enabled() else 1.0
            terms["r1"] = self.r1(real, real_images, scale)
        return terms

    def generator_loss(
        self, b: Batch, swap: Tensor, fake: Tensor | None = None
    ) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """The weighted terms of L_G, and diagnostics that are logged but not optimised."""
        w = self.weights
        embedding, features = self.encode(swap)
        terms = {"adv": self.adversarial.generator((self.discriminator(swap) if fake is None else fake).float())}
        terms["id"] = self.identity(embedding, b.z_source)
        # same pairs make the identity loss fall by mere reconstruction; cross pairs show real transfer
        # (a masked mean, not embedding[~same]: boolean indexing and `any()` would wait for the GPU)
        cross = ~b.same
        id_cross = same_pair_mean(self.identity.per_sample(embedding.detach(), b.z_source), cross)
        # a batch of same pairs only has no cross value: NaN, which _guard leaves out of the logged values
        diagnostics = {"id_cross": torch.where(cross.any(), id_cross, torch.full_like(id_cross, math.nan))}
        if w["rec"]:
            terms["rec"] = self.reconstruction(swap.float(), b.target, b.same)
        if w["p"] and self.vgg is not None:
            with torch.no_grad():
                real = self.vgg(b.target[b.same])  # only same pairs count: skip the rest
            terms["p"] = self.perceptual(real, self.vgg(swap[b.same]), torch.ones_like(b.same[b.same]))
        elif w["p"]:
            blocks = self.perceptual_blocks
            terms["p"] = self.perceptual([b.target_features[n] for n in blocks], [features[n] for n in blocks], b.same)
        if w["cyc"]:
            terms["cyc"] = self.cycle(self.g_forward(swap, b.z_target).float(), b.target)
        if self.ifsr is not None:
            terms["ifsr"] = self.ifsr(b.target_features, features)
        return terms, diagnostics

    def _weighted(self, terms: dict[str, Tensor]) -> Tensor:
        return sum(self.weights.get(k, 1.0) * v for k, v in terms.items())

    def _backward(self, loss: Tensor, model: nn.Module, retain_graph: bool = False) -> None:
        self.scaler.scale(loss / self.cfg.accumulate).backward(
            inputs=list(model.parameters()), retain_graph=retain_graph
        )

    def _guard(self, logged: dict[str, Tensor]) -> dict[str, float]:
        """Stop before any optimiser step if a loss is NaN/inf on any rank; the last checkpoint stays good.

        With fp16 the R1 penalty comes from gradients of *scaled* logits, which overflow while the
        GradScaler's scale is still too high: that is not divergence. Its gradients are then non-finite
        too, so the scaler skips the step and lowers the scale; the guard leaves R1 (and D's total) to it.
        """
        # one transfer for every value (a float() each would wait for the GPU once per loss)
        values = dict(zip(logged, torch.stack(list(logged.values())).tolist(), strict=True)) if logged else {}
        # the cross-pair diagnostic is NaN when a micro-batch had no cross pair: nothing to log, not divergence
        values = {k: v for k, v in values.items() if not (k.endswith("/id_cross") and math.isnan(v))}
        exempt = {"D/r1", "D/total"} if self.scaler.is_enabled() else set()
        bad = [k for k, v in values.items() if not np.isfinite(v) and k not in exempt]
        if distributed.any_rank(bool(bad), self.world, self.device):
            where = ", ".join(f"{k}={values[k]}" for k in bad) or "on another rank"
            raise TrainingError(
                f"non-finite loss at step {self.step + 1} ({where}); stopped without updating the weights. "
                f"The last good checkpoint is in {self.run_dir / 'checkpoints'}: lower train.lr or check the data"
            )
        return values

    def train_step(self) -> dict[str, float]:
        """One optimiser step over ``accumulate`` micro-batches; returns the logged loss values."""
        self.opt_g.zero_grad(set_to_none=True)
        self.opt_d.zero_grad(set_to_none=True)
        batches = [self.next_batch() for _ in range(self.cfg.accumulate)]
        logged: dict[str, Tensor] = {}

        def log(prefix: str, terms: dict[str, Tensor], total: Tensor, extra: dict[str, Tensor] | None = None) -> None:
            for k, v in {**terms, "total": total, **(extra or {})}.items():
                key = f"{prefix}/{k}"
                logged[key] = logged.get(key, 0.0) + v.detach().float() / len(batches)

        if self.cfg.update == "simultaneous":
            for b in batches:
                with self._autocast():
                    swap = self.g_forward(b.target, b.z_source)
                    # one D pass over the swap serves both players: backward of L_G with inputs=G reaches only
                    # G's weights, of L_D with inputs=D only D's, so D(swap.detach()) would repeat this pass
                    fake = self.discriminator(swap)
                    d_terms = self.discriminator_loss(b, swap, fake)
                    g_terms, g_extra = self.generator_loss(b, swap, fake)
                loss_d, loss_g = sum(d_terms.values()), self._weighted(g_terms)
                self._backward(loss_g, self.generator, retain_graph=True)  # L_D goes back through D(swap) too
                self._backward(loss_d, self.discriminator)
                log("D", d_terms, loss_d)
                log("G", g_terms, loss_g, g_extra)
            values = self._guard(logged)
            self._apply(self.generator, self.opt_g)
            self._apply(self.discriminator, self.opt_d)
        else:
            for b in batches:
                with self._autocast():
                    with torch.no_grad():
                        swap = self.g_forward(b.target, b.z_source)
                    d_terms = self.discriminator_loss(b, swap)
                loss_d = sum(d_terms.values())
                self._backward(loss_d, self.discriminator)
                log("D", d_terms, loss_d)
            self._guard(logged)
            self._apply(self.discriminator, self.opt_d)
            for b in batches:
                with self._autocast():
                    swap = self.g_forward(b.target, b.z_source)
                    g_terms, g_extra = self.generator_loss(b, swap)
                loss_g = self._weighted(g_terms)
                self._backward(loss_g, self.generator)
                log("G", g_terms, loss_g, g_extra)
            values = self._guard(logged)
            self._apply(self.generator, self.opt_g)
        if self.scaler.is_enabled():
            values["amp/scale"] = float(self.scaler.get_scale())
        self.scaler.update()
        with warnings.catch_warnings():
            # the schedule is a function of the step count, also when fp16's scaler skipped an update
            warnings.filterwarnings("ignore", re.escape("Detected call of `lr_scheduler.step()` before"), UserWarning)
            self.sched_g.step()
            self.sched_d.step()
        self.step += 1
        return values

    def _apply(self, model: nn.Module, optimiser: torch.optim.Optimizer) -> None:
        distributed.average_gradients(model, self.world)
        self.scaler.step(optimiser)

    # --- validation -------------------------------------------------------------------------------
    def _val_batches(self):
        bs = self.cfg.batch_size
        for i in range(0, len(self.val_pairs), bs):
            items = [self.val_dataset[p] for p in self.val_pairs[i : i + bs]]
            self._note_unreadable([it["unreadable"] for it in items])
            yield (self._to_device(torch.stack([it[k] for it in items])) for k in ("target", "source"))

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Identity similarity of swaps to their sources (and of unswapped targets, for reference), and
        reconstruction L1 of each target swapped with its own identity."""
        sims, base, l1 = [], [], []
        for target, source in self._val_batches():
            z_s, z_t = self._embed(source), self._embed(target)
            with self._autocast():
                swap, recon = self.generator(target, z_s).float(), self.generator(target, z_t).float()
            sims.append(F.cosine_similarity(self._embed(swap), z_s))
            base.append(F.cosine_similarity(z_t, z_s))
            l1.append((recon - target).abs().flatten(1).mean(1))
        if not sims:
            return {}
        return {
            "val/id_similarity": torch.cat(sims).mean().item(),
            "val/id_similarity_unswapped": torch.cat(base).mean().item(),
            "val/rec_l1": torch.cat(l1).mean().item(),
        }

    @torch.no_grad()
    def sample_images(self, count: int = 4) -> list[Tensor]:
        """Rows for the image grid: target, source, swap, reconstruction (fixed validation pairs)."""
        target, source = next(self._val_batches())
        target, source = target[:count], source[:count]
        with self._autocast():
            swap = self.generator(target, self._embed(source))
            recon = self.generator(target, self._embed(target))
        return [target, source, swap.float(), recon.float()]

    # --- checkpoints ------------------------------------------------------------------------------
    def _rng_state(self) -> dict[str, Any]:
        state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
        if torch.cuda.is_available():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def save(self) -> Path | None:
        """Write a checkpoint of this step (main process); every rank waits for it."""
        rngs = distributed.gather(self._rng_state(), self.world)
        path = None
        if self.world.main:
            meta = {"identity_encoder": self.preset.identity.encoder, "preset": self.preset.name, "step": self.step}
            meta |= self.init_meta
            state = {
                "step": self.step,
                "position": self.position,
                "world_size": self.world.size,
                "optim_g": self.opt_g.state_dict(),
                "optim_d": self.opt_d.state_dict(),
                "sched_g": self.sched_g.state_dict(),
                "sched_d": self.sched_d.state_dict(),
                "scaler": self.scaler.state_dict(),
                "rng": rngs,
                "dataset": self.train_crops.fingerprint,
            }
            models = {"generator": (self.generator, meta), "discriminator": (self.discriminator, meta)}
            path = checkpoint.save(self.run_dir / "checkpoints", self.step, models, state, self.cfg.keep_checkpoints)
        distributed.barrier(self.world)
        return path

    def load(self, path: Path) -> None:
        """Restore models, optimisers, schedules, scaler, RNG states and the data position.

        A checkpoint that cannot be read is a :class:`CheckpointError` (:meth:`resume` then tries the
        previous one); one that does not fit this run (other processes, another dataset) a ConfigError.
        """
        state = checkpoint.load_state(path)
        if state["world_size"] != self.world.size:
            raise ConfigError(
                f"{path} was written by {state['world_size']} processes; resume with the same number "
                f"(the data position is per process), not {self.world.size}"
            )
        recorded = state.get("dataset")
        if recorded and recorded != self.train_crops.fingerprint:
            raise ConfigError(
                f"{self.preset.data.root} is not the dataset {path} was trained on (its manifest.csv changed): "
                "resume needs the same prepared dataset; start a new run for other data"
            )
        for name, model in (("generator", self.generator), ("discriminator", self.discriminator)):
            weights = path / name / WEIGHTS_NAME
            try:
                tensors = load_file(str(weights), device=str(self.device))
            except Exception as e:  # safetensors reports a truncated file with its own error types
                raise CheckpointError(f"{weights} is truncated or corrupt ({reason(e)})") from None
            model.load_weights(tensors, path / name)
        self.init_meta = {k: v for k, v in read_meta(path / "generator").items() if k in ("init", "licence")}
        self.opt_g.load_state_dict(state["optim_g"])
        self.opt_d.load_state_dict(state["optim_d"])
        self.sched_g.load_state_dict(state["sched_g"])
        self.sched_d.load_state_dict(state["sched_d"])
        if state["scaler"] or not self.scaler.is_enabled():  # empty when written without fp16
            self.scaler.load_state_dict(state["scaler"])
        self.step, self.position = state["step"], state["position"]
        self._batches = None
        rng = state["rng"][self.world.rank]
        torch.set_rng_state(rng["torch"])
        np.random.set_state(rng["numpy"])
        random.setstate(rng["python"])
        if "cuda" in rng and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])

    def resume(self, changed: dict[str, list[Any]] | None = None) -> Path:
        """Load the newest readable checkpoint of this run and apply the settings changed since.

        An unreadable checkpoint (truncated by a disk fault, a kill before fsync existed) is named in a
        warning and the previous complete one is used; the run then re-does the steps in between.
        """
        folder = self.run_dir / "checkpoints"
        found = checkpoint.candidates(folder)
        if not found:
            raise CheckpointError(f"no checkpoint in {folder} (nothing to resume)")
        unreadable = []
        for path in found:
            try:
                self.load(path)
                break
            except CheckpointError as e:
                unreadable.append(f"{path.name}: {e}")
        else:
            raise CheckpointError(f"no readable checkpoint in {folder}: " + "; ".join(unreadable))
        if unreadable:
            warnings.warn(
                f"resuming from {path.name}, the newest readable checkpoint ({'; '.join(unreadable)})", stacklevel=2
            )
        changed = changed or {}
        if any(k in changed for k in resume_rules.OPTIMISER):
            self.apply_optimiser_settings()
        self._resumed = {"from": path.name, "changed": changed, "unreadable_checkpoints": len(unreadable)}
        return path

    def apply_optimiser_settings(self) -> None:
        """Write train.lr/betas/eps and the schedule into the restored optimisers, which hold the old ones."""
        cfg = self.cfg
        lr = cfg.lr * cfg.lr_decay ** (self.step / cfg.lr_decay_steps)
        for opt, sched in ((self.opt_g, self.sched_g), (self.opt_d, self.sched_d)):
            for group in opt.param_groups:
                group.update(lr=lr, initial_lr=cfg.lr, betas=cfg.betas, eps=cfg.eps)
            sched.base_lrs = [cfg.lr] * len(opt.param_groups)
            sched._last_lr = [lr] * len(opt.param_groups)  # what get_last_lr() reports until the next step

    def check_replicas(self) -> list[str]:
        """Digest of G and D on every rank; a :class:`TrainingError` if any rank differs."""
        mine = distributed.digest(self.generator) + distributed.digest(self.discriminator)
        digests = distributed.gather(mine, self.world)
        if len(set(digests)) > 1:
            raise TrainingError(f"data-parallel replicas drifted apart at step {self.step}: {digests}")
        return [str(d) for d in digests]

    # --- the loop ---------------------------------------------------------------------------------
    def _on_signal(self, signum: int, frame: object) -> None:
        self._stop = signal.Signals(signum).name

    def fit(self) -> Result:
        """Train until ``train.steps``, or until SIGTERM/SIGINT (then checkpoint and return)."""
        cfg = self.cfg
        in_main_thread = threading.current_thread() is threading.main_thread()  # signals only reach it
        signals = (signal.SIGTERM, signal.SIGINT) if in_main_thread else ()
        self._stop = None  # a signal stops one fit(); a resumed one starts afresh
        previous = {s: signal.signal(s, self._on_signal) for s in signals}
        samples_per_step = cfg.batch_size * cfg.accumulate * self.world.size
        last_saved: Path | None = None
        status = "finished"
        if self._resumed is not None and self.monitor is not None:
            self.monitor.resumed(self.step, self._resumed)
        try:
            while self.step < cfg.steps:
                values = self.train_step()
                if self.monitor is not None:
                    self._log(values, samples_per_step)
                saved_now = self.step % cfg.checkpoint_every == 0 or self.step == cfg.steps
                if saved_now:
                    self.check_replicas()
                    last_saved = self.save()
                if distributed.any_rank(self._stop is not None, self.world, self.device):
                    status = self._stop or "stopped by another rank"
                    if not saved_now:  # a stop on a step that just saved must not rewrite that checkpoint
                        last_saved = self.save()
                    break
            if status == "finished" and self.monitor is not None:
                self.monitor.write(self.step, {"event": "finished", "replica_digests": self.check_replicas()})
            elif status == "finished":
                self.check_replicas()
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
        return Result(self.run_dir, self.step, status, last_saved, len(self.unreadable))

    def _log(self, values: dict[str, float], samples_per_step: int) -> None:
        cfg, monitor = self.cfg, self.monitor
        monitor.accumulate(values)
        if cfg.log_every and (self.step % cfg.log_every == 0 or self.step == 1):
            extra = {"lr": self.sched_g.get_last_lr()[0]}
            if self.unreadable:
                extra["data/unreadable"] = len(self.unreadable)
            monitor.flush_interval(self.step, samples_per_step, extra)
        if self.val_pairs and cfg.val_every and self.step % cfg.val_every == 0:
            monitor.write(self.step, self.validate())
        if self.val_pairs and cfg.image_every and self.step % cfg.image_every == 0:
            monitor.images(self.step, self.sample_images())

    def close(self) -> None:
        self._batches = None  # stops the DataLoader's worker processes
        if self.monitor is not None:
            self.monitor.close()
        torch.use_deterministic_algorithms(self._deterministic_before)


def train(
    preset: Preset,
    resume: str | Path | None = None,
    encoder: nn.Module | None = None,
) -> Result:
    """Run (or resume) a training run; the process group comes from torchrun's environment."""
    world = distributed.init(resolve_device(preset.train.device, distributed.World()).type)
    try:
        preset = resolve_perceptual(preset)
        changed = None
        if resume is not None:
            run_dir = Path(resume)
            recorded = resolve_perceptual(from_dict(Preset, load_run_config(run_dir)))
            changed = resume_rules.changes(to_dict(recorded), to_dict(preset))
            resume_rules.check(changed, run_dir)
            if not checkpoint.candidates(run_dir / "checkpoints"):
                raise CheckpointError(f"no checkpoint in {run_dir / 'checkpoints'} (nothing to resume)")
        else:
            out_dir = Path(preset.train.out_dir)
            made_out_dir = not out_dir.exists()
            made = new_run_dir(out_dir, preset.name) if world.main else None
            run_dir = Path(str(distributed.broadcast_object(str(made) if made else None, world)))
        try:
            trainer = Trainer(preset, run_dir, world, encoder, resuming=resume is not None)
        except Exception as e:
            if resume is None and world.main:  # a config error leaves no empty run directory behind
                shutil.rmtree(run_dir, ignore_errors=True)
                if made_out_dir:
                    shutil.rmtree(out_dir, ignore_errors=True)
            if isinstance(e, OSError):
                raise OutputError(f"cannot start the run in {run_dir}: {reason(e)}") from None
            raise
        try:
            if resume is not None:
                trainer.resume(changed)
                if changed and world.main:
                    warnings.warn(f"resuming with changed settings: {resume_rules.describe(changed)}", stacklevel=2)
            if world.main:  # what this run now uses, including the changes a resume made
                write_config(preset, run_dir)
            return trainer.fit()
        except OSError as e:  # a full disk while logging
            where = f" ({e.filename})" if e.filename else ""
            raise OutputError(f"training stopped: {reason(e)}{where}; {_resume_hint(run_dir)}") from None
        except OutputError as e:  # a full disk while checkpointing
            raise OutputError(f"{e}; {_resume_hint(run_dir)}") from None
        finally:
            trainer.close()
    finally:
        distributed.shutdown(world)


def _resume_hint(run_dir: Path) -> str:
    """Where a run that stopped on a failed write can go on from (its partial files are already gone)."""
    found = checkpoint.candidates(run_dir / "checkpoints")
    if not found:
        return "no checkpoint was written"
    return f"{found[0].name} is intact: free some space and continue with `facedancer train --resume {run_dir}`"


def load_run_config(run_dir: str | Path) -> dict[str, Any]:
    """The raw resolved config of a run (for ``--resume``, before ``--set`` overrides)."""
    from facedancer.config import load_yaml

    path = Path(run_dir) / CONFIG_FILE
    if not path.is_file():
        raise ConfigError(f"{run_dir} is not a training run: {CONFIG_FILE} is missing")
    return load_yaml(path)
