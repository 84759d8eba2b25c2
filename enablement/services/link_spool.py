"""Trackable links through a database outage: remembered targets, and views spooled for later.

NOTE: the link token is an HMAC of the share id, and the target is the asset URL stored in the
database, so without the database a link cannot be resolved from the token alone. Each process
remembers the target of every link it resolved or created (a bounded LRU of token hash -> share
id and asset URL, never anything from the request), and during an outage sends the buyer there
while the view is appended to a spool file in the instance folder. The first click answered
after the database is back moves the spooled views into link_views. A link this process has not
seen since it started answers 503 with Retry-After during the outage.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import sqlite3
import threading
import uuid
from collections import OrderedDict
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import insert, select
from sqlalchemy.orm import Session, sessionmaker

from enablement.db.models import LinkView, Share

log = logging.getLogger(__name__)

SPOOL_NAME = "link_views.spool"
MEMORY_NAME = "link_targets.sqlite"
MAX_REMEMBERED = 100_000  # links; about 200 bytes each


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
        """The shared file, created on first use."""
        self.file.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.file, timeout=1.0, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(
            "CREATE TABLE IF NOT EXISTS links "
            "(digest TEXT PRIMARY KEY, share_id INTEGER NOT NULL, url TEXT NOT NULL)"
        )
        return conn

    def _write(self, digest: str, target: LinkTarget) -> None:
        """Store one link in the shared file."""
        try:
            with closing(self._connect()) as conn:
                conn.execute(
                    "INSERT OR REPLACE INTO links VALUES (?, ?, ?)",
                    (digest, target.share_id, target.url),
                )
        except sqlite3.Error as e:
            log.warning("link memory file %s not written: %s", self.file, e)

    def _read(self, digest: str) -> LinkTarget | None:
        """One link from the shared file, or None."""
        try:
            with closing(self._connect()) as conn:
                row = conn.execute(
                    "SELECT share_id, url FROM links WHERE digest = ?", (digest,)
                ).fetchone()
        except sqlite3.Error as e:
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
    line = json.dumps(
        {"share_id": share_id, "viewed_at": viewed_at.isoformat(), "user_agent": user_agent},
        ensure_ascii=True,
    )
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


def _store_views(sessions: sessionmaker[Session], views: list[dict]) -> int:
    """Insert the views of shares that exist; returns how many."""
    if not views:
        return 0
    with sessions.begin() as session:
        known = set(
            session.scalars(select(Share.id).where(Share.id.in_({v["share_id"] for v in views})))
        )
        rows = [v for v in views if v["share_id"] in known]
        if rows:
            session.execute(insert(LinkView), rows)
    return len(rows)
