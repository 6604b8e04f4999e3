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

The same file keeps each owner's profile (chatrec.profiles) as one JSON row. :meth:`SessionStore.forget`
removes an owner's profile and sessions so that nothing of them is left in the file: deleted rows are
overwritten (``PRAGMA secure_delete``) and the file is rebuilt (``VACUUM``).

:func:`open_store` picks the backend from ``Config.store_url``: this file in ``data_dir``, or one PostgreSQL
shared by several ``chatrec serve`` replicas (chatrec.store_postgres, same interface and promises). The
steps both backends share (compare-and-swap with merge, reading rows, changing a profile) are functions here.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING

from .profiles import Profile, owner_key
from .session import Session, merge

if TYPE_CHECKING:
    from .config import Config
    from .store_postgres import PostgresStore

log = logging.getLogger(__name__)

# 1: (id, updated, data); 2: + version (compare-and-swap) and owner (UI sessions); 3: + profiles (owner, json, updated)
SCHEMA_VERSION = 3
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
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        db.execute("PRAGMA secure_delete = ON")  # deleted or replaced rows are zeroed, not left in free pages
        return db

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
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if version == SCHEMA_VERSION and columns and "profiles" in tables:
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
        if "profiles" not in tables:  # schema 2 and older: no profiles yet
            db.execute("CREATE TABLE profiles (owner TEXT PRIMARY KEY, json TEXT NOT NULL, updated REAL NOT NULL)")
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
        return parse_session(session_id, data, version, self.path)

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
            stored, merged = compare_and_swap(session, base, None if row is None else row[0],
                                              lambda: self._parse(session.id, row[1], row[0]))
            db.execute(
                "INSERT INTO sessions (id, updated, data, version, owner) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT(id) DO UPDATE SET updated = excluded.updated, data = excluded.data, "
                "version = excluded.version",
                (stored.id, time.time(), json.dumps(stored.to_dict()), stored.version, stored.owner),
            )
            db.execute("COMMIT")
        except ConflictError:
            db.execute("ROLLBACK")
            raise
        except sqlite3.Error as e:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise StoreError(f"cannot save session {session.id} to {self.path} ({e})") from None
        finally:
            db.close()
        if not merged:  # a merged result is only in the returned session: a stale copy must not pass
            session.version = stored.version
        return stored

    def load(self, session_id: str) -> Session:
        with closing(self._db()) as db:
            row = db.execute("SELECT data, version FROM sessions WHERE id = ?", (session_id,)).fetchone()
        return loaded_session(session_id, row, self._parse, self.path)

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
        """Remove a session (only ``owner``'s when given), and its evidence from its owner's profile; True
        when a row was removed. Nothing is kept."""
        db = self._db()
        try:
            db.execute("BEGIN IMMEDIATE")
            row = db.execute("SELECT owner FROM sessions WHERE id = ?", (session_id,)).fetchone()
            if row is None or (owner is not None and row[0] != owner):
                db.execute("ROLLBACK")
                return False
            db.execute("DELETE FROM sessions WHERE id = ?", (session_id,))
            drop_session_evidence(lambda: self._profile_row(db, row[0]), lambda p: self._write_profile(db, p),
                                  session_id)
            db.execute("COMMIT")
        except sqlite3.Error as e:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise StoreError(f"cannot delete session {session_id} from {self.path} ({e})") from None
        finally:
            db.close()
        return True

    def sessions_of(self, owner: str | None) -> list[Session]:
        """Every readable session of ``owner`` (None: the terminal's), oldest first."""
        with closing(self._db()) as db:
            rows = db.execute("SELECT id, data, version FROM sessions WHERE owner IS ? ORDER BY updated",
                              (owner,)).fetchall()
        return [s for s in (self._parse(*row) for row in rows) if s is not None]

    # ---- profiles ------------------------------------------------------------------------------------

    def _profile_row(self, db: sqlite3.Connection, owner: str | None) -> Profile | None:
        row = db.execute("SELECT json FROM profiles WHERE owner = ?", (owner_key(owner),)).fetchone()
        return None if row is None else parse_profile(owner, row[0], self.path)

    def _write_profile(self, db: sqlite3.Connection, profile: Profile) -> None:
        db.execute("INSERT INTO profiles (owner, json, updated) VALUES (?, ?, ?) ON CONFLICT(owner) DO UPDATE SET "
                   "json = excluded.json, updated = excluded.updated", (profile.owner, profile.to_json(), time.time()))

    def load_profile(self, owner: str | None) -> Profile | None:
        """The profile of ``owner`` (None: the terminal's user), or None when there is none."""
        with closing(self._db()) as db:
            return self._profile_row(db, owner)

    def save_profile(self, profile: Profile) -> None:
        with closing(self._db()) as db:
            self._write_profile(db, profile)

    def update_profile(self, owner: str | None, change: Callable[[Profile], Profile]) -> Profile:
        """Apply ``change`` to ``owner``'s profile (an empty one when there is none) in one transaction, so
        two processes updating one profile lose nothing; written only when its evidence changed."""
        db = self._db()
        try:
            db.execute("BEGIN IMMEDIATE")
            new, changed = changed_profile(owner, self._profile_row(db, owner), change)
            if changed:
                self._write_profile(db, new)
            db.execute("COMMIT")
        except (sqlite3.Error, StoreError) as e:
            if db.in_transaction:
                db.execute("ROLLBACK")
            if isinstance(e, StoreError):
                raise
            raise StoreError(f"cannot save the profile to {self.path} ({e})") from None
        finally:
            db.close()
        return new

    def delete_profile(self, owner: str | None, sessions: bool = False) -> tuple[bool, int]:
        """Remove ``owner``'s profile, and with ``sessions`` every session of theirs too: (a profile was
        removed, sessions removed). Use :meth:`forget` to also leave no trace in the file."""
        db = self._db()
        try:
            db.execute("BEGIN IMMEDIATE")
            had = db.execute("DELETE FROM profiles WHERE owner = ?", (owner_key(owner),)).rowcount > 0
            n = db.execute("DELETE FROM sessions WHERE owner IS ?", (owner,)).rowcount if sessions else 0
            db.execute("COMMIT")
        except sqlite3.Error as e:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise StoreError(f"cannot delete the profile from {self.path} ({e})") from None
        finally:
            db.close()
        return had, n

    def forget(self, owner: str | None) -> tuple[bool, int]:
        """Remove ``owner``'s profile and sessions, then rebuild the file (VACUUM) so no page of theirs is left:
        (a profile was removed, sessions removed)."""
        result = self.delete_profile(owner, sessions=True)
        with closing(self._db()) as db:
            db.execute("VACUUM")
        return result


