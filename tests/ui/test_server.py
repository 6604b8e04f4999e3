"""The HTTP API over a running uvicorn server (background thread, free localhost port), with a real httpx client.

Fast tests use a retrieval-only Recommender (no LLM); one slow test streams reasons from the packaged models.
"""

from __future__ import annotations

import json
import secrets
import socket
import threading
import time
from contextlib import contextmanager

import pytest

httpx = pytest.importorskip("httpx")
uvicorn = pytest.importorskip("uvicorn")
pytest.importorskip("fastapi")

from chatrec.config import load_config  # noqa: E402
from chatrec.recommender import Recommender  # noqa: E402
from chatrec.ui.server import create_app  # noqa: E402


@contextmanager
def serving(app):
    """``app`` on a free 127.0.0.1 port in a background thread; yields its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.time() + 20
    while not server.started:
        assert thread.is_alive() and time.time() < deadline, "the server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def client_for(base: str, token: str | None = None, **headers) -> httpx.Client:
    if token is not False:
        headers["X-Chatrec-Client"] = token or secrets.token_urlsafe(24)
    return httpx.Client(base_url=base, headers=headers, timeout=60)


def sse_events(response) -> list[tuple[str, dict]]:
    events, name = [], None
    for line in response.iter_lines():
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            events.append((name, json.loads(line[6:])))
    return events


@pytest.fixture(scope="module")
def rec(tmp_path_factory):
    cfg = load_config(None, [f"data_dir={tmp_path_factory.mktemp('serve')}", "ranking.use_llm=false",
                             "generation.reasons=false"])
    return Recommender.from_config(cfg, load_llm_model=False, progress=False)


@pytest.fixture(scope="module")
def base(rec):
    with serving(create_app(rec, ui=False, api_key="")) as url:
        yield url


@pytest.fixture
def api(base):
    with client_for(base) as c:
        yield c


def one_line_error(r, status: int | tuple[int, ...]) -> str:
    assert r.status_code in ((status,) if isinstance(status, int) else status), (r.status_code, r.text)
    msg = r.json()["error"]
    assert isinstance(msg, str) and msg and "\n" not in msg and "Traceback" not in msg
    return msg


# ---- sessions and turns ----------------------------------------------------------------------------


def test_health_ready_and_docs(api):
    assert api.get("/health").json() == {"status": "ok"}
    ready = api.get("/ready").json()
    assert ready["ready"] is True and ready["llm"] is False and ready["catalog_items"] > 0
    assert api.get("/docs").status_code == 200
    paths = api.get("/openapi.json").json()["paths"]
    assert {"/sessions", "/sessions/{sid}", "/sessions/{sid}/turns", "/sessions/{sid}/turns/stream",
            "/sessions/{sid}/feedback", "/health", "/ready"} <= set(paths)


def test_create_turn_get_feedback_delete(api):
    r = api.post("/sessions")
    assert r.status_code == 201
    sid = r.json()["id"]
    assert sid in api.get("/sessions").json()["sessions"]
    r = api.post(f"/sessions/{sid}/turns", json={"text": "a funny space adventure"})
    assert r.status_code == 200, r.text
    answer = r.json()
    recs = answer["recommendations"]
    assert answer["session_id"] == sid and len(recs) == 5 and [x["rank"] for x in recs] == [1, 2, 3, 4, 5]
    assert all(x["reason"] and x["title"] for x in recs) and "understood" in answer and "notes" in answer
    s = api.get(f"/sessions/{sid}").json()
    assert [t["role"] for t in s["turns"]] == ["user", "assistant"] and "owner" not in s
    assert s["last_items"] == [x["item_id"] for x in recs]
    r = api.post(f"/sessions/{sid}/feedback", json={"rank": 2, "liked": True})
    assert r.status_code == 200 and r.json()["liked"] == [recs[1]["item_id"]]
    r = api.post(f"/sessions/{sid}/feedback", json={"rank": 1, "liked": False})
    assert r.json()["rejected"] == [recs[0]["item_id"]]
    assert api.get(f"/sessions/{sid}").json()["rejected"] == [recs[0]["item_id"]]
    assert api.delete(f"/sessions/{sid}").status_code == 204
    one_line_error(api.get(f"/sessions/{sid}"), 404)
    assert sid not in api.get("/sessions").json()["sessions"]


def test_stream_event_order_and_final_list_matches_store(api):
    sid = api.post("/sessions").json()["id"]
    api.post(f"/sessions/{sid}/turns", json={"text": "a scary horror film"}).raise_for_status()
    with api.stream("POST", f"/sessions/{sid}/turns/stream", json={"text": "not #1, something older"}) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        events = sse_events(r)
    names = [n for n, _ in events]
    assert names[0] == "understood" and names[1] == "ranked" and names[-1] == "done"
    assert set(names[2:-1]) <= {"reason_token", "reason"} and names.count("reason") == 5
    ranked = events[1][1]["recommendations"]
    done = events[-1][1]
    assert [x["item_id"] for x in done["recommendations"]] == [x["item_id"] for x in ranked]
    reasons = {d["row"]: d["recommendation"]["reason"] for n, d in events if n == "reason"}
    assert [x["reason"] for x in done["recommendations"]] == [reasons[i] for i in range(5)]
    s = api.get(f"/sessions/{sid}").json()
    assert s["last_items"] == [x["item_id"] for x in done["recommendations"]]
    assert len(s["turns"]) == 4 and s["rejected"]


# ---- owners ---------------------------------------------------------------------------------------


def test_two_clients_at_once_own_their_sessions(base):
    results: dict[str, tuple] = {}

    def client(name: str):
        with client_for(base) as c:
            sid = c.post("/sessions").json()["id"]
            answer = c.post(f"/sessions/{sid}/turns", json={"text": f"a {name} film"}).json()
            results[name] = (c.headers["X-Chatrec-Client"], sid, answer)

    threads = [threading.Thread(target=client, args=(n,)) for n in ("western", "musical")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    (tok_a, sid_a, ans_a), (tok_b, sid_b, ans_b) = results["western"], results["musical"]
    assert sid_a != sid_b and ans_a["session_id"] == sid_a and ans_b["session_id"] == sid_b
    with client_for(base, tok_a) as a, client_for(base, tok_b) as b:
        assert a.get(f"/sessions/{sid_a}").status_code == 200
        assert a.get("/sessions").json()["sessions"] == [sid_a]
        assert b.get("/sessions").json()["sessions"] == [sid_b]
        # another client's session reads exactly like a missing one, for every route
        missing = one_line_error(b.get("/sessions/" + "0" * 32), 404)
        other = one_line_error(b.get(f"/sessions/{sid_a}"), 404)
        assert other == missing.replace("0" * 32, sid_a)
        one_line_error(b.post(f"/sessions/{sid_a}/turns", json={"text": "a comedy"}), 404)
        one_line_error(b.post(f"/sessions/{sid_a}/feedback", json={"rank": 1, "liked": True}), 404)
        one_line_error(b.delete(f"/sessions/{sid_a}"), 404)
        assert a.get(f"/sessions/{sid_a}").json()["liked"] == []
    with client_for(base, token=False) as anon:
        one_line_error(anon.post("/sessions"), 401)


def test_api_key(rec):
    with serving(create_app(rec, ui=False, api_key="s3cret-key")) as url:
        with client_for(url) as c:
            assert c.get("/health").status_code == 200
            r = c.post("/sessions")
            assert "API key" in one_line_error(r, 401) and r.headers["www-authenticate"] == "Bearer"
            one_line_error(c.post("/sessions", headers={"Authorization": "Bearer wrong"}), 401)
            ok = c.post("/sessions", headers={"Authorization": "Bearer s3cret-key"})
            assert ok.status_code == 201
        with client_for(url, token=False, Authorization="Bearer s3cret-key") as keyed:  # no client header: the key owns
            sid = keyed.post("/sessions").json()["id"]
            assert keyed.get(f"/sessions/{sid}").status_code == 200
            assert ok.json()["id"] not in keyed.get("/sessions").json()["sessions"]


# ---- bad inputs -------------------------------------------------------------------------------------


def test_bad_inputs_are_one_line_4xx_and_change_nothing(api, tmp_path):
    sid = api.post("/sessions").json()["id"]
    before = api.get(f"/sessions/{sid}").json()
    assert "empty message" in one_line_error(api.post(f"/sessions/{sid}/turns", json={"text": "  "}), (400, 422))
    assert "empty message" in one_line_error(api.post(f"/sessions/{sid}/turns/stream", json={"text": ""}), 400)
    assert "too long" in one_line_error(api.post(f"/sessions/{sid}/turns", json={"text": "x" * 5000}), 400)
    one_line_error(api.post(f"/sessions/{sid}/turns", json={"text": "hi", "mood": "sad"}), 422)
    one_line_error(api.post(f"/sessions/{sid}/turns", content=b"{not json", headers={"content-type": "application/json"}), 422)
    one_line_error(api.post("/sessions/" + "f" * 32 + "/turns", json={"text": "a comedy"}), 404)
    one_line_error(api.post(f"/sessions/{sid}/feedback", json={"rank": 1, "liked": True}), 400)  # no list yet
    one_line_error(api.post(f"/sessions/{sid}/feedback", json={"rank": 1, "liked": True, "x": 1}), 422)
    # a text file named .png: chatrec's own message, naming the file by its base name, never a server folder
    r = api.post(f"/sessions/{sid}/turns", data={"text": "like this"},
                 files={"image": ("holiday.png", b"this is not a picture", "image/png")})
    msg = one_line_error(r, 400)
    assert "holiday.png" in msg and "/" not in msg and "chatrec-upload" not in msg
    r = api.post(f"/sessions/{sid}/turns/stream", files={"audio": ("../../etc/voice.wav", b"", "audio/wav")})
    msg = one_line_error(r, 400)
    assert "voice.wav" in msg and "etc" not in msg
    one_line_error(api.post(f"/sessions/{sid}/turns", data={"text": "hi", "colour": "red"}), 422)
    assert api.get(f"/sessions/{sid}").json() == before


def test_upload_limit_413_and_temp_files_deleted(rec, tmp_path, monkeypatch):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with serving(create_app(rec, ui=False, api_key="", max_upload_bytes=1024 * 1024)) as url, client_for(url) as c:
        sid = c.post("/sessions").json()["id"]
        r = c.post(f"/sessions/{sid}/turns", files={"image": ("big.png", b"\0" * (2 * 1024 * 1024), "image/png")})
        assert "too large" in one_line_error(r, 413)
        r = c.post(f"/sessions/{sid}/turns", files={"image": ("bad.png", b"nope", "image/png")})
        one_line_error(r, 400)
    assert not list(tmp_path.glob("chatrec-upload-*"))  # uploads are deleted after the turn


# ---- one model call at a time, bounded queue ----------------------------------------------------------


class Blocking:
    """A recommender whose turns wait for ``go``: a slow model, to fill the queue deterministically."""

    def __init__(self, rec):
        self._rec = rec
        self.go = threading.Event()
        self.running = self.max_running = 0
        self._lock = threading.Lock()

    def __getattr__(self, name):
        return getattr(self._rec, name)

    def stream(self, session, turn):
        with self._lock:
            self.running += 1
            self.max_running = max(self.max_running, self.running)
        try:
            self.go.wait(20)
            yield from self._rec.stream(session, turn)
        finally:
            with self._lock:
                self.running -= 1


def test_queue_limit_gives_429_with_retry_after(rec):
    slow = Blocking(rec)
    app = create_app(slow, ui=False, api_key="", max_queue=1)
    gate = app.state.chatrec.gate
    with serving(app) as url, client_for(url) as c:
        sids = [c.post("/sessions").json()["id"] for _ in range(3)]
        codes = []
        threads = [threading.Thread(target=lambda s=s: codes.append(
            c.post(f"/sessions/{s}/turns", json={"text": "a western"}).status_code)) for s in sids[:2]]
        for t in threads:
            t.start()
        deadline = time.time() + 10
        while gate.pending < 2:  # one running, one waiting: the queue (1) is full
            assert time.time() < deadline
            time.sleep(0.01)
        r = c.post(f"/sessions/{sids[2]}/turns", json={"text": "a western"})
        assert "busy" in one_line_error(r, 429) and int(r.headers["retry-after"]) >= 1
        r = c.post(f"/sessions/{sids[2]}/turns/stream", json={"text": "a western"})
        one_line_error(r, 429)
        slow.go.set()
        for t in threads:
            t.join(30)
        assert codes == [200, 200] and slow.max_running == 1 and gate.pending == 0
        assert c.post(f"/sessions/{sids[2]}/turns", json={"text": "a western"}).status_code == 200


def test_gradio_ui_mounts_at_ui(rec):
    with serving(create_app(rec, api_key="")) as url, client_for(url) as c:
        r = c.get("/ui/", follow_redirects=True)
        assert r.status_code == 200 and "<html" in r.text.lower()
        assert c.get("/health").status_code == 200


# ---- the real packaged models ----------------------------------------------------------------------


@pytest.mark.slow
def test_stream_reasons_from_packaged_models(tmp_path):
    real = Recommender.from_config(load_config(None, [f"data_dir={tmp_path}"]), progress=False)
    with serving(create_app(real, ui=False, api_key="")) as url, client_for(url) as c:
        assert c.get("/ready").json()["llm"] is True
        sid = c.post("/sessions").json()["id"]
        with c.stream("POST", f"/sessions/{sid}/turns/stream", json={"text": "a tense sci-fi thriller in space"},
                      timeout=300) as r:
            assert r.status_code == 200
            events = sse_events(r)
        stored = c.get(f"/sessions/{sid}").json()
    names = [n for n, _ in events]
    assert names[:2] == ["understood", "ranked"] and names[-1] == "done"
    assert "reason_token" in names and names.index("reason_token") < names.index("done")
    n = len(events[1][1]["recommendations"])
    assert names.count("reason") == n and max(i for i, x in enumerate(names) if x == "reason") < len(names) - 1
    done = events[-1][1]
    assert all(x["reason"] for x in done["recommendations"])
    assert stored["last_items"] == [x["item_id"] for x in done["recommendations"]]


# ---- profiles -------------------------------------------------------------------------------------


def test_profile_lines_switch_and_forget(base):
    with client_for(base) as c, client_for(base) as other:
        paths = c.get("/openapi.json").json()["paths"]
        assert {"/profile", "/profile/lines/{n}"} <= set(paths) and "patch" in paths["/sessions/{sid}"]
        empty = c.get("/profile").json()
        assert empty["lines"] == [] and empty["profile"]["entries"] == [] and "owner" not in empty["profile"]
        sid = c.post("/sessions").json()["id"]
        c.post(f"/sessions/{sid}/turns", json={"text": "I loved Toy Story and Finding Nemo, no horror"}).raise_for_status()
        c.post(f"/sessions/{sid}/feedback", json={"rank": 1, "liked": True}).raise_for_status()
        lines = c.get("/profile").json()["lines"]
        assert [x["n"] for x in lines] == list(range(1, len(lines) + 1)) and len(lines) == 4
        assert [x["kind"] for x in lines] == ["liked_item"] * 3 + ["genre_avoid"]
        assert lines[-1]["text"].startswith("You asked for no horror — session ")
        assert other.get("/profile").json()["lines"] == []  # each caller sees their own
        after = c.delete("/profile/lines/1").json()["lines"]
        assert [x["text"] for x in after] == [x["text"] for x in lines[1:]]
        assert "no profile line 9" in one_line_error(c.delete("/profile/lines/9"), 404)

        assert c.patch(f"/sessions/{sid}", json={"use_profile": False}).json()["use_profile"] is False
        assert c.get("/profile").json()["lines"] == []  # a session switched off adds nothing
        one_line_error(c.patch(f"/sessions/{sid}", json={"use_profile": True, "x": 1}), 422)
        one_line_error(other.patch(f"/sessions/{sid}", json={"use_profile": True}), 404)
        assert c.patch(f"/sessions/{sid}", json={"use_profile": True}).json()["use_profile"] is True
        kept = [x["value"] for x in c.get("/profile").json()["lines"] if x["kind"] == "liked_item"]
        assert len(kept) == 2  # line 1 stays removed

        sid2 = c.post("/sessions").json()["id"]  # a new session: the liked films are not shown again
        answer = c.post(f"/sessions/{sid2}/turns", json={"text": "something for tonight"}).json()
        assert len(answer["recommendations"]) == 5 and not {x["item_id"] for x in answer["recommendations"]} & set(kept)

        theirs = other.post("/sessions").json()["id"]
        assert c.delete("/profile").json() == {"deleted_profile": True, "deleted_sessions": 2}
        assert c.get("/sessions").json()["sessions"] == [] and c.get("/profile").json()["lines"] == []
        one_line_error(c.get(f"/sessions/{sid}"), 404)
        assert other.get(f"/sessions/{theirs}").status_code == 200


def test_a_store_that_cannot_be_reached_is_a_503_with_retry_after(api, rec, monkeypatch):
    from chatrec.store import StoreError

    def down(*_a, **_k):
        raise StoreError("cannot reach the session database postgresql://chatrec@db/chatrec (connection refused)")

    monkeypatch.setattr(rec.store, "save", down)
    r = api.post("/sessions")
    assert "cannot reach the session database" in one_line_error(r, 503) and r.headers["retry-after"] == "5"
