"""Token-ratio mixing of anchored task data into general data (mixture.py)."""

from .mixture import Mixture, build_mixture

__all__ = ["Mixture", "build_mixture"]
