"""Stress: 8 processes on one cold cache folder, a mixed workload, real limits and light faults, for a bounded time.

    python bench/stress.py [--seconds 90] [--procs 8] [--codes 20] [--server-rate 5] [--client-rate 4]
                           [--faults light|none] [--seed 1] [--json out.json]

Setup (all real: HTTP on 127.0.0.1, processes, one cache folder on disk):

* a ``Simulator`` whose clock is frozen during a session (Thursday
  2025-11-27 11:00 KST; every process has ``FINDER_NOW`` at the same instant),
  with Kiwoom's published limit by default: 5 requests/s per (app key, api-id)
  with a burst of 2, answered with HTTP 429 over it.  The processes share one
  app key and pace themselves together at ``--client-rate`` (4/s: below the
  server's, as the client's must be).  At these rates the cold start of 20
  stocks alone costs about 30 s of requests shared by all processes, so a 90 s
  run sees a cold cache filled under contention, then warm calls, live bars
  refreshed after their TTL and refetches after prunes;
* light fault injection on ka10081 (``--faults light``): about 1 % HTTP 5xx,
  1 % dropped connections, 0.5 % maintenance pages, 0.5 % answers slower than
  the client's 2 s timeout, 0.5 % tokens superseded mid-walk, 2 % rows with
  unknown fields.  No 429 storms are injected, so every 429 counted is a real
  rate-limit rejection;
* ``--procs`` worker processes start together on an empty cache folder.  Each
  draws calls from its own seeded RNG (``--seed`` + worker number, so runs
  repeat) until the time is up:
  - 35 % ``get_ohlcv`` of a random stock, count 1-800, a random past session;
  - 20 % ``get_ohlcv`` of a random stock with ``base_dt=None``: today's live bar
    (the simulated market is open);
  - 25 % ``scan`` of a random past session over 8 random stocks (momentum);
  - 20 % ``get_panel`` of 5 random stocks (close and volume);
  - and every 40th call (the 21st, 61st, ...) ``finder.cache.prune``: entries
    unused for 30-90 s, or the least recently used down to 80-95 % of the size.
  The module-level functions use the default client built from the
  environment (``KIWOOM_*``, ``FINDER_CACHE_DIR``, ``FINDER_NOW``, ``FINDER_RATE``),
  with a 2 s timeout.

Then the same calls are replayed in one process, without faults, limits or
prunes, on a fresh cache folder: each stress result must equal its replay
(a content hash of every frame).  The replay's upstream requests are the
minimum the workload needs; the stress run's extra requests come from
retries, live bars refreshed after their 60 s TTL, refetches after prunes,
and stocks deepened in a different order.

It prints: total calls; upstream requests vs that minimum; rate-limit
rejections (goal 0) and, apart from them, the requests over the server's
limit as the clients sent them (each request's departure time, all
processes merged, against the server's bucket: goal 0; a server-side 429
with none here was the server handling late, not the clients pacing badly);
retries; failed calls; corrupted or inconsistent results
(goal 0); p50 and p99 latency; the cache size.  Nothing is asserted here
(``tests/test_stress.py`` runs a small version and asserts the goals).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

NOW = "2025-11-27T11:00:00+09:00"     # a Thursday session, market open
APP_KEY = "stress-appkey-6c1d9e"
SECRET_KEY = "stress-secret-0f3b7a"
LIGHT_FAULTS = [
    dict(kind="http_error", probability=0.01, api_id="ka10081"),
    dict(kind="drop", probability=0.01, api_id="ka10081"),
    dict(kind="maintenance", probability=0.005, api_id="ka10081"),
    dict(kind="slow", probability=0.005, api_id="ka10081", seconds=3.0),
    dict(kind="token_invalidate", probability=0.005, api_id="ka10081"),
    dict(kind="extra_fields", probability=0.02, api_id="ka10081"),
]
TIMEOUT = 2.0
MIX = [("ohlcv", 0.35), ("live", 0.20), ("scan", 0.25), ("panel", 0.20)]
PRUNE_EVERY = 40   # and every 40th call of each process (the 21st, 61st, ...) is a prune


# -- the workload -----------------------------------------------------------------------------------
def plan(seed: int, codes: list[str], dates: list[str], n: int = 20000, prune_every: int = PRUNE_EVERY) -> list[dict]:
    """A worker's calls, drawn from its own RNG: the same seed gives the same calls."""
    rng = random.Random(seed)
    kinds, weights = zip(*MIX)
    out = []
    for i in range(n):
        prune = prune_every and i % prune_every == prune_every // 2
        kind = "prune" if prune else rng.choices(kinds, weights)[0]
        if kind == "ohlcv":
            out.append(dict(kind=kind, code=rng.choice(codes), count=rng.randint(1, 800), date=rng.choice(dates)))
        elif kind == "live":
            out.append(dict(kind=kind, code=rng.choice(codes), count=rng.randint(1, 300)))
        elif kind == "scan":
            out.append(dict(kind=kind, date=rng.choice(dates), universe=sorted(rng.sample(codes, 8))))
        elif kind == "panel":
            out.append(dict(kind=kind, codes=sorted(rng.sample(codes, 5)), count=rng.randint(20, 400),
                            date=rng.choice(dates)))
        elif rng.random() < 0.5:
            out.append(dict(kind=kind, older_than=f"{rng.randint(30, 90)}s"))
        else:
            out.append(dict(kind=kind, shrink=rng.uniform(0.8, 0.95)))
    return out


