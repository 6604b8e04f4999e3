"""An HTTP API over :class:`chatrec.recommender.Recommender` (FastAPI, served by uvicorn): ``chatrec serve``.

Endpoints (OpenAPI docs at ``/docs``):

- ``POST /sessions`` -> ``{"id"}``; ``GET /sessions`` (this caller's ids); ``GET|DELETE /sessions/{id}``
- ``POST /sessions/{id}/turns``: JSON ``{"text"}`` or multipart (``text``, optional ``image`` / ``audio`` files)
  -> the answer; ``POST /sessions/{id}/turns/stream``: the same as server-sent events
  (``understood``, ``ranked``, ``reason_token``, ``reason``, ``done``; ``error`` if the turn fails midway)
- ``POST /sessions/{id}/feedback`` ``{"rank", "liked"}``; ``PATCH /sessions/{id}`` ``{"use_profile"}``
- ``GET /profile`` (what is kept about this caller, in lines and as JSON), ``DELETE /profile/lines/{n}``,
  ``DELETE /profile`` (the profile and every session of this caller: nothing is kept)
- ``GET /health`` (the process is up), ``GET /ready`` (the models are loaded)
- ``/ui``: the Gradio UI on the same server (``--no-ui`` leaves it out)

Sessions are owned: each is bound to the caller's ``X-Chatrec-Client`` secret (the store keeps only its hash,
as for the browser UI), or to the API key when no client header is sent. Another caller's session reads as
missing (404). With ``CHATREC_API_KEY`` set, every API route but ``/health`` and ``/ready`` needs
``Authorization: Bearer <key>``. The model answers one turn at a time; when more than ``max_queue`` turns
wait, a turn gets 429 with ``Retry-After``. Errors are JSON ``{"error": "<one line>"}``.
"""

import argparse
import asyncio
import hmac
import json
import logging
import math
import os
import re
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from ..events import Done, Ranked, ReasonDone, ReasonToken, Understood
from ..media.files import MediaError
from ..profiles import Profile
from ..recommender import Recommender, UserInput
from ..session import InputError, Session
from ..store import ConflictError, StoreError

log = logging.getLogger("chatrec.server")

CLIENT_HEADER = "X-Chatrec-Client"
MIN_CLIENT_TOKEN, MAX_CLIENT_TOKEN = 16, 256
DEFAULT_MAX_QUEUE = 8
DEFAULT_MAX_UPLOAD = 20 * 1024 * 1024  # bytes per request body (files included)
MAX_LISTED = 100  # GET /sessions returns at most this many ids, newest first


# ---- request bodies ------------------------------------------------------------------------------


class TurnIn(BaseModel):
    """A text turn (attachments: send multipart/form-data with ``text``, ``image`` and/or ``audio``)."""

    model_config = ConfigDict(extra="forbid")
    text: str = Field("", description="the user's message (at most 4000 characters)")


class FeedbackIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rank: int = Field(description="1-based rank in the session's last list")
    liked: bool


class SessionPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    use_profile: bool = Field(description="false: this session neither uses nor adds to the caller's profile")


# ---- helpers -------------------------------------------------------------------------------------


def _public(message: str) -> str:
    """One line for a client: whitespace collapsed, server folders reduced to the file's base name."""
    message = re.sub(r"(?:[A-Za-z]:)?(?:[/\\][^\s/\\'\"]+)+[/\\]([^\s/\\'\"]+)", r"\1", str(message))
    return " ".join(message.split())[:500]


def _owner_of(token: str) -> str:
    from .gradio_app import owner_of  # the same hash as a browser's secret: the store keeps only this

    return owner_of(token)


class ApiError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


def _error_of(e: BaseException) -> ApiError:
    """A chatrec exception as the HTTP error a client sees."""
    if isinstance(e, ApiError):
        return e
    if isinstance(e, (InputError, MediaError)):
        return ApiError(400, _public(str(e)))
    if isinstance(e, KeyError):
        return ApiError(404, _public(str(e.args[0]) if e.args else "not found"))
    if isinstance(e, ConflictError):
        return ApiError(409, _public(str(e)))
    if isinstance(e, StoreError):  # the database is down or refuses: try again later (another replica may do)
        return ApiError(503, _public(str(e)), {"Retry-After": "5"})
    log.exception("unexpected error in a request", exc_info=e)
    return ApiError(500, f"internal error ({type(e).__name__}); see the server log")