# ---- what both backends do the same way (chatrec.store_postgres calls these too) ---------------------


def open_store(cfg: Config) -> SessionStore | PostgresStore:
    """The store ``cfg`` names: PostgreSQL for a ``store_url`` (several replicas share it), else
    ``sessions.sqlite`` in ``cfg.home()``."""
    if not cfg.store_url:
        return SessionStore(cfg.home() / "sessions.sqlite")
    try:  # psycopg only where PostgreSQL is asked for: a single-machine install does without it
        from .store_postgres import PostgresStore
    except ImportError as e:  # not installed, or installed without a libpq it can load
        why = (str(e).splitlines() or [type(e).__name__])[0]
        raise StoreError(f"store_url names PostgreSQL but psycopg cannot be imported ({why}): "
                         'pip install "chatrec[postgres]"') from None
    return PostgresStore(cfg.store_url)


def parse_session(session_id: str, data: str, version: int, where: object) -> Session | None:
    """The session of one stored row, or None (with a warning) for a row this chatrec cannot read."""
    try:
        s = Session.from_dict(json.loads(data))
    except (ValueError, TypeError, KeyError, AttributeError) as e:
        log.warning("skipped unreadable session %s in %s (%s: %s)", session_id, where, type(e).__name__, e)
        return None
    s.version = version
    return s


def compare_and_swap(session: Session, base: Session | None, row_version: int | None,
                     theirs: Callable[[], Session | None]) -> tuple[Session, bool]:
    """What a save writes over the stored row at ``row_version`` (None: no row yet), and whether it is a merge.

    ``theirs`` reads the stored row; it is called only when the row changed since ``session`` was read.
    Then ``base`` to ``session``'s changes are merged onto it; without a base (or with an unreadable row)
    that is a :class:`ConflictError`. The caller holds the row's lock and writes the result with its version.
    """
    merged = False
    if row_version is not None and row_version != session.version:
        stored_session = theirs()
        if base is None or stored_session is None:
            raise ConflictError(f"session {session.id} was changed elsewhere since it was loaded; "
                                "load it again and repeat the last action")
        session, merged = merge(base, session, stored_session), True
    stored = session.copy()
    stored.version = (row_version if row_version is not None else session.version) + 1
    return stored, merged


def parse_profile(owner: str | None, text: str, where: object) -> Profile:
    """The profile of one stored row; a row this chatrec cannot read is a :class:`StoreError`."""
    try:
        return Profile.from_json(text)
    except (ValueError, TypeError, KeyError) as e:
        raise StoreError(f"the profile of {owner_key(owner)[:8]} in {where} cannot be read by this chatrec "
                         f"({type(e).__name__}: {e})") from None


def changed_profile(owner: str | None, old: Profile | None,
                    change: Callable[[Profile], Profile]) -> tuple[Profile, bool]:
    """``change`` applied to ``old`` (an empty profile when None), and whether its evidence changed (a write
    is needed only then)."""
    old = Profile(owner_key(owner)) if old is None else old  # (a profile without entries is falsy)
    before = old.evidence_key()  # before ``change``, which may edit ``old`` in place
    new = change(old)
    return new, new.evidence_key() != before


def loaded_session(session_id: str, row: tuple[str, int] | None,
                   parse: Callable[[str, str, int], Session | None], where: object) -> Session:
    """The session of a (data, version) ``row`` read by id: KeyError when there is none, StoreError when this
    chatrec cannot read it (``parse`` has warned why)."""
    if row is None:
        raise KeyError(f"no saved session {session_id!r}")
    session = parse(session_id, row[0], row[1])
    if session is None:
        raise StoreError(f"session {session_id} in {where} cannot be read by this chatrec (see the warning)")
    return session


def drop_session_evidence(read: Callable[[], Profile | None], write: Callable[[Profile], None],
                          session_id: str) -> None:
    """Take a deleted session's evidence out of its owner's profile, inside the deleting transaction: ``read``
    the stored profile, ``write`` it back when it changed. A profile this chatrec cannot read stays as it is
    (for a newer chatrec) and the session goes all the same."""
    try:
        profile = read()
    except StoreError as e:
        log.warning("%s", e)
        return
    if profile is None:
        return
    kept = profile.without_session(session_id)
    if kept.evidence_key() != profile.evidence_key():
        write(kept)


def _is_corrupt(e: sqlite3.DatabaseError) -> bool:
    name = getattr(e, "sqlite_errorname", "")
    return name in _CORRUPT or "integrity check failed" in str(e) or (
        not name and not isinstance(e, sqlite3.OperationalError))
