"""The package's layers import downward only (ARCHITECTURE.md): every import in src/ is checked, lazy ones too.

A module may import from its own top-level package and from any lower layer; an import from a higher layer,
or from another package of the same layer, is a failure that names the file, the line and both layers.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "facedancer"

#: bottom to top; keep in step with ARCHITECTURE.md
LAYERS: tuple[tuple[str, ...], ...] = (
    ("errors",),
    ("atomic", "config", "device"),
    ("io", "assets", "keras", "weights_io"),
    ("nn", "identity", "faces"),
    ("presets", "export", "bundle"),
    ("official",),
    ("swap", "train"),
    ("eval",),
    ("ui",),
    ("cli",),
    ("__main__",),  # python -m facedancer
)
LAYER = {name: i for i, names in enumerate(LAYERS) for name in names}


def top_level(path: Path) -> str:
    return path.relative_to(PACKAGE).parts[0].removesuffix(".py")


def imported_packages(path: Path) -> list[tuple[int, str]]:
    """(line, top-level facedancer package) for every import in ``path``, relative ones resolved."""
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # from . import x / from ..y import z, inside src/facedancer/<parts>
                base = list(parts[: len(parts) - node.level])
                names = [".".join(["facedancer", *base, *([node.module] if node.module else [])])]
            else:
                names = [node.module or ""]
        else:
            continue
        for name in names:
            bits = name.split(".")
            if bits[0] == "facedancer" and len(bits) > 1:
                found.append((node.lineno, bits[1]))
    return found


def test_every_top_level_module_has_a_layer():
    tops = {top_level(p) for p in PACKAGE.rglob("*.py")} - {"__init__"}
    assert tops <= set(LAYER), f"give these a layer in tests/test_layers.py and ARCHITECTURE.md: {tops - set(LAYER)}"


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_go_downward(path):
    me = top_level(path)
    if me == "__init__":  # facedancer/__init__.py: the version, nothing else
        assert not imported_packages(path)
        return
    wrong = [
        f"{path.relative_to(PACKAGE)}:{line} imports facedancer.{other} (layer {LAYER[other]}) "
        f"from {me} (layer {LAYER[me]})"
        for line, other in imported_packages(path)
        if other != me and other in LAYER and LAYER[other] >= LAYER[me]
    ]
    assert not wrong, "upward or sideways imports:\n" + "\n".join(wrong)


def test_the_check_sees_an_upward_import(tmp_path, monkeypatch):
    """The checker itself: a lazy upward import inside a function is caught."""
    fake = PACKAGE / "nn" / "_probe_for_test_layers.py"
    monkeypatch.setattr(Path, "read_text", lambda self, *a, **k: "def f():\n    from facedancer.swap import x\n")
    assert imported_packages(fake) == [(2, "swap")]
    with pytest.raises(AssertionError, match=r"imports facedancer.swap \(layer 6\) from nn \(layer 3\)"):
        test_imports_go_downward(fake)


#: a module longer than this does more than one job: split it along a real seam (issue 11)
MAX_LINES = 450


def test_modules_stay_small():
    long = {
        str(p.relative_to(PACKAGE)): n
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert not long, f"modules over {MAX_LINES} lines: {long}"
