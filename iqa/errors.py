"""Errors shown to users.

Every error says what failed, where (file, SeriesInstanceUID, slice) and, where it helps,
what to try.  The CLI turns any :class:`IqaError` into a one-line message and exit code 1;
anything else is a bug.
"""
from __future__ import annotations


class IqaError(Exception):
    """Base for errors shown to users."""


class InputError(IqaError):
    """Unreadable or unsuitable DICOM (non-DICOM, truncated, wrong modality, no pixels)."""


class SeriesError(InputError):
    """Missing or uneven slices, mixed geometry, duplicate instances."""


class LocalizationError(IqaError):
    """Phantom or module not found, or phantom cut by the field of view."""


class CriteriaError(IqaError):
    """Criteria table missing, malformed or not applicable."""


class StoreError(IqaError):
    """Trend database problem (locked, read-only, full, wrong schema)."""
