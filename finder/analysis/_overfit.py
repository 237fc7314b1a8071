"""How far the best of many backtests can be trusted: deflated Sharpe, PBO by CSCV, walk-forward (pure).

All functions take ``M``, a sessions × configurations array of daily returns
(one column per configuration, rows on one shared timeline, 0 where a
configuration holds only cash), and never look at anything else.  Sharpe
ratios here are **per session** (not annualised) unless a name says
``_annual``: ``SR = mean(r) / std(r, ddof=1)``; a configuration without
variance has SR 0 (it held cash).

Deflated Sharpe ratio (Bailey & López de Prado, 2014)
-----------------------------------------------------
With ``N`` configurations tried, ``V`` the variance (ddof=1) of their per-session
Sharpe ratios, ``γ = 0.5772…`` (Euler–Mascheroni) and ``Z`` the standard
normal CDF, the Sharpe ratio the best of ``N`` unskilled trials reaches by luck is

    ``SR0 = sqrt(V) * ((1 - γ) * Z⁻¹(1 - 1/N) + γ * Z⁻¹(1 - 1/(N e)))``

and for the chosen configuration (Sharpe ``SR``, ``T`` sessions, skewness
``g3`` and kurtosis ``g4`` (normal = 3) of its returns, population moments)

    ``DSR = Z((SR - SR0) * sqrt(T - 1) / sqrt(1 - g3 * SR + (g4 - 1) / 4 * SR²))``.

``p = 1 - DSR`` is the probability that a Sharpe this high is luck; below 0.05
is called significant.  With ``N = 1``, ``SR0 = 0`` (the probabilistic Sharpe ratio).

Probability of backtest overfitting by CSCV (Bailey, Borwein, López de Prado & Zhu, 2015)
----------------------------------------------------------------------------------------
The rows are cut into ``S`` (even) contiguous blocks of (nearly) equal size.
For each of the ``C(S, S/2)`` ways to choose half of the blocks as the
in-sample set (the rest out-of-sample): ``n*`` = the configuration with the
best in-sample SR; ``ω`` = its out-of-sample rank (1 = worst, ties averaged)
divided by ``N + 1``; the logit ``λ = ln(ω / (1 - ω))``.
``PBO = share of splits with λ <= 0`` (the in-sample best lands at or below
the out-of-sample median).  Performance degradation: the least-squares line
``SR_oos(n*) = a + b * SR_is(n*)`` over all splits, and
``prob_loss = share of splits with SR_oos(n*) < 0``.

Walk-forward
------------
Windows of ``train`` sessions followed by ``test`` sessions, stepping by
``test``: the configuration with the best SR on each training window (ties: the
lowest index) is held over the next test window; the test windows' returns,
chained, are the out-of-sample result.  Choices use rows before each test
window only.

What this does not do: judge the economic sense of a rule, or correct for
configurations tried outside this sweep (``N`` counts this sweep only).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from statistics import NormalDist

import numpy as np
import pandas as pd

from .._exceptions import InvalidInputError

__all__ = ["EULER_GAMMA", "sharpe", "expected_max_sharpe", "deflated_sharpe", "CSCVResult", "pbo_cscv",
           "walk_forward", "WalkForwardResult"]

EULER_GAMMA = 0.5772156649015329
_N = NormalDist()


def sharpe(M: np.ndarray) -> np.ndarray:
    """Per-session Sharpe ratio of each column (``mean / std(ddof=1)``; 0 without variance)."""
    M = np.asarray(M, dtype=float)
    sd = M.std(axis=0, ddof=1)
    mu = M.mean(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        sr = np.where(sd > 0, mu / np.where(sd > 0, sd, 1.0), 0.0)
    return sr


def expected_max_sharpe(var_sr: float, n_trials: int) -> float:
    """``SR0``: the Sharpe ratio the best of ``n_trials`` unskilled trials is expected to reach."""
    if n_trials < 1:
        raise InvalidInputError(f"n_trials={n_trials!r} must be at least 1")
    if n_trials == 1 or not var_sr > 0:
        return 0.0
    return math.sqrt(var_sr) * ((1 - EULER_GAMMA) * _N.inv_cdf(1 - 1 / n_trials)
                                + EULER_GAMMA * _N.inv_cdf(1 - 1 / (n_trials * math.e)))


def deflated_sharpe(returns: np.ndarray, all_sharpes: np.ndarray) -> dict[str, float]:
    """DSR of one return series given the per-session Sharpe ratios of every configuration tried.

    Returns ``sharpe`` (per session), ``sr0``, ``skew``, ``kurtosis``, ``dsr`` and ``p_value`` (= 1 - DSR).

    Example::

        >>> d = deflated_sharpe(M[:, best], sharpe(M))
        >>> d["p_value"] < 0.05      # significant after N trials?
    """
    r = np.asarray(returns, dtype=float)
    srs = np.asarray(all_sharpes, dtype=float)
    srs = srs[np.isfinite(srs)]
    T = r.size
    if T < 3:
        raise InvalidInputError("the deflated Sharpe ratio needs at least 3 sessions of returns")
    sr = float(sharpe(r[:, None])[0])
    n = max(int(srs.size), 1)
    var_sr = float(np.var(srs, ddof=1)) if srs.size > 1 else 0.0
    sr0 = expected_max_sharpe(var_sr, n)
    d = r - r.mean()
    m2 = float(np.mean(d ** 2))
    g3 = float(np.mean(d ** 3) / m2 ** 1.5) if m2 > 0 else 0.0
    g4 = float(np.mean(d ** 4) / m2 ** 2) if m2 > 0 else 3.0
    denom = 1 - g3 * sr + (g4 - 1) / 4 * sr ** 2
    z = (sr - sr0) * math.sqrt(T - 1) / math.sqrt(denom) if denom > 0 else math.nan
    dsr = _N.cdf(z) if math.isfinite(z) else math.nan
    return {"sharpe": sr, "sr0": sr0, "skew": g3, "kurtosis": g4, "n_trials": n, "var_sharpe": var_sr,
            "dsr": dsr, "p_value": 1 - dsr if math.isfinite(dsr) else math.nan}


@dataclass
class CSCVResult:
    """PBO by CSCV: ``pbo``, the logits, each split's in/out-of-sample SR of the chosen one, the degradation line."""

    pbo: float
    logits: np.ndarray
    is_sharpe: np.ndarray
    oos_sharpe: np.ndarray
    slope: float
    intercept: float
    prob_loss: float
    blocks: int
    splits: int = field(default=0)

    def __repr__(self) -> str:
        return (f"CSCVResult(pbo={self.pbo:.3f}, splits={self.splits}, blocks={self.blocks}, "
                f"degradation slope={self.slope:.3f}, prob_loss={self.prob_loss:.3f})")


