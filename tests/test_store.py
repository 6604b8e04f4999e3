"""The session store: no lost writes across processes, corrupt files moved aside, schema migration.

Tests taking the ``store`` fixture run on both backends (SQLite, and PostgreSQL when its server binaries are
installed: tests/postgres_server.py); the file's own promises (corrupt files, PRAGMAs, migration) are SQLite's.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from chatrec.config import load_config
from chatrec.session import Session, TurnRecord, merge
from chatrec.store import SCHEMA_VERSION, ConflictError, SessionStore, StoreError, open_store

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    """An empty store of each backend (one fresh PostgreSQL database per test)."""
    if request.param == "sqlite":
        return SessionStore(tmp_path / "s.sqlite")
    pytest.importorskip("psycopg")
    from chatrec.store_postgres import PostgresStore

    pg = PostgresStore(request.getfixturevalue("postgres_server").create_database())
    request.addfinalizer(pg.close)
    return pg


def _turn(session: Session, text: str, items: list[str]) -> Session:
    new = session.copy()
    new.turns += [TurnRecord("user", text), TurnRecord("assistant", "Recommended", items=items)]
    return new


def test_two_writers_from_one_base_keep_both_turns_and_the_like(store):
    base = store.save(_turn(Session(), "a heist film", ["a", "b"]))
    first, second = store.load(base.id), store.load(base.id)  # two processes read the same row
    liked = first.copy()
    liked.like("b")
    store.save(liked, base=first)  # a 👍 lands while the other answer is being written
    store.save(_turn(second, "something funnier", ["c", "d"]), base=second)
    final = store.load(base.id)
    assert [t.text for t in final.turns if t.role == "user"] == ["a heist film", "something funnier"]
    assert final.liked == ["b"] and final.last_items == ["c", "d"]
    assert final.version == 3


def test_a_stale_save_without_base_is_a_conflict_and_changes_nothing(store):
    s = store.save(Session())
    store.save(_turn(store.load(s.id), "one", ["a"]))
    with pytest.raises(ConflictError, match="changed elsewhere"):
        store.save(_turn(s, "two", ["b"]))  # read at version 1, the row is at 2
    assert [t.text for t in store.load(s.id).turns] == ["one", "Recommended"]


def test_merge_the_later_writer_wins_on_the_same_item():
    base = Session(liked=["x"], rejected=["y"])
    theirs, mine = base.copy(), base.copy()
    theirs.reject("z")
    theirs.like("w")
    mine.like("z")
    mine.reject("x")
    mine.year_min = 1980
    out = merge(base, mine, theirs)
    assert out.liked == ["w", "z"] and out.rejected == ["y", "x"] and out.year_min == 1980


_WRITER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    sys.path.insert(0, {root!r})
    from chatrec.session import TurnRecord
    from chatrec.store import SessionStore
    store = SessionStore({db!r})
    base = store.load({sid!r})
    new = base.copy()
    new.turns += [TurnRecord("user", sys.argv[1]), TurnRecord("assistant", "Recommended", items=[sys.argv[1]])]
    new.like(sys.argv[1])
    Path(sys.argv[2]).write_text("ready")
    while not Path({go!r}).exists():  # both have read the row before either writes
        time.sleep(0.01)
    store.save(new, base=base)
""")


def test_two_processes_answering_one_session_at_once_lose_nothing(tmp_path):
    db = tmp_path / "s.sqlite"
    sid = SessionStore(db).save(Session()).id
    script = tmp_path / "writer.py"
    script.write_text(_WRITER.format(root=str(ROOT), db=str(db), sid=sid, go=str(tmp_path / "go")))
    procs = [subprocess.Popen([sys.executable, str(script), name, str(tmp_path / f"{name}.ready")])
             for name in ("first", "second")]
    import time

    deadline = time.time() + 60
    while not all((tmp_path / f"{n}.ready").exists() for n in ("first", "second")) and time.time() < deadline:
        time.sleep(0.02)
    (tmp_path / "go").write_text("go")
    assert [p.wait(timeout=60) for p in procs] == [0, 0]
    final = SessionStore(db).load(sid)
    assert sorted(t.text for t in final.turns if t.role == "user") == ["first", "second"]
    assert sorted(final.liked) == ["first", "second"]


def test_a_damaged_file_is_moved_aside_and_a_fresh_store_starts(tmp_path):
    path = tmp_path / "sessions.sqlite"
    store = SessionStore(path)
    for _ in range(30):
        store.save(_turn(Session(), "x" * 500, ["a"]))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # truncated, as after a full disk
    fresh = SessionStore(path)
    assert fresh.notes and "moved to sessions.sqlite.corrupt-" in fresh.notes[0]
    assert fresh.latest() is None and fresh.save(Session()).version == 1
    assert len(list(tmp_path.glob("sessions.sqlite.corrupt-*"))) == 1