def _hash_frame(h, df) -> None:
    import numpy as np
    import pandas as pd

    h.update(np.ascontiguousarray(df.index.values.astype("int64")).tobytes() if isinstance(df.index, pd.DatetimeIndex)
             else "|".join(map(str, df.index)).encode())
    h.update("|".join(map(str, df.columns)).encode())
    for col in df.columns:
        v = df[col].to_numpy()
        if v.dtype.kind in "fiub":
            h.update(np.ascontiguousarray(v.astype("float64")).tobytes())
        else:
            h.update("|".join(map(str, v)).encode())


def execute(call: dict):
    """Run one call; return (a digest of its result, the result) — (None, None) for a prune."""
    import finder
    from finder.analysis.scan import scan

    h = hashlib.sha256()
    kind = call["kind"]
    if kind == "ohlcv":
        out = finder.get_ohlcv(call["code"], call["count"], call["date"])
        _hash_frame(h, out)
    elif kind == "live":
        out = finder.get_ohlcv(call["code"], call["count"])
        _hash_frame(h, out)
    elif kind == "scan":
        out = scan(call["date"], universe=call["universe"])
        _hash_frame(h, out.reset_index())
        h.update(json.dumps(sorted(out.attrs.get("missing", {}))).encode())
    elif kind == "panel":
        p = finder.get_panel(call["codes"], call["count"], call["date"], field=["close", "volume"], progress=False)
        out = {f: p[f] for f in ("close", "volume")}
        for f in ("close", "volume"):
            _hash_frame(h, p[f])
        h.update(json.dumps(sorted(p["close"].attrs.get("missing", {}))).encode())
    else:
        info = finder.cache.info()
        if "shrink" in call:
            finder.cache.prune(max_bytes=int(info["bytes"] * call["shrink"]))
        else:
            finder.cache.prune(older_than=call["older_than"])
        return None, None
    return h.hexdigest(), out


# -- checking results ---------------------------------------------------------------------------------
PRICE_TOL = 1.0   # the cache's documented guarantee for adjusted prices rebuilt from raw bars and actions


def close_enough(a, b) -> bool:
    """Equal, up to the cache's 1 KRW rounding of rebuilt adjusted prices (and what follows from it)."""
    import numpy as np
    import pandas as pd

    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(close_enough(a[k], b[k]) for k in a)
    if not isinstance(a, pd.DataFrame) or not isinstance(b, pd.DataFrame):
        return False
    if not a.index.equals(b.index) or list(a.columns) != list(b.columns):
        return False
    for col in a.columns:
        x, y = a[col].to_numpy(), b[col].to_numpy()
        if x.dtype.kind in "fiub" and y.dtype.kind in "fiub":
            x, y = x.astype("float64"), y.astype("float64")
            if not np.array_equal(np.isnan(x), np.isnan(y)):
                return False
            ok = ~np.isnan(x)
            # 1 KRW on a price, or the same relative change in what is computed from prices
            if not np.all(np.abs(x[ok] - y[ok]) <= PRICE_TOL + 2e-3 * np.abs(y[ok])):
                return False
        elif not (pd.Series(x).astype(str).to_numpy() == pd.Series(y).astype(str).to_numpy()).all():
            return False
    return True