def _block_sums(M: np.ndarray, S: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    parts = np.array_split(np.arange(M.shape[0]), S)
    s1 = np.stack([M[p].sum(axis=0) for p in parts])
    s2 = np.stack([(M[p] ** 2).sum(axis=0) for p in parts])
    n = np.array([len(p) for p in parts], dtype=float)
    return s1, s2, n


def _sharpe_from_sums(s1: np.ndarray, s2: np.ndarray, n: np.ndarray) -> np.ndarray:
    n = n[:, None]
    mu = s1 / n
    var = (s2 - s1 * mu) / (n - 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        sr = np.where(var > 1e-30, mu / np.sqrt(np.where(var > 1e-30, var, 1.0)), 0.0)
    return sr


def pbo_cscv(M: np.ndarray, S: int = 16, chunk: int = 2048) -> CSCVResult:
    """Probability of backtest overfitting of the sweep ``M`` (sessions × configurations), by CSCV.

    Example::

        >>> r = pbo_cscv(M, S=16)
        >>> r.pbo, r.slope
    """
    M = np.asarray(M, dtype=float)
    if M.ndim != 2 or M.shape[1] < 2:
        raise InvalidInputError("PBO needs a sessions x configurations matrix with at least 2 configurations")
    if isinstance(S, bool) or not isinstance(S, int) or S < 2 or S % 2:
        raise InvalidInputError(f"S={S!r} must be an even whole number of blocks, at least 2")
    if M.shape[0] < 2 * S:
        raise InvalidInputError(f"S={S} blocks need at least {2 * S} sessions; this sweep has {M.shape[0]}")
    if not np.isfinite(M).all():
        raise InvalidInputError("the return matrix holds NaN or inf")
    s1, s2, n = _block_sums(M, S)
    N = M.shape[1]
    combos = np.array(list(itertools.combinations(range(S), S // 2)), dtype=int)
    logits, is_sr, oos_sr = [], [], []
    for a in range(0, len(combos), chunk):
        sel = np.zeros((min(chunk, len(combos) - a), S))
        rows = np.arange(sel.shape[0])[:, None]
        sel[rows, combos[a:a + chunk]] = 1.0
        oth = 1.0 - sel
        tr = _sharpe_from_sums(sel @ s1, sel @ s2, sel @ n)
        te = _sharpe_from_sums(oth @ s1, oth @ s2, oth @ n)
        best = np.argmax(tr, axis=1)
        r = np.arange(len(best))
        v = te[r, best][:, None]
        rank = (te < v).sum(axis=1) + ((te == v).sum(axis=1) + 1) / 2.0  # 1 = worst, ties averaged
        w = rank / (N + 1)
        logits.append(np.log(w / (1 - w)))
        is_sr.append(tr[r, best])
        oos_sr.append(te[r, best])
    lam = np.concatenate(logits)
    x, y = np.concatenate(is_sr), np.concatenate(oos_sr)
    if np.ptp(x) > 0:
        slope, intercept = (float(c) for c in np.polyfit(x, y, 1))
    else:
        slope, intercept = math.nan, float(y.mean())
    return CSCVResult(pbo=float(np.mean(lam <= 0)), logits=lam, is_sharpe=x, oos_sharpe=y, slope=slope,
                      intercept=intercept, prob_loss=float(np.mean(y < 0)), blocks=S, splits=len(lam))


@dataclass
class WalkForwardResult:
    """Per window: the chosen configuration and its Sharpe in and out of sample; the chained OOS returns."""

    windows: pd.DataFrame
    returns: pd.Series
    sharpe_annual: float
    total_return: float

    def __repr__(self) -> str:
        return (f"WalkForwardResult({len(self.windows)} windows, out-of-sample Sharpe {self.sharpe_annual:.2f}, "
                f"total return {self.total_return:.2%})")


def walk_forward(M: np.ndarray, index: pd.DatetimeIndex, train: int, test: int,
                 periods: int = 252) -> WalkForwardResult:
    """Choose the best configuration on each ``train`` window and hold it over the next ``test`` window."""
    for name, v in (("train", train), ("test", test)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 2:
            raise InvalidInputError(f"walk_forward {name}={v!r} must be a whole number of sessions, at least 2")
    M = np.asarray(M, dtype=float)
    T = M.shape[0]
    if train + test > T:
        raise InvalidInputError(f"walk_forward=({train}, {test}) needs {train + test} sessions; the sweep has {T}")
    rows, chunks, idx = [], [], []
    a = 0
    while a + train < T:
        tr = M[a:a + train]
        te = M[a + train:min(a + train + test, T)]
        sr = sharpe(tr)
        k = int(np.argmax(sr))
        rows.append({"train_start": index[a], "train_end": index[a + train - 1], "test_start": index[a + train],
                     "test_end": index[a + train + len(te) - 1], "config": k, "is_sharpe": float(sr[k]),
                     "oos_sharpe": float(sharpe(te[:, [k]])[0]) if len(te) > 1 else math.nan})
        chunks.append(te[:, k])
        idx.append(index[a + train:a + train + len(te)])
        a += test
    r = pd.Series(np.concatenate(chunks), index=idx[0].append(idx[1:]) if len(idx) > 1 else idx[0],
                  name="walk_forward")
    sd = float(r.std(ddof=1))
    return WalkForwardResult(windows=pd.DataFrame(rows), returns=r,
                             sharpe_annual=float(r.mean() / sd * math.sqrt(periods)) if sd > 0 else 0.0,
                             total_return=float(np.prod(1 + r.to_numpy()) - 1))
