"""A bounded load test of ``chatrec serve``: concurrent simulated users over HTTP, with a sequential baseline in the same run.

Starts ``chatrec serve --no-ui`` on a free 127.0.0.1 port with a fresh temporary data dir (extra ``--set`` options
are passed through; ``--url`` targets a running server instead), waits for ``GET /ready``, then runs:

1. a warm-up turn (not in the table: the first turn pays one-off costs);
2. the baseline: 1 user, sequentially;
3. ``--users`` users at once, each in its own thread with its own ``X-Chatrec-Client`` secret.

Every user creates a session and sends ``--turns`` messages: the first user turns of distinct shipped human
dialogues (test and validation splits, shuffled by ``--seed``), and likes the top item once it has seen two
answers, so the store is written by turns and by feedback. No new turn starts after ``--max-seconds``. A 429
(queue full) is a rejection: counted apart, and the user retries after ``Retry-After``. A 5xx, another
unexpected status, a connection error or a malformed answer is an error (the goal is 0).

Prints a table (turns, wall time, throughput, p50/p95 of the client's latency and of the answer's per-stage
timings, the estimated queue wait, errors, rejections, the server's peak RSS) for both phases, then checks
that nothing was lost: every acknowledged turn and like is in the store. Exits 1 on errors or loss.
Timings are not asserted.

    python benchmarks/serve_load.py [--users 4] [--turns 3] [--set ranking.use_llm=false] [--json out.json]
    python benchmarks/serve_load.py --url http://127.0.0.1:8000
"""

from __future__ import annotations

import argparse
import json
import random
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx
import numpy as np
import psutil
from tqdm import tqdm

CLIENT_HEADER = "X-Chatrec-Client"
STAGES = ("ranked", "first_token", "total")  # Answer.timings, seconds since the turn got the model
DIALOGUE_FILES = ("human_test.jsonl", "human_val.jsonl")
LIKE_AFTER = 2  # a user likes the top item of the first answer from this one on that has a list
MAX_RETRY_WAIT = 10.0  # seconds: a rejected user waits Retry-After, at most this long, then tries again
SAMPLE_EVERY = 0.25  # seconds between samples of the server's RSS and queue


# ---- what the users send -------------------------------------------------------------------------


def first_user_texts(paths: Sequence[Path]) -> list[str]:
    """The first user turn of every dialogue in ``paths``, in file order."""
    from chatrec.evaluation.dialogues import load_dialogues

    texts = []
    for path in paths:
        for d in load_dialogues(path).dialogues:
            first = next((t.text for t in d.turns if t.role == "user" and t.text.strip()), None)
            if first:
                texts.append(first)
    return texts


def conversation_scripts(texts: Sequence[str], n_users: int, n_turns: int, seed: int) -> list[list[str]]:
    """``n_users`` scripts of ``n_turns`` messages: ``texts`` shuffled by ``seed`` and dealt out in order, so
    every message comes from a different dialogue (only when more are needed than exist do they repeat)."""
    if not texts:
        raise ValueError("no dialogue texts to build scripts from")
    order = list(texts)
    random.Random(seed).shuffle(order)
    return [[order[(u * n_turns + t) % len(order)] for t in range(n_turns)] for u in range(n_users)]


# ---- one simulated user --------------------------------------------------------------------------


@dataclass
class Request:
    """One HTTP call of a simulated user."""

    kind: str  # "session" | "turn" | "feedback"
    user: int
    outcome: str  # "ok" | "rejected" (429) | "error"
    started: float  # time.monotonic() when sent
    latency: float  # seconds until the whole answer was read
    status: int | None  # None: no HTTP answer (connection error, timeout)
    timings: dict = field(default_factory=dict)  # an answered turn: the answer's timings; a 429: its retry_after
    error: str = ""


@dataclass
class UserLog:
    """What one user saw acknowledged: the consistency check compares it with the store."""

    phase: str
    user: int
    planned: int  # turns in its script
    secret: str = field(default="", repr=False)  # its X-Chatrec-Client value (kept out of --json)
    session_id: str | None = None
    acknowledged: int = 0  # turns answered 200 with a well-formed answer
    liked: str | None = None  # the item id whose like the server acknowledged
    requests: list[Request] = field(default_factory=list)