def oracle_wrong(call: dict, out, market) -> str | None:
    """Why a bar result disagrees with what the simulator serves (adjusted as of the date), or None."""
    import numpy as np
    import pandas as pd

    cols = ["open", "high", "low", "close"]
    if call["kind"] in ("ohlcv", "live"):
        when = call.get("date") or NOW[:10]
        want = market.bars(call["code"], when, adjusted=True, now=NOW).iloc[-call["count"]:]
        if not out.index.equals(want.index):
            return "dates differ"
        d = np.abs(out[cols].to_numpy() - want[cols].to_numpy()).max()
        return None if d <= PRICE_TOL else f"prices off by {d:g}"
    if call["kind"] == "panel":
        for code in out["close"].columns:
            want = market.bars(code, call["date"], adjusted=True, now=NOW).iloc[-call["count"]:]
            got = out["close"][code].dropna()
            if not got.index.equals(want.index):
                return f"{code}: dates differ"
            if (np.abs(got.to_numpy() - want["close"].to_numpy()) > PRICE_TOL).any():
                return f"{code}: closes differ"
    return None


def worker(args: argparse.Namespace) -> None:
    """One stress process: calls until the deadline, then one JSON object into --out."""
    import logging
    import warnings

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    warnings.simplefilter("default")
    # exchange_calendars (not finder) trips a pandas deprecation while building XKRX
    warnings.filterwarnings("ignore", message="Series.values returning an ndarray")
    import finder
    from finder import calendar
    from finder.client import _stats

    cfg = json.loads(os.environ["STRESS_CONFIG"])
    calls = plan(cfg["seed"] + args.worker, cfg["codes"], cfg["dates"], prune_every=cfg["prune_every"])
    finder.data.set_default_client(finder.KiwoomAPI(timeout=TIMEOUT))   # credentials, URL, cache, rate: environment
    calendar.state()                                                    # build the XKRX tables before the start
    # everyone starts together: say ready, wait for the parent's "go" (it holds the start time)
    Path(args.out + ".ready").touch()
    go = Path(cfg["go"])
    while not go.exists():
        time.sleep(0.02)
    start = float(go.read_text())
    time.sleep(max(0.0, start - time.time()))
    deadline = start + cfg["seconds"]
    done, kept = [], {}
    for i, call in enumerate(calls):
        # at least min_calls calls whatever the clock says (so a short run on a busy machine still
        # makes every kind of call, prunes included), then calls until the deadline
        if i >= cfg.get("min_calls", 0) and time.time() >= deadline:
            break
        t0 = time.perf_counter()
        try:
            (digest, out), error = execute(call), None
        except finder.FinderError as exc:
            digest, out, error = None, None, f"{type(exc).__name__}: {exc}"
        except Exception as exc:  # an untyped error is a bug: recorded as such
            digest, out, error = None, None, f"UNTYPED {type(exc).__name__}: {exc}"
        done.append({"i": i, "call": call, "digest": digest, "error": error, "seconds": time.perf_counter() - t0})
        if out is not None:
            kept[i] = out
    import pickle

    finder.data.default_client().close()
    Path(args.out + ".pkl").write_bytes(pickle.dumps(kept))
    from finder.client._pacer import departures

    Path(args.out).write_text(json.dumps({"worker": args.worker, "calls": done, "client": _stats.snapshot(),
                                          "departures": list(departures)}))


def replay(calls: list[dict], sim_url: str, root: Path) -> dict[tuple, tuple]:
    """The same calls in this process, on a fresh cache, against a fault-free, unlimited simulator."""
    import finder
    from finder.cache._store import Store

    os.environ.update(KIWOOM_APPKEY=APP_KEY, KIWOOM_SECRETKEY=SECRET_KEY, KIWOOM_BASE_URL=sim_url,
                      FINDER_CACHE_DIR=str(root), FINDER_NOW=NOW, FINDER_RATE="1000", TQDM_DISABLE="1")
    Store._instances.clear()
    finder.data.set_default_client(finder.KiwoomAPI(timeout=30.0))
    out = {}
    for c in calls:
        if c["call"]["kind"] == "prune":
            continue
        try:
            out[(c["worker"], c["i"])] = execute(c["call"])
        except finder.FinderError as exc:
            out[(c["worker"], c["i"])] = (f"ERROR {type(exc).__name__}", None)
    finder.data.set_default_client(None)
    return out


