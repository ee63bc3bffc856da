import pytest
import torch

from facedancer.nn import Generator, GeneratorConfig, parameter_count
from facedancer.nn.fusion import AFFA, Concat, NoSkip
from facedancer.presets import load_preset


def test_paper_layout_parameter_counts():
    g = Generator(load_preset("facedancer").generator)
    assert parameter_count(g) == 24_505_894
    assert parameter_count(g.mapping) == 1_050_624
    assert sum(parameter_count(m) for m in (g.stem, g.down, g.bottleneck)) == 9_595_264


def test_all_affa_final_concat_parameter_count():
    cfg = GeneratorConfig(fusion={8: "affa", 16: "affa", 32: "affa", 64: "affa", 128: "affa", 256: "concat"})
    assert parameter_count(Generator(cfg)) == 26_998_054


def test_mapping_width_256_count():
    assert parameter_count(Generator(GeneratorConfig(mapping_width=256))) == 22_473_254


def test_paper_stage_layout():
    g = Generator()
    stages = g.stages()
    assert [r for r, *_ in stages] == [8, 16, 32, 64, 128, 256]
    assert [type(f) for _, _, f, _ in stages] == [NoSkip, NoSkip, AFFA, AFFA, AFFA, Concat]
    # (in -> out) channels of each stage's ResUp, as PAPER.md §1.3's table
    assert [(u.conv.in_channels, u.conv.out_channels) for *_, u in stages] == [
        (512, 512),
        (512, 512),
        (512, 256),
        (256, 128),
        (128, 64),
        (128, 3),
    ]
    assert [u.resample for *_, u in stages] == [True] * 5 + [False]


@pytest.mark.parametrize("size", [128, 256, 512])
def test_sizes_and_linear_output(size):
    cfg = GeneratorConfig(
        image_size=size,
        base_channels=8,
        max_channels=32,
        mapping_width=16,
        identity_dim=16,
        fusion={size // 8: "affa", size // 4: "affa", size // 2: "affa", size: "concat"},
    )
    g = Generator(cfg)
    assert g.config.stage_resolutions[0] == 8 and g.config.stage_resolutions[-1] == size
    y = g(torch.randn(2, 3, size, size), torch.randn(2, 16))
    assert y.shape == (2, 3, size, size)
    # linear head: nothing squashes the output into [-1, 1]
    with torch.no_grad():
        for p in g.up[-1].parameters():
            p.mul_(50)
    assert g(torch.randn(1, 3, size, size), torch.randn(1, 16)).abs().max() > 1


def test_mapping_depth_zero_feeds_embedding_directly():
    cfg = GeneratorConfig(mapping_depth=0, base_channels=8, max_channels=16, identity_dim=12)
    g = Generator(cfg)
    assert parameter_count(g.mapping) == 0
    assert g.up[0].adain.scale.in_features == 12


def test_identity_changes_output_and_gradients_flow():
    cfg = GeneratorConfig(
        base_channels=8,
        max_channels=16,
        mapping_width=16,
        identity_dim=16,
        image_size=64,
        fusion={16: "affa", 32: "affa", 64: "concat"},
    )
    g = Generator(cfg)
    x = torch.randn(2, 3, 64, 64, requires_grad=True)
    z = torch.randn(2, 16, requires_grad=True)
    y = g(x, z)
    assert not torch.allclose(y, g(x, torch.randn(2, 16)))
    y.square().mean().backward()
    assert x.grad.abs().sum() > 0 and z.grad.abs().sum() > 0


def test_keras_init_zero_biases_and_glorot_range():
    g = Generator(GeneratorConfig(base_channels=8, max_channels=16, mapping_width=16, identity_dim=16))
    conv = g.up[0].conv
    assert torch.count_nonzero(conv.bias) == 0
    fan_in, fan_out = conv.in_channels * 9, conv.out_channels * 9
    limit = (6 / (fan_in + fan_out)) ** 0.5
    assert conv.weight.abs().max() <= limit and conv.weight.abs().max() > 0.9 * limit
    torch_default = Generator(
        GeneratorConfig(base_channels=8, max_channels=16, mapping_width=16, identity_dim=16, keras_init=False)
    )
    assert torch.count_nonzero(torch_default.up[0].conv.bias) > 0


@pytest.mark.parametrize(
    "bad",
    [
        dict(image_size=200),
        dict(fusion={4: "affa"}),
        dict(fusion={32: "attention"}),
        dict(image_size=128, fusion={256: "concat"}),
    ],
)
def test_invalid_configs_name_the_problem(bad):
    with pytest.raises(ValueError):
        GeneratorConfig(**bad)


def test_wrong_input_shape_is_a_clear_error():
    g = Generator(
        GeneratorConfig(
            base_channels=8, max_channels=16, mapping_width=16, identity_dim=16, image_size=64, fusion={64: "concat"}
        )
    )
    with pytest.raises(ValueError, match="expected images"):
        g(torch.randn(1, 3, 32, 32), torch.randn(1, 16))


def test_attention_maps_are_the_masks_each_affa_gates_with_computed_once(monkeypatch):
    torch.manual_seed(0)
    cfg = GeneratorConfig(
        image_size=32, identity_dim=16, mapping_width=16, base_channels=8, max_channels=16,
        fusion={8: "add", 16: "do_affa", 32: "affa"},
    )  # fmt: skip
    g = Generator(cfg).eval()
    x, z = torch.rand(2, 3, 32, 32) * 2 - 1, torch.randn(2, 16)
    fusions = {f"fuse{r}": fuse for r, _, fuse, _ in g.stages()}
    inputs = {}
    for name, fuse in fusions.items():
        fuse.register_forward_pre_hook(lambda module, args, name=name: inputs.__setitem__(name, args))
    with torch.no_grad():
        g(x, z)  # a plain forward: what each fusion is given
        calls = []
        for fuse in fusions.values():
            if isinstance(fuse, AFFA):
                monkeypatch.setattr(fuse, "mask", lambda *a, f=fuse.mask: calls.append(1) or f(*a))
        masks = g.attention_maps(x, z)
        assert sorted(masks) == ["fuse16", "fuse32"] and len(calls) == 2  # one mask per AFFA, once
        for name, mask in masks.items():
            r = int(name.removeprefix("fuse"))
            assert mask.shape == (2, cfg.channels_at(r), r, r) and mask.min() >= 0 and mask.max() <= 1
            assert torch.equal(mask, fusions[name].mask(*inputs[name]))


def test_attention_maps_record_both_masks_of_a_double_affa():
    """d_affa is not an AFFA subclass; its two masks are still recorded, each the one its AFFA gates with."""
    torch.manual_seed(0)
    cfg = GeneratorConfig(
        image_size=32, identity_dim=16, mapping_width=16, base_channels=8, max_channels=16,
        fusion={16: "d_affa", 32: "affa"},
    )  # fmt: skip
    g = Generator(cfg).eval()
    x, z = torch.rand(2, 3, 32, 32) * 2 - 1, torch.randn(2, 16)
    double = {r: fuse for r, _, fuse, _ in g.stages()}[16]
    seen = {}
    double.register_forward_pre_hook(lambda module, args: seen.__setitem__("args", args))
    with torch.no_grad():
        g(x, z)
        masks = g.attention_maps(x, z)
        assert sorted(masks) == ["fuse16.first", "fuse16.second", "fuse32"]
        z_a, h = seen["args"]
        assert torch.equal(masks["fuse16.first"], double.first.mask(z_a, h))
        assert torch.equal(masks["fuse16.second"], double.second.mask(z_a, double.first(z_a, h)))
