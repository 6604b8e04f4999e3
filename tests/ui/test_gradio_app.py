"""The Gradio handlers, called directly around a retrieval-only Recommender (no LLM, no browser)."""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # app_gradio.py sits at the repo root

gr = pytest.importorskip("gradio")
from chatrec.config import load_config  # noqa: E402
from chatrec.ranking import Recommendation  # noqa: E402
from chatrec.recommender import Recommender  # noqa: E402
from chatrec.ui import gradio_app as app_gradio  # noqa: E402


@pytest.fixture(scope="module")
def ui(tmp_path_factory):
    cfg = load_config(None, [f"data_dir={tmp_path_factory.mktemp('ui')}", "ranking.use_llm=false",
                             "generation.reasons=false"])
    rec = Recommender.from_config(cfg, load_llm_model=False, progress=False)
    demo = app_gradio.build_app(rec)
    assert isinstance(demo, gr.Blocks)
    return demo.ui


def last(views):
    views = list(views)
    assert views, "a handler yielded nothing"
    return views[-1]


def test_message_yields_five_cards(ui):
    views = list(ui.send(None, [], "a funny space adventure"))
    assert views[0].clear_inputs and views[0].history[-1] == {"role": "user", "content": "a funny space adventure"}
    v = views[-1]
    assert v.sid and v.status.startswith("✅")
    assert len(v.cards) == 5 and all('class="card"' in c and 'class="reason"' in c for c in v.cards)
    session = ui.rec.store.load(v.sid)
    assert [f'data-item="{i}"' in c for i, c in zip(session.last_items, v.cards, strict=True)] == [True] * 5
    assert v.history[-1]["role"] == "assistant" and "1. **" in v.history[-1]["content"]


def test_dislike_excludes_the_item_from_the_next_list(ui):
    v = last(ui.send(None, [], "a scary horror film"))
    first = ui.rec.store.load(v.sid).item_at(1)
    v2 = last(ui.act("dislike", 1, v.sid, v.history))
    session = ui.rec.store.load(v.sid)
    assert v2.sid == v.sid and first in session.rejected
    assert first not in session.last_items and len(session.last_items) == 5
    assert not any(first in c for c in v2.cards)
    assert "Not #1" in v2.history[-2]["content"]


def test_like_and_more_like_this(ui):
    v = last(ui.send(None, [], "a western"))
    second = ui.rec.store.load(v.sid).item_at(2)
    liked = last(ui.act("like", 2, v.sid, v.history))
    assert second in ui.rec.store.load(v.sid).liked and liked.cards is None  # cards stay as they are
    more = last(ui.act("more", 1, v.sid, liked.history))
    assert len(more.cards) == 5 and "More like #1" in more.history[-2]["content"]
    bad = last(ui.act("like", 9, v.sid, more.history))
    assert "1 to 5" in bad.status and bad.history == more.history


@pytest.mark.parametrize("sid_known", [True, False])
def test_empty_message_shows_error_and_changes_nothing(ui, sid_known):
    sid, history = None, []
    if sid_known:
        v = last(ui.send(None, [], "a musical"))
        sid, history = v.sid, v.history
    before = ui.rec.store.load(sid).to_dict() if sid else None
    err = last(ui.send(sid, history, "   "))
    assert err.sid == sid and err.cards is None
    assert err.history[-1]["role"] == "assistant" and "empty message" in err.history[-1]["content"]
    assert (ui.rec.store.load(sid).to_dict() if sid else None) == before


