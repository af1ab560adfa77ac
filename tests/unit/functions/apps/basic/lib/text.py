"""A helper module in a subdirectory: scanned, but it defines no functions."""

from __future__ import annotations


def shout(text: str) -> str:
    return text.upper()