def test_a_file_that_is_not_a_database_is_moved_aside(tmp_path):
    path = tmp_path / "sessions.sqlite"
    path.write_bytes(b"this is not sqlite at all" * 100)
    store = SessionStore(path)
    assert store.notes and store.latest() is None


def test_an_unreadable_row_is_skipped_with_a_warning(tmp_path, caplog):
    store = SessionStore(tmp_path / "s.sqlite")
    good = store.save(_turn(Session(), "good", ["a"]))
    with sqlite3.connect(store.path) as db:  # a row from a newer chatrec, and one that is not JSON
        db.execute("INSERT INTO sessions (id, updated, data) VALUES ('newer', 9e12, ?)",
                   (json.dumps({**good.to_dict(), "id": "newer", "mood_vector": [1, 2]}),))
        db.execute("INSERT INTO sessions (id, updated, data) VALUES ('broken', 9e12, '{not json')")
    assert store.latest().id == good.id
    assert "skipped unreadable session" in caplog.text
    with pytest.raises(StoreError, match="cannot be read"):
        store.load("newer")


def test_a_schema_1_file_is_migrated_in_place(tmp_path):
    path = tmp_path / "s.sqlite"
    old = Session()
    data = {k: v for k, v in old.to_dict().items() if k not in ("version", "owner")}
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE sessions (id TEXT PRIMARY KEY, updated REAL, data TEXT NOT NULL)")
        db.execute("INSERT INTO sessions VALUES (?, 1.0, ?)", (old.id, json.dumps(data)))
    store = SessionStore(path)
    assert store.load(old.id).version == 0
    assert store.save(store.load(old.id)).version == 1
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_a_file_from_a_newer_chatrec_is_refused_not_rewritten(tmp_path):
    path = tmp_path / "s.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version = 99")
    before = path.read_bytes()
    with pytest.raises(StoreError, match="newer chatrec"):
        SessionStore(path)
    assert path.read_bytes() == before


def test_session_ids_are_unguessable():
    ids = {Session().id for _ in range(100)}
    assert len(ids) == 100 and all(len(i) == 32 for i in ids)


def test_sessions_by_owner_and_deletion_leave_nothing(store):
    mine = [store.save(Session(owner="a")) for _ in range(2)]
    theirs = store.save(Session(owner="b"))
    assert sorted(store.owned("a")) == sorted(s.id for s in mine) and store.owned("b") == [theirs.id]
    assert not store.delete(theirs.id, owner="a")  # not a's to delete
    assert store.delete(mine[0].id, owner="a") and store.owned("a") == [mine[1].id]
    with pytest.raises(KeyError):
        store.load(mine[0].id)


# ---- profiles (schema 3) ----------------------------------------------------------------------------


def _liked(owner: str | None, title: str, item_id: str) -> Session:
    s = Session(owner=owner, turns=[TurnRecord("user", f"I loved {title}"), TurnRecord("assistant", "Recommended",
                                                                                       items=["x"])])
    s.like(item_id)
    return s


def _profile_of(store, session: Session, title: str) -> None:
    from chatrec.catalog import Catalog, Item

    catalog = Catalog([Item(session.liked[0], title)])
    store.update_profile(session.owner, lambda p: p.updated_with(session, time.time(), 90.0, catalog))


def test_a_schema_2_file_is_migrated_to_3_keeping_everything(tmp_path):
    path = tmp_path / "s.sqlite"
    old = Session(owner="alice", liked=["heat-1995"])
    data = {k: v for k, v in old.to_dict().items() if k not in ("version", "use_profile")}  # a schema-2 row
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE sessions (id TEXT PRIMARY KEY, updated REAL, data TEXT NOT NULL, "
                   "version INTEGER NOT NULL DEFAULT 0, owner TEXT)")
        db.execute("INSERT INTO sessions VALUES (?, 1.0, ?, 4, 'alice')", (old.id, json.dumps(data)))
        db.execute("PRAGMA user_version = 2")
    store = SessionStore(path)
    loaded = store.load(old.id)
    assert (loaded.version, loaded.liked, loaded.owner, loaded.use_profile) == (4, ["heat-1995"], "alice", True)
    assert store.owned("alice") == [old.id] and store.load_profile("alice") is None
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 3
        assert db.execute("SELECT count(*) FROM profiles").fetchone()[0] == 0
    before = path.read_bytes()
    SessionStore(path).load(old.id)
    assert path.read_bytes() == before  # a current file that is only read is not rewritten