def answer_problem(body: object, sid: str) -> str:
    """Why a turn's JSON answer is malformed ("" when it is fine)."""
    if not isinstance(body, dict):
        return "the answer is not a JSON object"
    if body.get("session_id") != sid:
        return f"session_id {body.get('session_id')!r} is not the session's"
    recs = body.get("recommendations")
    if not isinstance(recs, list) or not all(isinstance(r, dict) and isinstance(r.get("item_id"), str)
                                             and isinstance(r.get("rank"), int) for r in recs):
        return "recommendations is not a list of items with item_id and rank"
    if [r["rank"] for r in recs] != list(range(1, len(recs) + 1)):
        return "ranks are not 1..n"
    timings = body.get("timings", {})
    if not isinstance(timings, dict) or not all(isinstance(v, int | float) for v in timings.values()):
        return "timings is not an object of seconds"
    return ""


def retry_after(response: httpx.Response) -> float:
    value = response.headers.get("retry-after", "1")
    return float(value) if value.replace(".", "", 1).isdigit() else 1.0


class SimUser:
    """Creates a session, sends its script one turn at a time, likes the top item after the second answer."""

    def __init__(self, base_url: str, phase: str, index: int, script: list[str], deadline: float,
                 stop: threading.Event, timeout: float, on_turn: Callable[[Request], None] | None = None):
        self.secret = secrets.token_urlsafe(24)  # the client's own secret: it owns the session
        self.client = httpx.Client(base_url=base_url, headers={CLIENT_HEADER: self.secret}, timeout=timeout)
        self.script, self.deadline, self.stop, self.on_turn = script, deadline, stop, on_turn or (lambda r: None)
        self.log = UserLog(phase, index, len(script), self.secret)

    def running(self) -> bool:
        return not self.stop.is_set() and time.monotonic() < self.deadline

    def call(self, kind: str, method: str, path: str, body: dict | None = None) -> tuple[Request, object]:
        t0 = time.monotonic()
        try:
            r = self.client.request(method, path, json=body)
        except httpx.HTTPError as e:
            req = Request(kind, self.log.user, "error", t0, time.monotonic() - t0, None, error=f"{type(e).__name__}: {e}")
            self.log.requests.append(req)
            return req, None
        req = Request(kind, self.log.user, "ok", t0, time.monotonic() - t0, r.status_code)
        self.log.requests.append(req)
        try:
            data = r.json()
        except ValueError:
            data = None
        if r.status_code == 429:
            req.outcome, req.error = "rejected", str(data.get("error", "")) if isinstance(data, dict) else ""
            req.timings = {"retry_after": retry_after(r)}
        elif r.status_code not in (200, 201):
            req.outcome = "error"
            req.error = f"HTTP {r.status_code}: " + (str(data.get("error")) if isinstance(data, dict) else r.text[:200])
        elif data is None:
            req.outcome, req.error = "error", "the answer is not JSON"
        return req, data

    def run(self) -> UserLog:
        try:
            self._run()
        finally:
            self.client.close()
        return self.log

    def _run(self) -> None:
        req, data = self.call("session", "POST", "/sessions")
        if req.outcome != "ok":
            return
        if not (isinstance(data, dict) and isinstance(data.get("id"), str)):
            req.outcome, req.error = "error", "POST /sessions answered without an id"
            return
        sid = self.log.session_id = data["id"]
        for text in self.script:
            done = self.turn(sid, text)
            if done is None:  # out of time
                return
            req, top = done
            if top is not None and self.log.acknowledged >= LIKE_AFTER and self.log.liked is None:
                self.like(sid, top)

    def turn(self, sid: str, text: str) -> tuple[Request, str | None] | None:
        """One turn, retried after a 429 while there is time: the request and the top item's id (None when
        the turn failed or nothing fitted); None when no time is left to start it."""
        while self.running():
            req, data = self.call("turn", "POST", f"/sessions/{sid}/turns", {"text": text})
            if req.outcome == "ok":
                problem = answer_problem(data, sid)
                if problem:
                    req.outcome, req.error = "error", f"malformed answer: {problem}"
            self.on_turn(req)
            if req.outcome == "rejected":
                wait = min(req.timings["retry_after"], MAX_RETRY_WAIT, max(0.0, self.deadline - time.monotonic()))
                self.stop.wait(wait)
                continue
            if req.outcome != "ok":
                return req, None
            self.log.acknowledged += 1
            req.timings = {k: float(v) for k, v in data.get("timings", {}).items()}
            recs = data["recommendations"]
            return req, (recs[0]["item_id"] if recs else None)  # nothing fitted: the like waits for a later answer
        return None

    def like(self, sid: str, item_id: str) -> None:
        req, data = self.call("feedback", "POST", f"/sessions/{sid}/feedback", {"rank": 1, "liked": True})
        if req.outcome != "ok":
            return
        if not (isinstance(data, dict) and item_id in (data.get("liked") or [])):
            req.outcome, req.error = "error", f"the feedback answer does not list {item_id!r} as liked"
            return
        self.log.liked = item_id


