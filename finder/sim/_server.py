"""Serving a ``SimApp``: a real HTTP server in a thread, or an in-process httpx transport.

Guarantees:

* ``Simulator(...).start()`` listens on ``127.0.0.1`` (port 0 picks a free
  one) with the stdlib ``ThreadingHTTPServer`` in a daemon thread; ``stop()``
  (or leaving the ``with`` block) shuts it down and frees the port.
* Other processes drive a running server through ``/_sim/stats``,
  ``/_sim/reset``, ``/_sim/clock`` and ``/_sim/faults`` (see ``SimApp``).
* ``SimTransport(app)`` answers httpx requests in-process, no sockets; it is
  thread-safe.  A ``slow`` fault longer than the request's read timeout
  raises ``httpx.ReadTimeout``; a ``drop`` fault raises
  ``httpx.RemoteProtocolError``, as a real connection would.
* ``serve()`` blocks until Ctrl-C, for ``finder sim serve``.

Not guaranteed: HTTPS, HTTP/2, or more than a few hundred requests a second.
"""

from __future__ import annotations

import logging
import signal
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from ._app import SimApp
from ._market import Market, ReplayMarket, default_market

log = logging.getLogger("finder.sim")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as httpx expects of a real server
    server_version = "finder-sim/1.0"

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; without TCP_NODELAY, Nagle's
        # algorithm and delayed ACKs add ~40 ms to every small answer.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _serve(self) -> None:
        app: SimApp = self.server.app  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        reply = app.respond(self.command, self.path, dict(self.headers.items()), body)
        if reply.delay:
            time.sleep(reply.delay)
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        if reply.drop:
            self.send_header("Connection", "close")
        self.end_headers()
        if reply.drop:
            # Promise the whole body, send part of it, hang up.
            self.wfile.write(reply.body[: max(1, len(reply.body) // 2)])
            self.wfile.flush()
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        self.wfile.write(reply.body)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _serve

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        log.debug("%s %s", self.address_string(), format % args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple, app: SimApp) -> None:
        self.app = app
        super().__init__(address, _Handler)


class SimTransport(httpx.BaseTransport):
    """An httpx transport that answers from a ``SimApp`` in this process."""

    def __init__(self, app: SimApp) -> None:
        self.app = app

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = request.read()
        path = request.url.raw_path.decode("ascii", "replace")
        reply = self.app.respond(request.method, path, dict(request.headers.items()), body)
        if reply.delay:
            read = (request.extensions.get("timeout") or {}).get("read")
            if read is not None and reply.delay > read:
                time.sleep(read)
                raise httpx.ReadTimeout("the simulator answered too slowly (fault 'slow')", request=request)
            time.sleep(reply.delay)
        if reply.drop:
            raise httpx.RemoteProtocolError(
                "peer closed connection without sending complete message body (fault 'drop')", request=request)
        return httpx.Response(reply.status, headers=reply.headers, content=reply.body, request=request)


def in_process_transport(market: Market | None = None, **kwargs: Any) -> SimTransport:
    """A fresh in-process simulator (own tokens and stats, the shared synthetic market).

    Defaults differ from ``Simulator``: no rate limit (the client paces
    itself) and a clock that follows the wall clock and ``FINDER_NOW``.
    """
    kwargs.setdefault("rate", None)
    return SimTransport(SimApp(market, **kwargs))


class Simulator:
    """A simulated Kiwoom server on a real socket.

    Example::

        >>> with Simulator(rate=None, now="2025-11-28T20:30+09:00") as sim:   # doctest: +SKIP
        ...     httpx.post(sim.url + "/oauth2/token", json={...})
    """

    def __init__(self, market: Market | None = None, *, rate: float | None = 5.0, burst: int = 2, now: Any = None,
                 frozen: bool = True, token_ttl: float = 86400, faults: Any = None,
                 credentials: dict[str, str] | None = None) -> None:
        self.app = SimApp(market, rate=rate, burst=burst, now=now, frozen=frozen, token_ttl=token_ttl,
                          faults=faults, credentials=credentials)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- life cycle ------------------------------------------------------------------
    def start(self, host: str = "127.0.0.1", port: int = 0) -> "Simulator":
        if self._server is not None:
            raise RuntimeError("the simulator is already running")
        self._server = _Server((host, port), self.app)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name=f"finder-sim:{self._server.server_address[1]}", daemon=True)
        self._thread.start()
        log.info("Kiwoom simulator listening on %s", self.url)
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        log.info("Kiwoom simulator stopped")

    def __enter__(self) -> "Simulator":
        if self._server is None:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the simulator is not running; call start()")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # -- controls ----------------------------------------------------------------------
    @property
    def market(self) -> Market:
        return self.app.market

    @property
    def clock(self):  # -> SimClock
        return self.app.clock

    @property
    def faults(self):  # -> Faults
        return self.app.faults

    def stats(self) -> dict:
        return self.app.stats()

    def reset_stats(self) -> None:
        self.app.reset_stats()

    def set_now(self, now: Any, frozen: bool | None = None):
        return self.app.set_now(now, frozen)

    def advance(self, seconds: float = 0.0, sessions: int = 0):
        return self.app.advance(seconds=seconds, sessions=sessions)

    def advance_sessions(self, n: int):
        return self.app.advance_sessions(n)

    def transport(self) -> SimTransport:
        """An in-process transport onto this same simulator (same tokens, clock and stats)."""
        return SimTransport(self.app)

    def __repr__(self) -> str:
        where = self.url if self.running else "stopped"
        return f"Simulator({where}, market={self.market.kind}, now={self.clock.now().isoformat()})"


def serve(port: int = 8000, data: str | Path | None = None, rate: float | None = 5.0, now: Any = None,
          host: str = "127.0.0.1") -> None:
    """Run a simulator until Ctrl-C (``finder sim serve``); prints the URL it listens on."""
    market = ReplayMarket.from_csv(data) if data else default_market()
    sim = Simulator(market, rate=rate, now=now, frozen=True)
    sim.start(host=host, port=port)
    clock = sim.clock.describe()
    print(f"finder sim: Kiwoom simulator ({market.kind} market, {len(market.codes)} stocks) listening on {sim.url}"
          f" — clock {clock['now']}{' (frozen)' if clock['frozen'] else ''}; Ctrl-C to stop", flush=True)
    stop = threading.Event()
    previous = {}
    if threading.current_thread() is threading.main_thread():
        # Ctrl-C (SIGINT) and `kill` (SIGTERM) both stop it cleanly.  SIGINT gets a handler of its
        # own: a process started from a background job inherits SIGINT ignored, and Python then
        # never raises KeyboardInterrupt.
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, lambda *_: stop.set())
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
