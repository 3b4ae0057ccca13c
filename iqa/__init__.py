"""iqa: CT and MR image-quality QA and calibration-drift detection.

The package imports nothing heavy at start-up (numba, scipy, matplotlib are imported
where they are used) so that ``iqa --help`` stays fast.
"""
from iqa._version import __version__
from iqa.errors import (
    CriteriaError,
    InputError,
    IqaError,
    LocalizationError,
    SeriesError,
    StoreError,
)

__all__ = [
    "__version__",
    "IqaError",
    "InputError",
    "SeriesError",
    "LocalizationError",
    "CriteriaError",
    "StoreError",
]