def _json_error(e: ApiError) -> JSONResponse:
    return JSONResponse({"error": e.message}, status_code=e.status, headers=e.headers)


def _session_view(s: Session) -> dict:
    """A session for its owner: turns (attachment paths as base names), liked, rejected, the last list."""
    turns = []
    for t in s.turns:
        d = {"role": t.role, "text": t.text, "ts": t.ts}
        if t.role == "assistant":
            d["items"] = list(t.items or [])
        for k in ("image", "audio"):
            if getattr(t, k, None):
                d[k] = Path(getattr(t, k)).name
        if getattr(t, "transcript", None):
            d["transcript"] = t.transcript
        turns.append(d)
    c = {k: v for k, v in {"genres": s.include_genres, "not_genres": s.exclude_genres,
                           "year_min": s.year_min, "year_max": s.year_max}.items() if v}
    return {"id": s.id, "turns": turns, "liked": list(s.liked), "rejected": list(s.rejected),
            "last_items": list(s.last_items), "constraints": c, "version": s.version, "use_profile": s.use_profile}


def _profile_view(profile: Profile, half_life_days: float) -> dict:
    """A profile for its owner: numbered lines in words, and the whole profile as JSON (without the owner hash)."""
    profile = profile.reweighed(time.time(), half_life_days)
    lines = [{"n": n, "text": text, "kind": e.kind, "value": e.value, "weight": round(e.weight, 4)}
             for n, (text, e) in enumerate(zip(profile.lines(), profile.entries, strict=True), 1)]
    return {"lines": lines, "profile": profile.to_dict(with_owner=False)}


def _sse(event: str, data) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False, default=str)}\n\n".encode()


def _event_of(event) -> tuple[str, dict]:
    if isinstance(event, Understood):
        return "understood", {"understood": event.understood, "notes": list(event.notes)}
    if isinstance(event, Ranked):
        return "ranked", {"recommendations": [r.to_dict() for r in event.recommendations], "seconds": event.seconds}
    if isinstance(event, ReasonToken):
        return "reason_token", {"row": event.row, "text": event.text}
    if isinstance(event, ReasonDone):
        return "reason", {"row": event.row, "recommendation": event.recommendation.to_dict()}
    if isinstance(event, Done):
        return "done", event.answer.to_dict()
    raise TypeError(f"unknown event {event!r}")


# ---- one model at a time, bounded queue ---------------------------------------------------------


class Gate:
    """One turn runs at a time; at most ``max_queue`` more wait; the rest are refused (429)."""

    def __init__(self, max_queue: int = DEFAULT_MAX_QUEUE):
        self.max_queue = max_queue
        self.model = threading.Lock()  # held while a turn runs the model
        self._count = threading.Lock()
        self.pending = 0  # admitted turns: running + waiting
        self.avg_seconds = 5.0  # moving average of a turn's duration, for Retry-After

    def admit(self) -> None:
        with self._count:
            if self.pending > self.max_queue:  # one running and max_queue waiting already
                retry = max(1, math.ceil(self.avg_seconds * self.pending))
                raise ApiError(429, f"busy: {self.pending - 1} requests are waiting; try again in about {retry} s",
                               {"Retry-After": str(retry)})
            self.pending += 1

    def leave(self, seconds: float | None = None) -> None:
        with self._count:
            self.pending -= 1
            if seconds is not None:
                self.avg_seconds = 0.8 * self.avg_seconds + 0.2 * seconds


class State:
    """What the routes share: the recommender (None while models load), the gate and the limits."""

    def __init__(self, rec: Recommender | None, api_key: str | None, max_queue: int, max_upload: int):
        self.rec = rec
        self.api_key = api_key or None
        self.gate = Gate(max_queue)
        self.max_upload = max_upload
        self.load_error: str | None = None


# ---- the app ---------------------------------------------------------------------------------------


