"""The asset registry: every external file, its source, sha256 and licence; the cache; fetching."""

from facedancer.assets.registry import REGISTRY, Asset, register
from facedancer.assets.store import add, cache_dir, fetch, resolve, status

__all__ = ["REGISTRY", "Asset", "add", "cache_dir", "fetch", "register", "resolve", "status"]
