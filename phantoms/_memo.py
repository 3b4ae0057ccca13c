"""Per-series memo: work shared between a phantom's ``identify`` and ``analyze``.

``iqa.analysis`` calls a phantom's ``identify(series)`` and then its ``analyze(series)`` (and,
for MR pairs, ``analyze_pair``) on the same series; all of them start from the same per-slice
localisation (CT slice signatures and outlines, the flood phantom's edge, the grid's points),
which costs as much as the measurements themselves.  Series volumes are never modified
(CONTRIBUTING.md: inputs are never mutated), so a result stays valid as long as the array object
does; an entry is dropped when the array is garbage-collected (a weak reference, so a batch over
thousands of series holds nothing).
"""
from __future__ import annotations

import weakref

import numpy as np

#: ``id(volume) -> (weakref to volume, {key: value or ("error", exception)})``
_MEMO: dict[int, tuple] = {}
_ERROR = object()


def memo(volume: np.ndarray, key: tuple, compute, *, errors: tuple[type[BaseException], ...] = ()):
    """``compute()``, computed once per ``volume`` array and ``key`` while the array lives.

    The key must hold every other input of ``compute`` (slice index, spacing, geometry).  An
    exception of a type in ``errors`` is remembered too and raised again (as a new exception of
    the same type and message) on every later call.  Arrays held by a dataclass result are made
    read-only, so no caller can change another's copy.  An array that cannot be weakly referenced
    is not cached.
    """
    vid = id(volume)
    entry = _MEMO.get(vid)
    if entry is None or entry[0]() is not volume:
        try:
            ref = weakref.ref(volume, lambda r, vid=vid: _MEMO.pop(vid) if _MEMO.get(vid, (None,))[0] is r else None)
        except TypeError:
            return compute()
        entry = (ref, {})
        _MEMO[vid] = entry
    cache = entry[1]
    if key not in cache:
        try:
            value = compute()
        except errors as exc:
            cache[key] = (_ERROR, type(exc), str(exc))
            raise
        for item in (getattr(value, f, None) for f in getattr(value, "__dataclass_fields__", ())):
            if isinstance(item, np.ndarray):
                item.setflags(write=False)
        cache[key] = value
    value = cache[key]
    if isinstance(value, tuple) and len(value) == 3 and value[0] is _ERROR:
        raise value[1](value[2])
    return value


def view_memo(image: np.ndarray, key: tuple, compute, **kw):
    """:func:`memo` for a result computed from ``image``, which may be a view such as
    ``series.volume[z]`` (a new object at each indexing): keyed on the array that owns the
    memory and on the view's address, shape and strides, so the same pixels share one entry."""
    owner = image.base if isinstance(image.base, np.ndarray) else image
    view = (image.__array_interface__["data"][0], image.shape, image.strides, image.dtype.str)
    return memo(owner, key + view, compute, **kw)
