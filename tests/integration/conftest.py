"""Fixtures shared by the integration tests."""

from __future__ import annotations

from .exporter import exporter_factory

__all__ = ["exporter_factory"]