def create_app(rec: Recommender | None, *, api_key: str | None = None, max_queue: int = DEFAULT_MAX_QUEUE,
               max_upload_bytes: int = DEFAULT_MAX_UPLOAD, ui: bool = True) -> FastAPI:
    """The HTTP API around ``rec``. ``api_key`` defaults to ``$CHATREC_API_KEY`` (None: no key needed).

    ``rec`` may be None while models load (set ``app.state.chatrec.rec`` later; /ready says 503 until then);
    the Gradio UI (``ui=True``) needs it now and mounts at ``/ui``.
    """
    if api_key is None:
        api_key = os.environ.get("CHATREC_API_KEY") or None
    st = State(rec, api_key, max_queue, max_upload_bytes)
    app = FastAPI(title="chatrec", version="1",
                  description="Conversational recommendations over HTTP. Send an `X-Chatrec-Client` header "
                              "(a secret of 16-256 characters) to own your sessions"
                              + ("; every call needs `Authorization: Bearer <CHATREC_API_KEY>`." if api_key else "."))
    app.state.chatrec = st

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, e: ApiError):
        return _json_error(e)

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, e: HTTPException):
        return JSONResponse({"error": _public(str(e.detail))}, status_code=e.status_code,
                            headers=getattr(e, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, e: RequestValidationError):
        return JSONResponse({"error": _validation_line(e.errors())}, status_code=422)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, e: Exception):
        return _json_error(_error_of(e))

    # ---- dependencies ----

    def caller(request: Request) -> str:
        """The owner hash of this caller; checks the API key when one is set."""
        bearer = None
        auth = request.headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            bearer = auth[7:].strip()
        if st.api_key and not (bearer and hmac.compare_digest(bearer.encode(), st.api_key.encode())):
            raise ApiError(401, "missing or wrong API key: send Authorization: Bearer <CHATREC_API_KEY>",
                           {"WWW-Authenticate": "Bearer"})
        client = request.headers.get(CLIENT_HEADER)
        if client is not None:
            if not MIN_CLIENT_TOKEN <= len(client) <= MAX_CLIENT_TOKEN:
                raise ApiError(400, f"{CLIENT_HEADER} must be a secret of {MIN_CLIENT_TOKEN} to {MAX_CLIENT_TOKEN} "
                                    "characters")
            return _owner_of("client:" + client)
        if st.api_key:
            return _owner_of("apikey:" + st.api_key)
        raise ApiError(401, f"send an {CLIENT_HEADER} header (a secret of {MIN_CLIENT_TOKEN}+ characters) "
                            "to own your sessions")

    def recommender() -> Recommender:
        if st.rec is None:
            raise ApiError(503, "models are still loading; see GET /ready", {"Retry-After": "10"})
        return st.rec

    Owner = Annotated[str, Depends(caller)]  # noqa: N806 - type aliases for the routes
    Rec = Annotated[Recommender, Depends(recommender)]  # noqa: N806

    def owned(rec: Recommender, sid: str, owner: str) -> Session:
        try:
            session = rec.store.load(sid)
        except KeyError:
            session = None
        if session is None or session.owner is None or not hmac.compare_digest(session.owner, owner):
            raise ApiError(404, f"no saved session {sid[:64]!r}")  # same words either way: ids are not probed
        return session

    # ---- routes ----

    @app.get("/health", tags=["status"])
    def health() -> dict:
        """The process is up."""
        return {"status": "ok"}

    @app.get("/ready", tags=["status"])
    def ready():
        """The models are loaded (503 until they are)."""
        if st.rec is None:
            body = {"ready": False, "error": st.load_error} if st.load_error else {"ready": False}
            return JSONResponse(body, status_code=503, headers={"Retry-After": "10"})
        r = st.rec
        return {"ready": True, "llm": r.lm is not None, "catalog_items": len(r.catalog),
                "adapter": r.adapter.note(), "queue": {"pending": st.gate.pending, "max": st.gate.max_queue}}

    @app.post("/sessions", status_code=201, tags=["sessions"])
    def create_session(owner: Owner, rec: Rec) -> dict:
        """Start a conversation owned by this caller."""
        s = rec.store.save(Session(owner=owner))
        return {"id": s.id}

    @app.get("/sessions", tags=["sessions"])
    def list_sessions(owner: Owner, rec: Rec) -> dict:
        """This caller's session ids, most recently updated first."""
        return {"sessions": rec.store.owned(owner, MAX_LISTED)}

    @app.get("/sessions/{sid}", tags=["sessions"])
    def get_session(sid: str, owner: Owner, rec: Rec) -> dict:
        """The session: turns, liked and rejected item ids, the last list."""
        return _session_view(owned(rec, sid, owner))

    @app.delete("/sessions/{sid}", status_code=204, tags=["sessions"])
    def delete_session(sid: str, owner: Owner, rec: Rec):
        owned(rec, sid, owner)
        rec.delete_session(sid, owner)
        return Response(status_code=204)

    @app.post("/sessions/{sid}/feedback", tags=["sessions"])
    def feedback(sid: str, body: FeedbackIn, owner: Owner,
                 rec: Rec) -> dict:
        """Like (``liked: true``) or reject an item of the last list by its 1-based rank; saved at once."""
        session = owned(rec, sid, owner)
        try:
            return _session_view(rec.feedback(session, body.rank, liked=body.liked))
        except (InputError, StoreError) as e:
            raise _error_of(e) from None

    @app.patch("/sessions/{sid}", tags=["sessions"])
    def patch_session(sid: str, body: SessionPatch, owner: Owner, rec: Rec) -> dict:
        """Switch the caller's profile off (or on) for this session; saved at once."""
        session = owned(rec, sid, owner)
        new = session.copy()
        new.use_profile = body.use_profile
        try:
            new = rec.store.save(new, base=session)
        except StoreError as e:
            raise _error_of(e) from None
        rec.update_profile(new)
        return _session_view(new)

    # ---- the caller's profile ----

    def profile_of(rec: Recommender, owner: str) -> Profile:
        profile = rec.store.load_profile(owner)
        return Profile(owner) if profile is None else profile

    @app.get("/profile", tags=["profile"])
    def get_profile(owner: Owner, rec: Rec) -> dict:
        """What chatrec keeps about this caller across sessions: numbered lines, and the profile as JSON."""
        return _profile_view(profile_of(rec, owner), rec.cfg.profile.half_life_days)

    @app.delete("/profile/lines/{n}", tags=["profile"])
    def delete_profile_line(n: int, owner: Owner, rec: Rec) -> dict:
        """Remove line ``n`` (1-based, as ``GET /profile`` numbers them) until a later session says it again."""
        def remove(profile: Profile) -> Profile:
            profile.remove(n)
            return profile

        try:
            profile = rec.store.update_profile(owner, remove)
        except IndexError as e:
            raise ApiError(404, _public(str(e.args[0]))) from None
        return _profile_view(profile, rec.cfg.profile.half_life_days)

    @app.delete("/profile", tags=["profile"])
    def forget(owner: Owner, rec: Rec) -> dict:
        """Delete this caller's profile and every session of theirs; nothing of them is left in the store."""
        with st.gate.model:  # no turn of theirs is half-way and saves its session again afterwards
            had, n = rec.forget(owner)
        return {"deleted_profile": had, "deleted_sessions": n}

    turn_body = {"requestBody": {"required": True, "content": {
        "application/json": {"schema": TurnIn.model_json_schema()},
        "multipart/form-data": {"schema": {"type": "object", "additionalProperties": False, "properties": {
            "text": {"type": "string"},
            "image": {"type": "string", "format": "binary"},
            "audio": {"type": "string", "format": "binary"}}}}}}}

    async def admitted_turn(request: Request, rec: Recommender, sid: str, owner: str):
        """The turn's input (uploads saved to a temp folder), once the session is the caller's and the queue
        has room; otherwise the 4xx, with the uploads removed."""
        tmp, user_input = await _read_turn(request, st.max_upload)
        try:
            owned(rec, sid, owner)
            st.gate.admit()
        except BaseException:
            _cleanup(tmp)
            raise
        return tmp, user_input

    @app.post("/sessions/{sid}/turns", tags=["turns"], openapi_extra=turn_body)
    async def turn(sid: str, request: Request, owner: Owner,
                   rec: Rec):
        """One turn; returns the answer (ranked list with reasons, notes, what was understood)."""
        tmp, user_input = await admitted_turn(request, rec, sid, owner)

        def run() -> dict:
            answer = None
            for event in _turn_events(st, rec, sid, owner, user_input, tmp):
                if isinstance(event, Done):
                    answer = event.answer
            return answer.to_dict()

        try:
            return await run_in_threadpool(run)
        except Exception as e:  # noqa: BLE001 - every failure becomes one JSON line
            raise _error_of(e) from None

    @app.post("/sessions/{sid}/turns/stream", tags=["turns"], openapi_extra=turn_body,
              response_class=StreamingResponse,
              responses={200: {"content": {"text/event-stream": {}},
                               "description": "events: understood, ranked, reason_token, reason, done (or error)"}})
    async def turn_stream(sid: str, request: Request, owner: Owner,
                          rec: Rec):
        """One turn as server-sent events. A turn refused before it starts gets a 4xx JSON error instead."""
        tmp, user_input = await admitted_turn(request, rec, sid, owner)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()
        end = object()

        def pump():
            try:
                for event in _turn_events(st, rec, sid, owner, user_input, tmp):
                    loop.call_soon_threadsafe(queue.put_nowait, event)
            except BaseException as e:  # noqa: BLE001 - handed to the response
                loop.call_soon_threadsafe(queue.put_nowait, e)
            loop.call_soon_threadsafe(queue.put_nowait, end)

        threading.Thread(target=pump, name=f"chatrec-turn-{sid[:8]}", daemon=True).start()
        first = await queue.get()
        if isinstance(first, BaseException):  # refused before the first event: nothing changed
            return _json_error(_error_of(first))

        async def events():
            item = first
            while item is not end:
                if isinstance(item, BaseException):
                    yield _sse("error", {"error": _error_of(item).message})
                else:
                    yield _sse(*_event_of(item))
                item = await queue.get()

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    if ui:
        if rec is None:
            raise ValueError("the Gradio UI needs a loaded Recommender (or pass ui=False)")
        import gradio as gr

        from .gradio_app import build_app

        gr.mount_gradio_app(app, build_app(rec), path="/ui", max_file_size=max_upload_bytes)
    return app


