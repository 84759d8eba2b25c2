"""Trackable links through a database outage: remembered targets, and views spooled for later.

NOTE: the link token is an HMAC of the share id, and the target is the asset URL stored in the
database, so without the database a link cannot be resolved from the token alone. The target of
every link created or resolved is remembered (token hash -> share id and asset URL, never
anything from the request), and during an outage the buyer is sent there while the view is
spooled. A link nobody remembers answers 503 with Retry-After during the outage.

Where that memory and spool live (links_for picks one per app):
- REDIS_URL set (SharedLinks): in Redis, shared by every process and host of the app, bounded
  (MAX_SHARED links) and expiring (SHARED_TTL after the last click or share). Spooled views are
  a Redis list moved into link_views (replay_spooled_views) exactly once whichever host runs
  it: the next click any host answers from the database replays it.
- no REDIS_URL (HostLinks, the embedded SQLite): a per-process LRU over a SQLite file in the
  instance folder, and a spool file beside it that the first click answered after the database
  is back replays. Both live on the one host that also holds the database file.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import sqlite3
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import insert, select, tuple_
from sqlalchemy.orm import Session, sessionmaker

from enablement import shared_store
from enablement.config import Settings
from enablement.db.models import LinkView, Share

log = logging.getLogger(__name__)

SPOOL_NAME = "link_views.spool"
MEMORY_NAME = "link_targets.sqlite"
MAX_REMEMBERED = 100_000  # links; about 200 bytes each
# Links kept in Redis (about 300 bytes each with their index: 300 MB at most) and for how long
# after their last share or click: a link quiet for that long is not clicked in an outage.
MAX_SHARED = 1_000_000
SHARED_TTL = 30 * 24 * 3600  # seconds
# A process re-writes a link it keeps clicking at most this often (refreshing its expiry).
REFRESH_EVERY = 24 * 3600.0  # seconds
# Views moved from the spool per transaction, and how long a claimed batch may stay unfinished
# before another replay takes it over (its replayer died; far longer than a batch takes).
REPLAY_BATCH = 500
STALE_CLAIM = 600.0  # seconds


@dataclass(frozen=True)
class LinkTarget:
    """Where a link goes: its share and the stored asset URL."""

    share_id: int
    url: str


class LinkMemory:
    """Token hash -> LinkTarget: an LRU in this process over a file shared by the host's processes.

    NOTE: with several workers a click may land on a worker that never saw the link; the
    file (SQLite, in the instance folder) lets it answer anyway. Failures of the file are
    logged and ignored: it is a fallback, never a reason for a click to fail.
    """

    def __init__(self, file: Path | None = None, size: int = MAX_REMEMBERED):
        """An empty memory holding at most `size` links in process (the file is unbounded)."""
        self.file, self.size = file, size
        self._items: OrderedDict[str, LinkTarget] = OrderedDict()
        self._lock = threading.Lock()
        self._thread = threading.local()

    def remember(self, digest: str, target: LinkTarget) -> None:
        """Keep (or refresh) a link's target, forgetting the least recently used beyond size."""
        with self._lock:
            known = self._items.get(digest)
            self._items[digest] = target
            self._items.move_to_end(digest)
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        if known != target and self.file is not None:
            self._write(digest, target)

    def recall(self, digest: str) -> LinkTarget | None:
        """The remembered target of a link, or None."""
        with self._lock:
            target = self._items.get(digest)
        if target is None and self.file is not None:
            target = self._read(digest)
        return target

    def forget_all(self) -> None:
        """Empty the memory of this process (tests)."""
        with self._lock:
            self._items.clear()

    def _connect(self) -> sqlite3.Connection:
        """This thread's connection to the shared file (created on first use), kept open.

        NOTE: opening the file, setting WAL and creating the table cost more than the write
        itself, on every first click of a link; one connection per thread (and process: a
        forked worker opens its own) pays that once. synchronous=NORMAL: a write is not
        synced to disk at once, so a power cut can lose the last links remembered; they are
        in the database anyway, and the file is only the fallback during an outage.
        """
        held = getattr(self._thread, "conn", None)
        if held is not None and held[0] == os.getpid():
            return held[1]
        self.file.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.file, timeout=1.0, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS links "
                "(digest TEXT PRIMARY KEY, share_id INTEGER NOT NULL, url TEXT NOT NULL)"
            )
        except sqlite3.Error:
            conn.close()
            raise
        self._thread.conn = (os.getpid(), conn)
        return conn

    def _drop(self) -> None:
        """Forget this thread's connection after an error (the next use opens a new one)."""
        held = getattr(self._thread, "conn", None)
        self._thread.conn = None
        if held is not None and held[0] == os.getpid():
            with contextlib.suppress(sqlite3.Error):
                held[1].close()

    def _write(self, digest: str, target: LinkTarget) -> None:
        """Store one link in the shared file."""
        try:
            self._connect().execute(
                "INSERT OR REPLACE INTO links VALUES (?, ?, ?)",
                (digest, target.share_id, target.url),
            )
        except sqlite3.Error as e:
            self._drop()
            log.warning("link memory file %s not written: %s", self.file, e)

    def _read(self, digest: str) -> LinkTarget | None:
        """One link from the shared file, or None."""
        try:
            row = (
                self._connect()
                .execute("SELECT share_id, url FROM links WHERE digest = ?", (digest,))
                .fetchone()
            )
        except sqlite3.Error as e:
            self._drop()
            log.warning("link memory file %s not read: %s", self.file, e)
            return None
        return LinkTarget(int(row[0]), str(row[1])) if row else None


