"""Sessions and profiles in PostgreSQL: several ``chatrec serve`` replicas share one store.

The interface and the promises are :class:`chatrec.store.SessionStore`'s, and so are the steps they share
(compare-and-swap with merge, reading rows, changing a profile: functions in chatrec.store):

- **No lost writes.** A save locks the session (a transaction-level advisory lock on its id, because a new
  session has no row yet for ``SELECT ... FOR UPDATE`` to lock), compares versions and merges onto the
  stored row when another replica saved since this one read it. A profile is read ``FOR UPDATE`` under
  the same kind of lock, changed and written in one transaction.
- **Schema versions.** ``chatrec_schema`` records the layout; the tables are created on first open (under
  a lock, so replicas starting together do it once); a newer layout is refused with a message.
- **Forgetting.** :meth:`PostgresStore.forget` deletes the owner's rows, then runs ``VACUUM`` on both tables
  (what that does and does not erase on disk: its docstring).

Rows keep the same JSON text as the SQLite file, so one store can be copied into the other unchanged.
Errors are :class:`chatrec.store.StoreError` in one line naming the URL without its password.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg.pq import TransactionStatus

from .profiles import Profile, owner_key
from .session import Session
from .store import (
    StoreError,
    changed_profile,
    compare_and_swap,
    drop_session_evidence,
    loaded_session,
    parse_profile,
    parse_session,
)

log = logging.getLogger(__name__)

# 1: chatrec_sessions (id, updated, data, version, owner) and chatrec_profiles (owner, json, updated), the
# layout of SQLite's schema 3. PostgreSQL layouts are numbered on their own.
SCHEMA_VERSION = 1
CONNECT_TIMEOUT_S = 10  # an unreachable server is reported after this long, not after the OS's minutes

# Table names carry a prefix so that chatrec can share a database with other applications.
_CREATE = (
    "CREATE TABLE IF NOT EXISTS chatrec_schema (version INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS chatrec_sessions (id TEXT PRIMARY KEY, updated DOUBLE PRECISION NOT NULL, "
    "data TEXT NOT NULL, version INTEGER NOT NULL DEFAULT 0, owner TEXT)",
    "CREATE INDEX IF NOT EXISTS chatrec_sessions_updated ON chatrec_sessions (updated)",
    "CREATE INDEX IF NOT EXISTS chatrec_sessions_owner ON chatrec_sessions (owner, updated)",
    "CREATE TABLE IF NOT EXISTS chatrec_profiles (owner TEXT PRIMARY KEY, json TEXT NOT NULL, "
    "updated DOUBLE PRECISION NOT NULL)",
)
# The database's clock, not each replica's: "newest first" means the same on every replica.
_NOW = "extract(epoch FROM clock_timestamp())::double precision"


class PostgresStore:
    """Sessions as JSON rows in PostgreSQL, shared by every process given the same URL."""

    def __init__(self, url: str):
        self.path = redact(url)  # where the store is, for messages (named as SessionStore's, so callers print either)
        self.notes: list[str] = []  # what a user should be told about the store (kept for SessionStore's callers)
        try:
            params = conninfo_to_dict(url)
        except psycopg.Error as e:  # libpq quotes the whole URL, password included, in its message
            why = " ".join(str(e).replace(url, self.path).split())
            raise StoreError(f"cannot read the store_url {self.path} ({why})") from None
        params.setdefault("connect_timeout", CONNECT_TIMEOUT_S)
        params.setdefault("application_name", "chatrec")
        self._connections = _Connections(params)
        self._password = str(params.get("password") or "")
        self._migrate()

    @contextmanager
    def _db(self, doing: str, transaction: bool = True) -> Iterator[psycopg.Connection]:
        """A connection in a transaction (committed when the block ends, rolled back on an error), or in
        autocommit with ``transaction=False``; a database error is a one-line :class:`StoreError`."""
        conn = None
        try:
            conn = self._connections.take()
            if transaction:
                with conn.transaction():
                    yield conn
            else:
                yield conn
        except psycopg.Error as e:
            raise StoreError(f"cannot {doing} {self.path} ({self._one_line(e)})") from None
        finally:
            if conn is not None:
                self._connections.give(conn)

    def close(self) -> None:
        """Close the idle connections (they also close when the store is garbage-collected)."""
        self._connections.close()

    def _one_line(self, e: psycopg.Error) -> str:
        text = " ".join(str(e).split()) or type(e).__name__
        if self._password:  # libpq does not print passwords, but a message is never where one may leak
            text = text.replace(self._password, "***")
        if isinstance(e, psycopg.errors.InsufficientPrivilege):
            text += "; the database should be owned by the user chatrec connects as (createdb -O <user> <db>)"
        return text

    def _migrate(self) -> None:
        with self._db("open the session database") as db:
            version = _schema_version(db)
            if version is None:
                # Replicas starting together: one creates, the others wait here, then find the tables (IF NOT
                # EXISTS) and the version row. Not to_regclass again: after waiting on an advisory lock a
                # backend's catalog cache may not show tables committed meanwhile (measured: 4 version rows).
                _lock(db, "schema")
                for statement in _CREATE:
                    db.execute(statement)
                version = db.execute("SELECT max(version) FROM chatrec_schema").fetchone()[0]
                if version is None:
                    db.execute("INSERT INTO chatrec_schema (version) VALUES (%s)", (SCHEMA_VERSION,))
                    version = SCHEMA_VERSION
            if version > SCHEMA_VERSION:
                raise StoreError(f"{self.path} was written by a newer chatrec (store schema {version}, this one "
                                 f"reads up to {SCHEMA_VERSION}); upgrade chatrec or choose another store_url")

    # ---- rows ----------------------------------------------------------------------------------------

    def _parse(self, session_id: str, data: str, version: int) -> Session | None:
        return parse_session(session_id, data, version, self.path)

    def save(self, session: Session, base: Session | None = None) -> Session:
        """Write ``session`` and return what was stored; as :meth:`chatrec.store.SessionStore.save`
        (a compare-and-swap, merged onto the stored row when another writer saved since ``base``)."""
        with self._db(f"save session {session.id} to") as db:
            _lock(db, "session:" + session.id)
            row = db.execute("SELECT version, data FROM chatrec_sessions WHERE id = %s FOR UPDATE",
                             (session.id,)).fetchone()
            stored, merged = compare_and_swap(session, base, None if row is None else row[0],
                                              lambda: self._parse(session.id, row[1], row[0]))
            db.execute(
                f"INSERT INTO chatrec_sessions (id, updated, data, version, owner) VALUES (%s, {_NOW}, %s, %s, %s) "
                "ON CONFLICT (id) DO UPDATE SET updated = excluded.updated, data = excluded.data, "
                "version = excluded.version",
                (stored.id, json.dumps(stored.to_dict()), stored.version, stored.owner),
            )
        if not merged:  # a merged result is only in the returned session: a stale copy must not pass
            session.version = stored.version
        return stored

    def load(self, session_id: str) -> Session:
        with self._db(f"load session {session_id} from") as db:
            row = db.execute("SELECT data, version FROM chatrec_sessions WHERE id = %s", (session_id,)).fetchone()
        return loaded_session(session_id, row, self._parse, self.path)

    def latest(self) -> Session | None:
        """The most recently updated session that can be read (unreadable rows are skipped with a warning)."""
        with self._db("read the sessions of") as db:
            for sid, data, version in db.execute(
                    "SELECT id, data, version FROM chatrec_sessions ORDER BY updated DESC"):
                session = self._parse(sid, data, version)
                if session is not None:
                    return session
        return None

    def list(self, limit: int = 20) -> list[tuple[str, float]]:
        """(id, updated) of the newest ``limit`` sessions; a negative limit has no bound, as in SQLite."""
        with self._db("list the sessions of") as db:
            rows = db.execute("SELECT id, updated FROM chatrec_sessions ORDER BY updated DESC LIMIT %s",
                              (None if limit < 0 else limit,)).fetchall()  # LIMIT NULL: no bound
        return [(sid, updated) for sid, updated in rows]

    def owned(self, owner: str, limit: int = 100) -> list[str]:
        """Ids of the sessions of ``owner`` (a UI browser's or an API client's hash), newest first."""
        with self._db("list the sessions of") as db:
            rows = db.execute("SELECT id FROM chatrec_sessions WHERE owner = %s ORDER BY updated DESC LIMIT %s",
                              (owner, limit)).fetchall()
        return [r[0] for r in rows]

    def delete(self, session_id: str, owner: str | None = None) -> bool:
        """Remove a session (only ``owner``'s when given), and its evidence from its owner's profile; True
        when a row was removed."""
        with self._db(f"delete session {session_id} from") as db:
            row = db.execute("SELECT owner FROM chatrec_sessions WHERE id = %s FOR UPDATE", (session_id,)).fetchone()
            if row is None or (owner is not None and row[0] != owner):
                return False
            db.execute("DELETE FROM chatrec_sessions WHERE id = %s", (session_id,))
            drop_session_evidence(lambda: self._profile_row(db, row[0]), lambda p: self._write_profile(db, p),
                                  session_id)
        return True

    def sessions_of(self, owner: str | None) -> list[Session]:
        """Every readable session of ``owner`` (None: the terminal's), oldest first."""
        with self._db("read the sessions of") as db:
            if owner is None:
                rows = db.execute("SELECT id, data, version FROM chatrec_sessions WHERE owner IS NULL "
                                  "ORDER BY updated").fetchall()
            else:
                rows = db.execute("SELECT id, data, version FROM chatrec_sessions WHERE owner = %s "
                                  "ORDER BY updated", (owner,)).fetchall()
        return [s for s in (self._parse(*row) for row in rows) if s is not None]

    # ---- profiles ------------------------------------------------------------------------------------

    def _profile_row(self, db: psycopg.Connection, owner: str | None) -> Profile | None:
        """The stored profile of ``owner``, locked until the transaction ends (it is about to be rewritten)."""
        _lock(db, "profile:" + owner_key(owner))  # FOR UPDATE locks nothing while there is no row yet
        row = db.execute("SELECT json FROM chatrec_profiles WHERE owner = %s FOR UPDATE",
                         (owner_key(owner),)).fetchone()
        return None if row is None else parse_profile(owner, row[0], self.path)

    def _write_profile(self, db: psycopg.Connection, profile: Profile) -> None:
        db.execute(f"INSERT INTO chatrec_profiles (owner, json, updated) VALUES (%s, %s, {_NOW}) "
                   "ON CONFLICT (owner) DO UPDATE SET json = excluded.json, updated = excluded.updated",
                   (profile.owner, profile.to_json()))

    def load_profile(self, owner: str | None) -> Profile | None:
        """The profile of ``owner`` (None: the terminal's user), or None when there is none."""
        with self._db("read a profile from") as db:
            row = db.execute("SELECT json FROM chatrec_profiles WHERE owner = %s", (owner_key(owner),)).fetchone()
        return None if row is None else parse_profile(owner, row[0], self.path)

    def save_profile(self, profile: Profile) -> None:
        with self._db("save the profile to") as db:
            self._write_profile(db, profile)

    def update_profile(self, owner: str | None, change: Callable[[Profile], Profile]) -> Profile:
        """Apply ``change`` to ``owner``'s profile (an empty one when there is none) in one transaction, so
        two replicas updating one profile lose nothing; written only when its evidence changed."""
        with self._db("save the profile to") as db:
            new, changed = changed_profile(owner, self._profile_row(db, owner), change)
            if changed:
                self._write_profile(db, new)
        return new

    def delete_profile(self, owner: str | None, sessions: bool = False) -> tuple[bool, int]:
        """Remove ``owner``'s profile, and with ``sessions`` every session of theirs too: (a profile was
        removed, sessions removed). Use :meth:`forget` to also vacuum the tables."""
        with self._db("delete the profile from") as db:
            n = 0  # sessions first: every transaction locks sessions before profiles, so none waits in a cycle
            if sessions and owner is None:
                n = db.execute("DELETE FROM chatrec_sessions WHERE owner IS NULL").rowcount
            elif sessions:
                n = db.execute("DELETE FROM chatrec_sessions WHERE owner = %s", (owner,)).rowcount
            _lock(db, "profile:" + owner_key(owner))
            had = db.execute("DELETE FROM chatrec_profiles WHERE owner = %s", (owner_key(owner),)).rowcount > 0
        return had, n

    def forget(self, owner: str | None) -> tuple[bool, int]:
        """Remove ``owner``'s profile and sessions, then vacuum both tables: (a profile was removed, sessions
        removed).

        Once the DELETE commits, no query, replica or dump sees the rows, but PostgreSQL only marks them dead;
        ``VACUUM`` reclaims the dead tuples (their space goes to later rows) once no open transaction can
        still see them. It does not zero that space: measured on PostgreSQL 15, a forgotten title was still
        in the table's file after VACUUM and CHECKPOINT, until later rows overwrite it (``VACUUM FULL``
        rewrites the file without it, but locks the table against every replica while it runs). The
        write-ahead log and any backups keep deleted rows until they are recycled, as for any PostgreSQL data.
        """
        result = self.delete_profile(owner, sessions=True)
        with self._db("vacuum (after forgetting)", transaction=False) as db:  # VACUUM refuses a transaction block
            db.execute("VACUUM chatrec_sessions, chatrec_profiles")
        return result


class _Connections:
    """Open connections kept for the next call, at most ``keep`` idle (a few lines instead of psycopg_pool).

    Why not one connection per call: connecting costs 7-15 ms (a server process is forked, and
    scram-sha-256 hashes the password on both sides), and the collaborative channel loads every session at
    start, one call each. Why not one per thread: the server streams each turn from a fresh thread, which
    would open a connection and leave it to the garbage collector. A connection is used by one call at a
    time; one kept idle is checked with a round trip (about 0.3 ms) before reuse, so a database restart
    costs a reconnect, not a failed request. Connections are in autocommit: each call opens its own
    transaction (:meth:`PostgresStore._db`), so an idle one never holds a snapshot or a lock.
    """

    def __init__(self, params: dict, keep: int = 8):
        self._params = params
        self._keep = keep
        self._idle: list[psycopg.Connection] = []
        self._lock = threading.Lock()
        weakref.finalize(self, _close_all, self._idle)  # a store dropped without close() closes them too

    def take(self) -> psycopg.Connection:
        while True:
            with self._lock:
                conn = self._idle.pop() if self._idle else None
            if conn is None:
                return psycopg.connect(**self._params, autocommit=True)
            try:
                conn.execute("SELECT 1")
                return conn
            except psycopg.Error:  # closed by the server (a restart, an idle timeout): try the next one
                conn.close()

    def give(self, conn: psycopg.Connection) -> None:
        if not conn.closed and not conn.broken and conn.info.transaction_status == TransactionStatus.IDLE:
            with self._lock:
                if len(self._idle) < self._keep:
                    self._idle.append(conn)
                    return
        conn.close()

    def close(self) -> None:
        with self._lock:
            _close_all(self._idle)


def _close_all(conns: list[psycopg.Connection]) -> None:
    while conns:
        conns.pop().close()


def redact(url: str) -> str:
    """``url`` without its password (in the user part or as a ``password=`` parameter), for messages.

    Split by hand: ``urlsplit`` refuses some URLs libpq reads (several hosts, a bracket typo), and the
    message about such a URL must not show its password either."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url.split("@")[-1]  # not a URL: at most the part after any credentials
    cut = min((i for i in (rest.find("/"), rest.find("?")) if i >= 0), default=len(rest))
    netloc, tail = rest[:cut], rest[cut:]
    if "@" in netloc:
        user, _, hosts = netloc.rpartition("@")
        netloc = f"{user.split(':', 1)[0]}@{hosts}"
    path, qsep, query = tail.partition("?")
    if qsep:
        kept = [kv for kv in query.split("&") if kv.split("=", 1)[0] != "password"]
        tail = path + ("?" + "&".join(kept) if kept else "")
    return f"{scheme}{sep}{netloc}{tail}"


def _lock(db: psycopg.Connection, key: str) -> None:
    """Hold a lock named ``key`` until the transaction ends, in every process using the database.

    The 64-bit key is a hash computed here (the same in every process, unlike Python's ``hash``)."""
    lock_id = int.from_bytes(hashlib.blake2b(f"chatrec:{key}".encode(), digest_size=8).digest(), "big", signed=True)
    db.execute("SELECT pg_advisory_xact_lock(%s)", (lock_id,))


def _schema_version(db: psycopg.Connection) -> int | None:
    """The recorded layout, or None in a database chatrec has not written to yet."""
    if db.execute("SELECT to_regclass('chatrec_schema')").fetchone()[0] is None:
        return None
    row = db.execute("SELECT max(version) FROM chatrec_schema").fetchone()
    return None if row is None or row[0] is None else row[0]
