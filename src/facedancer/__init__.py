"""facedancer: FaceDancer face swapping (Rosberg et al., WACV 2023) in PyTorch."""

__version__ = "0.1.0"
