"""Bad inputs, table-driven: each gets one line naming what was wrong, and nothing is lost.

Every case runs through the surface a person uses (the ``chatrec`` command line, the UI's handlers,
or the loader a library user calls) and checks three things: the message is one line that names
the problem, there is no traceback, and the session store and the catalog files are byte-identical
afterwards. The recommender is retrieval-only here (no LLM) so the table stays fast; the LLM path
shares every check these cases reach (input, media, store, catalog), which all run before ranking.
"""

from __future__ import annotations

import hashlib
import json
import math
import sqlite3
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from chatrec.config import load_config
from chatrec.recommender import Recommender
from chatrec.session import Session, TurnRecord
from chatrec.store import SessionStore
from chatrec.ui import cli

FILMS = Path(__file__).resolve().parents[1] / "chatrec" / "data" / "demo_films.jsonl"
GOOD = {"id": "f1", "title": "Alien", "description": "Space horror.", "attributes": {"year": 1979, "genres": ["Horror"]}}


# ---- the world each case runs in ---------------------------------------------------------------


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A data dir with one saved session (with a list), a retrieval-only recommender, and a files folder."""
    root = tmp_path_factory.mktemp("bad-inputs")
    data = root / "data"
    cfg = load_config(None, [f"data_dir={data}", "ranking.use_llm=false", "generation.reasons=false"])
    rec = Recommender.from_config(cfg, load_llm_model=False, progress=False)
    session = rec.respond(Session(), "a space adventure").session
    return {"root": root, "data": data, "rec": rec, "sid": session.id, "files": _files(root / "files")}


def _png(path: Path, w: int = 8, h: int = 8) -> Path:
    """A PNG whose header says w x h (pixel data is tiny: the header is what the checks read)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    raw = zlib.compress(b"".join(b"\0" + b"\0" * 3 * min(w, 8) for _ in range(min(h, 8))))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", raw) + chunk(b"IEND", b""))
    return path


def _wav(path: Path, seconds: float, kind: str = "tone", rate: int = 16000) -> Path:
    t = np.arange(int(seconds * rate)) / rate
    if kind == "silence":
        x = np.zeros_like(t)
    elif kind == "clipped":
        x = np.sign(np.sin(2 * math.pi * 220 * t))
    else:
        x = 0.3 * np.sin(2 * math.pi * 440 * t)
    sf.write(path, x.astype(np.float32), rate)
    return path


def _files(d: Path) -> dict[str, Path]:
    d.mkdir()
    f = {
        "text.png": d / "text.png", "empty.png": d / "empty.png", "huge.png": _png(d / "huge.png", 20_000, 20_000),
        "truncated.png": d / "truncated.png", "text.wav": d / "text.wav", "empty.wav": d / "empty.wav",
        "silence.wav": _wav(d / "silence.wav", 2, "silence"), "clipped.wav": _wav(d / "clipped.wav", 2, "clipped"),
        "long.wav": _wav(d / "long.wav", 61), "tone.wav": _wav(d / "tone.wav", 3), "folder": d / "folder",
    }
    f["text.png"].write_text("this is not a picture")
    f["empty.png"].write_bytes(b"")
    f["truncated.png"].write_bytes(_png(d / "ok.png").read_bytes()[:30])
    f["text.wav"].write_text("this is not audio")
    f["empty.wav"].write_bytes(b"")
    f["folder"].mkdir()
    return f


def _snapshot(*paths: Path) -> dict[str, str]:
    """sha256 of every file under ``paths``: the store, the catalogs, the adapters a case touched."""
    out = {}
    for p in paths:
        for f in sorted([p] if p.is_file() else p.rglob("*") if p.exists() else []):
            if f.is_file():
                out[str(f)] = hashlib.sha256(f.read_bytes()).hexdigest()
    return out


# ---- the table ---------------------------------------------------------------------------------