def test_corrupt_image_shows_error_and_app_keeps_working(ui, tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    v = last(ui.send(None, [], "a comedy"))
    before = ui.rec.store.load(v.sid).to_dict()
    err = last(ui.send(v.sid, v.history, "like this poster", image=str(bad)))
    assert "not an image or corrupt" in err.history[-1]["content"]
    assert ui.rec.store.load(v.sid).to_dict() == before
    assert len(last(ui.send(v.sid, err.history, "something older")).cards) == 5


def test_two_sessions_stay_separate(ui):
    a = last(ui.send(None, [], "a romantic comedy"))
    b = last(ui.send(None, [], "a war film"))
    a2 = last(ui.send(a.sid, a.history, "from the 90s"))
    assert a.sid != b.sid and a2.sid == a.sid
    texts = {s: [t.text for t in ui.rec.store.load(s).turns if t.role == "user"] for s in (a.sid, b.sid)}
    assert texts == {a.sid: ["a romantic comedy", "from the 90s"], b.sid: ["a war film"]}


def test_two_users_at_once_in_threads(ui):
    results: dict[str, list] = {}

    def user(name: str, messages: list[str]) -> None:
        sid, history = None, []
        for m in messages:
            v = last(ui.send(sid, history, m))
            sid, history = v.sid, v.history
        results[name] = [sid, history]

    threads = [threading.Thread(target=user, args=("a", ["a space adventure", "no horror"])),
               threading.Thread(target=user, args=("b", ["a gangster film", "something older", "from the 70s"]))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    (sa, ha), (sb, hb) = results["a"], results["b"]
    assert sa != sb
    users = {s: [m["content"] for m in h if m["role"] == "user"] for s, h in ((sa, ha), (sb, hb))}
    assert users == {sa: ["a space adventure", "no horror"], sb: ["a gangster film", "something older", "from the 70s"]}
    assert len(ui.rec.store.load(sb).turns) == 6


def test_resume_reset_export_and_url_parameter(ui):
    v = last(ui.send(None, [], "an animated film for kids"))
    resumed = ui.resume(v.sid)
    assert resumed.sid == v.sid and [m["role"] for m in resumed.history] == ["user", "assistant"]
    assert ui.on_load(request=SimpleNamespace(query_params={"session": v.sid})).history == resumed.history
    assert ui.on_load(request=SimpleNamespace(query_params={})).sid is None
    missing = ui.resume("nope")
    assert missing.sid is None and "no saved session" in missing.status
    assert ui.reset().sid is None and ui.reset().cards == []
    exported = json.loads(Path(ui.export(v.sid)).read_text())
    stored = ui.rec.store.load(v.sid).to_dict()
    assert exported == {k: v for k, v in stored.items() if k != "owner"}
    assert ui.export(None) is None


def test_cards_escape_text_and_normalise_scores():
    recs = [Recommendation(f"id{i}", f"<b>Film {i}</b>", i, s, None, 0.1, reason="<script>x</script>",
                           year=2000, attributes={"genres": ["Drama"], "director": ["A & B"]})
            for i, s in ((1, -1.0), (2, -3.0))]
    top, bottom = app_gradio.cards_html(recs)
    assert "<b>Film" not in top and "&lt;b&gt;Film 1&lt;/b&gt;" in top and "&lt;script&gt;" in top
    assert "A &amp; B" in top and "width:100%" in top and "width:15%" in bottom
    streaming = app_gradio.cards_html(recs, {0: "Half a rea"})
    assert "Half a rea" in streaming[0] and "writing a reason" in streaming[1]


def test_a_session_id_alone_does_not_open_another_browsers_session(ui):
    mine, theirs = app_gradio.browser_token(None), app_gradio.browser_token(None)
    v = last(ui.send(None, [], "a space adventure", token=mine))
    assert ui.resume(v.sid, mine).sid == v.sid  # the owner resumes
    stolen = ui.resume(v.sid, theirs)  # another visitor who saw the id
    assert stolen.sid is None and stolen.history == [] and "no saved session" in stolen.status
    assert ui.on_load(theirs, SimpleNamespace(query_params={"session": v.sid})).history == []
    assert [t.text for t in ui.rec.store.load(v.sid).turns if t.role == "user"] == ["a space adventure"]
    assert ui.rec.store.load(v.sid).owner == app_gradio.owner_of(mine) != mine  # only a hash is stored


def test_a_like_pressed_while_an_answer_streams_is_kept(ui):
    v = last(ui.send(None, [], "a heist film"))
    first = ui.rec.store.load(v.sid).item_at(1)
    answer = ui.send(v.sid, v.history, "something funnier")
    next(answer)  # the turn has read the session and started
    liked = last(ui.act("like", 1, v.sid, v.history))
    assert "liked" in liked.status
    final = last(answer)
    stored = ui.rec.store.load(final.sid)
    assert first in stored.liked  # the 👍 survived the answer's save
    assert [t.text for t in stored.turns if t.role == "user"] == ["a heist film", "something funnier"]


def test_card_images_come_only_from_the_catalog_folder_and_must_be_images(tmp_path):
    from PIL import Image

    root = tmp_path / "catalog"
    root.mkdir()
    Image.new("RGB", (4, 4), "red").save(root / "poster.png")
    (root / "fake.png").write_text("not an image")
    secret = tmp_path / "secret.txt"
    secret.write_text("password")
    assert app_gradio._image_src(str(root / "poster.png"), root).startswith("data:image/png;base64,")
    for path in (str(secret), str(root / ".." / "secret.txt"), "/etc/passwd", str(root / "fake.png")):
        assert app_gradio._image_src(path, root) is None, path
    assert app_gradio._image_src(str(root / "poster.png"), None) is None  # no catalog folder: no local files


def test_error_messages_do_not_show_server_folders():
    msg = "not a readable image: /tmp/gradio/8c2f0a/upload/holiday.png (cannot identify image file)"
    assert app_gradio._public(msg) == "not a readable image: holiday.png (cannot identify image file)"


@pytest.fixture(scope="module")
def served(ui):
    """The app on a free localhost port, driven through Gradio's own client (the HTTP API a browser uses)."""
    import socket

    from gradio_client import Client

    demo = app_gradio.build_app(ui.rec)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True, max_file_size="20mb")
    yield Client(f"http://127.0.0.1:{port}/", verbose=False)
    demo.close()


@pytest.mark.parametrize("name, content", [
    ("notes.png", b"this is a text file with an image name"),
    ("huge.png", None),  # a PNG header claiming 100000 x 100000 pixels
])
def test_bad_uploads_reach_chatrecs_own_checks(served, tmp_path, name, content):
    import struct
    import zlib

    from gradio_client import handle_file

    path = tmp_path / name
    if content is None:
        ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
        chunk = lambda kind, data: struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))  # noqa: E731
        content = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    path.write_bytes(content)
    out = served.predict([], "something like this", handle_file(str(path)), None, api_name="/send")
    status = out[1]  # (chat, status, session, cards...): gr.State outputs are not part of the HTTP API
    assert status.startswith("⚠️") and name in status, status
    assert str(tmp_path) not in status and "/tmp" not in status and "gradio" not in status.lower(), status


