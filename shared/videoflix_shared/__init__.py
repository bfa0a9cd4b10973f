"""Code every Videoflix service shares: settings, keys, logging, errors, health, token checks."""
from .config import Settings

__all__ = ["Settings"]
