"""Readable tables and files, an honest demo comparison, the tear sheet's numbers, and a CLI that explains itself."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest

from finder import _formats as fmt
from finder import cli
from finder.report import _comparison, tear_sheet
from finder._tearsheet import benchmark_curve, monthly_returns
from finder._htmlfont import embed_hangul, hangul_chars

from test_plots import backtest_result

# --------------------------------------------------------------------------- formats


def test_number_formats():
    assert fmt.pct(0.0123) == "+1.23%" and fmt.pct(-0.5) == "-50.00%" and fmt.pct(np.nan) == ""
    assert fmt.pct_points(2.345) == "+2.35%"  # scan's change_pct is already in percent
    assert fmt.share(0.55) == "55.0%"
    assert fmt.krw(71500.4) == "71,500" and fmt.krw(1234567) == "1,234,567"
    assert fmt.eok(1.2345e11) == "1,234.5억"
    assert fmt.count(12.0) == "12" and fmt.count(1234) == "1,234" and fmt.count(None) == ""


def test_style_formats_known_columns_and_keeps_the_data():
    df = pd.DataFrame({"name": ["삼성전자"], "close": [71500.0], "change_pct": [-1.5], "value": [3.2e11],
                       "count": [150.0], "win_rate": [0.54], "mean": [0.0019]})
    html = fmt.style(df).to_html()
    for text in ("삼성전자", "71,500", "-1.50%", "3,200.0억", ">150<", "54.0%", "+0.19%"):
        assert text in html, text
    assert "150.000000" not in html
    assert df["close"].dtype == float  # formatting is display only


# --------------------------------------------------------------------------- the demo's comparison line


def test_comparison_is_honest_about_two_warm_runs():
    prev = {"report_dir": "/r/20251130-100000", "requests": {"ka10081": 0}, "backtest_s": 0.4}
    line = _comparison(prev, 1.0, 0)
    assert "2.5x slower" in line and "noise" in line and "faster" not in line
    assert "served everything" not in line


def test_comparison_after_a_cold_run():
    prev = {"report_dir": "/r/20251130-100000", "requests": {"ka10081": 282, "au10001": 1}, "backtest_s": 16.0}
    line = _comparison(prev, 2.0, 0)
    assert "8.0x faster" in line and "283 upstream requests before, 0 now" in line
    assert "about as fast" in _comparison(prev | {"requests": {}}, 15.5, 0)


# --------------------------------------------------------------------------- tear sheet


def test_monthly_returns_compound_to_the_total():
    idx = pd.bdate_range("2025-01-02", "2025-04-30")
    eq = pd.Series(np.linspace(1.0, 1.2, len(idx)) * (1 + 0.01 * np.sin(np.arange(len(idx)))), index=idx)
    m = monthly_returns(eq)
    assert list(m.index) == [2025] and list(m.columns) == list(range(1, 13))
    got = np.nanprod(1 + m.to_numpy(dtype=float)) - 1
    assert got == pytest.approx(eq.iloc[-1] - 1.0)
    assert m.loc[2025, 1] == pytest.approx(eq[eq.index.month == 1].iloc[-1] - 1.0)
    assert np.isnan(m.loc[2025, 5])


def test_benchmark_is_rebased_on_the_close_before_the_first_session():
    idx = pd.bdate_range("2025-01-01", periods=10)
    close = pd.Series(np.arange(100.0, 110.0), index=idx)
    curve = benchmark_curve(close, idx[3:8])
    assert list(curve.index) == list(idx[3:8])  # nothing after the backtest's sessions
    assert curve.iloc[0] == pytest.approx(103 / 102) and curve.iloc[-1] == pytest.approx(107 / 102)


def test_tear_sheet_numbers_come_from_the_result():
    res = backtest_result(names=True)
    bench = pd.Series(np.linspace(2500, 2600, 200), index=pd.bdate_range("2025-01-02", periods=200), name="KOSPI")
    ts = tear_sheet(res, benchmark=bench)
    H = res.equity_horizon
    head = ts.headline
    trades = res.trades[res.trades.horizon == H]
    assert head.loc["trades", "strategy"] == trades["return"].notna().sum()
    assert head.loc["win rate", "strategy"] == pytest.approx(res.summary().loc[H, "win_rate"])
    assert head.loc["max drawdown", "strategy"] == pytest.approx(res.equity["drawdown"].min())
    curve = benchmark_curve(bench, res.equity.index)
    assert head.loc["total return", "benchmark (KOSPI)"] == pytest.approx(curve.iloc[-1] - 1)
    if hasattr(res, "stats"):  # CAGR and Sharpe are BacktestResult.stats()'s, for strategy and benchmark alike
        from finder.analysis.stats import equity_stats

        row = res.stats(benchmark=bench).loc[H]
        assert head.loc["CAGR", "strategy"] == pytest.approx(row["cagr"])
        assert head.loc["Sharpe", "strategy"] == pytest.approx(row["sharpe"])
        assert head.loc["Sharpe", "benchmark (KOSPI)"] == pytest.approx(equity_stats(curve)["sharpe"])
    # best and worst: the extreme returns of that horizon, with Hangul names
    assert ts.best["return"].iloc[0] == pytest.approx(trades["return"].max())
    assert ts.worst["return"].iloc[0] == pytest.approx(trades["return"].min())
    assert set(ts.best["name"]) <= set(trades["name"]) and ts.best["name"].str.contains("[가-힣]").any()
    text = ts.headline_text()
    assert text.loc["win rate", "strategy"].endswith("%") and text.loc["trades", "strategy"].isdigit()
    assert text.loc["total return", "strategy"][0] in "+-"
    shown = ts.trades_text("best")
    assert shown["entry price (KRW)"].str.fullmatch(r"[\d,]+").all()
    html = ts.to_html()
    assert "<img" in html and "Best trades" in html


def test_tear_sheet_without_a_benchmark_says_so_and_invents_nothing():
    res = backtest_result()
    ts = tear_sheet(res, benchmark=None)
    col = [c for c in ts.headline.columns if c.startswith("benchmark")][0]
    text = ts.headline_text()
    assert (text.loc[["trades", "total return", "CAGR", "Sharpe", "max drawdown", "win rate"], col] == "n/a").all()
    assert ts.benchmark is None
    has_stats = hasattr(res, "stats")
    assert (text.loc["CAGR", "strategy"] == "n/a") is (not has_stats)
    if not has_stats:
        assert any("stats()" in n for n in ts.notes)
    assert any("benchmark=None" in n for n in ts.notes)
    from finder._exceptions import InvalidInputError

    with pytest.raises(InvalidInputError, match="benchmark="):
        tear_sheet(res, benchmark=3.5)


def test_html_report_embeds_only_the_hangul_it_uses():
    page = "<html><head><style>:root { --jp-content-font-family: system-ui, sans-serif; }</style></head>" \
           "<body><td>삼성전자</td><td>SK하이닉스</td></body></html>"
    assert hangul_chars(page) == "".join(sorted(set("삼성전자하이닉스")))
    out = embed_hangul(page)
    assert "@font-face" in out and "data:font/woff;base64," in out
    assert "--jp-content-font-family: 'finder-hangul', system-ui, sans-serif;" in out
    assert embed_hangul("<html><head></head><body>Samsung</body></html>").count("@font-face") == 0


# --------------------------------------------------------------------------- CLI


def _parsers(parser: argparse.ArgumentParser, path=("finder",)):
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, path + (name,))


def test_every_command_has_a_description_and_every_option_help_default_and_choices():
    parser = cli.build_parser()
    for path, p in _parsers(parser):
        help_text = " ".join(p.format_help().split())  # argparse wraps lines
        for action in p._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            if isinstance(action, argparse._SubParsersAction):
                for choice in action._choices_actions:
                    assert choice.help and choice.dest in help_text, (path, choice.dest)
                continue
            assert action.help, (path, action.dest)
            if action.option_strings and action.default not in (None, False):
                assert f"(default: {action.default})" in help_text, (path, action.dest)
            if action.choices:
                assert "{" + ",".join(action.choices) + "}" in help_text, (path, action.dest)
    scan_help = dict(_parsers(parser))[("finder", "scan")].format_help()
    assert "momentum_strict" in scan_help and "KOSDAQ" in scan_help
    assert "(default: 20)" in dict(_parsers(parser))[("finder", "ohlcv")].format_help()


def test_finder_help_lists_every_command_in_a_real_process():
    out = subprocess.run([sys.executable, "-m", "finder.cli", "--help"], capture_output=True, text=True,
                         timeout=120, check=True).stdout
    for command in ("ohlcv", "cache", "scan", "sim", "demo"):
        line = next((ln for ln in out.splitlines() if ln.strip().startswith(command + " ")), "")
        assert len(line.split()) > 2, command  # the name and a description


def test_bad_market_or_preset_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["scan", "--date", "2025-10-01", "--universe", "KOSPY"])
    assert e.value.code == 2 and "unknown market" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["scan", "--date", "2025-10-01", "--preset", "nope"])
    assert "momentum_strict" in capsys.readouterr().err


def test_scan_csv_opens_in_excel_with_hangul(tmp_path, monkeypatch, capsys):
    import finder.analysis.scanner as scan_mod

    picks = pd.DataFrame({"code": ["005930"], "name": ["삼성전자"], "market": ["KOSPI"], "close": [71500.0],
                          "change_pct": [1.5], "value": [3.2e11], "score": [3.0], "signals": [3]})
    picks.attrs["session"] = pd.Timestamp("2025-10-01")
    monkeypatch.setattr(scan_mod, "scan", lambda *a, **k: picks)  # the CLI's output step, not the scanner
    out = tmp_path / "picks.csv"
    assert cli.main(["scan", "--date", "2025-10-01", "--out", str(out)]) == 0
    raw = out.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # the BOM Excel needs to read UTF-8
    assert pd.read_csv(out, encoding="utf-8-sig", dtype={"code": str}).loc[0, "name"] == "삼성전자"
    printed = capsys.readouterr().out
    assert "71,500" in printed and "+1.50%" in printed and "3,200.0억" in printed