def _quiet(sim) -> None:
    """The simulator's server prints a traceback when a client hangs up first (a timed-out 'slow' answer)."""
    server = sim._server
    default = server.handle_error

    def handle_error(request, client_address):
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return
        default(request, client_address)

    server.handle_error = handle_error


def over_limit(departures: list[tuple[str, float]], rate: float, burst: float = 2.0) -> dict[str, int]:
    """Requests that left (all processes merged) above a token bucket of ``rate``/s and ``burst``, per api-id.

    The server's own bucket measures when it *handles* a request, so a stall of
    the server (the busy machine, not the clients) can reject well-paced
    requests; this checks the pacing the clients actually did.
    """
    out: dict[str, int] = {}
    by_api: dict[str, list[float]] = {}
    for api_id, t in departures:
        by_api.setdefault(api_id, []).append(t)
    for api_id, times in by_api.items():
        tokens, last, n = burst, None, 0
        for t in sorted(times):
            tokens = burst if last is None else min(burst, tokens + (t - last) * rate)
            last = t
            if tokens >= 1.0:
                tokens -= 1.0
            else:
                n += 1
        if n:
            out[api_id] = n
    return out


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q / 100 * (len(s) - 1))))]


def run(seconds: float = 90, procs: int = 8, n_codes: int = 20, server_rate: float = 5.0, client_rate: float = 4.0,
        faults: str = "light", seed: int = 1, workdir: Path | None = None, quiet: bool = False,
        prune_every: int = PRUNE_EVERY, min_calls: int = 0) -> dict:
    """The whole stress run; returns the figures (and prints them unless ``quiet``)."""
    os.environ["FINDER_NOW"] = NOW
    import finder
    from finder import calendar
    from finder.sim import Simulator, default_market

    say = (lambda *a: None) if quiet else (lambda *a: print(*a, flush=True))
    market = default_market()
    codes = []
    for c in market.codes:
        info = market.info(c)
        if info.market != "ETF" and info.listed <= finder.calendar.parse_date("2022-01-01") and info.delisted is None:
            codes.append(c)
    codes = codes[:n_codes]
    dates = [str(d.date()) for d in calendar.sessions_in_range("2024-12-01", "2025-11-26")]
    tmp = Path(workdir or tempfile.mkdtemp(prefix="finder-stress-"))
    tmp.mkdir(parents=True, exist_ok=True)
    cache, ref_cache = tmp / "cache", tmp / "reference-cache"
    for p in (cache, ref_cache):
        shutil.rmtree(p, ignore_errors=True)
    sim = Simulator(market, rate=server_rate, burst=2, now=NOW, frozen=True,
                    faults=LIGHT_FAULTS if faults == "light" else None).start()
    _quiet(sim)
    say(f"stress: {procs} processes x {seconds:.0f} s on one cold cache ({cache}); {len(codes)} stocks; "
        f"server limit {server_rate:g}/s burst 2 per api-id, client pacing {client_rate:g}/s shared; "
        f"faults: {faults}; prune every {prune_every or 'never'} calls; seed {seed}; simulator clock {NOW} (market open)")
    go = tmp / "go"
    go.unlink(missing_ok=True)
    cfg = dict(seed=seed, codes=codes, dates=dates, seconds=seconds, go=str(go), prune_every=prune_every,
               min_calls=min_calls)
    env = dict(os.environ, KIWOOM_APPKEY=APP_KEY, KIWOOM_SECRETKEY=SECRET_KEY, KIWOOM_BASE_URL=sim.url,
               FINDER_CACHE_DIR=str(cache), FINDER_NOW=NOW, FINDER_RATE=str(client_rate),
               STRESS_CONFIG=json.dumps(cfg), TQDM_DISABLE="1")
    env.pop("FINDER_ALLOW_SHARED_CACHE", None)
    env.pop("FINDER_LIVE_TTL", None)
    outs = [tmp / f"worker-{i}.json" for i in range(procs)]
    logs = [open(tmp / f"worker-{i}.log", "w") for i in range(procs)]
    t_spawn = time.time()
    children = [subprocess.Popen([sys.executable, __file__, "--worker", str(i), "--out", str(outs[i])], env=env,
                                 cwd=str(ROOT), stdout=logs[i], stderr=subprocess.STDOUT) for i in range(procs)]
    ready_by = time.time() + 300
    while not all(Path(str(o) + ".ready").exists() for o in outs):
        if time.time() > ready_by or any(c.poll() is not None for c in children):
            for c in children:
                c.kill()
            raise RuntimeError(f"workers did not start; see {tmp}/worker-*.log")
        time.sleep(0.05)
    t0 = time.time() + 0.5
    startup = t0 - t_spawn
    go.write_text(repr(t0))
    codes_rc = [p.wait(timeout=seconds + 600) for p in children]
    wall = time.time() - t0
    for f in logs:
        f.close()
    st = sim.stats()
    sim.stop()
    if any(codes_rc):
        bad = [i for i, rc in enumerate(codes_rc) if rc]
        tail = (tmp / f"worker-{bad[0]}.log").read_text()[-3000:]
        raise RuntimeError(f"workers {bad} failed:\n{tail}")
    import pickle

    results = [json.loads(p.read_text()) for p in outs]
    objects = {(i, k): v for i, p in enumerate(outs) for k, v in pickle.loads(Path(str(p) + ".pkl").read_bytes()).items()}
    calls = [dict(c, worker=r["worker"]) for r in results for c in r["calls"]]

    # the same calls, fault-free, in one process: the reference results and the minimum requests
    t_replay = time.time()
    with Simulator(market, rate=None, now=NOW, frozen=True) as ref_sim:
        ref = replay(calls, ref_sim.url, ref_cache)
        ref_st = ref_sim.stats()
    replay_s = time.time() - t_replay

    data_calls = [c for c in calls if c["call"]["kind"] != "prune"]
    failed = [c for c in data_calls if c["error"]]
    untyped = [c for c in failed if c["error"].startswith("UNTYPED")]
    compared = [c for c in data_calls if not c["error"]]
    identical = [c for c in compared if ref[(c["worker"], c["i"])][0] == c["digest"]]
    wrong = [c for c in compared if ref[(c["worker"], c["i"])][0] != c["digest"]
             and not close_enough(objects[(c["worker"], c["i"])], ref[(c["worker"], c["i"])][1])]
    vs_oracle = [(c, why) for c in compared
                 if (why := oracle_wrong(c["call"], objects[(c["worker"], c["i"])], market)) is not None]
    by_kind: dict[str, list[float]] = {}
    for c in calls:
        by_kind.setdefault(c["call"]["kind"], []).append(c["seconds"])
    lat = [c["seconds"] for c in calls]
    retries = sum(sum(r["client"]["retries"].values()) for r in results)
    client_429 = sum(sum(r["client"]["rate_limited"].values()) for r in results)
    paced_over = over_limit([tuple(d) for r in results for d in r.get("departures", [])], server_rate)
    info = finder.cache.info(cache)
    warn_lines = []
    for i in range(procs):
        # retries are counted above; everything else a worker logged or warned is listed
        warn_lines += [line for line in (tmp / f"worker-{i}.log").read_text().splitlines()
                       if ("Warning" in line or line.startswith(("WARNING", "ERROR"))) and "; retry " not in line]
    figures = {
        "seconds": seconds, "procs": procs, "wall_seconds": wall, "startup_seconds": startup,
        "replay_seconds": replay_s, "stocks": len(codes),
        "server_rate": server_rate, "client_rate": client_rate, "faults": faults, "seed": seed,
        "calls": len(calls), "calls_by_kind": {k: len(v) for k, v in sorted(by_kind.items())},
        "upstream": st["requests"], "upstream_total": st["total_requests"],
        "minimum": ref_st["requests"], "minimum_total": ref_st["total_requests"],
        "rate_limit_rejections": st["total_rate_limited"], "rate_limited_by_api": st.get("rate_limited", {}),
        "client_saw_429": client_429, "pacing_violations": sum(paced_over.values()), "pacing_by_api": paced_over,
        "departures": sum(len(r.get("departures", [])) for r in results),
        "faults_fired": st["faults"], "retries": retries, "token_issues": st["token_issues"],
        "failed": len(failed), "failed_untyped": len(untyped),
        "failures": sorted({c["error"].split(":")[0] for c in failed}),
        "inconsistent": len(wrong), "inconsistent_examples": [c["call"] for c in wrong[:3]],
        "compared": len(compared), "identical": len(identical),
        "oracle_checked": sum(c["call"]["kind"] in ("ohlcv", "live", "panel") for c in compared),
        "oracle_wrong": len(vs_oracle), "oracle_examples": [(c["call"], why) for c, why in vs_oracle[:3]],
        "p50": pct(lat, 50), "p99": pct(lat, 99),
        "latency_by_kind": {k: (pct(v, 50), pct(v, 99)) for k, v in sorted(by_kind.items())},
        "cache_bytes": info["bytes"], "cache_entries": info["entries"], "cache_stocks": info["stocks"],
        "warnings": len(warn_lines), "warning_examples": sorted(set(w[:160] for w in warn_lines))[:5],
        "workdir": str(tmp),
    }
    say(report(figures))
    return figures