def _validation_line(errors) -> str:
    parts = []
    for err in errors[:3]:
        where = ".".join(str(x) for x in err.get("loc", ()) if x != "body")
        parts.append(f"{where}: {err.get('msg', 'invalid')}" if where else str(err.get("msg", "invalid")))
    return _public("; ".join(parts) or "invalid request")


def _cleanup(tmp: str | None) -> None:
    if tmp:
        shutil.rmtree(tmp, ignore_errors=True)


def _turn_events(st: State, rec: Recommender, sid: str, owner: str, user_input: UserInput,
                 tmp: str | None) -> Iterator:
    """Run one admitted turn under the model lock; always releases the gate and deletes the uploads."""
    t0 = None
    try:
        with st.gate.model:
            t0 = time.perf_counter()
            session = rec.store.load(sid)  # again, now that it is this turn's go: another turn may have saved
            if session.owner != owner:
                raise ApiError(404, f"no saved session {sid[:64]!r}")
            yield from rec.stream(session, user_input)
    finally:
        st.gate.leave(time.perf_counter() - t0 if t0 is not None else None)
        _cleanup(tmp)


_SAFE_NAME = re.compile(r"[^A-Za-z0-9._ -]+")


def _safe_name(filename: str | None, default: str) -> str:
    name = _SAFE_NAME.sub("_", Path((filename or "").replace("\\", "/")).name).strip(" .")
    return name[:100] or default