CATALOG_ROWS = [  # (case, rows written to a .jsonl catalog, words the message must contain)
    ("image outside the folder", [{**GOOD, "image": "../../../../etc/passwd"}], "outside the catalog folder"),
    ("absolute image path", [{**GOOD, "image": "/etc/passwd"}], "outside the catalog folder"),
    ("audio outside the folder", [{**GOOD, "audio": "../secret.wav"}], "outside the catalog folder"),
    ("description of 50 kB", [{**GOOD, "description": "x" * 50_000}], "5,000"),
    ("row over 100 kB", [{**GOOD, "attributes": {"keywords": ["k" * 400] * 300}}], "100,000 bytes"),
    ("title of 1,000 characters", [{**GOOD, "title": "T" * 1000}], "title"),
    ("300 attribute values", [{**GOOD, "attributes": {"keywords": [f"k{i}" for i in range(300)]}}], "200"),
    ("missing id", [{"title": "Alien"}], "'id'"),
    ("empty title", [{**GOOD, "title": "  "}], "'title'"),
    ("duplicate id", [GOOD, GOOD], "duplicate id"),
    ("unknown field", [{**GOOD, "rating": 5}], "unknown field"),
    ("year as text", [{**GOOD, "attributes": {"year": "nineteen"}}], "year"),
    ("nested attribute", [{**GOOD, "attributes": {"cast": [{"name": "x"}]}}], "attributes.cast"),
    ("row that is a list", [[1, 2]], "expected an object"),
    ("NUL in a title", [{**GOOD, "title": "Ali\u0000en"}], "NUL"),
]
CATALOG_FILES = [  # (case, file name, bytes, words)
    ("not UTF-8 on line 2", "latin.jsonl", (json.dumps(GOOD) + "\n").encode() + b'{"id": "f2", "title": "Am\xe9lie"}\n', ":2:"),
    ("invalid JSON", "broken.jsonl", b'{"id": "f1", "title": \n', "invalid JSON"),
    ("a 5,000-digit number", "bignum.jsonl", b'{"id": "f1", "title": "A", "attributes": {"n": ' + b"9" * 5000 + b"}}\n", "digits"),
    ("NaN", "nan.jsonl", b'{"id": "f1", "title": "A", "attributes": {"n": NaN}}\n', "invalid JSON"),
    ("nesting 20,000 deep", "deep.jsonl", b'{"id": "f1", "title": "A", "attributes": {"n": ' + b"[" * 20000 + b"]" * 20000 + b"}}\n", "nested"),
    ("empty file", "empty.jsonl", b"", "no items"),
    ("CSV without id column", "noid.csv", b"title,year\nAlien,1979\n", "'id'"),
    ("CSV with extra cells", "extra.csv", b"id,title\nf1,Alien,1979\n", "more cells"),
    ("CSV cell of 200 kB", "bigcell.csv", b"id,title,description\nf1,Alien," + b"x" * 200_000 + b"\n", "100,000 bytes"),
    ("CSV with a NUL byte", "nul.csv", b"id,title\nf1,Ali\0en\n", "NUL"),
    ("unsupported format", "films.xlsx", b"PK\x03\x04", "unsupported catalog format"),
    ("bad schema sidecar", "withschema.jsonl", (json.dumps(GOOD) + "\n").encode(), "schema"),
]
CONFIGS = [  # (case, extra argv, words)
    ("unknown config key", ["--set", "ranking.topk=3"], "unknown config key"),
    ("a number that is text", ["--set", "ranking.top_k=many"], "top_k"),
    ("a zero limit", ["--set", "catalog_limits.max_row_bytes=0"], "positive integer"),
    ("an override without '='", ["--set", "ranking.top_k"], "section.key=value"),
    ("a missing config file", ["--config", "/nonexistent/chatrec.toml"], "chatrec.toml"),
    ("too many candidates", ["--set", "retrieval.n_candidates=40"], "n_candidates"),
    ("a missing catalog", ["--catalog", "/nonexistent/films.jsonl"], "not found"),
    ("a catalog that is a folder", ["--catalog", "{files}/folder"], "folder"),
]
REQUESTS = [  # (case, recommend argv after the text, text, words)
    ("empty message", [], "", "empty message"),
    ("only spaces", [], "   ", "empty message"),
    ("5,000 characters", [], "a" * 5000, "too long"),
    ("unknown session", ["--session", "0123456789abcdef"], "more like that", "no saved session"),
    ("image that is a text file", ["--image", "{files}/text.png"], "like this", "text.png"),
    ("empty image", ["--image", "{files}/empty.png"], "like this", "empty"),
    ("image of 400 megapixels", ["--image", "{files}/huge.png"], "like this", "too large"),
    ("truncated image", ["--image", "{files}/truncated.png"], "like this", "truncated.png"),
    ("missing image", ["--image", "{files}/nowhere.png"], "like this", "not found"),
    ("image that is a folder", ["--image", "{files}/folder"], "like this", "not a file"),
    ("audio that is a text file", ["--audio", "{files}/text.wav"], "", "text.wav"),
    ("empty audio", ["--audio", "{files}/empty.wav"], "", "empty"),
    ("silent audio", ["--audio", "{files}/silence.wav"], "", "silent"),
    ("clipped audio", ["--audio", "{files}/clipped.wav"], "", "clipped"),
    ("61 s of audio", ["--audio", "{files}/long.wav"], "", "too long"),
    ("a tone, no speech", ["--audio", "{files}/tone.wav"], "", "no speech"),
    ("missing audio", ["--audio", "{files}/nowhere.wav"], "", "not found"),
]