def report(f: dict) -> str:
    kinds = ", ".join(f"{k} {n}" for k, n in f["calls_by_kind"].items())
    lat = "; ".join(f"{k} {a * 1000:.0f}/{b * 1000:.0f} ms" for k, (a, b) in f["latency_by_kind"].items())
    up = ", ".join(f"{k} {v}" for k, v in sorted(f["upstream"].items()))
    mn = ", ".join(f"{k} {v}" for k, v in sorted(f["minimum"].items()))
    lines = [
        f"ran {f['wall_seconds']:.1f} s wall ({f['procs']} processes, {f['seconds']:.0f} s of calls each; "
        f"start-up {f['startup_seconds']:.1f} s before, single-process replay {f['replay_seconds']:.1f} s after)",
        f"total calls                 {f['calls']}  ({kinds})",
        f"upstream requests           {f['upstream_total']}  ({up})",
        f"  minimum for the workload  {f['minimum_total']}  ({mn}; the same calls, one process, no faults, no prunes)",
        f"rate-limit rejections       {f['rate_limit_rejections']}  {f.get('rate_limited_by_api') or ''} "
        f"(goal 0; server-side 429s, none injected)",
        f"  over the limit as sent    {f['pacing_violations']}  {f['pacing_by_api'] or ''} (goal 0; the {f['departures']} "
        f"requests' departure times, all processes, against the server's bucket: the clients' own pacing)",
        f"faults fired                {sum(f['faults_fired'].values())}  {f['faults_fired']}",
        f"retries                     {f['retries']}  (token issues: {f['token_issues']})",
        f"failed calls                {f['failed']}  {f['failures']}  (untyped: {f['failed_untyped']})",
        f"corrupted / inconsistent    {f['inconsistent']} of {f['compared']} compared with the single-process run  (goal 0;"
        f" {f['identical']} identical, {f['compared'] - f['identical'] - f['inconsistent']} within the 1 KRW rounding"
        f" of rebuilt adjusted prices)",
        f"  wrong vs the simulator    {f['oracle_wrong']} of {f['oracle_checked']} bar results checked against its own answers",
        f"latency p50 / p99           {f['p50'] * 1000:.0f} / {f['p99'] * 1000:.0f} ms  ({lat})",
        f"cache size                  {f['cache_bytes'] / 1e6:.1f} MB, {f['cache_entries']} entries, "
        f"{f['cache_stocks']} stocks",
        f"other warnings (workers)    {f['warnings']}  (besides the retry notices)",
    ]
    if f["inconsistent_examples"]:
        lines.append(f"  inconsistent e.g.        {f['inconsistent_examples']}")
    if f["oracle_examples"]:
        lines.append(f"  wrong e.g.               {f['oracle_examples']}")
    for w in f["warning_examples"]:
        lines.append(f"  {w}")
    return "\n".join(lines)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=90)
    p.add_argument("--procs", type=int, default=8)
    p.add_argument("--codes", type=int, default=20)
    p.add_argument("--server-rate", type=float, default=5.0)
    p.add_argument("--client-rate", type=float, default=4.0)
    p.add_argument("--faults", choices=["light", "none"], default="light")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--prune-every", type=int, default=PRUNE_EVERY, help="a prune every N calls per process (0: none)")
    p.add_argument("--min-calls", type=int, default=0, help="calls each process makes even past the deadline")
    p.add_argument("--json", default=None, help="also write the figures to this file")
    p.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--out", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker is not None:
        worker(args)
        return
    figures = run(args.seconds, args.procs, args.codes, args.server_rate, args.client_rate, args.faults, args.seed,
                  prune_every=args.prune_every, min_calls=args.min_calls)
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2, default=str))


if __name__ == "__main__":
    main()
