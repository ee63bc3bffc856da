"""ArcFace iResNet: no real weights exist here, so the layout is pinned against arcface_torch's documented
key names and shapes, and loading is checked on state dicts our own module saves."""

from pathlib import Path

import pytest
import torch

from facedancer import assets
from facedancer.errors import AssetError, CheckpointError
from facedancer.identity import EMBEDDING_DIMS, IResNet, load_encoder

# (key, shape) from insightface recognition/arcface_torch/backbones/iresnet.py
KNOWN_SHAPES = {
    "conv1.weight": (64, 3, 3, 3),
    "bn1.running_var": (64,),
    "prelu.weight": (64,),
    "layer1.0.bn1.weight": (64,),
    "layer1.0.conv1.weight": (64, 64, 3, 3),
    "layer1.0.prelu.weight": (64,),
    "layer1.0.conv2.weight": (64, 64, 3, 3),
    "layer1.0.downsample.0.weight": (64, 64, 1, 1),
    "layer1.0.downsample.1.running_mean": (64,),
    "layer2.0.bn1.weight": (64,),
    "layer2.0.conv1.weight": (128, 64, 3, 3),
    "layer2.0.downsample.0.weight": (128, 64, 1, 1),
    "layer3.1.conv2.weight": (256, 256, 3, 3),
    "layer4.0.downsample.0.weight": (512, 256, 1, 1),
    "layer4.2.bn3.bias": (512,),
    "bn2.weight": (512,),
    "fc.weight": (512, 512 * 7 * 7),
    "fc.bias": (512,),
    "features.weight": (512,),
    "features.running_mean": (512,),
}


def meta_state(depth: int) -> dict[str, torch.Tensor]:
    with torch.device("meta"):
        return IResNet(depth).state_dict()


@pytest.mark.parametrize(
    ("depth", "blocks", "params"), [(50, (3, 4, 14, 3), 43_590_848), (100, (3, 13, 30, 3), 65_156_160)]
)
def test_layout_matches_arcface_torch(depth, blocks, params):
    state = meta_state(depth)
    for key, shape in KNOWN_SHAPES.items():
        assert tuple(state[key].shape) == shape, key
    for stage, count in enumerate(blocks, start=1):
        found = {k.split(".")[1] for k in state if k.startswith(f"layer{stage}.")}
        assert found == {str(i) for i in range(count)}, stage
    assert all(f"layer{s}.0.downsample.0.weight" in state for s in range(1, 5))
    assert not any(".1.downsample" in k for k in state)
    # insightface quotes about 43.6 M and 65.2 M parameters for r50 / r100
    with torch.device("meta"):
        assert sum(p.numel() for p in IResNet(depth).parameters()) == params
    assert EMBEDDING_DIMS[f"arcface-iresnet{depth}"] == 512


@pytest.fixture(scope="module")
def r50(tmp_path_factory) -> tuple[IResNet, Path]:
    """A randomly initialised iResNet-50 with non-trivial BN statistics, and its saved backbone.pth."""
    torch.manual_seed(0)
    net = IResNet(50)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
    path = tmp_path_factory.mktemp("arcface") / "backbone.pth"
    torch.save(net.state_dict(), path)
    return net.eval(), path


def test_saved_backbone_loads_back_exactly(r50):
    net, path = r50
    loaded = load_encoder("arcface-iresnet50", path)
    assert isinstance(loaded, IResNet) and loaded.name == "arcface-iresnet50"
    x = torch.rand(1, 3, 112, 112)
    with torch.no_grad():
        out = loaded(x)
        # arcface_torch's own forward, on the original module, on RGB normalised to (x - 0.5) / 0.5
        h = net.prelu(net.bn1(net.conv1((x - 0.5) / 0.5)))
        h = net.layer4(net.layer3(net.layer2(net.layer1(h))))
        reference = net.embedding_bn(net.fc(torch.flatten(net.bn2(h), 1)))
    assert out.shape == (1, 512) and torch.isfinite(out).all()
    torch.testing.assert_close(out, reference, rtol=1e-5, atol=1e-5)


