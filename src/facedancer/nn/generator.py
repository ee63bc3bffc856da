"""The FaceDancer generator: a U-Net-like encoder-decoder conditioned on identity (PAPER.md §1.3).

Stages are derived from the image size: the encoder halves the resolution down to ``bottom_size``
(8 px), and each decoder stage fuses the encoder feature of its own resolution with the decoder feature
before a ResUp doubles it. Stages are named by the resolution at which they *fuse*; the official code
names them by their output resolution (its "64x64" layer fuses at 32 px), see PAPER.md §1.3.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor, nn

from facedancer.nn.fusion import FUSION_TYPES, Fusion, make_fusion
from facedancer.nn.layers import ResDown, ResUp, keras_init_
from facedancer.nn.mapping import MappingNetwork
from facedancer.nn.pretrained import Pretrained

#: the paper's final layout: AFFA fusing at 32/64/128 px, concatenation at 256 px, no skip at 8/16 px
PAPER_FUSION = {32: "affa", 64: "affa", 128: "affa", 256: "concat"}


@dataclass
class GeneratorConfig:
    """Every constructor argument of :class:`Generator`; ``config.json`` stores exactly this."""

    image_size: int = 256
    identity_dim: int = 512
    mapping_depth: int = 4
    mapping_width: int = 512
    base_channels: int = 64
    max_channels: int = 512
    bottom_size: int = 8
    #: fusion type per fusing resolution; resolutions not listed get "none"
    fusion: dict[int, str] = field(default_factory=lambda: dict(PAPER_FUSION))
    keras_init: bool = True

    def __post_init__(self) -> None:
        if min(self.base_channels, self.max_channels, self.mapping_width) < 1 or self.mapping_depth < 0:
            raise ValueError("base_channels, max_channels and mapping_width must be >= 1 and mapping_depth >= 0")
        size, bottom = self.image_size, self.bottom_size
        if bottom < 1 or size < 2 * bottom or size % bottom or (size // bottom) & (size // bottom - 1):
            raise ValueError(f"image_size {size} must be bottom_size {bottom} times a power of two >= 2")
        self.fusion = {int(r): str(kind) for r, kind in self.fusion.items()}
        bad_res = sorted(set(self.fusion) - set(self.stage_resolutions))
        if bad_res:
            raise ValueError(
                f"fusion lists resolutions {bad_res} that a {size} px generator does not have; "
                f"its stages fuse at {list(self.stage_resolutions)}"
            )
        bad_kind = sorted({k for k in self.fusion.values() if k not in FUSION_TYPES})
        if bad_kind:
            raise ValueError(f"unknown fusion {bad_kind}; choose from {', '.join(FUSION_TYPES)}")
        for name in ("identity_dim", "base_channels", "max_channels", "mapping_width"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive")

    @property
    def stage_resolutions(self) -> tuple[int, ...]:
        """Fusing resolution of each decoder stage, deepest first (8, 16, ..., image_size)."""
        out, r = [], self.bottom_size
        while r <= self.image_size:
            out.append(r)
            r *= 2
        return tuple(out)

    @property
    def stage_fusions(self) -> tuple[str, ...]:
        return tuple(self.fusion.get(r, "none") for r in self.stage_resolutions)

    def channels_at(self, resolution: int) -> int:
        """Encoder width at a resolution: ``base * 2^k`` capped at ``max_channels``."""
        k = (self.image_size // resolution).bit_length() - 1
        return min(self.base_channels * 2**k, self.max_channels)


class Generator(Pretrained):
    """``Y = G(X_t, z_s)``: images in [-1, 1], a raw identity embedding, a *linear* output."""

    config_class = GeneratorConfig

    def __init__(self, config: GeneratorConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or GeneratorConfig()
        res = cfg.stage_resolutions  # deepest first
        ch = [cfg.channels_at(r) for r in res]
        self.mapping = MappingNetwork(cfg.identity_dim, cfg.mapping_width, cfg.mapping_depth)
        style = self.mapping.out_dim

        self.stem = nn.Conv2d(3, ch[-1], 3, padding=1)
        # encoder from full resolution down to the bottom: ch[-1] -> ch[-2] -> ... -> ch[0]
        self.down = nn.ModuleList(ResDown(ch[i], ch[i - 1]) for i in range(len(ch) - 1, 0, -1))
        self.bottleneck = ResDown(ch[0], ch[0], resample=False)
        self.bottleneck_up = ResUp(ch[0], ch[0], style, resample=False)

        self.fuse = nn.ModuleList()
        self.up = nn.ModuleList()
        for i, kind in enumerate(cfg.stage_fusions):
            fusion = make_fusion(kind, ch[i])
            last = i == len(ch) - 1
            out = 3 if last else ch[i + 1]
            self.fuse.append(fusion)
            self.up.append(ResUp(ch[i] * fusion.channel_factor, out, style, resample=not last))
        if cfg.keras_init:
            keras_init_(self)

    def _run(self, x: Tensor, z: Tensor, masks: dict[str, Tensor] | None) -> Tensor:
        size = self.config.image_size
        if x.shape[-2:] != (size, size) or z.shape[-1] != self.config.identity_dim:
            raise ValueError(
                f"expected images (B, 3, {size}, {size}) and embeddings (B, {self.config.identity_dim}), "
                f"got {tuple(x.shape)} and {tuple(z.shape)}"
            )
        w = self.mapping(z)
        skips = [self.stem(x)]
        for block in self.down:
            skips.append(block(skips[-1]))
        h = self.bottleneck_up(self.bottleneck(skips[-1]), w)
        for fuse, up, skip, r in zip(self.fuse, self.up, reversed(skips), self.config.stage_resolutions, strict=False):
            if masks is None:
                h = up(fuse(skip, h), w)
            else:  # the masks it gates with, computed once
                fused, found = fuse.forward_with_masks(skip, h)
                masks |= {f"fuse{r}" + (f".{name}" if name else ""): m for name, m in found.items()}
                h = up(fused, w)
        return h

    def forward(self, x: Tensor, z: Tensor) -> Tensor:
        return self._run(x, z, None)

    def attention_maps(self, x: Tensor, z: Tensor) -> dict[str, Tensor]:
        """AFFA masks per stage (``fuse32`` ...; ``fuse32.first`` and ``fuse32.second`` for a d_affa), each
        ``(B, C, r, r)`` in [0, 1], for analysis (the official parity check compares them with TensorFlow's:
        ``tools/official_parity.py``)."""
        masks: dict[str, Tensor] = {}
        self._run(x, z, masks)
        return masks

    def stages(self) -> list[tuple[int, str, Fusion, ResUp]]:
        """(fusing resolution, fusion type, fusion module, ResUp) per decoder stage, deepest first."""
        cfg = self.config
        return list(zip(cfg.stage_resolutions, cfg.stage_fusions, self.fuse, self.up, strict=False))
