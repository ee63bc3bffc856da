"""facedancer: FaceDancer face swapping (Rosberg et al., WACV 2023) in PyTorch.

Installed as the distribution ``facedancer-pytorch``; the import package and the command are ``facedancer``.
"""

#: the one place the version is written: the wheel's metadata (hatch) and ``facedancer --version`` read it
__version__ = "0.1.0"
