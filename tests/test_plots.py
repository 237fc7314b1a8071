"""Charts on synthetic frames: structure, readable axes, marks, PNG output (Agg, no display)."""

from __future__ import annotations

import io
import sys
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

import finder
from finder._exceptions import InvalidInputError
from finder.analysis.backtest import simulate
from finder.plots import _fonts, candles, plot_backtest, plot_candles
from finder.report import tear_sheet

IDX = pd.bdate_range("2025-01-02", periods=200, name="date")


def ohlcv(seed: int = 0, n: int = 200, start: float = 20_000.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    c = start * np.exp(np.cumsum(rng.normal(0.0005, 0.02, n)))
    o = c * np.exp(rng.normal(0, 0.008, n))
    h = np.maximum(o, c) * 1.01
    lo = np.minimum(o, c) * 0.99
    return pd.DataFrame({"open": o, "high": h, "low": lo, "close": c,
                         "volume": rng.integers(100_000, 2_000_000, n)}, index=IDX[:n])


def png_bytes(fig: Figure) -> bytes:
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. "Glyph ... missing from font"
        fig.savefig(buf, format="png", dpi=60)
    return buf.getvalue()


def tick_texts(ax, axis: str = "y") -> list[str]:
    ax.figure.canvas.draw()
    ticks = ax.get_yticklabels() if axis == "y" else ax.get_xticklabels()
    return [t.get_text() for t in ticks if t.get_text()]


# --------------------------------------------------------------------------- candles

def test_candles_structure_axes_and_png():
    df = ohlcv()
    fig = plot_candles(df, count=120, title="005930  Samsung")
    assert isinstance(fig, Figure)
    price, vol = fig.axes
    assert price.get_title(loc="left") == "005930  Samsung"
    # KRW with thousands separators on the price axis, dates on the shared x axis
    ys = tick_texts(price)
    assert ys and all("," in t for t in ys if abs(float(t.replace(",", ""))) >= 1000)
    xs = tick_texts(vol, "x")
    assert xs and all(pd.Timestamp(t) in set(df.index[-120:]) for t in xs)
    assert any(t.endswith(("K", "M")) for t in tick_texts(vol))
    data = png_bytes(fig)
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


def test_candles_overlay_is_the_indicator_on_the_visible_window():
    df = ohlcv(1)
    fig = plot_candles(df, count=100, indicators=("ema20",))
    (ax,) = fig.axes  # no volume pane asked
    (line,) = ax.get_lines()
    assert line.get_label() == "EMA20"
    # EMA computed independently over the whole frame, then the last 100 shown
    expected = df["close"].ewm(span=20, adjust=False).mean().iloc[-100:].to_numpy()
    assert line.get_ydata() == pytest.approx(expected)
    # one wick per bar: the LineCollection spans low..high
    segs = ax.collections[0].get_segments()
    assert len(segs) == 100
    assert segs[-1][:, 1] == pytest.approx([df["low"].iloc[-1], df["high"].iloc[-1]])


def test_candle_colours_follow_the_korean_convention():
    df = ohlcv(2).iloc[:10]
    fig = plot_candles(df, count=None, indicators=None)
    bars = fig.axes[0].patches
    for bar, (o, c) in zip(bars, zip(df["open"], df["close"])):
        want = "#d62728" if c >= o else "#1f5fbf"  # red rising, blue falling
        assert matplotlib.colors.to_hex(bar.get_facecolor()) == want


def test_marks_for_trades_and_picks():
    df = ohlcv(3)
    d = df.index
    trades = pd.DataFrame({
        "code": ["005930", "005930", "000660"], "date": [d[150], d[150], d[150]],
        "entry_date": [d[151], d[151], d[151]], "exit_date": [d[152], d[160], d[155]],
        "exit_reason": ["stop_loss", "horizon", "horizon"]})
    fig = plot_candles(df, count=80, marks=trades, code="005930")
    labels = {c.get_label() for c in fig.axes[0].collections}
    assert {"entry", "exit: stop_loss", "exit: horizon"} <= labels
    entry = next(c for c in fig.axes[0].collections if c.get_label() == "entry")
    # x positions count from the first visible session (index 120)
    assert entry.get_offsets()[:, 0].tolist() == [151 - 120]
    picks = pd.DataFrame({"date": [d[130], d[140], d[10]], "code": ["005930", "000660", "005930"]})
    fig2 = plot_candles(df, count=80, marks=picks, code="005930")
    (pick,) = [c for c in fig2.axes[0].collections if c.get_label() == "pick"]
    assert pick.get_offsets()[:, 0].tolist() == [10]  # d[10] is outside the window; 000660 is not ours
    one_day = pd.DataFrame({"code": ["005930"], "score": [9]})
    one_day.attrs["session"] = d[199]
    fig3 = plot_candles(df, count=80, marks=one_day, code="005930")
    assert any(c.get_label() == "pick" for c in fig3.axes[0].collections)


@pytest.mark.parametrize("bad", [("tema",), ("macd",), ("volume", "ema0x"), (5,)])
def test_bad_indicators_are_refused(bad):
    with pytest.raises(InvalidInputError, match="indicators contains"):
        plot_candles(ohlcv(), indicators=bad)


def glyph_warnings(fig: Figure) -> list[str]:
    """Render ``fig`` to PNG and return matplotlib's "Glyph ... missing" warnings."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fig.savefig(io.BytesIO(), format="png", dpi=50)
    return [str(w.message) for w in caught if "Glyph" in str(w.message) and "missing" in str(w.message)]


def test_the_hangul_font_comes_from_finders_own_dependency():
    from matplotlib import font_manager

    name = _fonts.hangul_font()
    path = font_manager.findfont(font_manager.FontProperties(family=name), fallback_to_default=False)
    # the package's file, not a system font that happens to be installed
    assert Path(path).resolve().parent == _fonts.font_dir().resolve()
    assert "koreanize_matplotlib" not in sys.modules  # its __init__ would set rcParams globally


def _sweep_heatmap():
    from types import SimpleNamespace

    from finder.plots.sweep import plot_heatmap

    table = pd.DataFrame({"screen": ["모멘텀", "모멘텀", "거래량 급증", "거래량 급증"], "take_profit": [0.05, 0.1] * 2,
                          "sharpe": [0.4, 1.1, -0.2, 0.3]})
    sweep = SimpleNamespace(table=table, _grid_keys=["screen", "take_profit"],
                            verdict=lambda: "4개 조합 중 최고: 모멘텀")
    return plot_heatmap(sweep, "take_profit", "screen")


def test_every_chart_renders_korean_names_without_missing_glyphs():
    before = {k: v for k, v in matplotlib.rcParams.items() if k.startswith("font.")}
    df = ohlcv(5)
    res = backtest_result(conditions="모멘텀 전략", names=True)
    ts = tear_sheet(res, benchmark=pd.Series(np.linspace(2500, 2600, 200), index=IDX, name="코스피"))
    figs = {
        "candles": plot_candles(df, count=60, title="005930  삼성전자   daily"),
        "candles+marks": plot_candles(df, count=60, marks=res.trades, code="000001", title="000001  SK하이닉스"),
        "backtest": res.plot(),
        "tearsheet": ts.figure,
        "sweep heatmap": _sweep_heatmap(),
    }
    figs["candles"].axes[0].annotate("외국인 순매수", (5, df["close"].iloc[-55]))  # text added after the fact
    for what, fig in figs.items():
        assert glyph_warnings(fig) == [], what
    assert "삼성전자" in figs["candles"].axes[0].get_title(loc="left")  # shown as written, not romanized
    assert "모멘텀 전략" in figs["backtest"].get_suptitle()
    # nothing leaked into the user's own settings
    assert {k: v for k, v in matplotlib.rcParams.items() if k.startswith("font.")} == before


def test_a_plain_matplotlib_figure_is_untouched_and_shows_the_problem_finder_solves():
    # the check above can fail: without finder's fallback, DejaVu Sans has no Hangul glyphs
    fig = Figure()
    fig.add_subplot().set_title("삼성전자")
    assert glyph_warnings(fig)
    _fonts.add_hangul_fallback(fig)
    assert glyph_warnings(fig) == []


def test_candles_fetches_with_warmup_and_titles_code_and_name(monkeypatch):
    df = ohlcv(4)
    calls = []

    def fake_get_ohlcv(code, count=220, base_dt=None, adjusted=True):
        calls.append((code, count, base_dt, adjusted))
        return df.iloc[-count:]

    monkeypatch.setattr(finder.data, "get_ohlcv", fake_get_ohlcv)
    monkeypatch.setattr(finder.data, "get_stock_list",
                        lambda market="KOSPI": pd.DataFrame({"code": ["005930"], "name": ["Samsung Elec"]}))
    fig = candles("005930", end="2025-09-30", count=60)
    assert calls == [("005930", 60 + 60, pd.Timestamp("2025-09-30"), True)]  # tema20 needs 3 x 20 bars
    title = fig.axes[0].get_title(loc="left")
    assert title.startswith("005930  Samsung Elec") and str(df.index[-1].date()) in title
    png_bytes(fig)
    with pytest.raises(InvalidInputError, match="count=0"):
        candles("005930", count=0)
    with pytest.raises(InvalidInputError, match="code=5930"):
        candles(5930)


# --------------------------------------------------------------------------- backtest

def backtest_result(conditions: str = "test", names: bool = False):
    codes = [f"{k:06d}" for k in range(8)]
    frames = {k: ohlcv(10 + i) for i, k in enumerate(codes)}
    px = {f: pd.DataFrame({k: fr[f] for k, fr in frames.items()}) for f in ("open", "high", "low", "close")}
    sessions = IDX[100:140]
    rng = np.random.default_rng(7)
    picks = pd.DataFrame([{"date": d, "code": c} for d in sessions for c in rng.choice(codes, 2, replace=False)])
    if names:
        hangul = ["삼성전자", "SK하이닉스", "네이버", "카카오", "현대차", "기아", "셀트리온", "포스코홀딩스"]
        picks["name"] = picks["code"].map(dict(zip(codes, hangul)))
    return simulate(picks, px, sessions, horizons=(1, 5, 10), take_profit=0.08, stop_loss=0.05,
                    params={"conditions": conditions, "universe": "synthetic"})


def test_backtest_plot_panels_match_the_result():
    res = backtest_result()
    fig = res.plot()
    ax_eq, ax_dd, ax_box, ax_win = fig.axes
    assert "test" in fig.get_suptitle() and "cost 25 bp" in fig.get_suptitle()
    bold = max(ax_eq.get_lines()[:3], key=lambda ln: ln.get_linewidth())
    assert bold.get_label().startswith("10-session")  # the equity horizon: the longest
    assert bold.get_ydata() == pytest.approx(res.equity["equity"].to_numpy())
    wins = [b.get_height() for b in ax_win.patches]
    assert wins == pytest.approx(res.summary()["win_rate"].to_numpy())
    assert [t.get_text() for t in ax_win.get_xticklabels()] == ["1", "5", "10"]
    assert any("max drawdown" in t.get_text() for t in ax_dd.texts)
    png_bytes(fig)


def test_backtest_plot_other_horizon_and_no_trades():
    res = backtest_result()
    fig = plot_backtest(res, horizon=5)
    bold = max(fig.axes[0].get_lines()[:3], key=lambda ln: ln.get_linewidth())
    assert bold.get_ydata() == pytest.approx(res.equity_for(5)["equity"].to_numpy())
    empty = simulate(pd.DataFrame(columns=["date", "code"]), res.prices, res.sessions[:5], horizons=(1, 5))
    fig2 = empty.plot()
    assert any("no completed trades" in t.get_text() for t in fig2.axes[2].texts)
    assert fig2.axes[0].get_lines()[0].get_ydata() == pytest.approx(1.0)
    png_bytes(fig2)
