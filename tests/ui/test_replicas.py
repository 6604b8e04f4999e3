"""Two real ``chatrec serve`` processes sharing one PostgreSQL store, as replicas behind a load balancer.

One client talks to both at once: every turn and the like must be on both replicas, and each replica must
show the same session and the same profile. Slow: each process loads the packaged catalog and embedder
(retrieval only: no LLM).
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("psycopg")
pytest.importorskip("uvicorn")

pytestmark = pytest.mark.slow

READY_TIMEOUT_S = 600  # two processes load the embedder at once on a small machine
# Each replica answers its own turns; the user turns that reach the profile as a genre to avoid.
TURNS = {"a": ["a funny animated film, no horror", "something older with a heist"],
         "b": ["a tense space adventure, no westerns", "a family film about friendship"]}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def replica(url: str, data_dir: Path, log: Path):
    """``chatrec serve --no-ui`` on a free port with ``url`` as its store; yields its base URL once /ready."""
    port = _free_port()
    cmd = [sys.executable, "-m", "chatrec", "serve", "--no-ui", "--host", "127.0.0.1", "--port", str(port),
           "--data-dir", str(data_dir),
           "--set", f"store_url={url}", "ranking.use_llm=false", "generation.reasons=false"]
    env = {k: v for k, v in os.environ.items() if k != "CHATREC_API_KEY"}  # the client header alone owns sessions
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + READY_TIMEOUT_S
        while True:
            assert proc.poll() is None, f"chatrec serve exited ({proc.returncode}):\n{log.read_text()[-3000:]}"
            assert time.time() < deadline, f"not ready after {READY_TIMEOUT_S} s:\n{log.read_text()[-3000:]}"
            try:
                r = httpx.get(f"{base}/ready", timeout=5)
                if r.status_code == 200:
                    break
                assert "error" not in r.json(), f"loading failed: {r.json()['error']}"
            except httpx.TransportError:
                pass  # not listening yet
            time.sleep(1)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def test_two_replicas_share_sessions_and_profiles(postgres_server, tmp_path):
    url = postgres_server.create_database()
    with replica(url, tmp_path / "a", tmp_path / "a.log") as a, replica(url, tmp_path / "b", tmp_path / "b.log") as b:
        headers = {"X-Chatrec-Client": secrets.token_urlsafe(24)}  # one user, whichever replica answers
        clients = {"a": httpx.Client(base_url=a, headers=headers, timeout=300),
                   "b": httpx.Client(base_url=b, headers=headers, timeout=300)}
        sid = clients["a"].post("/sessions").raise_for_status().json()["id"]
        errors: list[str] = []
        go = threading.Barrier(2)

        def talk(name: str) -> None:
            go.wait(30)  # both replicas answer turns of one session at the same time: their saves merge
            for text in TURNS[name]:
                r = clients[name].post(f"/sessions/{sid}/turns", json={"text": text})
                if r.status_code != 200:
                    errors.append(f"{name}: {r.status_code} {r.text[:300]}")

        threads = [threading.Thread(target=talk, args=(name,)) for name in TURNS]
        for t in threads:
            t.start()
        for t in threads:
            t.join(600)
        assert errors == []

        liked = clients["b"].post(f"/sessions/{sid}/feedback", json={"rank": 1, "liked": True})
        liked_id = liked.raise_for_status().json()["liked"][-1]

        views = {name: c.get(f"/sessions/{sid}").raise_for_status().json() for name, c in clients.items()}
        profiles = {name: c.get("/profile").raise_for_status().json() for name, c in clients.items()}
        listed = {name: c.get("/sessions").raise_for_status().json()["sessions"] for name, c in clients.items()}
        for c in clients.values():
            c.close()

    assert views["a"] == views["b"] and listed["a"] == listed["b"] == [sid]
    session = views["a"]
    said = [t["text"] for t in session["turns"] if t["role"] == "user"]
    assert sorted(said) == sorted(TURNS["a"] + TURNS["b"])
    for name in TURNS:  # each replica's turns in the order it answered them
        assert [x for x in said if x in TURNS[name]] == TURNS[name]
    assert [t["role"] for t in session["turns"]] == ["user", "assistant"] * 4  # every answer after its question
    assert all(len(t["items"]) == 5 for t in session["turns"] if t["role"] == "assistant")
    assert session["liked"] == [liked_id] and session["version"] == 1 + 4 + 1  # created, 4 turns, 1 like

    def in_words(profile: dict) -> list[tuple]:  # the weights decay with the second each replica reads them
        return [(x["n"], x["text"], x["kind"], x["value"]) for x in profile["lines"]]

    assert in_words(profiles["a"]) == in_words(profiles["b"])
    kept = {(x["kind"], x["value"]) for x in profiles["a"]["lines"]}
    assert ("liked_item", liked_id) in kept  # the like sent to replica b
    assert {v.lower() for k, v in kept if k == "genre_avoid"} >= {"horror", "western"}  # a turn from each replica
