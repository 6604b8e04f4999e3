"""Sessions as JSON rows in SQLite: a restarted process resumes any conversation.

Three promises, each with a test:
- **No lost writes.** Every row has a version; a save is a compare-and-swap inside one ``BEGIN
  IMMEDIATE`` transaction. When another process (or a UI event) saved the session since this writer
  read it, this writer's changes since its base are merged onto the stored row (turns appended,
  likes and rejections applied) instead of overwriting it.
- **A corrupt file locks nobody out.** The file is checked when the store opens (before any model
  loads); a damaged one is moved aside as ``sessions.sqlite.corrupt-<time>`` and a fresh store is
  started, with a note saying so. One unreadable row is skipped with a warning.
- **Schema versions.** ``PRAGMA user_version`` records the layout; older files are migrated in place,
  a newer one is refused with a message (never rewritten by an older chatrec).
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from contextlib import closing
from pathlib import Path

from .session import Session, merge

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2  # 1: (id, updated, data); 2: + version (compare-and-swap) and owner (UI sessions)
_CORRUPT = {"SQLITE_CORRUPT", "SQLITE_NOTADB"}


class StoreError(RuntimeError):
    """The session store cannot do what was asked; the message says why in one line."""


class ConflictError(StoreError):
    """A session changed since it was read and there is no base to merge from."""


class SessionStore:
    """Sessions as JSON rows in SQLite: a restarted process resumes any conversation."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.notes: list[str] = []  # what a user should be told about the store (a corrupt file moved aside)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StoreError(f"cannot create the session folder {self.path.parent} ({e.strerror})") from None
        try:
            self._open()
        except sqlite3.DatabaseError as e:
            if not (_is_corrupt(e) and self.path.exists()):
                raise StoreError(f"cannot open the session database {self.path} ({e})") from None
            self._move_aside(str(e))
            self._open()

    def _db(self) -> sqlite3.Connection:
        # One short connection per call: safe across Gradio's worker threads and across processes.
        # Transactions are explicit (isolation_level=None) so a compare-and-swap is one BEGIN IMMEDIATE.
        return sqlite3.connect(self.path, timeout=30, isolation_level=None)

    def _open(self) -> None:
        db = self._db()
        try:
            check = db.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise sqlite3.DatabaseError(f"integrity check failed: {check}")
            self._migrate(db)
        finally:
            db.close()

    def _migrate(self, db: sqlite3.Connection) -> None:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(f"{self.path} was written by a newer chatrec (store schema {version}, this one reads "
                             f"up to {SCHEMA_VERSION}); upgrade chatrec or choose another --data-dir")
        columns = {r[1] for r in db.execute("PRAGMA table_info(sessions)")}
        if version == SCHEMA_VERSION and columns:
            return  # current: opening writes nothing (a store that is only read stays byte-identical)
        db.execute("BEGIN IMMEDIATE")
        if not columns:
            db.execute("CREATE TABLE sessions (id TEXT PRIMARY KEY, updated REAL, data TEXT NOT NULL, "
                       "version INTEGER NOT NULL DEFAULT 0, owner TEXT)")
        else:  # schema 1 (before versions): add the columns; old rows start at version 0 with no owner
            if "version" not in columns:
                db.execute("ALTER TABLE sessions ADD COLUMN version INTEGER NOT NULL DEFAULT 0")
            if "owner" not in columns:
                db.execute("ALTER TABLE sessions ADD COLUMN owner TEXT")
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        db.execute("COMMIT")

    def _move_aside(self, why: str) -> None:
        aside = self.path.with_name(f"{self.path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
        self.path.rename(aside)
        for suffix in ("-wal", "-shm", "-journal"):  # leftovers belong to the damaged file
            side = self.path.with_name(self.path.name + suffix)
            if side.exists():
                side.rename(aside.with_name(aside.name + suffix))
        note = (f"the session database {self.path} was damaged ({why}); it was moved to {aside.name} "
                "and a fresh one was started (earlier conversations are in the moved file)")
        log.warning(note)
        self.notes.append(note)

    # ---- rows ----------------------------------------------------------------------------------------

    def _parse(self, session_id: str, data: str, version: int) -> Session | None:
        """The session of one row, or None (with a warning) for a row this chatrec cannot read."""
        try:
            s = Session.from_dict(json.loads(data))
        except (ValueError, TypeError, KeyError, AttributeError) as e:
            log.warning("skipped unreadable session %s in %s (%s: %s)", session_id, self.path, type(e).__name__, e)
            return None
        s.version = version
        return s

    def save(self, session: Session, base: Session | None = None) -> Session:
        """Write ``session`` and return what was stored; ``session.version`` advances in place unless
        the stored row had to be merged (then only the returned session is current).

        ``base`` is the session this one was derived from. When the row changed since ``base`` was
        read (another process, a UI button during a streamed answer), the changes from ``base`` to
        ``session`` are merged onto the stored row; without a base that is a :class:`ConflictError`.
        """
        db = self._db()
        try:
            db.execute("BEGIN IMMEDIATE")  # read-check-write is atomic across processes
            row = db.execute("SELECT version, data FROM sessions WHERE id = ?", (session.id,)).fetchone()
            if row is not None and row[0] != session.version:
                theirs = self._parse(session.id, row[1], row[0])
                if base is None or theirs is None:
                    db.execute("ROLLBACK")
                    raise ConflictError(f"session {session.id} was changed elsewhere since it was loaded; "
                                        "load it again and repeat the last action")
                merged = merge(base, session, theirs)
            else:
                merged = session
            stored = merged.copy()
            stored.version = (row[0] if row is not None else session.version) + 1
            db.execute(
                "INSERT INTO sessions (id, updated, data, version, owner) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT(id) DO UPDATE SET updated = excluded.updated, data = excluded.data, "
                "version = excluded.version",
                (stored.id, time.time(), json.dumps(stored.to_dict()), stored.version, stored.owner),
            )
            db.execute("COMMIT")
        except sqlite3.Error as e:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise StoreError(f"cannot save session {session.id} to {self.path} ({e})") from None
        finally:
            db.close()
        if merged is session:  # a merged result is only in the returned session: a stale copy must not pass
            session.version = stored.version
        return stored

    def load(self, session_id: str) -> Session:
        with closing(self._db()) as db:
            row = db.execute("SELECT data, version FROM sessions WHERE id = ?", (session_id,)).fetchone()
        if row is None:
            raise KeyError(f"no saved session {session_id!r}")
        session = self._parse(session_id, row[0], row[1])
        if session is None:
            raise StoreError(f"session {session_id} in {self.path} cannot be read by this chatrec (see the warning)")
        return session

    def latest(self) -> Session | None:
        """The most recently updated session that can be read (unreadable rows are skipped with a warning)."""
        with closing(self._db()) as db:
            for sid, data, version in db.execute("SELECT id, data, version FROM sessions ORDER BY updated DESC"):
                session = self._parse(sid, data, version)
                if session is not None:
                    return session
        return None

    def list(self, limit: int = 20) -> list[tuple[str, float]]:
        with closing(self._db()) as db:
            return db.execute("SELECT id, updated FROM sessions ORDER BY updated DESC LIMIT ?", (limit,)).fetchall()

    def owned(self, owner: str, limit: int = 100) -> list[str]:
        """Ids of the sessions of ``owner`` (a UI browser's or an API client's hash), newest first."""
        with closing(self._db()) as db:
            rows = db.execute("SELECT id FROM sessions WHERE owner = ? ORDER BY updated DESC LIMIT ?",
                              (owner, limit)).fetchall()
        return [r[0] for r in rows]

    def delete(self, session_id: str, owner: str | None = None) -> bool:
        """Remove a session (only ``owner``'s when given); True when a row was removed. Nothing is kept."""
        with closing(self._db()) as db:
            if owner is None:
                cur = db.execute("DELETE FROM sessions WHERE id = ?", (session_id,))
            else:
                cur = db.execute("DELETE FROM sessions WHERE id = ? AND owner = ?", (session_id, owner))
        return cur.rowcount > 0


def _is_corrupt(e: sqlite3.DatabaseError) -> bool:
    name = getattr(e, "sqlite_errorname", "")
    return name in _CORRUPT or "integrity check failed" in str(e) or (
        not name and not isinstance(e, sqlite3.OperationalError))