# ---- the server ------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def log_tail(path: Path | None, n: int = 20) -> str:
    if path is None or not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-n:])


def wait_ready(url: str, timeout: float, proc: subprocess.Popen | None = None, log: Path | None = None) -> dict:
    """Poll ``GET /ready`` until it answers 200 (its JSON); raises when the server exits, fails to load or
    ``timeout`` seconds pass."""
    end = time.monotonic() + timeout
    with httpx.Client(base_url=url, timeout=5) as c:
        while True:
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"chatrec serve exited with code {proc.returncode}:\n{log_tail(log)}")
            try:
                r = c.get("/ready")
                if r.status_code == 200:
                    return r.json()
                if r.status_code == 503 and r.json().get("error"):
                    raise RuntimeError(f"chatrec serve could not load its models: {r.json()['error']}")
            except httpx.TransportError:
                pass  # not listening yet
            if time.monotonic() > end:
                raise TimeoutError(f"{url}/ready did not answer 200 within {timeout:.0f} s\n{log_tail(log)}")
            time.sleep(0.5)


def stop_server(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()  # uvicorn shuts down on SIGTERM
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def served(sets: Sequence[str], max_queue: int | None, ready_timeout: float) -> Iterator[tuple[str, int, Path, dict]]:
    """``chatrec serve --no-ui`` on a free loopback port with a fresh data dir; yields (url, pid, log, /ready).
    The server is stopped and the data dir removed on the way out, whatever happened (Ctrl-C included)."""
    data = Path(tempfile.mkdtemp(prefix="chatrec-load-"))
    port = free_port()
    cmd = [sys.executable, "-m", "chatrec", "serve", "--no-ui", "--host", "127.0.0.1", "--port", str(port),
           "--data-dir", str(data / "store")]
    if sets:
        cmd += ["--set", *sets]
    if max_queue is not None:
        cmd += ["--max-queue", str(max_queue)]
    log = data / "server.log"
    proc = None
    try:
        with log.open("wb") as out:  # the child keeps its own handle
            # A session of its own: a Ctrl-C in the terminal reaches only this script, which stops the server.
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True)
        url = f"http://127.0.0.1:{port}"
        ready = wait_ready(url, ready_timeout, proc, log)
        yield url, proc.pid, log, ready
    finally:
        if proc is not None:
            stop_server(proc)
        shutil.rmtree(data, ignore_errors=True)


