"""The distribution this is, and the unrelated one that owns the same import name.

This project installs as ``facedancer-pytorch``. The name ``facedancer`` on the package index belongs to a
USB-device emulation library whose import package is also ``facedancer``: installed in one environment, the
two write into the same ``site-packages/facedancer/`` folder and replace each other's files (both ship
``__init__.py`` and ``errors.py``), so neither can be trusted. This module imports nothing of facedancer's
own, so that the CLI can run it before anything the other distribution may have replaced.
"""

from __future__ import annotations

import sys
from importlib import metadata

#: the name this project is installed under
DISTRIBUTION = "facedancer-pytorch"
#: the unrelated distribution whose import package is also ``facedancer``
OTHER = "facedancer"


def clash() -> str | None:
    """What is wrong, in one line, when a distribution named ``facedancer`` is installed here; else None.

    Named by its own metadata, so the same line fits the USB library and a stale install of this project
    from before it was renamed: the cure is the same.
    """
    try:
        other = metadata.metadata(OTHER)
    except metadata.PackageNotFoundError:
        return None
    summary = (other.get("Summary") or "no summary").rstrip(".")
    return (
        f"the distribution '{OTHER}' {other.get('Version')} ({summary}) is installed in this environment and "
        f"provides the same import package 'facedancer' as this project ({DISTRIBUTION}), so each overwrites the "
        f"other's files; use separate virtual environments, or run 'pip uninstall {OTHER}' and then reinstall "
        f"{DISTRIBUTION} (pip install --force-reinstall --no-deps PATH_TO_ITS_CHECKOUT_OR_WHEEL)"
    )


def exit_on_clash() -> None:
    """Print :func:`clash`'s line and exit 2 (a problem the user can fix) when there is one."""
    message = clash()
    if message is not None:
        print(f"error: {message}", file=sys.stderr)
        raise SystemExit(2)
