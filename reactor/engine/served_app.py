"""The app code being served: its function registry and schema, swapped whole on reload.

Owns the one place the running deployment reads the current ``App`` from, so a reload
(``reactor dev``) changes every reader at once. It does not load apps (``functions.loader``).
"""

from __future__ import annotations

from functions.loader import App
from functions.registry import Registry
from schema.tables import SchemaDefinition

__all__ = ["ServedApp"]


class ServedApp:
    def __init__(self, app: App) -> None:
        self._app = app

    @property
    def app(self) -> App:
        return self._app

    @property
    def registry(self) -> Registry:
        return self._app.registry

    @property
    def schema(self) -> SchemaDefinition | None:
        return self._app.schema

    def swap(self, app: App) -> None:
        """Serve ``app`` from now on (calls already running finish on the old code)."""
        self._app = app