def test_features_are_named_blocks_with_the_documented_shapes(r50):
    net, _ = r50
    assert net.feature_names[:3] == ("stem", "layer1.0", "layer1.1") and net.feature_names[-1] == "layer4.2"
    assert len(net.feature_names) == 1 + 24
    with torch.no_grad():
        features = net.features(torch.rand(1, 3, 112, 112), ["layer2.3", "stem", "layer4.2", "layer3.13"])
    assert list(features) == ["layer2.3", "stem", "layer4.2", "layer3.13"]
    shapes = {name: tuple(f.shape[1:]) for name, f in features.items()}
    assert shapes == {
        "stem": (64, 112, 112),
        "layer2.3": (128, 28, 28),
        "layer3.13": (256, 14, 14),
        "layer4.2": (512, 7, 7),
    }


def test_frozen_but_differentiable_to_the_input(r50):
    _, path = r50
    net = load_encoder("arcface-iresnet50", path)
    net.train()
    assert not net.training and not any(p.requires_grad for p in net.parameters())
    x = torch.rand(1, 3, 112, 112, requires_grad=True)
    net.features(x, ["layer2.1"])["layer2.1"].mean().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_ddp_prefix_and_missing_batch_counters_are_accepted(r50, tmp_path):
    net, _ = r50
    state = {f"module.{k}": v for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")}
    torch.save(state, tmp_path / "ddp.pth")
    loaded = IResNet.from_checkpoint(tmp_path / "ddp.pth", depth=50)
    x = torch.rand(1, 3, 112, 112)
    with torch.no_grad():
        assert torch.equal(loaded(x), net(x))


def test_registry_copy_is_used_when_no_path_is_given(r50):
    _, path = r50
    with pytest.raises(AssetError, match="facedancer models add arcface-iresnet50"):
        load_encoder("arcface-iresnet50")
    assets.add("arcface-iresnet50", path)
    assert load_encoder("arcface-iresnet50").name == "arcface-iresnet50"


def _save(obj, path: Path) -> Path:
    torch.save(obj, path)
    return path


def small_state(depth: int) -> dict[str, torch.Tensor]:
    """Right keys and shapes, each tensor a broadcast zero (a few bytes on disk)."""
    return {k: torch.zeros((), dtype=v.dtype).expand(v.shape) for k, v in meta_state(depth).items()}


def test_wrong_files_are_named_problems(tmp_path):
    state = small_state(50)
    missing = dict(state)
    del missing["layer3.5.conv1.weight"]
    with pytest.raises(CheckpointError, match=r"does not fit iResNet-50: missing tensors: layer3\.5\.conv1\.weight$"):
        IResNet.from_checkpoint(_save(missing, tmp_path / "missing.pth"), 50)

    extra = {**state, "head.kernel": torch.zeros(3)}
    with pytest.raises(CheckpointError, match=r"does not fit iResNet-50: unexpected tensors: head\.kernel$"):
        IResNet.from_checkpoint(_save(extra, tmp_path / "extra.pth"), 50)

    shaped = {**state, "fc.weight": torch.zeros(512, 1024)}
    with pytest.raises(CheckpointError, match=r"iResNet-50: wrong shapes: fc\.weight \(512, 1024\) != \(512, 25088\)$"):
        IResNet.from_checkpoint(_save(shaped, tmp_path / "shape.pth"), 50)

    deeper = {k: torch.zeros(1) for k in meta_state(100)}
    with pytest.raises(CheckpointError, match=r"looks like iResNet-100 \(use arcface-iresnet100\)"):
        load_encoder("arcface-iresnet50", _save(deeper, tmp_path / "r100.pth"))


def test_unreadable_or_unsafe_files_are_checkpoint_errors(tmp_path):
    good = _save({"fc.weight": torch.zeros(4, 4)}, tmp_path / "good.pth")
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(good.read_bytes()[:200])
    with pytest.raises(CheckpointError, match="not a readable torch weights file"):
        IResNet.from_checkpoint(truncated, 50)
    # a pickled module would need code execution to load: weights_only refuses it
    with pytest.raises(CheckpointError, match="not a readable torch weights file"):
        IResNet.from_checkpoint(_save(torch.nn.Linear(2, 2), tmp_path / "module.pth"), 50)
    with pytest.raises(CheckpointError, match="does not hold a plain state dict"):
        IResNet.from_checkpoint(_save({"state_dict_backbone": {}, "epoch": 3}, tmp_path / "wrapped.pth"), 50)
    with pytest.raises(CheckpointError, match="does not exist"):
        IResNet.from_checkpoint(tmp_path / "nowhere.pth", 50)
