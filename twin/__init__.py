"""twin: a cyber-physical digital twin of a facility, built to answer security questions."""

from __future__ import annotations

__version__ = "0.1.0"
