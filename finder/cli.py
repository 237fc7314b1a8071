"""The ``finder`` command.

    finder ohlcv 005930 --count 10 --date 2025-10-01
    finder cache info | clear [--code C] | prune [--max-size 2GB] [--older-than 30d]
    finder cache warm --universe KOSPI --count 600
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
    from .analysis.scan import scan

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
        result.to_csv(args.out, index=False)
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


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="finder", description="Korean stock research on the Kiwoom REST API (simulator without credentials).")
    p.add_argument("-v", "--verbose", action="store_true", help="log what finder does")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    o = sub.add_parser("ohlcv", help="print daily bars of one stock")
    o.add_argument("code")
    o.add_argument("--count", type=int, default=20)
    o.add_argument("--date", default=None, help="base date, YYYYMMDD or YYYY-MM-DD (default: latest)")
    o.add_argument("--raw", action="store_true", help="raw (unadjusted) prices")
    o.set_defaults(func=_cmd_ohlcv)

    c = sub.add_parser("cache", help="look at, warm and trim the cache")
    csub = c.add_subparsers(dest="action", required=True, parser_class=_Parser)
    ci = csub.add_parser("info", help="where the cache is and what it holds")
    ci.add_argument("--json", action="store_true")
    cc = csub.add_parser("clear", help="remove cached bars (all, or one stock)")
    cc.add_argument("--code", default=None)
    cp = csub.add_parser("prune", help="trim by size and/or age")
    cp.add_argument("--max-size", default=None, help="e.g. 2GB")
    cp.add_argument("--older-than", default=None, help="e.g. 30d")
    cr = csub.add_parser("refresh", help="bring cached stocks up to the newest session (100 per request)")
    cr.add_argument("--universe", default=None, help="market name; default: every cached stock")
    cr.add_argument("--codes", default=None, help="comma-separated codes")
    cr.add_argument("--quiet", action="store_true")
    cw = csub.add_parser("warm", help="pre-fetch a universe (resumes if interrupted)")
    cw.add_argument("--universe", default="KOSPI")
    cw.add_argument("--codes", default=None, help="comma-separated codes instead of a universe")
    cw.add_argument("--count", type=int, default=600)
    cw.add_argument("--date", default=None)
    cw.add_argument("--quiet", action="store_true")
    c.set_defaults(func=_cmd_cache)

    s = sub.add_parser("scan", help="screen a market on a date")
    s.add_argument("--date", required=True)
    s.add_argument("--preset", default="momentum")
    s.add_argument("--universe", default="KOSPI+KOSDAQ")
    s.add_argument("--top", type=int, default=None)
    s.add_argument("--out", default=None, help="write the full result to this CSV")
    s.set_defaults(func=_cmd_scan)

    sim = sub.add_parser("sim", help="the Kiwoom simulator")
    simsub = sim.add_subparsers(dest="action", required=True, parser_class=_Parser)
    ss = simsub.add_parser("serve", help="serve the Kiwoom protocol on 127.0.0.1")
    ss.add_argument("--port", type=_port, default=8000)
    ss.add_argument("--host", default="127.0.0.1")
    ss.add_argument("--data", default=None, help="replay a CSV in the krx_daily_sample format")
    ss.add_argument("--rate", type=float, default=5.0, help="requests/s per (app key, api-id)")
    ss.add_argument("--now", default=None, help="the simulator's clock, ISO (default: now)")
    sim.set_defaults(func=_cmd_sim)

    d = sub.add_parser("demo", help="run the demo backtest report against the simulator")
    d.add_argument("--out", default="reports")
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