class Monitor(threading.Thread):
    """Samples the server's RSS (psutil, its process and children) and ``/ready``'s queue.pending."""

    def __init__(self, url: str, pid: int | None):
        super().__init__(name="serve-load-monitor", daemon=True)
        self.url, self.proc = url, psutil.Process(pid) if pid else None
        self.samples: list[tuple[float, int | None, int | None]] = []  # (monotonic, rss bytes, pending turns)
        self.done = threading.Event()

    def rss(self) -> int | None:
        if self.proc is None:
            return None
        try:
            return sum(p.memory_info().rss for p in [self.proc, *self.proc.children(recursive=True)])
        except psutil.Error:
            return None

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=2) as c:
            while not self.done.wait(SAMPLE_EVERY):
                try:
                    pending = c.get("/ready").json().get("queue", {}).get("pending")
                except (httpx.HTTPError, ValueError, AttributeError):
                    pending = None
                self.samples.append((time.monotonic(), self.rss(), pending))

    def peaks(self, t0: float, t1: float) -> tuple[int | None, int | None]:
        """The largest RSS and queue.pending sampled between ``t0`` and ``t1``."""
        window = [s for s in self.samples if t0 <= s[0] <= t1]
        rss = [s[1] for s in window if s[1] is not None]
        pending = [s[2] for s in window if s[2] is not None]
        return (max(rss) if rss else None), (max(pending) if pending else None)


# ---- a phase -----------------------------------------------------------------------------------------


def run_phase(name: str, url: str, scripts: list[list[str]], deadline: float, stop: threading.Event,
              timeout: float) -> tuple[list[UserLog], float, float]:
    """All ``scripts`` at once, one thread per user; returns the users' logs and the phase's start and end."""
    bar = tqdm(total=sum(map(len, scripts)), desc=name, unit="turn", file=sys.stderr)
    lock = threading.Lock()
    counts = {"err": 0, "429": 0}

    def on_turn(req: Request) -> None:  # every answer to a turn; a rejected one is tried again
        with lock:
            if req.outcome == "rejected":
                counts["429"] += 1
            else:
                bar.update(1)
                counts["err"] += req.outcome == "error"
            bar.set_postfix(counts, refresh=False)

    users = [SimUser(url, name, i, s, deadline, stop, timeout, on_turn) for i, s in enumerate(scripts)]
    threads = [threading.Thread(target=u.run, name=f"{name}-user-{u.log.user}", daemon=True) for u in users]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    try:
        for t in threads:
            while t.is_alive():
                t.join(0.5)  # in slices: a Ctrl-C reaches the main thread
    except BaseException:
        stop.set()  # the users start nothing more; the server is stopped on the way out
        raise
    finally:
        bar.close()
    return [u.log for u in users], t0, time.monotonic()


# ---- results ---------------------------------------------------------------------------------------


def percentiles(xs: Sequence[float]) -> dict | None:
    """p50 and p95 (linear interpolation, as numpy) and n; None for no values."""
    if len(xs) == 0:
        return None
    return {"p50": float(np.percentile(xs, 50)), "p95": float(np.percentile(xs, 95)), "n": len(xs)}


def summarize(name: str, logs: Sequence[UserLog], t0: float, t1: float, peak_rss: int | None,
              max_pending: int | None) -> dict:
    """One row of the table: a phase's counts and p50/p95s."""
    reqs = [r for log in logs for r in log.requests]
    turns = [r for r in reqs if r.kind == "turn" and r.outcome == "ok"]
    wall = t1 - t0
    row = {
        "phase": name, "users": len(logs), "turns": len(turns), "planned": sum(log.planned for log in logs),
        "wall_s": wall, "turns_per_s": len(turns) / wall if wall > 0 else 0.0,
        "client": percentiles([r.latency for r in turns]),
        "errors": sum(r.outcome == "error" for r in reqs), "rejected": sum(r.outcome == "rejected" for r in reqs),
        "peak_rss_gb": peak_rss / 1024**3 if peak_rss is not None else None, "max_pending": max_pending,
    }
    for stage in STAGES:
        row[stage] = percentiles([r.timings[stage] for r in turns if stage in r.timings])
    # Not in the API per turn: the time before the model took the turn, plus HTTP and the session's load/save.
    row["queue_overhead"] = percentiles([r.latency - r.timings["total"] for r in turns if "total" in r.timings])
    return row


def _p(stats: dict | None) -> str:
    return "n/a" if stats is None else f"{stats['p50']:.2f} / {stats['p95']:.2f} s (n={stats['n']})"