_MEMORIES: dict[Path, LinkMemory] = {}
_MEMORIES_LOCK = threading.Lock()


def link_memory(instance_path: Path) -> LinkMemory:
    """The link memory of the app whose instance folder this is (one per folder and process)."""
    file = Path(instance_path) / MEMORY_NAME
    with _MEMORIES_LOCK:
        if file not in _MEMORIES:
            _MEMORIES[file] = LinkMemory(file)
        return _MEMORIES[file]


def spool_path(instance_path: Path) -> Path:
    """The spool file of views recorded while the database was unavailable."""
    return Path(instance_path) / SPOOL_NAME


def spool_view(path: Path, share_id: int, viewed_at: datetime, user_agent: str) -> None:
    """Append one view to the spool; safe across threads and processes."""
    line = _view_line(share_id, viewed_at, user_agent)
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            # NOTE: a replay may have renamed the file between our open and our lock; then the
            # line must go to a new spool, not to the file being read.
            try:
                same = os.fstat(fd).st_ino == os.stat(path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                os.write(fd, (line + "\n").encode("ascii"))
                return
        finally:
            os.close(fd)


def replay_spool(sessions: sessionmaker[Session], path: Path) -> int:
    """Move spooled views into link_views (one transaction); returns how many were stored.

    The spool is claimed by renaming it, so one process replays each view. If the database
    fails again the views are appended back to the spool. A process killed between the commit
    and the removal of its claimed file leaves `<spool>.<pid>.<id>` behind (counted, not lost).
    """
    claimed = path.with_name(f"{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}")
    try:
        os.rename(path, claimed)
    except FileNotFoundError:
        return 0
    fd = os.open(claimed, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # waits for a writer that is appending right now
        with os.fdopen(os.dup(fd), "r", encoding="ascii", errors="replace") as handle:
            lines = handle.read().splitlines()
    finally:
        os.close(fd)
    views = [view for view in map(_parse, lines) if view is not None]
    try:
        stored = _store_views(sessions, views)
    except Exception:
        for view in views:
            spool_view(path, view["share_id"], view["viewed_at"], view["user_agent"])
        os.unlink(claimed)
        raise
    os.unlink(claimed)
    if stored:
        log.info("replayed %d link views recorded during a database outage", stored)
    return stored


def _parse(line: str) -> dict | None:
    """One spooled view, or None for a line that is not one (a torn write)."""
    try:
        raw = json.loads(line)
        return {
            "share_id": int(raw["share_id"]),
            "viewed_at": datetime.fromisoformat(raw["viewed_at"]),
            "user_agent": str(raw["user_agent"]),
        }
    except (ValueError, KeyError, TypeError):
        return None


def _store_views(sessions: sessionmaker[Session], views: list[dict], once: bool = False) -> int:
    """Insert the views of shares that exist; returns how many.

    With `once`, a view already stored (same share, moment to the microsecond and User-Agent)
    is skipped, so a batch replayed again after its replayer died is not counted twice.
    """
    if not views:
        return 0
    with sessions.begin() as session:
        known = set(
            session.scalars(select(Share.id).where(Share.id.in_({v["share_id"] for v in views})))
        )
        rows = [v for v in views if v["share_id"] in known]
        if once and rows:
            stored = set(
                session.execute(
                    select(LinkView.share_id, LinkView.viewed_at, LinkView.user_agent).where(
                        tuple_(LinkView.share_id, LinkView.viewed_at).in_(
                            [(v["share_id"], v["viewed_at"]) for v in rows]
                        )
                    )
                ).tuples()
            )
            unique = {(v["share_id"], v["viewed_at"], v["user_agent"]): v for v in rows}
            rows = [v for key, v in unique.items() if key not in stored]
        if rows:
            session.execute(insert(LinkView), rows)
    return len(rows)


def _view_line(share_id: int, viewed_at: datetime, user_agent: str) -> str:
    """One spooled view as a line of JSON."""
    return json.dumps(
        {"share_id": share_id, "viewed_at": viewed_at.isoformat(), "user_agent": user_agent},
        ensure_ascii=True,
    )


class HostLinks:
    """Link memory and spool on this host (no REDIS_URL): today's behaviour for one host."""

    def __init__(self, instance_path: Path):
        """The memory and spool files of this instance folder."""
        self.instance_path = Path(instance_path)

    def remember(self, digest: str, target: LinkTarget) -> None:
        """Keep a link's target for an outage."""
        link_memory(self.instance_path).remember(digest, target)

    def recall(self, digest: str) -> LinkTarget | None:
        """The remembered target of a link, or None."""
        return link_memory(self.instance_path).recall(digest)

    def spool(self, share_id: int, viewed_at: datetime, user_agent: str) -> None:
        """Keep a view made during an outage for later."""
        spool_view(spool_path(self.instance_path), share_id, viewed_at, user_agent)

    def settle(
        self, sessions: sessionmaker[Session], queue_replay: Callable[[], None] | None = None
    ) -> None:
        """After a click answered from the database: move this host's spooled views into it.

        The spool is a file of this host, so this host replays it (one stat when it is empty).
        """
        _replay_file(sessions, spool_path(self.instance_path))


def _replay_file(sessions: sessionmaker[Session], spool: Path) -> None:
    """Replay a host's spool file if there is one; an outage again leaves it for the next click."""
    from enablement.db import OUTAGE_ERRORS

    if spool.exists():
        try:
            replay_spool(sessions, spool)
        except OUTAGE_ERRORS:
            pass  # NOTE: the views went back to the spool; the next click tries again


# Keep (or refresh) a link: its target with an expiry, its last write in an index by time, and
# the oldest beyond the bound forgotten. Times are Redis's own clock, the same for every host.
_REMEMBER = """
local now = tonumber(redis.call('TIME')[1])
redis.call('SET', KEYS[1] .. ARGV[1], ARGV[2], 'EX', ARGV[3])
redis.call('ZADD', KEYS[2], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - tonumber(ARGV[3]))
local excess = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[4])
if excess > 0 then
  for _, digest in ipairs(redis.call('ZRANGE', KEYS[2], 0, excess - 1)) do
    redis.call('DEL', KEYS[1] .. digest)
  end
  redis.call('ZREMRANGEBYRANK', KEYS[2], 0, excess - 1)
end
return 1
"""
# Claim up to ARGV[1] spooled views: move them to a claim list named ARGV[2], registered with
# the time it was made; returns them.
_CLAIM = """
local views = redis.call('LRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1)
if #views == 0 then return views end
redis.call('LTRIM', KEYS[1], #views, -1)
redis.call('RPUSH', ARGV[2], unpack(views))
redis.call('ZADD', KEYS[2], tonumber(redis.call('TIME')[1]), ARGV[2])
return views
"""
# Take over a claim whose replayer has not finished it within ARGV[1] seconds: rename it to
# ARGV[2] (only one replay wins) and return its views; nothing when none is that old.
_ADOPT = """
local now = tonumber(redis.call('TIME')[1])
local old = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[1]), 'LIMIT', 0, 1)
if #old == 0 then return {} end
redis.call('ZREM', KEYS[1], old[1])
if redis.call('EXISTS', old[1]) == 0 then return {} end
redis.call('RENAME', old[1], ARGV[2])
redis.call('ZADD', KEYS[1], now, ARGV[2])
return redis.call('LRANGE', ARGV[2], 0, -1)
"""
# Give a claim's views back to the spool (the database failed again).
_RELEASE = """
local views = redis.call('LRANGE', ARGV[1], 0, -1)
if #views > 0 then redis.call('RPUSH', KEYS[1], unpack(views)) end
redis.call('DEL', ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return #views
"""


class SharedLinks:
    """Link memory and spool in Redis, shared by every process and host of the app.

    NOTE: a small LRU in the process answers the clicks it has seen without asking Redis, and
    still answers them if Redis is down too. A failing Redis is logged and never fails a click:
    a view that cannot be spooled there goes to this host's spool file (replayed by the next
    click here), the one way a view can still wait on one host, and only when both stores fail.
    """

    def __init__(self, url: str, prefix: str, instance_path: Path, size: int = MAX_SHARED):
        """The app's keys under `prefix` in the Redis at `url`; `instance_path` for the last resort."""
        self.redis = shared_store.client(url)
        self.prefix, self.size = prefix, size
        self.instance_path = Path(instance_path)
        self._local: OrderedDict[str, tuple[LinkTarget, float]] = OrderedDict()
        self._lock = threading.Lock()
        self._remember = self.redis.register_script(_REMEMBER)
        self._claim = self.redis.register_script(_CLAIM)
        self._adopt = self.redis.register_script(_ADOPT)
        self._release = self.redis.register_script(_RELEASE)

    @property
    def spool_key(self) -> str:
        """The Redis list of views recorded while the database was unavailable."""
        return self.prefix + "link_views"

    @property
    def _claims(self) -> str:
        return self.prefix + "link_views:claims"

    def remember(self, digest: str, target: LinkTarget) -> None:
        """Keep (or refresh) a link's target in Redis; a link clicked again is re-written once a day."""
        now = time.monotonic()
        with self._lock:
            known = self._local.get(digest)
            fresh = known is not None and known[0] == target and now - known[1] < REFRESH_EVERY
            self._keep(digest, target, known[1] if fresh else now)
        if fresh:
            return
        try:
            self._remember(
                keys=[self.prefix + "link:", self.prefix + "links"],
                args=[digest, f"{target.share_id} {target.url}", SHARED_TTL, self.size],
            )
        except shared_store.store_errors() as e:
            log.warning("link not remembered in the shared store: %s", e)
            with self._lock:
                # NOTE: still answered by this process; written to Redis on its next click.
                self._keep(digest, target, float("-inf"))

    def recall(self, digest: str) -> LinkTarget | None:
        """The remembered target of a link (this process first, then Redis), or None."""
        with self._lock:
            known = self._local.get(digest)
        if known is not None:
            return known[0]
        try:
            raw = self.redis.get(self.prefix + "link:" + digest)
        except shared_store.store_errors() as e:
            log.warning("link not read from the shared store: %s", e)
            return None
        if raw is None:
            return None
        share_id, _, url = raw.decode("utf-8").partition(" ")
        target = LinkTarget(int(share_id), url)
        with self._lock:
            self._keep(digest, target, 0.0)  # NOTE: 0: a later click refreshes its expiry
        return target

    def _keep(self, digest: str, target: LinkTarget, written: float) -> None:
        """Hold a link in the process's LRU (the lock held)."""
        self._local[digest] = (target, written)
        self._local.move_to_end(digest)
        while len(self._local) > MAX_REMEMBERED:
            self._local.popitem(last=False)

    def forget_all(self) -> None:
        """Empty this process's LRU (tests: a process that never saw a link)."""
        with self._lock:
            self._local.clear()

    def spool(self, share_id: int, viewed_at: datetime, user_agent: str) -> None:
        """Keep a view made during an outage in the shared spool (replayed by a job)."""
        try:
            self.redis.rpush(self.spool_key, _view_line(share_id, viewed_at, user_agent))
        except shared_store.store_errors() as e:
            log.error("view spooled on this host only (the shared store failed: %s)", e)
            spool_view(spool_path(self.instance_path), share_id, viewed_at, user_agent)

    def settle(
        self, sessions: sessionmaker[Session], queue_replay: Callable[[], None] | None = None
    ) -> None:
        """After a click answered from the database: have the shared spool replayed, and a
        last-resort host spool.

        With queue_replay (the link_views job, on any worker) the click only queues it; without
        (no job queue) the click replays. The scheduler also queues it every minute, so views
        spooled by a host that went away are not stranded. One round trip when nothing waits.
        """
        from enablement.db import OUTAGE_ERRORS

        _replay_file(sessions, spool_path(self.instance_path))
        try:
            waiting, claimed = (
                self.redis.pipeline().llen(self.spool_key).exists(self._claims).execute()
            )
            if (waiting or claimed) and queue_replay is not None:
                queue_replay()
            elif waiting or claimed:
                self.replay(sessions)
        except shared_store.store_errors() as e:
            log.warning("spooled views not replayed yet (the shared store failed: %s)", e)
        except OUTAGE_ERRORS:
            log.warning("spooled views not replayed yet: the database went away again")

    def pending(self) -> int:
        """Views waiting in the shared spool (claimed batches not included)."""
        return int(self.redis.llen(self.spool_key))

    def replay(
        self,
        sessions: sessionmaker[Session],
        batch: int = REPLAY_BATCH,
        stale_after: float = STALE_CLAIM,
    ) -> int:
        """Move every spooled view into link_views, a batch per transaction; returns how many were stored.

        Exactly once whichever hosts replay at the same time: a batch is claimed atomically (moved
        to a claim list of its own), stored, and only then dropped. A database failure gives the
        batch back; a replayer that dies leaves its claim, taken over after `stale_after` seconds
        and stored skipping the views its first replayer had committed.
        """
        stored = 0
        while True:
            name = f"{self.prefix}link_views:claim:{uuid.uuid4().hex}"
            raw = self._adopt(keys=[self._claims], args=[stale_after, name]) or self._claim(
                keys=[self.spool_key, self._claims], args=[batch, name]
            )
            if not raw:
                break
            views = [v for v in (_parse(line.decode("ascii", "replace")) for line in raw) if v]
            done = False
            try:
                # NOTE: any claim may be a batch a replayer that died had (partly) committed,
                # so each is stored skipping what is there.
                stored += _store_views(sessions, views, once=True)
                done = True
            finally:
                if not done:  # the database failed: the views wait in the spool again
                    self._release(keys=[self.spool_key, self._claims], args=[name])
            self.redis.pipeline().delete(name).zrem(self._claims, name).execute()
        if stored:
            log.info("replayed %d link views recorded during a database outage", stored)
        return stored


_LINKS: dict[tuple, HostLinks | SharedLinks] = {}
_LINKS_LOCK = threading.Lock()


def links_for(settings: Settings) -> HostLinks | SharedLinks:
    """The link memory and spool of this app: shared in Redis with REDIS_URL, else on this host."""
    key = (Path(settings.instance_path), settings.redis_url, settings.secret_key)
    with _LINKS_LOCK:
        if key not in _LINKS:
            _LINKS[key] = (
                SharedLinks(
                    settings.redis_url,
                    shared_store.app_prefix(settings.secret_key),
                    settings.instance_path,
                )
                if settings.redis_url
                else HostLinks(settings.instance_path)
            )
        return _LINKS[key]


def replay_spooled_views(settings: Settings, sessions: sessionmaker[Session]) -> int:
    """The job: move the views spooled in Redis during an outage into link_views; 0 without REDIS_URL.

    Cheap when there is nothing to do (one Redis round trip), so it can run every minute; an
    outage error (the database still down) leaves the views spooled for the next run.
    """
    links = links_for(settings)
    return links.replay(sessions) if isinstance(links, SharedLinks) else 0
