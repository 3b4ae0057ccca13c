"""Cached kernels load in a fresh process without numba's full target refresh (``iqa.kernels``),
and give the same results as a freshly compiled one."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

numba = pytest.importorskip("numba")
pytestmark = pytest.mark.skipif(numba.config.DISABLE_JIT, reason="no cache without the JIT")

MODULE = '''
import numpy as np
from numba import njit

@njit(cache=True)
def moments(x):
    s = 0.0
    q = 0.0
    for v in x:
        s += v
        q += v * v
    m = s / x.size
    return m, np.sqrt(q / x.size - m * m), np.sort(x)[x.size // 2]

@njit(cache=True)
def distinct_words(n):
    seen = set()
    for i in range(n):
        seen.add(str(i % 7))
    return len(seen)
'''

SCRIPT = '''
import json, sys
import numpy as np
import iqa.kernels   # installs the light cache load (for iqa.kernels.* only)
if sys.argv[2] == "ours":
    iqa.kernels.LIGHT_LOAD_MODULES += ("cachedmod",)
sys.path.insert(0, sys.argv[1])
import cachedmod
x = np.linspace(-3.0, 5.0, 101) ** 2
out = {"moments": list(cachedmod.moments(x)), "words": cachedmod.distinct_words(50)}
out["hits"] = sum(cachedmod.moments.stats.cache_hits.values()) + sum(cachedmod.distinct_words.stats.cache_hits.values())
out["full_refresh"] = "numba.np.arraymath" in sys.modules
print(json.dumps(out))
'''


def _run(folder, ours="ours", **env):
    r = subprocess.run([sys.executable, "-c", SCRIPT, str(folder), ours], capture_output=True, text=True,
                       env={**os.environ, **env}, timeout=300)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_cached_overloads_load_without_full_refresh(tmp_path):
    (tmp_path / "cachedmod.py").write_text(textwrap.dedent(MODULE))
    compiled = _run(tmp_path, IQA_NUMBA_FULL_REFRESH="")
    assert compiled["hits"] == 0 and compiled["full_refresh"]        # first run compiles (and refreshes)
    light = _run(tmp_path, IQA_NUMBA_FULL_REFRESH="")
    assert light["hits"] == 2 and not light["full_refresh"]           # cache hits, no lowering modules loaded
    assert light["moments"] == compiled["moments"] and light["words"] == compiled["words"] == 7
    full = _run(tmp_path, IQA_NUMBA_FULL_REFRESH="1")                 # the switch restores numba's own path
    assert full["hits"] == 2 and full["full_refresh"]
    assert full["moments"] == compiled["moments"]
    # another library's cached kernels in the same process keep numba's own load
    foreign = _run(tmp_path, ours="foreign", IQA_NUMBA_FULL_REFRESH="")
    assert foreign["hits"] == 2 and foreign["full_refresh"] and foreign["moments"] == compiled["moments"]
