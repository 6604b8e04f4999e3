"""The terminal's rendering of a turn: titles at once, checked reasons, no raw scores unless verbose."""

from __future__ import annotations

import pytest
from rich.console import Console

from chatrec.events import Answer, Done, Ranked, ReasonDone, ReasonToken, Understood
from chatrec.ranking import Recommendation
from chatrec.session import Session
from chatrec.ui.cli import main, print_events


def _events():
    recs = (Recommendation("a", "Heat [/]", 1, -19.74, None, 0.1, year=1995),
            Recommendation("b", "Ronin", 2, -21.5, None, 0.09, year=1998))
    done = [r.__class__(**{**r.__dict__, "reason": f"Why {r.title}."}) for r in recs]
    yield Understood({"transcript": "a heist film"}, ())
    yield Ranked(recs, 0.4)
    yield ReasonToken(0, "Why ")
    yield ReasonDone(0, done[0])
    yield ReasonDone(1, done[1])
    yield Done(Answer(Session(), list(done), {}, ["image not used: no CLIP weights"], {}))


def _render(verbose: bool) -> str:
    console = Console(record=True, width=120, force_terminal=False)
    answer = print_events(console, _events(), verbose)
    assert [r.title for r in answer.recommendations] == ["Heat [/]", "Ronin"]
    return console.export_text()


def test_titles_reasons_and_notes_without_scores():
    out = _render(False)
    assert "heard: a heist film" in out and "1. Heat [/]  2. Ronin" in out
    assert "Why Heat [/]." in out and "note: image not used" in out
    assert "-19.74" not in out and "-19.7" not in out


def test_verbose_shows_scores():
    assert "-19.74" in _render(True)


# ---- profiles ----------------------------------------------------------------------------------------


def _console() -> Console:
    return Console(record=True, width=200, force_terminal=False)


def test_profile_in_the_chat_show_remove_and_switch(tiny_recommender):
    from chatrec.ui.cli import profile_command

    rec = tiny_recommender
    session = rec.respond(rec.new_session(), "I loved Toy Story and Alien, no horror").session
    console = _console()
    same = profile_command(console, rec, session, [])
    out = console.export_text()
    assert same is session and "in use in this session" in out
    assert "1. You liked Alien (1979) — session" in out and "3. You asked for no horror" in out
    console = _console()
    profile_command(console, rec, session, ["remove", "1"])
    out = console.export_text()
    assert "removed line 1" in out and "Alien" not in out and "1. You liked Toy Story (1995)" in out
    console = _console()
    profile_command(console, rec, session, ["remove", "9"])
    assert "no profile line 9" in console.export_text()
    off = profile_command(_console(), rec, session, ["off"])
    assert off.use_profile is False and rec.store.load(session.id).use_profile is False
    assert rec.store.load_profile(None).entries == []  # a session switched off adds nothing
    on = profile_command(_console(), rec, off, ["on"])
    assert on.use_profile and [e.value for e in rec.store.load_profile(None).entries] == ["toy-story-1995", "Horror"]
    console = _console()
    profile_command(console, rec, on, ["wat"])
    assert "usage: /profile" in console.export_text()


def _local_profile(tmp_path):
    from chatrec.catalog import Catalog, Item
    from chatrec.session import TurnRecord
    from chatrec.store import SessionStore

    store = SessionStore(tmp_path / "sessions.sqlite")
    for owner, title in ((None, "Heat"), ("f00d" * 8, "Alien")):
        s = Session(owner=owner, turns=[TurnRecord("user", f"I loved {title}")], liked=[title.lower()])
        store.save(s)
        store.update_profile(owner, lambda p, s=s, t=title: p.updated_with(s, 1e10, 90.0, Catalog([Item(t.lower(), t)])))
    return store


def test_profile_export_and_forget_commands(tmp_path, capsys, monkeypatch):
    import json

    from chatrec.ui.cli import main

    store = _local_profile(tmp_path)
    assert main(["profile", "export", "--data-dir", str(tmp_path)]) == 0
    exported = json.loads(capsys.readouterr().out)
    assert exported["owner"] == "local" and [e["label"] for e in exported["entries"]] == ["Heat"]
    assert main(["profile", "show", "--data-dir", str(tmp_path), "--owner", "f00d" * 8]) == 0
    assert capsys.readouterr().out.startswith("1. You liked Alien — session")
    monkeypatch.setattr("builtins.input", lambda prompt: "n")
    assert main(["profile", "forget", "--data-dir", str(tmp_path)]) == 1
    assert store.load_profile(None) and store.sessions_of(None)
    monkeypatch.setattr("builtins.input", lambda prompt: pytest.fail("--yes asks nothing"))
    assert main(["profile", "forget", "--yes", "--data-dir", str(tmp_path)]) == 0
    assert "forgot local: the profile and 1 session;" in capsys.readouterr().out
    assert store.load_profile(None) is None and store.sessions_of(None) == []
    assert store.load_profile("f00d" * 8) and store.sessions_of("f00d" * 8)  # another owner's stays


def test_index_builds_the_embeddings_and_an_approximate_index_beside_the_catalog(tmp_path, capsys):
    """`chatrec index` (real MiniLM) leaves what a replica needs: the embeddings and the HNSW file, by content hash."""
    import shutil

    from conftest import FIXTURES

    catalog = tmp_path / "films.jsonl"
    shutil.copy(FIXTURES / "films_small.jsonl", catalog)
    args = ["index", "--catalog", str(catalog), "--data-dir", str(tmp_path), "--set", "retrieval.index=hnsw"]
    assert main(args) == 0
    assert "hnsw dense index" in capsys.readouterr().out
    folder = tmp_path / "films.jsonl.index"
    (emb,) = folder.glob("*.npy")
    (graph,) = folder.glob("*.hnsw-*.faiss")
    assert graph.name.startswith(emb.stem)
    stamp = graph.stat().st_mtime_ns
    assert main(args) == 0  # a second run reads the files
    assert graph.stat().st_mtime_ns == stamp