TABLE_ROWS = (
    ("users", lambda r: str(r["users"])),
    ("turns completed", lambda r: f"{r['turns']}/{r['planned']}"),
    ("wall time", lambda r: f"{r['wall_s']:.1f} s"),
    ("throughput", lambda r: f"{r['turns_per_s']:.3f} turns/s"),
    ("client latency p50 / p95", lambda r: _p(r["client"])),
    ("server: ranked list p50 / p95", lambda r: _p(r["ranked"])),
    ("server: first reason token p50 / p95", lambda r: _p(r["first_token"])),
    ("server: whole turn p50 / p95", lambda r: _p(r["total"])),
    ("queue wait + overhead p50 / p95", lambda r: _p(r["queue_overhead"])),
    ("most turns admitted at once", lambda r: "n/a" if r["max_pending"] is None else str(r["max_pending"])),
    ("errors", lambda r: str(r["errors"])),
    ("rejected (429)", lambda r: str(r["rejected"])),
    ("server peak RSS", lambda r: "n/a" if r["peak_rss_gb"] is None else f"{r['peak_rss_gb']:.2f} GB"),
)


def format_table(rows: Sequence[dict], with_stages: bool = True) -> str:
    """A markdown table: one column per phase, one line per measure (server stages only ``with_stages``)."""
    lines = ["| | " + " | ".join(r["phase"] for r in rows) + " |", "|---" * (len(rows) + 1) + "|"]
    for label, cell in TABLE_ROWS:
        if not with_stages and label.startswith(("server:", "queue wait")):
            continue
        lines.append(f"| {label} | " + " | ".join(cell(r) for r in rows) + " |")
    return "\n".join(lines)


def slowdown(base: dict, load: dict) -> str:
    """How the concurrent phase compares with the baseline, in words."""
    parts = []
    if base["client"] and load["client"]:
        parts.append(f"client latency p50 x{load['client']['p50'] / base['client']['p50']:.2f}")
    if base["total"] and load["total"]:
        parts.append(f"server whole turn p50 x{load['total']['p50'] / base['total']['p50']:.2f}")
    if base["turns_per_s"] > 0:
        parts.append(f"throughput x{load['turns_per_s'] / base['turns_per_s']:.2f}")
    return ", ".join(parts) or "n/a (no completed turns to compare)"


def check_consistency(expected: Sequence[dict], stored: Sequence[dict]) -> dict:
    """Compare what each user saw acknowledged with what the store has.

    ``expected[i]``: {"session_id", "acknowledged", "liked"} as the client saw them; ``stored[i]``: {"sessions":
    {id: {"user_turns", "liked"}}} or {"error"} as read back. A turn stored but never acknowledged (e.g. a client
    timeout after the server saved it) is counted as extra, not lost.
    """
    c = {"sessions_expected": 0, "sessions_found": 0, "turns_acknowledged": 0, "turns_stored": 0, "turns_missing": 0,
         "turns_extra": 0, "likes_acknowledged": 0, "likes_stored": 0, "unreadable": 0, "unexpected_sessions": 0}
    for exp, got in zip(expected, stored, strict=True):
        if "error" in got:
            c["unreadable"] += 1
        sessions = got.get("sessions", {})
        c["unexpected_sessions"] += len(set(sessions) - {exp["session_id"]})
        if exp["session_id"] is None:
            continue
        c["sessions_expected"] += 1
        c["turns_acknowledged"] += exp["acknowledged"]
        c["likes_acknowledged"] += exp["liked"] is not None
        s = sessions.get(exp["session_id"])
        if s is None:
            c["turns_missing"] += exp["acknowledged"]
            continue
        c["sessions_found"] += 1
        c["turns_stored"] += s["user_turns"]
        c["turns_missing"] += max(0, exp["acknowledged"] - s["user_turns"])
        c["turns_extra"] += max(0, s["user_turns"] - exp["acknowledged"])
        c["likes_stored"] += exp["liked"] is not None and exp["liked"] in s["liked"]
    c["lost"] = bool(c["unreadable"] or c["sessions_found"] < c["sessions_expected"] or c["turns_missing"]
                     or c["likes_stored"] < c["likes_acknowledged"])
    return c


