"""The paper's training step: FaceDancer's losses and the D/G update (PAPER.md §3.1-3.4, the official code
unless a config option says otherwise).

    z_s = E(X_s), z_t = E(X_t)                    frozen identity encoder on augmented images
    Y   = G(X_t, z_s)
    L_D = adv_D(D(X_s), D(Y.detach())) + R1(X_s)  real images are the *sources*
    L_G = adv_G(D(Y)) + 5 rec + 10 id + 1 cyc(G(Y, z_t)) + 0.2 p + 1 IFSR
    simultaneous (official): both losses from this one pass, G's adversarial term through D's
    pre-update weights, then both Adam steps; alternating: D steps first, then G against the new D.

Adam(1e-4, betas (0, 0.99), eps 1e-7) with lr x0.97 per 100k steps (continuous), gradient accumulation
over micro-batches, autocast (bf16, or fp16 with a GradScaler) and data-parallel gradient averaging.
Nothing here waits for the GPU (but fp16's GradScaler, which reads its overflow flag every step): a step
returns its logged values as device tensors, and whoever needs them on the host (logging, the non-finite
guard) reads them at its own interval.
"""

from __future__ import annotations

import contextlib
import math
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from facedancer import assets
from facedancer.errors import ConfigError
from facedancer.identity import IdentityEncoder, encode_crops
from facedancer.nn import Discriminator, Generator
from facedancer.presets import Preset
from facedancer.train import distributed
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
from facedancer.train.vgg import VGG16Features

#: called with a step's logged values after the backward passes and before each optimiser update
BeforeUpdate = Callable[[dict[str, Tensor]], None]


@dataclass
class Batch:
    target: Tensor
    source: Tensor
    same: Tensor
    #: positions of the same pairs, made on the CPU: selecting them needs no wait for the GPU
    same_index: Tensor
    z_source: Tensor
    z_target: Tensor
    #: the target's encoder blocks that IFSR and the perceptual loss compare against
    target_features: dict[str, Tensor]


