"""The water module's exact shortcuts (no filter, no labelling, no full median when the bounds
already decide) give the same identification score and rod as the plain computation."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage

from iqa.phantoms import _ct, water


def _score_plain(image, spacing_mm, body):
    """The score as computed before the shortcuts: median, 3 x 3 mean, threshold, labelling."""
    dy, dx = spacing_mm
    crop, inner, _ = water._disk_box(image, spacing_mm, body, body.radius_mm - 10.0)
    med = float(np.median(crop[inner]))
    if abs(med) > 60.0:
        return 0.1
    smooth = ndimage.uniform_filter(np.asarray(crop, dtype=np.float32), size=3)
    odd = inner & (np.abs(smooth - med) > 60.0)
    frac = float(odd.sum()) / float(inner.sum())
    lab, n = ndimage.label(odd)
    if n == 0:
        return 1.0
    sizes = np.bincount(lab.ravel())[1:]
    big = int((sizes * dy * dx > 3.0).sum())
    return 0.95 if big <= 1 and frac < 0.05 else 0.1


def _phantom(n=160, pixel=1.0, level=0.0, noise=10.0, seed=0, rod_hu=None, spikes=0, spike_hu=80.0,
             insert_hu=None):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:n, 0:n]
    c = (n - 1) / 2 + 0.3
    r = np.hypot(yy - c, xx - c) * pixel
    img = np.where(r < 70.0, level, -1000.0) + rng.normal(0, noise, (n, n))
    if rod_hu is not None:
        img[np.hypot(yy - c - 25, xx - c - 20) * pixel < 6.0] = rod_hu
    if insert_hu is not None:                      # a second round object: an insert
        img[np.hypot(yy - c + 25, xx - c + 10) * pixel < 8.0] = insert_hu
    for _ in range(spikes):
        y, x = rng.integers(int(c - 30), int(c + 30), 2)
        img[y, x] = level + spike_hu
    return img.astype(np.float32)


CASES = [dict(), dict(noise=5.0), dict(noise=20.0), dict(noise=30.0), dict(level=45.0), dict(level=-55.0),
         dict(level=58.0, noise=3.0), dict(level=61.0, noise=3.0), dict(level=70.0), dict(rod_hu=1000.0),
         dict(spikes=1), dict(spikes=3, spike_hu=-90.0), dict(spikes=2, spike_hu=61.0), dict(level=30.0, spikes=1),
         dict(level=-30.0, noise=12.0, seed=4), dict(noise=0.0), dict(level=60.0, noise=0.0),
         dict(insert_hu=100.0), dict(rod_hu=1000.0, insert_hu=-100.0), dict(rod_hu=150.0, noise=25.0)]


@pytest.mark.parametrize("case", CASES, ids=[",".join(f"{k}={v}" for k, v in c.items()) or "plain" for c in CASES])
def test_disk_score_equals_plain_computation(case):
    img = _phantom(**case)
    sp = (1.0, 1.0)
    body = _ct.find_body(img, spacing_mm=sp)
    assert water._uniform_disk_score(img, sp, body) == _score_plain(img, sp, body)


def test_disk_score_with_nan_equals_plain_computation():
    img = _phantom()
    img[80, 70] = np.nan
    sp = (1.0, 1.0)
    body = _ct.find_body(np.nan_to_num(img, nan=0.0), spacing_mm=sp)
    with np.errstate(invalid="ignore"):
        assert water._uniform_disk_score(img, sp, body) == _score_plain(img, sp, body)


@pytest.mark.parametrize("rod_hu", [None, 280.0, 301.0, 1000.0])
def test_find_rod_shortcut(rod_hu):
    """No pixel above the rod level: no rod, as the filtered search finds."""
    img = _phantom(rod_hu=rod_hu)
    sp = (1.0, 1.0)
    body = _ct.find_body(img, spacing_mm=sp)
    rod = water._find_rod(img, sp, body, 0.0)
    crop, inside, _ = water._disk_box(img, sp, body, body.radius_mm - 5.0)
    smooth = ndimage.uniform_filter(np.asarray(crop, dtype=np.float32), size=3)
    found = (inside & (smooth > 300.0)).any()
    if not found:
        assert rod is None
    if rod_hu == 1000.0:
        assert rod is not None and math.isclose(rod.radius_mm, 6.0, abs_tol=0.5)