@dataclass
class Outcome:
    rc: int
    stderr: str
    stdout: str = ""


def _run_cli(world, argv: list[str], capsys, monkeypatch) -> Outcome:
    """``chatrec`` as a user runs it, with the module's recommender standing in for the model load."""
    shared: Recommender = world["rec"]
    real = Recommender.from_config

    def from_config(cfg, **kw):
        if cfg.catalog or cfg.home() != world["data"]:  # anything but the shared world loads for real
            return real(cfg, **{**kw, "load_llm_model": False})
        return shared

    monkeypatch.setattr(Recommender, "from_config", staticmethod(from_config))
    capsys.readouterr()
    rc = cli.main([a.replace("{files}", str(world["root"] / "files")) for a in argv])
    captured = capsys.readouterr()
    return Outcome(rc, captured.err, captured.out)


def _assert_one_line(out: Outcome, words: str) -> None:
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert out.rc == 2, out
    assert len(lines) == 1 and lines[0].startswith("chatrec: error: "), out.stderr
    assert words.lower() in lines[0].lower(), lines[0]
    assert "Traceback" not in out.stderr


def _common(world) -> list[str]:
    return ["--data-dir", str(world["data"]), "--set", "ranking.use_llm=false", "generation.reasons=false"]


@pytest.mark.parametrize("case, rows, words", CATALOG_ROWS, ids=[c[0] for c in CATALOG_ROWS])
def test_bad_catalog_rows(world, tmp_path, capsys, monkeypatch, case, rows, words):
    path = tmp_path / "cat" / "films.jsonl"
    path.parent.mkdir()
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    before = _snapshot(world["data"], path.parent)
    out = _run_cli(world, ["index", "--catalog", str(path), *_common(world)], capsys, monkeypatch)
    _assert_one_line(out, words)
    assert f"{path.name}:" in out.stderr  # names the file (and line)
    assert _snapshot(world["data"], path.parent) == before


@pytest.mark.parametrize("case, name, content, words", CATALOG_FILES, ids=[c[0] for c in CATALOG_FILES])
def test_bad_catalog_files(world, tmp_path, capsys, monkeypatch, case, name, content, words):
    path = tmp_path / name
    path.write_bytes(content)
    if name == "withschema.jsonl":
        (tmp_path / "withschema.schema.json").write_text('{"item_noun": 3}')
    before = _snapshot(world["data"], tmp_path)
    out = _run_cli(world, ["index", "--catalog", str(path), *_common(world)], capsys, monkeypatch)
    _assert_one_line(out, words)
    assert _snapshot(world["data"], tmp_path) == before


@pytest.mark.parametrize("case, argv, words", CONFIGS, ids=[c[0] for c in CONFIGS])
def test_bad_settings(world, capsys, monkeypatch, case, argv, words):
    before = _snapshot(world["data"], FILMS)
    out = _run_cli(world, ["recommend", "a heist film", *_common(world), *argv], capsys, monkeypatch)
    _assert_one_line(out, words)
    assert _snapshot(world["data"], FILMS) == before


@pytest.mark.parametrize("case, argv, text, words", REQUESTS, ids=[c[0] for c in REQUESTS])
def test_bad_requests(world, capsys, monkeypatch, case, argv, text, words):
    before = _snapshot(world["data"], FILMS, world["root"] / "files")
    session = [] if "--session" in argv else ["--session", world["sid"]]
    out = _run_cli(world, ["recommend", text, *_common(world), *session, *argv], capsys, monkeypatch)
    _assert_one_line(out, words)
    assert str(world["root"]) not in out.stderr  # files named by their base name, not server folders
    assert _snapshot(world["data"], FILMS, world["root"] / "files") == before


# ---- store and session files -------------------------------------------------------------------

def _store_newer(d: Path) -> None:
    with sqlite3.connect(d / "sessions.sqlite") as db:
        db.execute("PRAGMA user_version = 99")


def _store_bad_row(d: Path) -> None:
    SessionStore(d / "sessions.sqlite")
    with sqlite3.connect(d / "sessions.sqlite") as db:
        db.execute("INSERT INTO sessions (id, updated, data) VALUES ('abc', 1, '{\"future_field\": 1}')")


def _store_is_folder(d: Path) -> None:
    (d / "sessions.sqlite").mkdir()