class GAN:
    """G, D and the frozen encoder with FaceDancer's losses and optimisers: :meth:`step` is one update."""

    def __init__(
        self,
        preset: Preset,
        generator: Generator,
        discriminator: Discriminator,
        encoder: IdentityEncoder,
        device: torch.device,
        amp_dtype: torch.dtype | None,
        world: distributed.World | None = None,
    ) -> None:
        cfg = preset.train
        self.preset, self.cfg, self.device, self.amp_dtype = preset, cfg, device, amp_dtype
        self.world = world or distributed.World()
        self.generator, self.discriminator, self.encoder = generator, discriminator, encoder
        self.g_forward = torch.compile(generator) if cfg.compile else generator
        self._build_losses()
        adam = {"lr": cfg.lr, "betas": cfg.betas, "eps": cfg.eps}
        self.opt_g = torch.optim.Adam(generator.parameters(), **adam)
        self.opt_d = torch.optim.Adam(discriminator.parameters(), **adam)
        decay = lambda step: cfg.lr_decay ** (step / cfg.lr_decay_steps)  # noqa: E731
        self.sched_g = torch.optim.lr_scheduler.LambdaLR(self.opt_g, decay)
        self.sched_d = torch.optim.lr_scheduler.LambdaLR(self.opt_d, decay)
        self.scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)

    def _build_losses(self) -> None:
        preset, lc = self.preset, self.cfg.loss
        self.adversarial = make_adversarial(lc.adversarial)
        self.r1 = R1Penalty(lc.r1_gamma)
        self.identity = IdentityLoss()
        self.reconstruction = ReconstructionLoss(lc.reconstruction)
        self.cycle = CycleLoss()
        if lc.perceptual == "auto":
            raise ConfigError("resolve loss.perceptual=auto with resolve_perceptual() before building a Trainer")
        self.perceptual = PerceptualLoss(lc.perceptual_scale, official=lc.perceptual_mean == "official")
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

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    @torch.no_grad()
    def embed(self, images: Tensor) -> Tensor:
        """Identity embeddings of aligned [-1, 1] images (sources, validation swaps): no gradient."""
        return encode_crops(self.encoder, images)[0]

    def batch(self, target: Tensor, source: Tensor, same: Tensor, same_index: Tensor) -> Batch:
        """A micro-batch of augmented images with what the frozen encoder says of them."""
        with torch.no_grad():
            z_target, target_features = self.encode(target)
        return Batch(target, source, same, same_index, self.embed(source), z_target, target_features)

    # --- the losses -----------------------------------------------------------------------------
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
        per_sample = self.identity.per_sample(embedding, b.z_source)
        terms["id"] = per_sample.mean()  # = self.identity(embedding, b.z_source), its per-sample terms kept
        # same pairs make the identity loss fall by mere reconstruction; cross pairs show real transfer
        # (a masked mean, not embedding[~same]: boolean indexing and `any()` would wait for the GPU)
        cross = ~b.same
        id_cross = same_pair_mean(per_sample.detach(), cross)
        # a batch of same pairs only has no cross value: NaN, which the logs leave out (and the guard allows)
        diagnostics = {"id_cross": torch.where(cross.any(), id_cross, torch.full_like(id_cross, math.nan))}
        if w["rec"]:
            terms["rec"] = self.reconstruction(swap.float(), b.target, b.same)
        if w["p"] and self.vgg is not None:
            with torch.no_grad():
                real = self.vgg(b.target.index_select(0, b.same_index))  # only same pairs count: skip the rest
            ones = torch.ones(len(b.same_index), dtype=torch.bool, device=self.device)
            terms["p"] = self.perceptual(real, self.vgg(swap.index_select(0, b.same_index)), ones)
        elif w["p"]:
            blocks = self.perceptual_blocks
            terms["p"] = self.perceptual([b.target_features[n] for n in blocks], [features[n] for n in blocks], b.same)
        if w["cyc"]:
            terms["cyc"] = self.cycle(self.g_forward(swap, b.z_target).float(), b.target)
        if self.ifsr is not None:
            terms["ifsr"] = self.ifsr(b.target_features, features)
        return terms, diagnostics

    def weighted(self, terms: dict[str, Tensor]) -> Tensor:
        return sum(self.weights.get(k, 1.0) * v for k, v in terms.items())

    # --- the update -----------------------------------------------------------------------------
    def step(self, batches: list[Batch], before_update: BeforeUpdate | None = None) -> dict[str, Tensor]:
        """One optimiser step over the micro-batches; the logged values (detached, on the device).

        ``before_update`` sees the values logged so far before each optimiser update (the non-finite
        guard, which may stop the run there).
        """
        self.opt_g.zero_grad(set_to_none=True)
        self.opt_d.zero_grad(set_to_none=True)
        logged: dict[str, Tensor] = {}
        check = before_update or (lambda values: None)

        def log(prefix: str, terms: dict[str, Tensor], total: Tensor, extra: dict[str, Tensor] | None = None) -> None:
            for k, v in {**terms, "total": total, **(extra or {})}.items():
                key = f"{prefix}/{k}"
                logged[key] = logged.get(key, 0.0) + v.detach().float() / len(batches)

        if self.cfg.update == "simultaneous":
            for b in batches:
                with self.autocast():
                    swap = self.g_forward(b.target, b.z_source)
                    # one D pass over the swap serves both players: backward of L_G with inputs=G reaches only
                    # G's weights, of L_D with inputs=D only D's, so D(swap.detach()) would repeat this pass
                    fake = self.discriminator(swap)
                    d_terms = self.discriminator_loss(b, swap, fake)
                    g_terms, g_extra = self.generator_loss(b, swap, fake)
                loss_d, loss_g = sum(d_terms.values()), self.weighted(g_terms)
                self.backward(loss_g, self.generator, retain_graph=True)  # L_D goes back through D(swap) too
                self.backward(loss_d, self.discriminator)
                log("D", d_terms, loss_d)
                log("G", g_terms, loss_g, g_extra)
            check(logged)
            self._apply(self.generator, self.opt_g)
            self._apply(self.discriminator, self.opt_d)
        else:
            for b in batches:
                with self.autocast():
                    with torch.no_grad():
                        swap = self.g_forward(b.target, b.z_source)
                    d_terms = self.discriminator_loss(b, swap)
                loss_d = sum(d_terms.values())
                self.backward(loss_d, self.discriminator)
                log("D", d_terms, loss_d)
            check(logged)
            self._apply(self.discriminator, self.opt_d)
            for b in batches:
                with self.autocast():
                    swap = self.g_forward(b.target, b.z_source)
                    g_terms, g_extra = self.generator_loss(b, swap)
                loss_g = self.weighted(g_terms)
                self.backward(loss_g, self.generator)
                log("G", g_terms, loss_g, g_extra)
            check(logged)
            self._apply(self.generator, self.opt_g)
        if self.scaler.is_enabled():
            # the scale this step used, as a tensor (get_scale() would wait for the GPU)
            logged["amp/scale"] = self.scaler.scale(torch.ones((), device=self.device))
        self.scaler.update()
        with warnings.catch_warnings():
            # the schedule is a function of the step count, also when fp16's scaler skipped an update
            warnings.filterwarnings("ignore", re.escape("Detected call of `lr_scheduler.step()` before"), UserWarning)
            self.sched_g.step()
            self.sched_d.step()
        return logged

    def backward(self, loss: Tensor, model: nn.Module, retain_graph: bool = False) -> None:
        self.scaler.scale(loss / self.cfg.accumulate).backward(
            inputs=list(model.parameters()), retain_graph=retain_graph
        )

    def _apply(self, model: nn.Module, optimiser: torch.optim.Optimizer) -> None:
        distributed.average_gradients(model, self.world)
        self.scaler.step(optimiser)

    # --- what a checkpoint keeps of the update ----------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "optim_g": self.opt_g.state_dict(),
            "optim_d": self.opt_d.state_dict(),
            "sched_g": self.sched_g.state_dict(),
            "sched_d": self.sched_d.state_dict(),
            "scaler": self.scaler.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.opt_g.load_state_dict(state["optim_g"])
        self.opt_d.load_state_dict(state["optim_d"])
        self.sched_g.load_state_dict(state["sched_g"])
        self.sched_d.load_state_dict(state["sched_d"])
        if state["scaler"] or not self.scaler.is_enabled():  # empty when written without fp16
            self.scaler.load_state_dict(state["scaler"])

    def apply_optimiser_settings(self, step: int) -> None:
        """Write train.lr/betas/eps and the schedule into the restored optimisers, which hold the old ones."""
        cfg = self.cfg
        lr = cfg.lr * cfg.lr_decay ** (step / cfg.lr_decay_steps)
        for opt, sched in ((self.opt_g, self.sched_g), (self.opt_d, self.sched_d)):
            for group in opt.param_groups:
                group.update(lr=lr, initial_lr=cfg.lr, betas=cfg.betas, eps=cfg.eps)
            sched.base_lrs = [cfg.lr] * len(opt.param_groups)
            sched._last_lr = [lr] * len(opt.param_groups)  # what get_last_lr() reports until the next step
