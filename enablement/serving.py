"""The production server: gunicorn's settings and a worker that no slow client can hold.

    gunicorn -c python:enablement.serving -b 0.0.0.0:8000 'wsgi:app'

gunicorn reads this module's setting names (workers, threads, timeouts, ...); anything given on
its command line (`-w`, `-b`) overrides them. The worker is gunicorn's threaded one (gthread):
a connection waits in one poller per process, not in a thread, until it sends something, and
then holds one of `threads` threads only for a bounded time: its headers must have arrived
REQUEST_HEADER_TIMEOUT seconds after its first byte and its body REQUEST_BODY_TIMEOUT seconds
after its headers, or the connection is closed; a chunk announcing more than the body limit is
answered 400 before any of it is read. So a slow client costs one thread for seconds, never a
process for as long as it likes (docs/operating.md, "Slow clients").
"""

from __future__ import annotations

import socket
import time

from gunicorn.http.body import ChunkedReader
from gunicorn.http.errors import InvalidChunkSize
from gunicorn.workers.gthread import _DEFER, ThreadWorker

# NOTE: gunicorn settings, read by name when this module is given as `-c python:...`.
worker_class = "enablement.serving.BoundedReadWorker"
workers = 4
# A thread waits on one client or one database answer at a time; the database pool
# (DATABASE_POOL_SIZE + DATABASE_MAX_OVERFLOW) bounds how many run queries at once.
threads = 16
# NOTE: with threads this bounds a silent process (its main loop stopped), not one request.
timeout = 30
graceful_timeout = 30
keepalive = 5
max_requests = 1000
max_requests_jitter = 100


def post_worker_init(worker) -> None:
    """gunicorn hook, in each worker once the app is loaded and before it accepts a connection:
    warm the process's caches (enablement.warmup), so the first request is not its slowest, and
    start the thread that rebuilds them before they expire."""
    app = getattr(worker, "wsgi", None)
    if "enablement" not in getattr(app, "extensions", {}):
        return  # a foreign wsgi callable
    import gc

    from enablement.warmup import maintain, warm

    started = time.perf_counter()
    done = warm(app)
    worker.log.info(
        "worker %s warmed in %.2f s: %s", worker.pid, time.perf_counter() - started, done
    )
    # NOTE: what is alive now (modules, the app, the prepared index) lives as long as the worker:
    # frozen, the cyclic collector never walks it again, so its collections stay short instead
    # of pausing a request for each pass over hundreds of thousands of objects. Reference
    # counting still frees what is dropped (an index replaced by a rebuild).
    gc.collect()
    gc.freeze()
    maintain(app)


# Fallbacks when the app does not carry the enablement settings (a foreign wsgi callable).
DEFAULT_HEADER_TIMEOUT = 10.0
DEFAULT_BODY_TIMEOUT = 30.0
# Seconds a thread waits for a new connection's first byte before the poller takes it over.
FIRST_BYTE_WAIT = 0.5


class ChunkTooLarge(InvalidChunkSize, ValueError):
    """A chunk announces more bytes than any body may have (the app answers 400)."""


class DeadlineSocket:
    """A socket whose reads end (as if the client had hung up) once a deadline has passed."""

    def __init__(self, sock: socket.socket, deadline: float):
        self.sock = sock
        self.deadline = deadline  # time.monotonic() seconds
        self.expired = False

    def recv(self, size: int) -> bytes:
        """At most `size` bytes read before the deadline; b"" (end of input) after it."""
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            self.expired = True
            return b""
        previous = self.sock.gettimeout()
        self.sock.settimeout(remaining)
        try:
            return self.sock.recv(size)
        except TimeoutError:
            # NOTE: end of input, not an error: the parser closes a request without headers,
            # and the app answers 400 to a body that ends early; no traceback in the log.
            self.expired = True
            return b""
        finally:
            self.sock.settimeout(previous)

    def __getattr__(self, name: str):
        return getattr(self.sock, name)


class BoundedReadWorker(ThreadWorker):
    """gthread with a deadline on reading each request and a bound on each chunk's size."""

    def load_wsgi(self) -> None:
        """Load the app, then take the read deadlines and body limit from its settings."""
        super().load_wsgi()
        container = getattr(self.wsgi, "extensions", {}).get("enablement")
        settings = getattr(container, "settings", None)
        self.header_timeout = float(
            getattr(settings, "request_header_timeout", DEFAULT_HEADER_TIMEOUT)
        )
        self.body_timeout = float(getattr(settings, "request_body_timeout", DEFAULT_BODY_TIMEOUT))
        self.max_body_bytes = getattr(settings, "max_body_bytes", None)

    def handle(self, conn):
        """Serve one request on `conn` with its reads bounded by deadlines; a late one closes it."""
        if not conn.initialized:
            # NOTE: gthread would wait 5 s in this thread for the first byte; a short wait, then
            # the poller (which closes it after `keepalive` seconds of silence), costs no thread.
            if not conn.data_ready and not conn.wait_for_data(FIRST_BYTE_WAIT):
                return _DEFER
            conn.sock.setblocking(True)
            conn.init()
            if conn.is_http2:
                return super().handle(conn)
        unreader = conn.parser.unreader
        raw = unreader.sock.sock if isinstance(unreader.sock, DeadlineSocket) else unreader.sock
        # A kept-alive connection starts a new request now: it gets a fresh deadline too.
        bounded = DeadlineSocket(raw, time.monotonic() + self.header_timeout)
        unreader.sock = bounded
        keep = super().handle(conn)
        if bounded.expired:
            self.log.info("closed a connection from %s: request not received in time", conn.client)
            return False
        return keep

    def handle_request(self, req, conn):
        """Headers are in: give the body its own deadline and refuse oversized chunks."""
        reader = conn.parser.unreader.sock
        if isinstance(reader, DeadlineSocket):
            reader.deadline = time.monotonic() + self.body_timeout
        chunked = getattr(req.body, "reader", None)
        if isinstance(chunked, ChunkedReader) and self.max_body_bytes is not None:
            chunked.parse_chunk_size = _bounded_chunk_size(
                chunked.parse_chunk_size, self.max_body_bytes
            )
        return super().handle_request(req, conn)


def _bounded_chunk_size(parse, limit: int):
    """Wrap a chunk-size parser so that a chunk over `limit` bytes is refused before it is read."""

    def parse_chunk_size(unreader, data=None):
        size, rest = parse(unreader, data)
        if size > limit:
            # NOTE: no body over the limit is ever accepted, so reading this chunk is only delay.
            raise ChunkTooLarge(f"chunk of {size} bytes, over the {limit}-byte body limit")
        return size, rest

    return parse_chunk_size