STORES = [  # (case, how the data dir is damaged, argv, words)
    ("store from a newer chatrec", _store_newer, ["recommend", "x"], "newer chatrec"),
    ("unreadable session row", _store_bad_row, ["recommend", "x", "--session", "abc"], "cannot be read"),
    ("store path is a folder", _store_is_folder, ["recommend", "x"], "session database"),
    ("resume an unknown session", lambda d: SessionStore(d / "sessions.sqlite").save(Session()), ["chat", "--session", "nope"],
     "no saved session"),
]


@pytest.mark.parametrize("case, damage, argv, words", STORES, ids=[c[0] for c in STORES])
def test_bad_stores(world, tmp_path, capsys, monkeypatch, case, damage, argv, words):
    data = tmp_path / "data"
    data.mkdir()
    damage(data)
    before = _snapshot(data)
    out = _run_cli(world, [*argv, "--data-dir", str(data), "--set", "ranking.use_llm=false",
                           "generation.reasons=false"], capsys, monkeypatch)
    _assert_one_line(out, words)
    assert _snapshot(data) == before


def test_a_damaged_store_is_moved_aside_and_the_command_goes_on(world, tmp_path, capsys, monkeypatch):
    data = tmp_path / "data"
    data.mkdir()
    (data / "sessions.sqlite").write_bytes(b"garbage" * 1000)
    out = _run_cli(world, ["recommend", "", "--data-dir", str(data)], capsys, monkeypatch)
    assert "was damaged" in out.stderr and "sessions.sqlite.corrupt-" in out.stderr  # said clearly
    assert (data / "sessions.sqlite").exists() and len(list(data.glob("sessions.sqlite.corrupt-*"))) == 1
    assert out.stderr.strip().splitlines()[-1].startswith("chatrec: error: empty message")  # and went on


# ---- adapters ----------------------------------------------------------------------------------

def _bundle(d: Path, manifest: dict | str | None, files: dict[str, bytes] | None = None) -> Path:
    from chatrec.prompting import templates_hash

    d.mkdir()
    if manifest is not None:
        body = manifest if isinstance(manifest, str) else json.dumps(
            {"base_model": "tiny", "prompts_sha256": templates_hash(), "lora": True, **manifest})
        (d / "manifest.json").write_text(body)
    for name, data in (files or {}).items():
        (d / name).write_bytes(data)
    return d


ADAPTERS = [  # (case, manifest, files, words)
    ("not a bundle", None, {}, "no manifest.json"),
    ("manifest not JSON", "{oops", {}, "unreadable manifest"),
    ("other base model", {"base_model": "llama"}, {}, "trained for base model"),
    ("other prompts", {"prompts_sha256": "0" * 64}, {}, "other prompt templates"),
    ("pickled weights only", {}, {"adapter_model.bin": b"\x80\x04pickle", "adapter_config.json": b"{}"}, "refused"),
    ("corrupt projectors", {"lora": False, "projectors": {"audio": {"kind": "linear", "d_in": 4, "d_out": 4}}},
     {"projectors.safetensors": b"not safetensors"}, "projector weights"),
]


@pytest.mark.parametrize("case, manifest, files, words", ADAPTERS, ids=[c[0] for c in ADAPTERS])
def test_bad_adapters(tmp_path, case, manifest, files, words):
    from chatrec.adapter import AdapterError, load_adapter

    path = _bundle(tmp_path / "bundle", manifest, files)
    before = _snapshot(path)
    with pytest.raises(AdapterError) as e:
        load_adapter(object(), "tiny", str(path))
    message = cli.one_line(e.value)
    assert message == str(e.value) and words in message, message
    assert _snapshot(path) == before


def test_a_missing_adapter_name(tmp_path):
    from chatrec.adapter import AdapterError, load_adapter

    with pytest.raises(AdapterError, match="not found"):
        load_adapter(object(), "tiny", "no-such-adapter")


# ---- the web UI (its handlers, as Gradio calls them) -------------------------------------------

def _ui(world):
    from chatrec.ui.gradio_app import ChatUI

    return ChatUI(world["rec"])


UI = [  # (case, handler call, words)
    ("empty message", lambda ui, w: ui.send(w["sid"], [], ""), "empty message"),
    ("too long", lambda ui, w: ui.send(w["sid"], [], "b" * 4500), "too long"),
    ("image that is text", lambda ui, w: ui.send(w["sid"], [], "x", str(w["files"]["text.png"])), "text.png"),
    ("huge image", lambda ui, w: ui.send(w["sid"], [], "x", str(w["files"]["huge.png"])), "too large"),
    ("silent audio", lambda ui, w: ui.send(w["sid"], [], "", None, str(w["files"]["silence.wav"])), "silent"),
    ("long audio", lambda ui, w: ui.send(w["sid"], [], "", None, str(w["files"]["long.wav"])), "too long"),
    ("like #9 of five", lambda ui, w: ui.act("like", 9, w["sid"], []), "1 to 5"),
    ("dislike without a list", lambda ui, w: ui.act("dislike", 1, None, []), "no list yet"),
    ("another browser's session", lambda ui, w: [ui.resume(w["sid"], "s" * 43)], "no saved session"),
    ("a forged session id", lambda ui, w: ui.send("../../etc/passwd", [], "x"), "no saved session"),
]


