"""Reactor: a reactive backend that speaks Convex's protocol. The runtime package.

Importing ``reactor`` is cheap: submodules (servers, storage engines) load on first use.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