def test_the_profile_switch_round_trips_and_merges(store):
    s = store.save(Session(use_profile=False))
    assert store.load(s.id).use_profile is False
    base = store.load(s.id)
    mine, theirs = base.copy(), _turn(base, "a western", ["a"])
    store.save(theirs, base=base)
    mine.use_profile = True
    assert store.save(mine, base=base).use_profile is True  # merged onto the other writer's row


def test_profiles_are_stored_per_owner_and_deleting_a_session_takes_its_evidence(store):
    a1, a2 = store.save(_liked("alice", "Heat", "heat-1995")), store.save(_liked("alice", "Alien", "alien-1979"))
    local = store.save(_liked(None, "Ronin", "ronin-1998"))
    for s, title in ((a1, "Heat"), (a2, "Alien"), (local, "Ronin")):
        _profile_of(store, s, title)
    assert {e.value for e in store.load_profile("alice").entries} == {"heat-1995", "alien-1979"}
    assert store.load_profile(None).owner == "local" and store.load_profile("local").entries[0].label == "Ronin"
    assert store.load_profile("bob") is None
    assert [s.id for s in store.sessions_of(None)] == [local.id] and len(store.sessions_of("alice")) == 2
    assert store.delete(a1.id, owner="alice")
    assert [e.value for e in store.load_profile("alice").entries] == ["alien-1979"]
    assert store.delete_profile("alice") == (True, 0) and store.load_profile("alice") is None
    assert store.owned("alice") == [a2.id]  # sessions stay unless asked


def test_an_unreadable_profile_is_an_error_and_does_not_block_deleting_a_session(tmp_path, caplog):
    store = SessionStore(tmp_path / "s.sqlite")
    s = store.save(Session(owner="alice"))
    with sqlite3.connect(store.path) as db:
        db.execute("INSERT INTO profiles VALUES ('alice', '{\"format\": 99, \"owner\": \"alice\"}', 1.0)")
    with pytest.raises(StoreError, match="cannot be read"):
        store.load_profile("alice")
    assert store.delete(s.id) and "cannot be read" in caplog.text


def test_forget_leaves_no_trace_of_the_owner_in_the_file(tmp_path):
    path = tmp_path / "sessions.sqlite"
    store = SessionStore(path)
    secret, kept = "Quixotic Zebra Picnic", "Velvet Harbour Mystery"
    mine = [store.save(_liked("alice", secret, "qzp-2001")) for _ in range(3)]
    for s in mine:
        store.save(_turn(s, f"more like {secret}", ["qzp-2001"]), base=s)  # old versions of the rows, rewritten
        _profile_of(store, s, secret)
    theirs = store.save(_liked("bob", kept, "vhm-1999"))
    _profile_of(store, theirs, kept)
    terminal = store.save(_liked(None, kept, "vhm-1999"))

    def file_bytes() -> bytes:
        return b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("sessions.sqlite"))

    assert secret.encode() in file_bytes()  # the check below can see the text when it is there
    assert store.forget("alice") == (True, 3)
    assert secret.encode() not in file_bytes() and kept.encode() in file_bytes()
    with sqlite3.connect(path) as db:  # the raw file: no row of alice's anywhere
        assert db.execute("SELECT count(*) FROM sessions WHERE owner = 'alice'").fetchone()[0] == 0
        assert db.execute("SELECT count(*) FROM profiles WHERE owner = 'alice'").fetchone()[0] == 0
    assert store.load_profile("bob") and store.load(theirs.id) and store.load(terminal.id)
    assert store.forget(None) == (False, 1) and store.load_profile("bob")  # the terminal's user: its sessions


# ---- choosing the backend ---------------------------------------------------------------------------


def test_open_store_is_sqlite_in_the_data_dir_without_a_url(tmp_path):
    store = open_store(load_config(None, [f"data_dir={tmp_path}"]))
    assert isinstance(store, SessionStore) and store.path == tmp_path / "sessions.sqlite"


def test_a_postgresql_url_without_psycopg_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "psycopg", None)  # import psycopg now raises ImportError
    monkeypatch.delitem(sys.modules, "chatrec.store_postgres", raising=False)
    cfg = load_config(None, [f"data_dir={tmp_path}", "store_url=postgresql://chatrec:pw@db.example/chatrec"])
    with pytest.raises(StoreError, match=r'pip install "chatrec\[postgres\]"') as e:
        open_store(cfg)
    assert "pw" not in str(e.value)