@pytest.mark.parametrize("case, call, words", UI, ids=[c[0] for c in UI])
def test_bad_ui_events(world, case, call, words):
    ui = _ui(world)
    before = _snapshot(world["data"], FILMS, world["root"] / "files")
    views = list(call(ui, world))
    status = views[-1].status
    assert status.startswith("⚠️") and "\n" not in status and words.lower() in status.lower(), status
    assert str(world["root"]) not in status and "Traceback" not in status
    assert _snapshot(world["data"], FILMS, world["root"] / "files") == before


def test_resuming_a_session_that_is_not_there_keeps_the_page_working(world):
    ui = _ui(world)
    view = ui.resume("'; DROP TABLE sessions; --")
    assert view.sid is None and "no saved session" in view.status
    assert world["rec"].store.load(world["sid"]).turns  # still there


# ---- terminal display --------------------------------------------------------------------------

@pytest.mark.parametrize("text", ["[/]", "[/bold] closes nothing", "[link=file:///etc/passwd]x[/link]",
                                  "\x1b[2J\x1b[31mred\x1b[0m", "\x1b]0;title\x07bell", "tab\there\x00nul"])
def test_stored_text_is_shown_as_text_in_the_terminal(text):
    from rich.console import Console

    console = Console(record=True, width=200, force_terminal=False)
    console.print(f"[dim]user: {cli.shown(text)}[/dim]")  # raised MarkupError for "[/]" before
    out = console.export_text()
    assert "\x1b" not in out and "\x00" not in out and "\x07" not in out
    if text.startswith("["):
        assert text in out


def test_a_session_with_markup_in_it_can_be_resumed_in_the_terminal(world, tmp_path, monkeypatch, capsys):
    data = tmp_path / "data"
    store = SessionStore(data / "sessions.sqlite")
    s = Session()
    s.turns += [TurnRecord("user", "[/bold] \x1b[31mspace[/]"), TurnRecord("assistant", "Recommended: [/]", items=[])]
    store.save(s)
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO(""))  # the user ends the chat at once
    out = _run_cli(world, ["chat", "--session", s.id, "--data-dir", str(data), "--set", "ranking.use_llm=false",
                           "generation.reasons=false"], capsys, monkeypatch)
    assert out.rc == 0, out.stderr


def test_an_unclosed_quote_in_a_command_is_one_line(world, tmp_path, monkeypatch, capsys):
    data = tmp_path / "data"
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO('/image "my file.png\n'))
    out = _run_cli(world, ["chat", "--new", "--data-dir", str(data), "--set", "ranking.use_llm=false",
                           "generation.reasons=false"], capsys, monkeypatch)
    assert out.rc == 0


@pytest.mark.parametrize("command", ["ui", "serve"])
def test_the_servers_report_bad_settings_in_one_line(command, capsys):
    rc = cli.main([command, "--set", "ranking.topk=3"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("chatrec: error: unknown config key"), err


def test_saving_a_session_another_process_changed_is_one_line_and_the_chat_goes_on(world, tmp_path, monkeypatch,
                                                                                  capsys):
    import io

    data = tmp_path / "data"
    store = SessionStore(data / "sessions.sqlite")
    sid = store.save(Session()).id

    class Elsewhere(io.StringIO):
        """stdin whose first line arrives after another process saved the same session."""

        def readline(self, *a):
            if self.tell() == 0:
                other = store.load(sid)
                other.turns.append(TurnRecord("user", "said in another window"))
                store.save(other)
            return super().readline(*a)

    monkeypatch.setattr("sys.stdin", Elsewhere("/save\n/quit\n"))
    out = _run_cli(world, ["chat", "--session", sid, "--data-dir", str(data), "--set", "ranking.use_llm=false",
                           "generation.reasons=false"], capsys, monkeypatch)
    assert out.rc == 0 and "Traceback" not in out.stderr
    text = " ".join(out.stdout.split())  # the console wraps long lines
    assert text.count("was changed elsewhere since it was loaded") == 1, out.stdout
    assert [t.text for t in store.load(sid).turns] == ["said in another window"]  # the other window's turn kept