def read_back(url: str, secret: str, timeout: float) -> dict:
    """A user's sessions as the store has them, read with the user's own secret (ownership is checked too)."""
    out: dict = {"sessions": {}}
    with httpx.Client(base_url=url, headers={CLIENT_HEADER: secret}, timeout=timeout) as c:
        try:
            r = c.get("/sessions")
            r.raise_for_status()
            for sid in r.json()["sessions"]:
                s = c.get(f"/sessions/{sid}")
                s.raise_for_status()
                body = s.json()
                out["sessions"][sid] = {"user_turns": sum(t["role"] == "user" for t in body["turns"]),
                                        "liked": list(body["liked"])}
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as e:
            out["error"] = f"{type(e).__name__}: {e}"
    return out


def consistency_line(c: dict) -> str:
    return (f"nothing lost: {'no' if c['lost'] else 'yes'}  (sessions {c['sessions_found']}/{c['sessions_expected']}, "
            f"turns stored {c['turns_stored']} for {c['turns_acknowledged']} acknowledged, {c['turns_missing']} "
            f"missing, {c['turns_extra']} stored without an acknowledgement; likes stored "
            f"{c['likes_stored']}/{c['likes_acknowledged']}; unreadable users {c['unreadable']}; "
            f"sessions the clients did not create {c['unexpected_sessions']})")


# ---- main ----------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=4, help="concurrent users in the load phase")
    ap.add_argument("--turns", type=int, default=3, help="turns per user")
    ap.add_argument("--seed", type=int, default=0, help="which dialogues' first turns the users send")
    ap.add_argument("--max-seconds", type=float, default=600, help="no turn starts after this long (from /ready)")
    ap.add_argument("--warmup", type=int, default=1, help="turns before the baseline, left out of the table")
    ap.add_argument("--set", action="extend", nargs="+", default=[], metavar="KEY=VALUE",
                    help="config overrides for the started server, e.g. --set ranking.use_llm=false")
    ap.add_argument("--max-queue", type=int, help="the server's --max-queue (default: its own)")
    ap.add_argument("--url", help="use this running server (e.g. http://127.0.0.1:8000) instead of starting one")
    ap.add_argument("--ready-timeout", type=float, default=300, help="seconds to wait for GET /ready")
    ap.add_argument("--request-timeout", type=float, default=300, help="seconds per HTTP request")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args(argv)
    if args.url and (args.set or args.max_queue is not None):
        ap.error("--set and --max-queue apply to a server this script starts, not to --url")
    if args.users < 1 or args.turns < 1 or args.warmup < 0:
        ap.error("--users and --turns must be 1 or more, --warmup 0 or more")
    return args


@contextmanager
def server_for(args: argparse.Namespace) -> Iterator[tuple[str, int | None, Path | None, dict]]:
    if args.url:
        url = args.url.rstrip("/")
        yield url, None, None, wait_ready(url, args.ready_timeout)
    else:
        with served(args.set, args.max_queue, args.ready_timeout) as s:
            yield s


@dataclass
class Phase:
    name: str
    logs: list[UserLog]
    t0: float  # time.monotonic() at its start and end
    t1: float

    def requests(self) -> list[Request]:
        return [r for lg in self.logs for r in lg.requests]


def measure(args: argparse.Namespace, url: str, scripts: list[list[str]]) -> list[Phase]:
    """Warm-up, baseline and load phases against ``url``, under one deadline."""
    warm, base, *load = scripts
    stop = threading.Event()
    deadline = time.monotonic() + args.max_seconds
    plan = [("baseline: 1 user, sequential", [base]), (f"{args.users} users, concurrent", load)]
    if args.warmup:
        plan.insert(0, ("warm-up", [warm[: args.warmup]]))
    return [Phase(name, *run_phase(name, url, s, deadline, stop, args.request_timeout)) for name, s in plan]


