"""The PostgreSQL store against a real server (tests/postgres_server.py): what replicas sharing it rely on.

The behaviour both backends share (merge of two writers, conflicts, owners, profiles) runs on both in
tests/test_store.py; this file holds what only a shared server tests: threads and replicas at once, the
schema table, VACUUM after forget, and connection errors that must not show the password.
"""

from __future__ import annotations

import json
import threading
import time

import pytest

pytest.importorskip("psycopg")

from chatrec.catalog import Catalog, Item  # noqa: E402
from chatrec.config import load_config  # noqa: E402
from chatrec.session import Session, TurnRecord  # noqa: E402
from chatrec.store import StoreError, open_store  # noqa: E402
from chatrec.store_postgres import SCHEMA_VERSION, PostgresStore, redact  # noqa: E402


@pytest.fixture
def url(postgres_server) -> str:
    return postgres_server.create_database()


@pytest.fixture
def store(url):
    s = PostgresStore(url)
    yield s
    s.close()


def _sql(url: str, query: str, *args):
    """Rows of ``query`` run as chatrec's role, outside the store (what is really in the tables)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as db:
        cur = db.execute(query, args)
        return cur.fetchall() if cur.description else None


def _answered(session: Session, text: str, items: list[str]) -> Session:
    new = session.copy()
    new.turns += [TurnRecord("user", text), TurnRecord("assistant", "Recommended", items=items)]
    return new


def test_a_session_round_trips_with_everything_it_holds(store):
    s = _answered(Session(owner="alice", use_profile=False, year_min=1980), "a heist film", ["heat-1995"])
    s.like("heat-1995")
    s.reject("ronin-1998")
    saved = store.save(s)
    loaded = store.load(saved.id)
    assert loaded.to_dict() == saved.to_dict() and loaded.version == s.version == 1
    assert store.latest().id == saved.id and store.owned("alice") == [saved.id]
    assert [sid for sid, _ in store.list()] == [saved.id] and isinstance(store.list()[0][1], float)
    assert [x.id for x in store.sessions_of("alice")] == [saved.id] and store.sessions_of(None) == []
    with pytest.raises(KeyError):
        store.load("no-such-id")


def test_list_without_a_bound_and_newest_first(store):
    ids = [store.save(Session()).id for _ in range(25)]
    assert [sid for sid, _ in store.list(limit=-1)] == ids[::-1]  # collaborative reads all with limit=-1
    assert len(store.list()) == 20


def test_open_store_picks_postgresql_for_a_url(url, postgres_server, tmp_path):
    store = open_store(load_config(None, [f"data_dir={tmp_path}", f"store_url={url}"]))
    try:
        assert isinstance(store, PostgresStore) and store.path == redact(url)
        assert postgres_server.password not in store.path  # what the CLI prints as where the sessions are
        assert not (tmp_path / "sessions.sqlite").exists()
    finally:
        store.close()


def test_two_threads_saving_one_session_at_once_lose_nothing(store):
    sid = store.save(Session(owner="alice")).id
    n, errors = 15, []
    go = threading.Barrier(2)

    def writer(name: str) -> None:
        try:
            go.wait(10)
            for i in range(n):
                base = store.load(sid)
                new = _answered(base, f"{name} {i}", [f"{name}-{i}"])
                new.like(f"{name}-{i}")
                store.save(new, base=base)  # merged onto the other thread's save when it came in between
        except Exception as e:  # noqa: BLE001 - reported by the assertion below
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(name,)) for name in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    final = store.load(sid)
    said = [t.text for t in final.turns if t.role == "user"]
    assert sorted(said) == sorted(f"{x} {i}" for x in "ab" for i in range(n))
    assert [x for x in said if x.startswith("a")] == [f"a {i}" for i in range(n)]  # each writer's order kept
    assert sorted(final.liked) == sorted(f"{x}-{i}" for x in "ab" for i in range(n))
    assert final.version == 1 + 2 * n


def test_two_writers_of_a_session_not_yet_stored_merge_too(store):
    """A new session has no row to lock yet: the advisory lock on its id makes the second writer merge."""
    bases = [Session(owner="alice") for _ in range(12)]
    go, errors = threading.Barrier(2), []

    def writer(name: str) -> None:
        try:
            for base in bases:
                go.wait(10)
                store.save(_answered(base, name, [name]), base=base)
        except Exception as e:  # noqa: BLE001 - reported by the assertion below
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(name,)) for name in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    for base in bases:
        assert sorted(t.text for t in store.load(base.id).turns if t.role == "user") == ["a", "b"]


def test_two_replicas_updating_one_new_profile_at_once_lose_nothing(url):
    """The first update of a profile has no row to lock: the advisory lock serialises it all the same."""
    stores = [PostgresStore(url), PostgresStore(url)]  # as two replicas: no connection shared
    owners = [f"owner-{i}" for i in range(12)]
    catalog = Catalog([Item("film-0", "Film 0"), Item("film-1", "Film 1")])
    go, errors = threading.Barrier(2), []

    def like(store: PostgresStore, item_id: str) -> None:
        try:
            for owner in owners:  # both replicas write each fresh owner's first profile at the same moment
                s = Session(owner=owner)
                s.like(item_id)
                go.wait(10)
                store.update_profile(owner, lambda p, s=s: p.updated_with(s, time.time(), 90.0, catalog))
        except Exception as e:  # noqa: BLE001 - reported by the assertion below
            errors.append(e)

    threads = [threading.Thread(target=like, args=(s, f"film-{k}")) for k, s in enumerate(stores)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    for owner in owners:
        assert {e.value for e in stores[0].load_profile(owner).entries} == {"film-0", "film-1"}, owner
    for s in stores:
        s.close()


def test_replicas_opening_a_fresh_database_together_create_the_schema_once(url):
    opened, errors = [], []

    def open_one() -> None:
        try:
            opened.append(PostgresStore(url))
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == [] and len(opened) == 4
    assert _sql(url, "SELECT version FROM chatrec_schema") == [(SCHEMA_VERSION,)]
    for s in opened:
        s.close()


def test_a_database_from_a_newer_chatrec_is_refused_not_rewritten(url):
    PostgresStore(url).close()
    _sql(url, "UPDATE chatrec_schema SET version = 99")
    with pytest.raises(StoreError, match="newer chatrec") as e:
        PostgresStore(url)
    assert "store schema 99" in str(e.value) and "\n" not in str(e.value)
    assert _sql(url, "SELECT version FROM chatrec_schema") == [(99,)]


def test_an_unreadable_row_is_skipped_with_a_warning(store, url, caplog):
    good = store.save(_answered(Session(), "good", ["a"]))
    _sql(url, "INSERT INTO chatrec_sessions (id, updated, data) VALUES ('newer', 9e12, %s), ('broken', 9e12, '{not')",
         json.dumps({**good.to_dict(), "id": "newer", "mood_vector": [1, 2]}))
    assert store.latest().id == good.id and "skipped unreadable session" in caplog.text
    with pytest.raises(StoreError, match="cannot be read"):
        store.load("newer")
    _sql(url, "INSERT INTO chatrec_profiles VALUES ('alice', '{\"format\": 99}', 1.0)")
    with pytest.raises(StoreError, match="cannot be read"):
        store.load_profile("alice")


def test_forget_leaves_no_row_of_the_owner_and_vacuums(store, url):
    secret, kept = "Quixotic Zebra Picnic", "Velvet Harbour Mystery"
    catalog = Catalog([Item("qzp-2001", secret), Item("vhm-1999", kept)])

    def liked(owner: str | None, title: str, item_id: str) -> Session:
        s = _answered(Session(owner=owner), f"I loved {title}", [item_id])
        s.like(item_id)
        s = store.save(s)
        store.update_profile(owner, lambda p: p.updated_with(s, time.time(), 90.0, catalog))
        return s

    mine = [liked("alice", secret, "qzp-2001") for _ in range(3)]
    store.save(_answered(mine[0], f"more like {secret}", ["qzp-2001"]), base=mine[0])  # an old version, rewritten
    theirs = liked("bob", kept, "vhm-1999")
    terminal = liked(None, kept, "vhm-1999")

    def rows_with(text: str) -> int:
        pattern = f"%{text}%"
        return (_sql(url, "SELECT count(*) FROM chatrec_sessions WHERE data LIKE %s", pattern)[0][0]
                + _sql(url, "SELECT count(*) FROM chatrec_profiles WHERE json LIKE %s", pattern)[0][0])

    assert rows_with(secret) == 4  # the query below sees the text when it is there (3 sessions, 1 profile)
    assert store.forget("alice") == (True, 3)
    assert rows_with(secret) == 0 and rows_with(kept) > 0
    assert _sql(url, "SELECT count(*) FROM chatrec_sessions WHERE owner = 'alice'") == [(0,)]
    assert _sql(url, "SELECT count(*) FROM chatrec_profiles WHERE owner = 'alice'") == [(0,)]
    vacuumed = _sql(url, "SELECT relname FROM pg_stat_user_tables WHERE last_vacuum IS NOT NULL ORDER BY relname")
    assert vacuumed == [("chatrec_profiles",), ("chatrec_sessions",)]
    assert store.load_profile("bob") and store.load(theirs.id) and store.load(terminal.id)
    assert store.forget(None) == (True, 1) and store.load_profile("bob")


def test_connections_kept_for_reuse_survive_a_server_closing_them(store, postgres_server, url):
    s = store.save(Session())
    database = url.rsplit("/", 1)[1]
    with postgres_server.admin() as admin:  # as a database restart does to every open connection
        killed = admin.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                               "WHERE datname = %s AND pid <> pg_backend_pid()", (database,)).fetchone()[0]
    assert killed >= 1
    assert store.load(s.id).id == s.id  # the dead idle connection is noticed and replaced, not reported


@pytest.mark.parametrize("case", ["wrong password", "missing database", "nothing listening", "malformed url"])
def test_connection_errors_are_one_line_without_the_password(postgres_server, case):
    wrong = "Sup3rSecretPw"
    bad, password = {
        "wrong password": (postgres_server.url("postgres", password=wrong), wrong),
        "missing database": (postgres_server.url("no_such_db"), postgres_server.password),
        "nothing listening": (postgres_server.url("postgres", port=_closed_port()), postgres_server.password),
        "malformed url": (f"postgresql://chatrec:{wrong}@[::1/db", wrong),
    }[case]
    with pytest.raises(StoreError) as e:
        PostgresStore(bad)
    message = str(e.value)
    assert password not in message and "\n" not in message
    assert redact(bad) in message and redact(bad).startswith("postgresql://chatrec@")
    assert {"wrong password": "password authentication failed", "missing database": "does not exist",
            "nothing listening": "refused", "malformed url": "cannot read the store_url"}[case] in message


def test_redact_drops_the_password_wherever_the_url_has_it():
    assert redact("postgresql://u:p@ss@h:5432/db") == "postgresql://u@h:5432/db"
    assert redact("postgres://u@h/db?password=p&sslmode=require") == "postgres://u@h/db?sslmode=require"
    assert redact("postgresql://u:p@h1:1,h2:2/db") == "postgresql://u@h1:1,h2:2/db"
    assert redact("postgresql:///db?host=/run/postgresql") == "postgresql:///db?host=/run/postgresql"


def _closed_port() -> int:
    import socket

    with socket.socket() as s:  # a free port nobody listens on: a connection to it is refused
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