def test_the_browser_key_survives_a_restart(tmp_path):
    first = app_gradio.ui_secret(tmp_path)
    assert app_gradio.ui_secret(tmp_path) == first and len(first) >= 32  # the same after a restart
    assert (tmp_path / "ui-secret").stat().st_mode & 0o077 == 0  # readable by the server's user only


def test_a_message_sent_before_the_page_has_its_secret_still_works_in_its_tab(ui):
    v = last(ui.send(None, [], "a heist film", token=""))  # sent before the load event stored the secret
    assert v.status.startswith("✅")
    assert last(ui.act("dislike", 1, v.sid, v.history, "x" * 43)).status.startswith("✅")  # the tab goes on
    assert ui.resume(v.sid, "x" * 43).sid is None  # but no browser can open it by id later


def test_profile_panel_and_forget_me(ui):
    token, stranger = "p" * 40, "q" * 40
    assert "Nothing yet" in ui.profile_md(token)
    v = last(ui.send(None, [], "I loved Toy Story, no horror", token=token))
    panel = ui.profile_md(token)
    assert panel.startswith("1. You liked Toy Story (1995) — session ") and "2. You asked for no horror" in panel
    assert "Nothing yet" in ui.profile_md(stranger) and "Nothing yet" in ui.profile_md(None)
    other = last(ui.send(None, [], "a western", token=stranger))
    gone = ui.forget(token)
    assert gone.sid is None and gone.history == [] and "Forgotten: your profile and 1 conversation deleted" in gone.status
    with pytest.raises(KeyError):
        ui.rec.store.load(v.sid)
    assert "Nothing yet" in ui.profile_md(token) and ui.rec.store.load(other.sid)
    assert ui.forget(None).status == "Nothing to forget."
