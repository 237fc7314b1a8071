"""The ``finder`` command.

    finder ohlcv 005930 --count 10 --date 2025-10-01
    finder cache info | clear [--code C] | prune [--max-size 2GB] [--older-than 30d]
    finder cache warm --universe KOSPI --count 600
    finder cache refresh [--universe KOSPI]
    finder scan --date 2025-10-01 [--preset momentum] [--universe KOSPI] [--out picks.csv]
    finder sim serve --port 8000 [--data CSV]
    finder demo

Bad arguments print one line and exit with status 2, never a traceback (a
stock code Kiwoom does not know is a bad argument too); failures talking to
Kiwoom, and files or ports the system refuses, print one line and exit with
status 1.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Sequence

from ._exceptions import FinderError, InvalidInputError, StockNotFoundError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, no usage dump
        self.exit(2, f"finder: error: {message} (see `{self.prog} --help`)\n")


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid port {text!r}") from None
    if not 0 <= port <= 65535:  # else the socket layer raises OverflowError: a traceback
        raise argparse.ArgumentTypeError(f"port {port} is out of range; use 0 to 65535")
    return port


def _fmt_bytes(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def _cmd_ohlcv(args: argparse.Namespace) -> int:
    from . import data

    df = data.get_ohlcv(args.code, args.count, args.date, adjusted=not args.raw)
    with _wide_pandas():
        print(df.to_string())
    return 0


class _wide_pandas:
    def __enter__(self):
        import pandas as pd

        self._ctx = pd.option_context("display.width", 200, "display.max_columns", 50,
                                      "display.float_format", "{:,.0f}".format)
        self._ctx.__enter__()

    def __exit__(self, *exc):
        self._ctx.__exit__(*exc)


def _print_info(info: dict) -> None:
    print(f"location      {info['location']}")
    print(f"stocks        {info['stocks']}")
    print(f"entries       {info['entries']}")
    print(f"beside them   {info.get('frames', 0)} ready frames, {info.get('panels', 0)} panels, "
          f"{info.get('index_bars', 0)} index-bar files, {info.get('snapshots', 0)} snapshots")
    print(f"size          {_fmt_bytes(info['bytes'])}")
    print(f"writable      {'yes' if info['writable'] else 'no'}")
    if info.get("unsafe"):
        print(f"WARNING       {info['unsafe']}")


def _cmd_cache(args: argparse.Namespace) -> int:
    from . import cache

    if args.action == "info":
        info = cache.info()
        if args.json:
            print(json.dumps(info, indent=2, default=str))
        else:
            _print_info(info)
    elif args.action == "clear":
        n = cache.clear(code=args.code)
        print(f"removed {n} entries" + (f" for {args.code}" if args.code else ""))
    elif args.action == "prune":
        if args.max_size is None and args.older_than is None:
            raise InvalidInputError("prune needs --max-size and/or --older-than")
        out = cache.prune(max_bytes=args.max_size, older_than=args.older_than)
        print(f"removed {out['removed']} entries, freed {_fmt_bytes(out['freed_bytes'])}, kept {out['kept']}")
    elif args.action == "refresh":
        universe = args.codes.split(",") if args.codes else args.universe
        out = cache.refresh(universe, progress=not args.quiet)
        print(f"refresh to {out['session']}: {out['current']} already current, {out['from_quotes']} from quotes, "
              f"{out['actions']} corporate actions refetched, {out['walked']} walked, {out['halted']} halted, "
              f"{len(out['failed'])} failed")
    elif args.action == "warm":
        universe = args.codes.split(",") if args.codes else args.universe
        out = cache.warm(universe, count=args.count, base_dt=args.date, progress=not args.quiet)
        print(f"warm: {out['fetched']} fetched, {out['skipped']} already cached, {len(out['failed'])} failed "
              f"of {out['stocks']} stocks")
        for code, why in list(out["failed"].items())[:10]:
            print(f"  {code}: {why}")
    return 0


def _cmd_scan(args: argparse.Namespace) -> int:
    from .analysis.scanner import scan

    result = scan(args.date, universe=args.universe, conditions=args.preset, top=args.top)
    attrs = result.attrs
    if attrs.get("session_note"):
        print(f"note: {attrs['session_note']}")
    session = attrs.get("session")
    print(f"{len(result)} match(es) on {getattr(session, 'date', lambda: session)()} "
          f"({args.preset}, {args.universe})")
    cols = [c for c in ("code", "name", "market", "close", "change_pct", "value", "score", "signals")
            if c in result.columns]
    formatters = {"close": "{:,.0f}".format, "value": lambda v: f"{v / 1e8:,.1f}억",
                  "change_pct": "{:+.2f}%".format, "score": "{:g}".format}
    if len(result):
        print(result[cols].to_string(index=False, formatters={k: f for k, f in formatters.items() if k in cols}))
    else:
        print("no stock matched")
    if args.out:
        result.to_csv(args.out, index=False, encoding="utf-8-sig")  # Excel reads Hangul only with the BOM
        print(f"wrote {len(result)} rows to {args.out}")
    return 0


def _cmd_sim(args: argparse.Namespace) -> int:
    from .sim import serve

    serve(port=args.port, data=args.data, rate=args.rate, now=args.now, host=args.host)
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from .report import run_demo

    run_demo(out_dir=args.out)
    return 0


class _Help(argparse.RawDescriptionHelpFormatter):
    """Every option's help ends with its default, unless the default is "off" (None/False) or already said."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if ("%(default)" not in text and default not in (None, False, argparse.SUPPRESS)
                and action.option_strings and "default:" not in text):
            text += " (default: %(default)s)"
        return text


