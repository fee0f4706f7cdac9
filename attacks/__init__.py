"""Attack techniques by name: every Technique subclass in this package's modules is registered."""

from __future__ import annotations

from attacks.base import Technique
from twin.registry import discover

TECHNIQUES: dict[str, type[Technique]] = discover(__name__, __path__, Technique)

__all__ = ["TECHNIQUES", "Technique"]
