"""Overfitting guards: hand-worked formulas, pure noise, a planted signal, walk-forward."""

from __future__ import annotations

import itertools
import math
import statistics
from statistics import NormalDist

import numpy as np
import pandas as pd
import pytest

from finder import InvalidInputError
from finder.analysis import _overfit as ov
from finder.analysis.sweep import sweep_panels

from _sweep_support import _u, band_screen, noise_panels, planted_panels, random_screen

Z = NormalDist()


def _sr(xs):
    sd = statistics.stdev(xs)
    return statistics.mean(xs) / sd if sd > 0 else 0.0


def test_deflated_sharpe_matches_the_paper_formula_by_hand():
    r = [0.01, -0.004, 0.006, 0.012, -0.008, 0.003, 0.009, -0.002, 0.004, 0.007]
    others = [0.05, 0.12, -0.03, 0.2, 0.08]
    sr = _sr(r)
    srs = others + [sr]
    n = len(srs)
    g = 0.5772156649015329
    sr0 = math.sqrt(statistics.variance(srs)) * ((1 - g) * Z.inv_cdf(1 - 1 / n) + g * Z.inv_cdf(1 - 1 / (n * math.e)))
    m = statistics.mean(r)
    m2 = sum((x - m) ** 2 for x in r) / len(r)
    skew = sum((x - m) ** 3 for x in r) / len(r) / m2 ** 1.5
    kurt = sum((x - m) ** 4 for x in r) / len(r) / m2 ** 2
    dsr = Z.cdf((sr - sr0) * math.sqrt(len(r) - 1) / math.sqrt(1 - skew * sr + (kurt - 1) / 4 * sr ** 2))
    got = ov.deflated_sharpe(np.array(r), np.array(srs))
    assert got["sr0"] == pytest.approx(sr0, rel=1e-12)
    assert got["skew"] == pytest.approx(skew, rel=1e-10) and got["kurtosis"] == pytest.approx(kurt, rel=1e-10)
    assert got["dsr"] == pytest.approx(dsr, rel=1e-10)
    assert got["p_value"] == pytest.approx(1 - dsr, rel=1e-10)
    # one trial only: SR0 = 0, the probabilistic Sharpe ratio
    assert ov.deflated_sharpe(np.array(r), np.array([sr]))["sr0"] == 0.0


