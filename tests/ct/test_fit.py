"""phantoms/_fit.py against scipy.optimize on the problems it solves in the ACR CT slice width:
the rect ⊗ Gaussian ramp-profile fit and the FWHM root of that profile."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.optimize import brentq, least_squares
from scipy.special import ndtr

from iqa.phantoms import _acr_ct_measure as meas
from iqa.phantoms._fit import bisect_root, levenberg_marquardt


def _profile(rng, width, sigma, centre, amp=900.0, base=20.0, noise=8.0, px=0.49):
    u = np.arange(-40.0, 40.0, px)
    p = amp * (ndtr((u - centre + width / 2) / sigma) - ndtr((u - centre - width / 2) / sigma)) + base
    return u, p + rng.normal(0.0, noise, u.size)


def _scipy_fit(u, p, fwhm0, peak0, px, **tolerances):
    """The same model and start as _fit_rect_gauss, solved by MINPACK (to machine precision unless
    other tolerances are given); returns (W, s, c, status)."""
    ok = np.abs(u - peak0) <= 1.5 * fwhm0 + 4.0
    u, p = u[ok], p[ok]
    amp0 = float(np.percentile(p, 95))

    def resid(q):
        a, c, r, lg, b = q
        w, s = r * r, math.exp(lg)
        return a * (ndtr((u - c + w / 2) / s) - ndtr((u - c - w / 2) / s)) + b - p

    def jac(q):          # exact derivatives: a finite-difference Jacobian only reaches ~1e-8
        a, c, r, lg, b = q
        w, s = r * r, math.exp(lg)
        z1, z2 = (u - c + w / 2) / s, (u - c - w / 2) / s
        g1, g2 = np.exp(-z1 * z1 / 2) / math.sqrt(2 * math.pi), np.exp(-z2 * z2 / 2) / math.sqrt(2 * math.pi)
        return np.column_stack([ndtr(z1) - ndtr(z2), -a * (g1 - g2) / s, a * r * (g1 + g2) / s,
                                -a * (g1 * z1 - g2 * z2), np.ones_like(u)])

    q0 = [amp0, peak0, math.sqrt(0.8 * fwhm0), math.log(max(0.2 * fwhm0, px / 2)), 0.0]
    opts = tolerances or {"xtol": 1e-15, "ftol": 1e-15, "gtol": 1e-15, "max_nfev": 2000}
    r = least_squares(resid, q0, jac=jac, method="lm", x_scale="jac", **opts)
    return r.x[2] ** 2, math.exp(r.x[3]), r.x[1], r.status


@pytest.mark.parametrize("width,sigma,centre,seed", [(10.0, 1.0, 0.3, 1), (6.0, 1.5, -2.0, 2), (2.5, 1.2, 1.1, 3),
                                                      (14.0, 0.6, 0.0, 4), (4.0, 2.0, 4.0, 5)])
def test_ramp_fit_is_the_least_squares_minimum(width, sigma, centre, seed):
    rng = np.random.default_rng(seed)
    u, p = _profile(rng, width, sigma, centre)
    fwhm0 = meas.rect_gauss_fwhm(width, sigma)
    got = meas._fit_rect_gauss(u, p, fwhm0, centre, 0.49)
    *ref, status = _scipy_fit(u, p, fwhm0, centre, 0.49)
    assert status > 0
    # The minimum itself is resolved to ~1e-9 relative in float64 (two exact Jacobians that
    # differ only in rounding move MINPACK's own answer by 2e-9), and the pipeline used MINPACK
    # at its default tolerances (1e-8); 1e-8 of a 3 mm width is 3e-8 mm.
    assert got == pytest.approx(tuple(ref), rel=1e-8, abs=1e-8)
    # and it describes the profile that was drawn (its FWHM; W and s alone trade off under noise)
    assert meas.rect_gauss_fwhm(got[0], got[1]) == pytest.approx(fwhm0, rel=0.03)


def test_ill_posed_ramp_is_not_fitted_as_with_minpack():
    """A rect much narrower than the blur leaves W nearly unidentifiable: neither solver converges
    within the 200 evaluations the pipeline allows, and the fit is reported as NaN."""
    rng = np.random.default_rng(5)
    u, p = _profile(rng, 3.0, 2.5, 4.0)
    fwhm0 = meas.rect_gauss_fwhm(3.0, 2.5)
    assert _scipy_fit(u, p, fwhm0, 4.0, 0.49, max_nfev=200)[3] == 0
    assert all(math.isnan(v) for v in meas._fit_rect_gauss(u, p, fwhm0, 4.0, 0.49))


def test_lm_reports_failure_instead_of_a_value():
    bad = levenberg_marquardt(lambda x: np.array([np.nan, 1.0]), lambda x: np.eye(2), [1.0, 1.0])
    assert bad.status == -1
    # Rosenbrock from far away with two evaluations allowed: stops at the limit, status 0
    res = lambda x: np.array([10 * (x[1] - x[0] ** 2), 1 - x[0]])            # noqa: E731
    jac = lambda x: np.array([[-20 * x[0], 10.0], [-1.0, 0.0]])                # noqa: E731
    assert levenberg_marquardt(res, jac, [-1.2, 1.0], max_nfev=2).status == 0
    full = levenberg_marquardt(res, jac, [-1.2, 1.0])
    assert full.status > 0 and np.allclose(full.x, [1.0, 1.0], atol=1e-10)


@pytest.mark.parametrize("width,sigma", [(5.0, 0.5), (1.0, 2.0), (10.0, 1e-3), (0.3, 0.3)])
def test_fwhm_root_matches_brentq(width, sigma):
    f = lambda x: ndtr((x + width / 2) / sigma) - ndtr((x - width / 2) / sigma) - 0.5 * (  # noqa: E731
        ndtr(width / 2 / sigma) - ndtr(-width / 2 / sigma))
    ref = brentq(f, 0.0, width / 2 + 10 * sigma, xtol=1e-14)
    assert bisect_root(f, 0.0, width / 2 + 10 * sigma) == pytest.approx(ref, abs=1e-11)
    assert meas.rect_gauss_fwhm(width, sigma) == pytest.approx(2 * ref, abs=1e-10)
    with pytest.raises(ValueError, match="differ in sign"):
        bisect_root(lambda x: 1.0, 0.0, 1.0)
