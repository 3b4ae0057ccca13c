"""Numba kernels (``@njit(cache=True)``) with plain NumPy references in ``_reference*.py``.

Start-up: loading a *cached* kernel in a fresh process
------------------------------------------------------
Numba's on-disk cache (``numba.core.caching.Cache.load_overload``) calls
``target_context.refresh()`` before it loads a cached overload.  On the CPU target that
imports every lowering module numba has (~100 modules: arraymath, linalg, random, unicode,
typed containers ...) and, through ``numba.np.linalg``'s BLAS check, ``scipy.linalg``; then it
refreshes the typing context.  Measured here (numba 0.68, 2 cores): 0.3–0.5 s per process,
the largest single item of a cold ``iqa analyze`` and ``iqa trend`` (issue 8).

Rebuilding cached machine code needs none of that: it needs the NRT runtime symbols
(``rtsys.initialize``) and the objects the pickled overload refers to, which unpickling
imports by itself (e.g. ``numba.cpython.unicode`` for string code).  A cache *miss* still
compiles through numba's compiler, whose constructor refreshes both contexts as before.
So :func:`_light_cache_loads` makes the CPU cache load skip the refresh; any other target
(e.g. CUDA caches, which subclass ``Cache``), any function outside ``iqa.kernels`` and any
unexpected numba layout keep numba's own behaviour, and an error in the light path falls back to it.  ``IQA_NUMBA_FULL_REFRESH=1``
switches it off (for debugging a cache load).
"""
from __future__ import annotations

import os


#: Modules whose cached kernels take the light load (a tuple of module-name prefixes).
LIGHT_LOAD_MODULES: tuple[str, ...] = (__name__ + ".",)


def _light_cache_loads() -> None:
    """Let numba load cached CPU overloads without refreshing the whole target context."""
    if os.environ.get("IQA_NUMBA_FULL_REFRESH", "") not in ("", "0"):
        return
    try:
        from numba.core import caching
        from numba.core.cpu import CPUContext
        from numba.core.runtime import rtsys
    except ImportError:  # pragma: no cover - numba's layout changed: keep its own behaviour
        return
    cache_cls = caching.Cache

    def _ours(cache) -> bool:
        # only iqa's own kernels: they use no numba feature whose runtime state the refresh sets up
        # (e.g. np.linalg inside @njit needs the BLAS/LAPACK pointers numba.np.linalg installs), so
        # another library's cached functions in the same process keep numba's own path
        module = getattr(getattr(cache, "_py_func", None), "__module__", None) or ""
        return module.startswith(LIGHT_LOAD_MODULES)
    full = cache_cls.load_overload
    if getattr(full, "_iqa_light", False):
        return
    if not all(hasattr(cache_cls, a) for a in ("_load_overload", "_guard_against_spurious_io_errors")):
        return  # pragma: no cover

    def load_overload(self, sig, target_context):
        if type(target_context) is not CPUContext or not _ours(self):
            return full(self, sig, target_context)
        try:
            rtsys.initialize(target_context)   # NRT symbols the cached code links against
            with self._guard_against_spurious_io_errors():
                return self._load_overload(sig, target_context)
        except Exception:  # noqa: BLE001 - anything odd: numba's own path (full refresh), which raises as before
            return full(self, sig, target_context)

    load_overload._iqa_light = True
    load_overload.__doc__ = full.__doc__
    cache_cls.load_overload = load_overload


_light_cache_loads()
