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
from dataclasses import dataclass, replace
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
from facedancer.config import to_dict
from facedancer.errors import ConfigError, TrainingError
from facedancer.identity import load_encoder, prepare
from facedancer.nn import Discriminator, Generator
from facedancer.nn.pretrained import WEIGHTS_NAME
from facedancer.presets import Preset
from facedancer.train import checkpoint, distributed
from facedancer.train.data import CropIndex, PairDataset, PairSampler, augment, seeded, validation_pairs
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


def resolve_device(name: str, world: distributed.World) -> torch.device:
    if name == "auto":
        return torch.device(f"cuda:{world.local_rank}" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
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
    out.mkdir(parents=True, exist_ok=True)
    numbers = [int(p.name[:5]) for p in out.iterdir() if p.is_dir() and p.name[:5].isdigit()]
    run = out / f"{max(numbers, default=-1) + 1:05d}-{name or 'run'}"
    run.mkdir()
    return run


def write_config(preset: Preset, run_dir: Path) -> None:
    with atomic_path(run_dir / CONFIG_FILE) as tmp:
        tmp.write_text(yaml.safe_dump(to_dict(preset), sort_keys=False), encoding="utf-8")


class Trainer:
    def __init__(
        self,
        preset: Preset,
        run_dir: Path,
        world: distributed.World | None = None,
        encoder: nn.Module | None = None,
    ) -> None:
        cfg = preset.train
        self.preset, self.cfg, self.run_dir = preset, cfg, run_dir
        self.world = world or distributed.World()
        self.device = resolve_device(cfg.device, self.world)
        self.amp_dtype = resolve_precision(cfg.precision, self.device)
        self.channels_last = cfg.channels_last == "on" or (cfg.channels_last == "auto" and self.device.type == "cuda")
        if preset.data.root is None:
            raise ConfigError("data.root is not set: give a folder made by `facedancer prepare` (--set data.root=DIR)")

        torch.manual_seed(cfg.seed)
        fmt = torch.channels_last if self.channels_last else torch.contiguous_format
        self.generator = Generator(preset.generator).to(self.device, memory_format=fmt)
        self.discriminator = Discriminator(preset.discriminator).to(self.device, memory_format=fmt)
        for model in (self.generator, self.discriminator):
            distributed.broadcast_parameters(model, self.world)
        self.g_forward = torch.compile(self.generator) if cfg.compile else self.generator
        self.encoder = (encoder if encoder is not None else load_encoder(preset.identity.encoder)).to(self.device)
        self._build_losses()

        adam = {"lr": cfg.lr, "betas": cfg.betas, "eps": cfg.eps}
        self.opt_g = torch.optim.Adam(self.generator.parameters(), **adam)
        self.opt_d = torch.optim.Adam(self.discriminator.parameters(), **adam)
        decay = lambda step: cfg.lr_decay ** (step / cfg.lr_decay_steps)  # noqa: E731
        self.sched_g = torch.optim.lr_scheduler.LambdaLR(self.opt_g, decay)
        self.sched_d = torch.optim.lr_scheduler.LambdaLR(self.opt_d, decay)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype == torch.float16)

        crops = CropIndex.open(preset.data.root, preset.data.source)
        self.train_crops, val_crops = crops.split(preset.data.val_identities, cfg.seed)
        if self.world.main:  # the identities never trained on, for `facedancer eval --identities`
            with atomic_path(run_dir / HELD_OUT) as tmp:
                tmp.write_text("".join(f"{name}\n" for name in val_crops.identity_names()), encoding="utf-8")
        self.dataset = PairDataset(self.train_crops, preset.generator.image_size)
        self.val_pairs = validation_pairs(val_crops, preset.data.val_pairs, cfg.seed) if preset.data.val_pairs else []
        self.val_dataset = PairDataset(val_crops, preset.generator.image_size)
        self.step = 0
        self.position = 0  # micro-batches this rank has consumed
        self._batches = None
        self._stop: str | None = None
        self.monitor = Monitor(run_dir, cfg.tensorboard) if self.world.main else None
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
    def _loader(self) -> DataLoader:
        cfg, data = self.cfg, self.preset.data
        sampler = PairSampler(
            len(self.train_crops),
            cfg.batch_size,
            data.same_ratio,
            cfg.seed,
            self.world.rank,
            self.world.size,
            start=self.position,
        )
        return DataLoader(
            self.dataset,
            batch_sampler=sampler,
            num_workers=data.workers,
            pin_memory=self.device.type == "cuda",
            persistent_workers=data.workers > 0,
        )

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
            }
            models = {"generator": (self.generator, meta), "discriminator": (self.discriminator, meta)}
            path = checkpoint.save(self.run_dir / "checkpoints", self.step, models, state, self.cfg.keep_checkpoints)
        distributed.barrier(self.world)
        return path

    def load(self, path: Path) -> None:
        """Restore models, optimisers, schedules, scaler, RNG states and the data position."""
        for name, model in (("generator", self.generator), ("discriminator", self.discriminator)):
            model.load_weights(load_file(str(path / name / WEIGHTS_NAME), device=str(self.device)), path / name)
        state = checkpoint.load_state(path)
        if state["world_size"] != self.world.size:
            raise ConfigError(
                f"{path} was written by {state['world_size']} processes; resume with the same number "
                f"(the data position is per process), not {self.world.size}"
            )
        self.opt_g.load_state_dict(state["optim_g"])
        self.opt_d.load_state_dict(state["optim_d"])
        self.sched_g.load_state_dict(state["sched_g"])
        self.sched_d.load_state_dict(state["sched_d"])
        self.scaler.load_state_dict(state["scaler"])
        self.step, self.position = state["step"], state["position"]
        self._batches = None
        rng = state["rng"][self.world.rank]
        torch.set_rng_state(rng["torch"])
        np.random.set_state(rng["numpy"])
        random.setstate(rng["python"])
        if "cuda" in rng and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])

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
        previous = {s: signal.signal(s, self._on_signal) for s in signals}
        samples_per_step = cfg.batch_size * cfg.accumulate * self.world.size
        last_saved: Path | None = None
        status = "finished"
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
        return Result(self.run_dir, self.step, status, last_saved)

    def _log(self, values: dict[str, float], samples_per_step: int) -> None:
        cfg, monitor = self.cfg, self.monitor
        monitor.accumulate(values)
        if cfg.log_every and (self.step % cfg.log_every == 0 or self.step == 1):
            monitor.flush_interval(self.step, samples_per_step, {"lr": self.sched_g.get_last_lr()[0]})
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
        if resume is not None:
            run_dir = Path(resume)
        else:
            made = new_run_dir(preset.train.out_dir, preset.name) if world.main else None
            run_dir = Path(str(distributed.broadcast_object(str(made) if made else None, world)))
        try:
            trainer = Trainer(preset, run_dir, world, encoder)
        except Exception:
            if resume is None and world.main:  # a config error leaves no empty run directory behind
                shutil.rmtree(run_dir, ignore_errors=True)
            raise
        try:
            if resume is not None:
                trainer.load(checkpoint.latest(run_dir / "checkpoints"))
                if world.main:
                    write_config(preset, run_dir)  # overrides given on resume (e.g. more steps) are recorded
            elif world.main:
                write_config(preset, run_dir)
            return trainer.fit()
        finally:
            trainer.close()
    finally:
        distributed.shutdown(world)


def load_run_config(run_dir: str | Path) -> dict[str, Any]:
    """The raw resolved config of a run (for ``--resume``, before ``--set`` overrides)."""
    from facedancer.config import load_yaml

    path = Path(run_dir) / CONFIG_FILE
    if not path.is_file():
        raise ConfigError(f"{run_dir} is not a training run: {CONFIG_FILE} is missing")
    return load_yaml(path)