def _pbo_by_hand(M, S):
    T, N = len(M), len(M[0])
    bounds = np.array_split(np.arange(T), S)
    lam, is_s, oos_s = [], [], []
    for combo in itertools.combinations(range(S), S // 2):
        tr = [i for b in combo for i in bounds[b]]
        te = [i for b in range(S) if b not in combo for i in bounds[b]]
        perf_tr = [_sr([M[i][j] for i in tr]) for j in range(N)]
        perf_te = [_sr([M[i][j] for i in te]) for j in range(N)]
        best = max(range(N), key=lambda j: (perf_tr[j], -j))
        v = perf_te[best]
        rank = sum(p < v for p in perf_te) + (sum(p == v for p in perf_te) + 1) / 2
        w = rank / (N + 1)
        lam.append(math.log(w / (1 - w)))
        is_s.append(perf_tr[best])
        oos_s.append(v)
    return sum(x <= 0 for x in lam) / len(lam), lam, is_s, oos_s


def test_pbo_cscv_matches_a_hand_enumeration():
    rng = np.random.default_rng(7)
    M = rng.normal(0.0005, 0.01, (24, 5)).tolist()
    for S in (2, 4, 6):
        pbo, lam, is_s, oos_s = _pbo_by_hand(M, S)
        got = ov.pbo_cscv(np.array(M), S=S)
        assert got.splits == math.comb(S, S // 2)
        assert got.pbo == pytest.approx(pbo)
        np.testing.assert_allclose(got.logits, lam, rtol=1e-9)
        np.testing.assert_allclose(got.is_sharpe, is_s, rtol=1e-9)
        np.testing.assert_allclose(got.oos_sharpe, oos_s, rtol=1e-9)
        assert got.prob_loss == pytest.approx(sum(x < 0 for x in oos_s) / len(oos_s))


def test_pbo_tiny_worked_example():
    # 4 sessions, 2 blocks of 2, 3 configurations.  Split A: train rows 0-1, test rows 2-3; split B the reverse.
    M = np.array([[0.01, 0.00, 0.02],
                  [0.03, 0.01, 0.00],
                  [-0.01, 0.02, 0.01],
                  [0.00, 0.02, 0.03]])
    # rows 0-1 Sharpe: c0 = 0.02/0.01414 = 1.414, c1 = 0.005/0.00707 = 0.707, c2 = 0.01/0.01414 = 0.707 -> c0
    # rows 2-3: c0 = -0.005/0.00707 = -0.707, c1 = 0 variance -> 0, c2 = 0.02/0.01414 = 1.414
    # A: c0 best in-sample, out of sample the worst: rank 1 of 3, w = 1/4, logit ln(1/3) < 0
    # B: c2 best in-sample; in rows 0-1 c0 beats it and c1 ties it (column 2 is exactly twice column 1 there):
    #    none below, one tie -> rank 0 + (1 + 1) / 2 + ... = 1.5, w = 1.5/4, logit ln(0.6) < 0
    got = ov.pbo_cscv(M, S=2)
    np.testing.assert_allclose(sorted(got.logits), sorted([math.log(1 / 3), math.log(0.6)]), rtol=1e-9)
    assert got.pbo == 1.0
    np.testing.assert_allclose(sorted(got.oos_sharpe), sorted([-1 / math.sqrt(2), 1 / math.sqrt(2)]), rtol=1e-9)


def test_walk_forward_by_hand():
    idx = pd.bdate_range("2025-01-01", periods=8)
    M = np.array([[0.01, 0.0], [0.02, 0.001], [0.0, 0.01], [-0.01, 0.02],
                  [0.01, -0.01], [0.03, 0.0], [0.0, 0.01], [0.01, 0.02]])
    wf = ov.walk_forward(M, idx, train=4, test=2)
    # window 1: rows 0-3 -> c0 SR 0.01/0.01291=0.775, c1 0.00775/0.00929=0.834 -> c1 over rows 4-5
    # window 2: rows 2-5 -> c0 0.0075/0.01708=0.439, c1 0.005/0.01291=0.387 -> c0 over rows 6-7
    assert list(wf.windows["config"]) == [1, 0]
    np.testing.assert_array_equal(wf.returns.to_numpy(), [-0.01, 0.0, 0.0, 0.01])
    assert list(wf.returns.index) == list(idx[4:])
    with pytest.raises(InvalidInputError):
        ov.walk_forward(M, idx, train=6, test=4)


def test_pbo_of_random_picks_centres_on_one_half():
    # PBO of one noise sweep is itself noisy (its 5-95 % range is about 0.2-0.8 for 20 configurations), so
    # its calibration is checked on many independent sweeps of random picks on random-walk stocks, built
    # directly in numpy: on average the in-sample best lands at the out-of-sample median.
    rng = np.random.default_rng(11)
    vals = []
    for _ in range(40):
        R = rng.normal(0, 0.02, (96, 30))                  # sessions x stocks, no skill possible
        picks = rng.random((20, 96, 30)) < 0.1              # 20 configurations of random picks
        M = np.stack([np.where(p.any(1), (R * p).sum(1) / np.maximum(p.sum(1), 1), 0.0) for p in picks], 1)
        vals.append(ov.pbo_cscv(M, S=8).pbo)
    assert 0.4 <= float(np.mean(vals)) <= 0.6
    # and a matrix where one column really earns more: PBO near 0
    M = rng.normal(0, 0.01, (96, 20))
    M[:, 3] += 0.006
    assert ov.pbo_cscv(M, S=8).pbo < 0.05


def test_pure_noise_sweep_is_not_significant():
    panels = noise_panels(N=30, T=100)
    sessions = panels["close"].index[20:96]
    sw = sweep_panels(panels, random_screen, {"seed": list(range(16))}, sessions, horizons=(1,), cost_bps=0.0,
                      lookback=21, blocks=8)
    # the sweep's return matrix is the random picks' next-day returns, computed here independently
    c = panels["close"]
    ret = c / c.shift(1) - 1
    M = sw.returns
    for j in (0, 7, 15):
        for t, d in enumerate(M.index):
            prev = c.index[c.index.get_loc(d) - 1]
            picked = [x for x in c.columns if _u(j, x, prev) < 0.1] if prev in sessions else []
            want = ret.loc[d, picked].mean() if picked else 0.0
            assert M.iloc[t, j] == pytest.approx(want, rel=1e-12, abs=1e-15)
    pbo = sw.overfit["pbo"].pbo
    p = sw.overfit["deflated"]["p_value"]
    print(f"noise: PBO {pbo:.3f}, DSR p {p:.3f}; {sw.verdict()}")
    # PBO of a single noise sweep is itself noisy: its calibration is the test above
    assert p > 0.05
    assert not sw.verdict().endswith("holds up out of sample")
    assert sw.verdict().startswith("best of 16: Sharpe ")
    assert "PBO" in repr(sw).splitlines()[0]


def test_planted_signal_gives_low_pbo():
    panels = planted_panels(N=40, T=120)
    sessions = panels["close"].index[20:115]
    grid = {"lo": [-2.25, -1.5, -0.75, 0.0, 0.75, 1.5]}
    sw = sweep_panels(panels, band_screen, grid, sessions, horizons=(1,), cost_bps=0.0, lookback=21, blocks=8,
                      walk_forward=(30, 15))
    pbo = sw.overfit["pbo"].pbo
    p = sw.overfit["deflated"]["p_value"]
    print(f"planted: PBO {pbo:.3f}, DSR p {p:.4f}; {sw.verdict()}")
    assert sw.best("sharpe")["lo"] >= 0.75         # a band of high signal wins (the top band holds few stocks)
    assert sw.table["sharpe"].iloc[0] < 0 < sw.table["sharpe"].iloc[-1]
    assert pbo < 0.1
    assert "likely overfit" not in sw.verdict()
    wf = sw.overfit["walk_forward"]
    assert (wf.windows["config"] >= 4).all() and wf.sharpe_annual > 0


def test_bad_guard_arguments_are_refused():
    panels = noise_panels(T=40, N=5)
    s = panels["close"].index[25:35]
    with pytest.raises(InvalidInputError):
        sweep_panels(panels, random_screen, {"seed": [1, 2]}, s, horizons=(1,), lookback=21, blocks=3)
    with pytest.raises(InvalidInputError):
        sweep_panels(panels, random_screen, {"seed": [1, 2]}, s, horizons=(1,), lookback=21, walk_forward=5)
    with pytest.raises(InvalidInputError):
        ov.pbo_cscv(np.zeros((10, 3)), S=16)
