"""Two small solvers in NumPy for the ACR CT slice-width fit: Levenberg–Marquardt least squares
and a bracketed root.

Why not ``scipy.optimize``: importing it costs 0.27–0.31 s on the 2-core benchmark machine
(scipy 1.17 rewrites about 190 docstrings at import), about a fifth of a cold
``iqa analyze`` of an ACR CT series, for one five-parameter fit per ramp and one 1-D root.
The algorithms are the textbook ones, and ``tests/ct/test_fit.py`` checks them against
``scipy.optimize.least_squares(method="lm")`` and ``brentq`` on the problems they solve here.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = ["LeastSquares", "bisect_root", "levenberg_marquardt"]


@dataclass(frozen=True, slots=True)
class LeastSquares:
    x: np.ndarray       # the solution
    cost: float         # ½ Σ r²
    nfev: int           # residual evaluations
    status: int         # 1 gradient, 2 step, 3 reduction converged; 0 evaluation limit; -1 not finite


def levenberg_marquardt(resid: Callable[[np.ndarray], np.ndarray], jac: Callable[[np.ndarray], np.ndarray],
                        x0, *, max_nfev: int = 200, gtol: float = 1e-12, xtol: float = 1e-12,
                        ftol: float = 1e-15) -> LeastSquares:
    """Minimise ½‖r(x)‖² by Levenberg–Marquardt with an analytic Jacobian.

    The damped normal equations ``(JᵀJ + μD) h = −Jᵀr`` are solved with ``D`` the running
    maximum of ``diag(JᵀJ)`` (Marquardt's scaling, as MINPACK keeps it; Moré 1978), and μ is
    updated from the gain ratio as in Madsen, Nielsen & Tingleff, *Methods for non-linear least
    squares problems* (2004), algorithm 3.16.  Converged when the scaled gradient, the scaled
    step or the relative reduction of the cost falls below its tolerance.  Near the minimum the
    cost no longer resolves the last steps (its rounding), so a converged result is finished
    by up to three undamped Gauss–Newton steps (least squares on J), kept while the gradient
    shrinks: the answer is then the minimum to the precision the residuals allow.
    """
    res = _lm(resid, jac, x0, max_nfev, gtol, xtol, ftol)
    if res.status <= 0:
        return res
    x, nfev = res.x, res.nfev
    r = np.asarray(resid(x), dtype=np.float64)
    J = np.asarray(jac(x), dtype=np.float64)
    grad = float(np.max(np.abs(J.T @ r)))
    for _ in range(3):
        h = np.linalg.lstsq(J, -r, rcond=None)[0]
        x_new = x + h
        r_new = np.asarray(resid(x_new), dtype=np.float64)
        nfev += 1
        if not np.all(np.isfinite(r_new)):
            break
        J_new = np.asarray(jac(x_new), dtype=np.float64)
        grad_new = float(np.max(np.abs(J_new.T @ r_new)))
        if not grad_new < grad:
            break
        x, r, J, grad = x_new, r_new, J_new, grad_new
    return LeastSquares(x, 0.5 * float(r @ r), nfev, res.status)


def _lm(resid, jac, x0, max_nfev: int, gtol: float, xtol: float, ftol: float) -> LeastSquares:
    x = np.array(x0, dtype=np.float64)
    r = np.asarray(resid(x), dtype=np.float64)
    nfev = 1
    if not np.all(np.isfinite(r)):
        return LeastSquares(x, math.inf, nfev, -1)
    cost = 0.5 * float(r @ r)
    J = np.asarray(jac(x), dtype=np.float64)
    a = J.T @ J
    g = J.T @ r
    d = np.maximum(np.diag(a).copy(), np.finfo(float).tiny)
    mu = 1e-3 * float(np.max(np.diag(a)))
    nu = 2.0
    while True:
        col = np.sqrt(np.diag(a))
        norm_r = math.sqrt(2.0 * cost)
        if norm_r == 0.0 or np.max(np.abs(g) / np.maximum(col * norm_r, np.finfo(float).tiny)) <= gtol:
            return LeastSquares(x, cost, nfev, 1)
        try:
            h = np.linalg.solve(a + mu * np.diag(d), -g)
        except np.linalg.LinAlgError:
            mu *= nu
            nu *= 2.0
            continue
        sd = np.sqrt(d)
        if np.linalg.norm(sd * h) <= xtol * (np.linalg.norm(sd * x) + xtol):
            return LeastSquares(x, cost, nfev, 2)
        if nfev >= max_nfev:
            return LeastSquares(x, cost, nfev, 0)
        x_new = x + h
        r_new = np.asarray(resid(x_new), dtype=np.float64)
        nfev += 1
        cost_new = 0.5 * float(r_new @ r_new) if np.all(np.isfinite(r_new)) else math.inf
        predicted = 0.5 * float(h @ (mu * d * h - g))
        rho = (cost - cost_new) / predicted if predicted > 0 else -1.0
        if rho > 0:
            reduction = cost - cost_new
            x, r, cost = x_new, r_new, cost_new
            J = np.asarray(jac(x), dtype=np.float64)
            a = J.T @ J
            g = J.T @ r
            d = np.maximum(d, np.diag(a))
            mu *= max(1.0 / 3.0, 1.0 - (2.0 * rho - 1.0) ** 3)
            nu = 2.0
            if reduction <= ftol * cost_new and predicted <= ftol * cost_new:
                return LeastSquares(x, cost, nfev, 3)
        else:
            mu *= nu
            nu *= 2.0


def bisect_root(f: Callable[[float], float], a: float, b: float, *, xtol: float = 1e-12) -> float:
    """A root of ``f`` in ``[a, b]`` where ``f(a)`` and ``f(b)`` differ in sign, by bisection to
    ``xtol`` (at most ~60 halvings of a bracket of a few hundred mm)."""
    fa, fb = f(a), f(b)
    if fa == 0.0:
        return float(a)
    if fb == 0.0:
        return float(b)
    if (fa > 0) == (fb > 0):
        raise ValueError("bisect_root: f(a) and f(b) must differ in sign")
    while b - a > xtol:
        m = 0.5 * (a + b)
        if m <= a or m >= b:          # the bracket is one ulp wide
            break
        fm = f(m)
        if fm == 0.0:
            return m
        if (fm > 0) == (fa > 0):
            a, fa = m, fm
        else:
            b = m
    return 0.5 * (a + b)