def report(args: argparse.Namespace, url: str, ready: dict, phases: list[Phase], rows: list[dict],
           consistency: dict, times: dict, server_tail: str) -> None:
    with_stages = any(row[s] is not None for row in rows for s in STAGES)
    print(f"\n== chatrec serve under load ({url}; LLM loaded: {'yes' if ready.get('llm') else 'no'}, "
          f"{ready.get('catalog_items')} items, queue max {ready.get('queue', {}).get('max')}; "
          f"{args.turns} turns per user, seed {args.seed}; overrides: {' '.join(args.set) or 'none'}) ==")
    print(f"server ready after {times['ready_after_s']:.1f} s; RSS when ready "
          + ("n/a" if times["rss_at_ready_bytes"] is None else f"{times['rss_at_ready_bytes'] / 1024**3:.2f} GB")
          + f"; whole run {times['wall_s']:.1f} s")
    if args.warmup:
        w = phases[0]
        print(f"warm-up: {sum(lg.acknowledged for lg in w.logs)} turn(s) in {w.t1 - w.t0:.1f} s (not in the table)")
    print(format_table(rows, with_stages))
    if with_stages:
        print("Server stages are the answer's timings, from when the turn got the model. The queue wait is not in "
              "the API per turn: it is client latency minus the server's whole turn (HTTP and the session's "
              f"load/save included). 'Most turns admitted at once' is /ready's queue.pending every {SAMPLE_EVERY} s.")
    else:
        print("The API's answers carry no per-stage timings: client latency only.")
    print(f"concurrent vs baseline: {slowdown(*rows)}")
    for p in phases:
        for lg in p.logs:
            for r in lg.requests:
                if r.outcome == "error":
                    print(f"error: {p.name} user {lg.user} {r.kind}: {r.error}")
    if server_tail:
        print("server log (last lines):\n" + server_tail)
    print(consistency_line(consistency))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    data = Path(__file__).resolve().parent.parent / "chatrec" / "data" / "dialogues"
    texts = first_user_texts([data / name for name in DIALOGUE_FILES])
    scripts = conversation_scripts(texts, 2 + args.users, args.turns, args.seed)  # warm-up, baseline, users
    if len(scripts) * args.turns > len(texts):
        print(f"note: {len(scripts) * args.turns} messages from {len(texts)} dialogues: some repeat", file=sys.stderr)
    t_start = time.monotonic()
    with server_for(args) as (url, pid, log, ready):
        times = {"ready_after_s": time.monotonic() - t_start}
        monitor = Monitor(url, pid)
        times["rss_at_ready_bytes"] = monitor.rss()
        monitor.start()
        try:
            phases = measure(args, url, scripts)
        finally:
            monitor.done.set()
            monitor.join(5)
        logs = [lg for p in phases for lg in p.logs]
        stored = [read_back(url, lg.secret, args.request_timeout) for lg in logs]
        errors = sum(r.outcome == "error" for p in phases for r in p.requests())
        server_tail = log_tail(log, 30) if errors else ""
    times["wall_s"] = time.monotonic() - t_start
    expected = [{"session_id": lg.session_id, "acknowledged": lg.acknowledged, "liked": lg.liked} for lg in logs]
    consistency = check_consistency(expected, stored)
    rows = [summarize(p.name, p.logs, p.t0, p.t1, *monitor.peaks(p.t0, p.t1)) for p in phases[-2:]]
    report(args, url, ready, phases, rows, consistency, times, server_tail)
    if args.json:
        Path(args.json).write_text(json.dumps({
            "args": vars(args), "url": url, "ready": ready, **times, "rows": rows, "consistency": consistency,
            "timings_in_api": any(row[s] is not None for row in rows for s in STAGES),
            "users": [{k: v for k, v in asdict(lg).items() if k != "secret"}
                      for p in phases for lg in p.logs],
        }, indent=2))
    return 1 if errors or consistency["lost"] else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # the server was stopped on the way out
        print("serve_load: interrupted", file=sys.stderr)
        sys.exit(130)