async def _read_body(request: Request, limit: int) -> bytes:
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > limit:
        raise ApiError(413, f"request too large ({int(length)} bytes; the limit is {limit // (1024 * 1024)} MB)")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"request too large (over {limit // (1024 * 1024)} MB)")
        chunks.append(chunk)
    return b"".join(chunks)


async def _read_turn(request: Request, limit: int) -> tuple[str | None, UserInput]:
    """The turn a request sends: JSON ``{"text"}`` or multipart with ``text``, ``image``, ``audio``.

    Uploads are written to a fresh temp folder under their (sanitised) base names, so chatrec's
    messages name them as the client did; the caller deletes the folder after the turn.
    """
    body = await _read_body(request, limit)
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype in ("multipart/form-data", "application/x-www-form-urlencoded"):
        async def replay():
            return {"type": "http.request", "body": body, "more_body": False}

        try:
            form = await Request(request.scope, replay).form(max_files=2, max_fields=3)
        except HTTPException:
            raise
        except Exception as e:  # noqa: BLE001 - a malformed multipart body
            raise ApiError(400, f"cannot read the form: {_public(str(e))}") from None
        unknown = sorted(set(form.keys()) - {"text", "image", "audio"})
        if unknown:
            raise ApiError(422, f"unknown form fields: {', '.join(unknown)} (allowed: text, image, audio)")
        text = form.get("text") or ""
        if not isinstance(text, str):
            raise ApiError(422, "text must be a form field, not a file")
        tmp, paths = None, {}
        try:
            for kind in ("image", "audio"):
                f = form.get(kind)
                if f is None or isinstance(f, str):
                    if f:
                        raise ApiError(422, f"{kind} must be a file upload")
                    continue
                if tmp is None:
                    tmp = tempfile.mkdtemp(prefix="chatrec-upload-")
                path = Path(tmp) / kind / _safe_name(f.filename, kind)
                path.parent.mkdir()
                path.write_bytes(await f.read())
                paths[kind] = str(path)
        except BaseException:
            _cleanup(tmp)
            raise
        finally:
            await form.close()
        return tmp, UserInput(text, paths.get("image"), paths.get("audio"))
    if ctype not in ("application/json", ""):
        raise ApiError(415, f"send application/json or multipart/form-data, not {_public(ctype)[:80]}")
    try:
        parsed = TurnIn.model_validate_json(body or b"{}")
    except ValidationError as e:
        raise ApiError(422, _validation_line(e.errors())) from None
    return None, UserInput(parsed.text)