def _markets() -> tuple[str, ...]:
    from ._models import MARKET_CODES

    return tuple(MARKET_CODES)


def _universe(text: str) -> str:
    """A market or markets joined by '+', checked here so a typo is a usage error, not a failed scan."""
    parts = [p.strip().upper() for p in text.split("+")]
    bad = [p for p in parts if p not in _markets()]
    if bad or not parts:
        raise argparse.ArgumentTypeError(f"unknown market {'+'.join(bad) or text!r}; choose from "
                                         f"{', '.join(_markets())}, joined with '+' (e.g. KOSPI+KOSDAQ)")
    return "+".join(parts)


def _positive(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid count {text!r}; give a whole number") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"count {n} must be at least 1")
    return n


def _presets() -> list[str]:
    from .analysis.presets import PRESETS

    return list(PRESETS)


def build_parser() -> argparse.ArgumentParser:
    markets = ", ".join(_markets())
    date_help = "date, YYYY-MM-DD or YYYYMMDD"

    def sub_parser(subs, name: str, summary: str, description: str | None = None) -> argparse.ArgumentParser:
        return subs.add_parser(name, help=summary, description=description or summary[:1].upper() + summary[1:] + ".",
                               formatter_class=_Help)

    p = _Parser(prog="finder", formatter_class=_Help,
                description="Korean stock research on the Kiwoom REST API: cached daily bars, scans, backtests, "
                            "reports.\nWithout KIWOOM_APPKEY/KIWOOM_SECRETKEY every command uses the built-in "
                            "simulator (offline, simulated data).",
                epilog="`finder COMMAND --help` explains a command and its options.")
    p.add_argument("-v", "--verbose", action="store_true", help="log what finder does (INFO level) on stderr")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser, title="commands",
                           metavar="COMMAND")

    o = sub_parser(sub, "ohlcv", "print daily bars of one stock (from the cache; fetched once if missing)")
    o.add_argument("code", help="KRX stock code, e.g. 005930")
    o.add_argument("--count", type=_positive, default=20, metavar="N", help="number of daily bars")
    o.add_argument("--date", default=None, help=f"base {date_help}; bars end at the last session on or before it "
                                                "(default: the latest session)")
    o.add_argument("--raw", action="store_true", help="raw prices instead of prices adjusted as of --date")
    o.set_defaults(func=_cmd_ohlcv)

    c = sub_parser(sub, "cache", "look at, warm, refresh and trim the disk cache of daily bars")
    csub = c.add_subparsers(dest="action", required=True, parser_class=_Parser, title="actions", metavar="ACTION")
    ci = sub_parser(csub, "info", "where the cache is and what it holds")
    ci.add_argument("--json", action="store_true", help="print everything as JSON")
    cc = sub_parser(csub, "clear", "remove cached bars (all of them, or one stock's)")
    cc.add_argument("--code", default=None, help="only this stock, e.g. 005930 (default: every stock)")
    cp = sub_parser(csub, "prune", "trim the cache by size and/or age (least recently used first)")
    cp.add_argument("--max-size", default=None, metavar="SIZE", help="keep at most this much, e.g. 500MB or 2GB")
    cp.add_argument("--older-than", default=None, metavar="AGE", help="remove entries unused for this long, "
                                                                     "e.g. 12h or 30d")
    cr = sub_parser(csub, "refresh", "bring cached stocks up to the newest final session (about 1 request per "
                                     "100 stocks); run it nightly after 20:00 KST")
    cr.add_argument("--universe", default=None, type=_universe, metavar="MARKET",
                    help=f"only this market ({markets}; join with '+') (default: every cached stock)")
    cr.add_argument("--codes", default=None, metavar="C1,C2", help="comma-separated codes instead of --universe")
    cr.add_argument("--quiet", action="store_true", help="no progress bar")
    cw = sub_parser(csub, "warm", "pre-fetch the bars of a universe (resumes where an interrupted run stopped)")
    cw.add_argument("--universe", default="KOSPI", type=_universe, metavar="MARKET",
                    help=f"market to fetch: {markets}; join with '+'")
    cw.add_argument("--codes", default=None, metavar="C1,C2", help="comma-separated codes instead of --universe")
    cw.add_argument("--count", type=_positive, default=600, metavar="N", help="daily bars per stock")
    cw.add_argument("--date", default=None, help=f"base {date_help} (default: the latest session)")
    cw.add_argument("--quiet", action="store_true", help="no progress bar")
    c.set_defaults(func=_cmd_cache)

    s = sub_parser(sub, "scan", "screen a market on a date (point in time) and print the picks")
    s.add_argument("--date", required=True, help=f"scan {date_help} (required)")
    s.add_argument("--preset", default="momentum", choices=_presets(), help="the conditions to apply")
    s.add_argument("--universe", default="KOSPI+KOSDAQ", type=_universe, metavar="MARKET",
                   help=f"market(s) to scan: {markets}; join with '+'")
    s.add_argument("--top", type=_positive, default=None, metavar="N", help="show only the N best-scored picks "
                                                                           "(default: all)")
    s.add_argument("--out", default=None, metavar="CSV", help="also write the full result to this CSV file "
                                                              "(UTF-8 with BOM: opens in Excel with Hangul)")
    s.set_defaults(func=_cmd_scan)

    sim = sub_parser(sub, "sim", "the offline Kiwoom simulator (a real HTTP server on this machine)")
    simsub = sim.add_subparsers(dest="action", required=True, parser_class=_Parser, title="actions",
                                metavar="ACTION")
    ss = sub_parser(simsub, "serve", "serve the Kiwoom REST protocol until Ctrl-C; point KIWOOM_BASE_URL at it")
    ss.add_argument("--port", type=_port, default=8000, help="TCP port (0 = any free port)")
    ss.add_argument("--host", default="127.0.0.1", help="address to listen on")
    ss.add_argument("--data", default=None, metavar="CSV",
                    help="replay real bars from a CSV in the krx_daily_sample format "
                         "(default: the built-in synthetic market)")
    ss.add_argument("--rate", type=float, default=5.0, help="requests per second per (app key, api-id) before "
                                                            "HTTP 429")
    ss.add_argument("--now", default=None, help="the simulator's clock, ISO 8601 (default: the real time)")
    sim.set_defaults(func=_cmd_sim)

    d = sub_parser(sub, "demo", "run the demo backtest report (a notebook, via papermill) and print where it is")
    d.add_argument("--out", default="reports", metavar="DIR", help="folder that gets one timestamped report "
                                                                    "folder per run")
    d.set_defaults(func=_cmd_demo)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except (InvalidInputError, StockNotFoundError) as exc:  # the code (or date) asked for names no bars
        print(f"finder: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # e.g. --out in a missing folder, a port in use: one line, not a traceback
        where = f": {exc.filename}" if getattr(exc, "filename", None) else ""
        print(f"finder: {exc.strerror or exc}{where}", file=sys.stderr)
        return 1
    except FinderError as exc:
        print(f"finder: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("finder: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
