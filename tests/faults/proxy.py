"""A TCP proxy that can be cut and restored: a dependency that goes away and comes back.

``TcpProxy(target_port).start()`` listens on a free loopback port (``port``) and forwards every
connection to ``target_host:target_port``, one pair of pump threads per connection.

- ``cut()`` closes every open connection (both sides, with a reset) and closes the listening
  socket, so new connections are refused: to a client the service is down.
- ``cut(blackhole=True)`` closes every open connection but keeps accepting new ones and never
  forwards or answers them: a network partition, where clients wait for their own timeouts.
- ``restore()`` listens again on the same port and forwards as before.

It counts what it did (``accepted``, ``refused_while_cut``, ``reset``) so a test can show the
fault really happened.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import struct
import threading
import time

log = logging.getLogger(__name__)


def _reset(sock: socket.socket) -> None:
    """Close with RST (SO_LINGER 0), so the peer sees the connection drop at once."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()


class TcpProxy:
    def __init__(self, target_port: int, target_host: str = "127.0.0.1",
                 host: str = "127.0.0.1", port: int = 0) -> None:
        self.target = (target_host, target_port)
        self.host, self.port = host, port
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._conns: set[socket.socket] = set()
        self._blackholed: set[socket.socket] = set()
        self._cut = False
        self._blackhole = False
        self._closed = False
        self.accepted = 0
        self.reset = 0
        self.cuts = 0
        self.cut_seconds = 0.0
        self._cut_at: float | None = None

    # ------------------------------------------------------------------ control

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def is_cut(self) -> bool:
        return self._cut

    def start(self) -> TcpProxy:
        self._listen()
        return self

    def cut(self, blackhole: bool = False) -> None:
        """The dependency goes away: open connections drop, new ones are refused (or hang)."""
        with self._lock:
            if self._cut:
                return
            self._cut, self._blackhole = True, blackhole
            self.cuts += 1
            self._cut_at = time.monotonic()
            listener = None
            if not blackhole:  # refuse new connections; a blackhole keeps accepting them
                listener, self._listener = self._listener, None
            conns, self._conns = self._conns, set()
        if listener is not None:
            _reset(listener)
        for c in conns:
            _reset(c)
        self.reset += len(conns)
        log.warning("proxy %s -> %s:%d CUT (%s); %d connection(s) dropped", self.address,
                    *self.target, "blackhole" if blackhole else "refusing", len(conns))

    def restore(self) -> None:
        """The dependency is back: listen (if not already) and forward again."""
        with self._lock:
            if not self._cut:
                return
            self._cut, self._blackhole = False, False
            if self._cut_at is not None:
                self.cut_seconds += time.monotonic() - self._cut_at
                self._cut_at = None
            parked, self._blackholed = self._blackholed, set()
        for c in parked:
            _reset(c)
        if self._listener is None:
            self._listen()
        log.warning("proxy %s -> %s:%d restored", self.address, *self.target)

    def cut_for(self, seconds: float, blackhole: bool = False) -> threading.Timer:
        """Cut now and restore after ``seconds`` (in the background)."""
        self.cut(blackhole=blackhole)
        timer = threading.Timer(seconds, self.restore)
        timer.daemon = True
        timer.start()
        return timer

    def close(self) -> None:
        with self._lock:
            self._closed = True
            listener, self._listener = self._listener, None
            conns = self._conns | self._blackholed
            self._conns, self._blackholed = set(), set()
        if listener is not None:
            _reset(listener)
        for c in conns:
            _reset(c)

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ plumbing

    def _listen(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        deadline = time.monotonic() + 10
        while True:
            try:
                sock.bind((self.host, self.port))
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        sock.listen(128)
        self.port = sock.getsockname()[1]
        with self._lock:
            self._listener = sock
        threading.Thread(target=self._accept_loop, args=(sock,), daemon=True,
                         name=f"proxy-accept-{self.port}").start()

    def _accept_loop(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # the listener was closed by cut() or close()
            with self._lock:
                if self._closed:
                    _reset(client)
                    return
                if self._cut:
                    # Blackhole: hold the connection open and never answer.
                    self._blackholed.add(client)
                    continue
                self.accepted += 1
            threading.Thread(target=self._connect, args=(client,), daemon=True).start()

    def _connect(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(self.target, timeout=5)
            upstream.settimeout(None)
        except OSError:
            _reset(client)
            return
        for s in (client, upstream):
            with contextlib.suppress(OSError):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._lock:
            if self._cut or self._closed:
                _reset(client)
                _reset(upstream)
                return
            self._conns.update((client, upstream))
        threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()
        threading.Thread(target=self._pump, args=(upstream, client), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            with self._lock:
                live = src in self._conns
                self._conns.discard(src)
                self._conns.discard(dst)
            if live:
                # One side closed: close the other so neither end waits for nothing.
                with contextlib.suppress(OSError):
                    dst.shutdown(socket.SHUT_RDWR)
                for s in (src, dst):
                    with contextlib.suppress(OSError):
                        s.close()