# ---- entry point -----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    import uvicorn

    from .args import add_common_args, add_server_args, build_config

    ap = argparse.ArgumentParser(prog="chatrec serve", description="Start the chatrec HTTP API (docs at /docs).")
    add_common_args(ap)
    add_server_args(ap, port=8000)
    ap.add_argument("--no-ui", action="store_true", help="do not mount the Gradio UI at /ui")
    ap.add_argument("--max-queue", type=int, default=DEFAULT_MAX_QUEUE,
                    help=f"turns that may wait for the model before 429 (default {DEFAULT_MAX_QUEUE})")
    ap.add_argument("--max-upload-mb", type=float, default=DEFAULT_MAX_UPLOAD / 2**20,
                    help="largest request body, files included (default 20)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    if args.max_queue < 0:
        print("chatrec serve: error: --max-queue must be 0 or more", file=sys.stderr)
        return 2
    cfg = build_config(args)
    if args.host not in ("127.0.0.1", "localhost", "::1") and not os.environ.get("CHATREC_API_KEY"):
        print(f"chatrec serve: warning: listening on {args.host} without CHATREC_API_KEY: anyone who can reach "
              "this port can use the API", file=sys.stderr)
    limits = dict(max_queue=args.max_queue, max_upload_bytes=int(args.max_upload_mb * 2**20))

    def load() -> Recommender:
        t0 = time.perf_counter()
        rec = Recommender.from_config(cfg, progress=True)
        print(f"Models ready in {time.perf_counter() - t0:.0f} s. {rec.adapter.note()}", file=sys.stderr)
        return rec

    print("Loading models (the first run converts and caches the LLM; up to a minute)…", file=sys.stderr)
    if args.no_ui:  # serve at once (/health answers, /ready says 503) and load in the background
        app = create_app(None, ui=False, **limits)

        def background():
            try:
                app.state.chatrec.rec = load()
            except Exception as e:  # noqa: BLE001 - reported by /ready and on stderr
                app.state.chatrec.load_error = _public(str(e))
                print(f"chatrec serve: error: {app.state.chatrec.load_error}", file=sys.stderr)

        threading.Thread(target=background, name="chatrec-load", daemon=True).start()
    else:  # the UI is built around loaded models
        app = create_app(load(), ui=True, **limits)
    print(f"chatrec API on http://{args.host}:{args.port} (docs: /docs"
          + ("" if args.no_ui else ", UI: /ui") + ")", file=sys.stderr)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info" if args.verbose else "warning")
    return 0


if __name__ == "__main__":
    sys.exit(main())
