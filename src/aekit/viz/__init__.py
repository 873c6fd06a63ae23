"""Figures (matplotlib ``Figure`` objects, no pyplot: works without a display)."""

from .reconstructions import plot_reconstructions

__all__ = ["plot_reconstructions"]
