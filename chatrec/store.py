"""Sessions as JSON rows in SQLite: a restarted process resumes any conversation."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

from .session import Session


class SessionStore:
    """Sessions as JSON rows in SQLite: a restarted process resumes any conversation."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._db() as db:
            db.execute("CREATE TABLE IF NOT EXISTS sessions (id TEXT PRIMARY KEY, updated REAL, data TEXT NOT NULL)")

    def _db(self) -> sqlite3.Connection:
        # One short connection per call: safe across Gradio's worker threads.
        return sqlite3.connect(self.path, timeout=30)

    def save(self, session: Session) -> None:
        with self._db() as db:
            db.execute(
                "INSERT INTO sessions (id, updated, data) VALUES (?, ?, ?) "
                "ON CONFLICT(id) DO UPDATE SET updated = excluded.updated, data = excluded.data",
                (session.id, time.time(), json.dumps(session.to_dict())),
            )

    def load(self, session_id: str) -> Session:
        with self._db() as db:
            row = db.execute("SELECT data FROM sessions WHERE id = ?", (session_id,)).fetchone()
        if row is None:
            raise KeyError(f"no saved session {session_id!r}")
        return Session.from_dict(json.loads(row[0]))

    def latest(self) -> Session | None:
        with self._db() as db:
            row = db.execute("SELECT data FROM sessions ORDER BY updated DESC LIMIT 1").fetchone()
        return Session.from_dict(json.loads(row[0])) if row else None

    def list(self, limit: int = 20) -> list[tuple[str, float]]:
        with self._db() as db:
            return db.execute("SELECT id, updated FROM sessions ORDER BY updated DESC LIMIT ?", (limit,)).fetchall()
