"""Errors raised by the export writers."""
from __future__ import annotations


class ExportError(ValueError):
    """The arrays or names handed to a writer do not fit its contract (shapes, dtypes, names)."""


class EncodeError(RuntimeError):
    """FFmpeg failed while writing a file; nothing was left behind."""
