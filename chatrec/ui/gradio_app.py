"""A thin Gradio UI over :class:`chatrec.recommender.Recommender`: chat, ranked cards, feedback buttons.

Every event loads the browser session's Session from the recommender's store by id (held in a
gr.State), so two tabs never share a conversation and a restarted server resumes any of them.
Answers stream from ``Recommender.stream``: the ranked list as soon as it is ranked, then each
reason as its tokens arrive. One card slot per ``ranking.top_k``.
"""

import argparse
import base64
import functools
import hashlib
import html
import inspect
import json
import logging
import os
import re
import secrets
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from ..catalog import media_kind_ok, media_path_ok
from ..events import Done, Ranked, ReasonDone, ReasonToken
from ..media.files import MediaError
from ..ranking import Recommendation
from ..recommender import Recommender, UserInput
from ..session import InputError, Session
from ..store import StoreError
from .uploads import UploadedAudio, UploadedImage

log = logging.getLogger("chatrec.ui")

UPDATE_EVERY = 0.05  # seconds between UI updates while reason tokens stream (coalesces token bursts)
CARD_CSS = """
background: var(--block-background-fill);
.card { display: flex; gap: 12px; padding: 10px 12px; font-size: 14px; line-height: 1.4; }
.card .poster { width: 64px; height: 96px; object-fit: cover; border-radius: 6px; flex: none; }
.card .body { flex: 1; min-width: 0; }
.card .head { display: flex; align-items: baseline; gap: 8px; }
.card .rank { background: var(--color-accent); color: white; border-radius: 999px; min-width: 22px;
  text-align: center; font-weight: 700; font-size: 12px; padding: 1px 6px; }
.card .title { font-weight: 700; font-size: 15px; }
.card .year, .card .meta, .card .src { color: var(--body-text-color-subdued); }
.card .meta { font-size: 12.5px; margin: 2px 0 6px; }
.card .bar { height: 6px; background: var(--neutral-200); border-radius: 3px; overflow: hidden; }
.card .bar > div { height: 100%; background: var(--color-accent); }
.card .reason { margin: 6px 0 0; }
.card .pending { color: var(--body-text-color-subdued); font-style: italic; }
.card .src { font-size: 11px; margin-left: 4px; }
"""


# ---- rendering -------------------------------------------------------------------------------


_IMAGE_MIME = ((b"\x89PNG", "image/png"), (b"\xff\xd8\xff", "image/jpeg"), (b"GIF8", "image/gif"), (b"BM", "image/bmp"))


def _image_src(path: str | None, media_root: Path | None = None) -> str | None:
    """A URL the browser can load: http(s) as is, a small local image inlined as a data URI.

    Catalog loading already refuses paths outside the catalog's folder; this second check keeps any
    other server file (a catalog built in memory, a symlink swapped later) out of the page: the file
    must lie under ``media_root`` and be an image by its bytes, whatever its name says.
    """
    if not path:
        return None
    if path.startswith(("http://", "https://")):
        return path
    p = Path(path)
    if media_root is None or not media_path_ok(p, media_root) or not p.is_file() or p.stat().st_size > 2_000_000:
        return None
    if not media_kind_ok(p, "image"):
        return None
    data = p.read_bytes()
    mime = next((m for magic, m in _IMAGE_MIME if data.startswith(magic)), "image/webp")  # WebP: RIFF....WEBP
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def _public(message: str) -> str:
    """An error message for the page: server folders (upload temp paths) reduced to the file's name."""
    return re.sub(r"(?:[A-Za-z]:)?(?:[/\\][^\s/\\'\"]+)+[/\\]([^\s/\\'\"]+)", r"\1", message)


def owner_of(token: str | None) -> str | None:
    """What a session stores about its browser: a hash of the browser's secret, never the secret."""
    return hashlib.sha256(token.encode()).hexdigest()[:32] if token else None


def card_html(rec: Recommendation, bar: float, reason: str | None = None, media_root: Path | None = None) -> str:
    """One ranked item; ``bar`` in [0, 1] is its score normalised within the list.

    ``reason`` overrides rec.reason while tokens stream in ("" = not started yet).
    """
    e = html.escape
    a = rec.attributes
    meta = [" · ".join(a.get("genres", [])[:3])]
    if a.get("director"):
        meta.append("dir. " + ", ".join(a["director"][:2]))
    if a.get("cast"):
        meta.append(", ".join(a["cast"][:3]))
    src = _image_src(rec.image, media_root)
    text = rec.reason if reason is None else reason
    if reason is None and rec.reason:
        tag = "checked model reason" if rec.reason_source == "model" else "from catalog facts"
        body = f'<p class="reason">{e(text)}<span class="src">({tag})</span></p>'
    else:
        body = f'<p class="reason pending">{e(text) or "writing a reason…"}</p>'
    return (
        f'<div class="card" data-item="{e(rec.item_id)}">'
        + (f'<img class="poster" src="{e(src)}" alt="{e(rec.title)}">' if src else "")
        + f'<div class="body"><div class="head"><span class="rank">{rec.rank}</span>'
        f'<span class="title">{e(rec.title)}</span>'
        + (f'<span class="year">({rec.year})</span>' if rec.year else "")
        + f'</div><div class="meta">{e(" — ".join(m for m in meta if m))}</div>'
        f'<div class="bar" title="score {rec.score:.2f}"><div style="width:{100 * bar:.0f}%"></div></div>'
        f"{body}</div></div>"
    )


def cards_html(recs: list[Recommendation], live: dict[int, str] | None = None, media_root: Path | None = None) -> list[str]:
    """Cards for a ranked list; ``live`` maps row -> reason text streamed so far (None = final)."""
    scores = [r.score for r in recs]
    lo, hi = min(scores, default=0.0), max(scores, default=0.0)
    bars = [0.15 + 0.85 * ((s - lo) / (hi - lo) if hi > lo else 1.0) for s in scores]
    return [card_html(r, b, None if live is None else live.get(i, ""), media_root)
            for i, (r, b) in enumerate(zip(recs, bars, strict=True))]


def _list_md(recs: list[Recommendation]) -> str:
    if not recs:
        return ""
    return "Here are my picks:\n" + "\n".join(
        f"{r.rank}. **{html.escape(r.title)}**" + (f" ({r.year})" if r.year else "") for r in recs)


def _understood_md(understood: dict, notes: list[str]) -> str:
    lines = []
    if understood.get("transcript"):
        lines.append(f"🎤 Heard: “{html.escape(understood['transcript'])}”")
    if understood.get("image_neighbours"):
        lines.append("🖼️ Your image looks like: " + ", ".join(html.escape(str(t)) for t in understood["image_neighbours"]))
    c = understood.get("constraints") or {}
    parts = [f"genres {', '.join(c['genres'])}" if c.get("genres") else "",
             ", ".join("no " + g for g in c.get("not_genres", [])),
             f"years {c.get('year_min') or '…'}–{c.get('year_max') or '…'}" if c.get("year_min") or c.get("year_max") else ""]
    if any(parts):
        lines.append("Understood: " + "; ".join(html.escape(p) for p in parts if p))
    lines += [f"_Note: {html.escape(n)}_" for n in notes]
    return "\n\n".join(lines)


def _user_md(text: str, image: str | None, audio: str | None) -> str:
    parts = [html.escape(text.strip())] if text.strip() else []
    parts += [f"🖼️ _{html.escape(Path(image).name)}_"] if image else []
    parts += [f"🎤 _{html.escape(Path(audio).name)}_"] if audio else []
    return "\n\n".join(parts) or "_(empty message)_"


def history_of(session: Session) -> list[dict]:
    """Chat messages rebuilt from a stored session (for resuming)."""
    return [{"role": t.role, "content": _user_md(t.text, t.image, t.audio) if t.role == "user" else html.escape(t.text)}
            for t in session.turns]


# ---- handlers --------------------------------------------------------------------------------


@dataclass
class View:
    """What one event shows; flattened onto the output components by :func:`build_app`."""

    sid: str | None  # session id; None = a new conversation, saved with its first message
    history: list[dict]  # chat messages
    status: str
    cards: list[str] | None = None  # card HTML per rank; None leaves the cards as they are
    clear_inputs: bool = False


class ChatUI:
    """The event handlers, bound to one Recommender; plain functions so tests can call them."""

    def __init__(self, rec: Recommender):
        self.rec = rec
        self.media_root = rec.catalog.media_root  # posters come from the catalog's folder only (None: no local files)

    def _session(self, sid: str | None, token: str | None = None, check: bool = True) -> Session:
        """Session ``sid`` (a new one, bound to ``token``'s browser, when None).

        ``token`` is the browser's secret (kept in its local storage); sessions store only its hash.
        Ids a visitor supplies (the resume box, ``?session=``) are checked (``check``): another browser's
        session reads as missing. The tab's current id lives in a gr.State, which stays on the server and
        is set only by these handlers after creating or checking a session, so turns and buttons on it
        need no check (and a page whose first message beat its load event keeps working).
        """
        if not sid:
            return Session(owner=owner_of(token))
        session = self.rec.store.load(sid)
        if check and session.owner != owner_of(token):
            raise KeyError(f"no saved session {sid!r} for this browser")  # same words as a missing one: ids are not probed
        return session

    def _cards(self, recs, live=None) -> list[str]:
        return cards_html(recs, live, self.media_root)

    def _turn(self, sid, history, shown: str, text: str, image=None, audio=None, token=None):
        """One model turn: stream the list, then the reasons; on bad input, say why and change nothing.

        ``sid`` is the tab's (see :meth:`_session`); a new conversation is bound to ``token``'s browser.
        """
        base = [*history, {"role": "user", "content": shown}]
        try:
            session = self._session(sid, token, check=False)
        except (KeyError, StoreError) as e:
            msg = html.escape(_public(str(e.args[0] if isinstance(e, KeyError) else e)))
            yield View(sid, [*base, {"role": "assistant", "content": f"⚠️ {msg}"}], f"⚠️ {msg}")
            return
        yield View(sid, base, "⏳ Finding candidates and ranking…", clear_inputs=True)
        recs: list[Recommendation] = []
        live: dict[int, str] = {}
        t_ranked, last_update = 0.0, 0.0
        try:
            for event in self.rec.stream(session, UserInput(text, image, audio)):
                if isinstance(event, Ranked):
                    recs, t_ranked = list(event.recommendations), event.seconds
                elif isinstance(event, ReasonToken):
                    live[event.row] = live.get(event.row, "") + event.text
                elif isinstance(event, ReasonDone):
                    recs[event.row] = event.recommendation
                elif isinstance(event, Done):
                    yield self._final(base, event.answer)
                    return
                if recs and time.perf_counter() - last_update >= UPDATE_EVERY:
                    last_update = time.perf_counter()
                    yield View(sid, [*base, {"role": "assistant", "content": _list_md(recs)}],
                               f"✍️ Writing reasons… (ranked in {t_ranked:.1f} s)", self._cards(recs, live))
        except (InputError, MediaError, StoreError) as e:
            said = html.escape(_public(str(e)))
            msg = f"⚠️ {said}. Nothing was changed; please try again."
            yield View(sid, [*base, {"role": "assistant", "content": msg}], f"⚠️ {said}")

    def _final(self, base: list[dict], a) -> View:
        notes = [n for n in a.notes if n != self.rec.adapter.note()]  # already in the side panel
        reply = "\n\n".join(p for p in (_understood_md(a.understood, notes), _list_md(a.recommendations)) if p)
        t = a.timings
        status = f"✅ {len(a.recommendations)} picks in {t.get('total', 0):.1f} s" + (
            f" (ranked after {t['ranked']:.1f} s)" if "ranked" in t else "")
        return View(a.session.id, [*base, {"role": "assistant", "content": reply or "…"}], status,
                    self._cards(a.recommendations))

    def send(self, sid, history, text, image=None, audio=None, token=None):
        yield from self._turn(sid, history, _user_md(text or "", image, audio), text or "", image, audio, token)

    def act(self, kind: str, rank: int, sid, history, token=None):
        """A card button: "like" (no new list), "dislike" or "more" (feedback plus a new list)."""
        try:
            session = self._session(sid, token, check=False)
            title = self.rec.catalog.get(session.item_at(rank)).title
            if kind == "like":
                session = self.rec.feedback(session, rank, liked=True)
        except (InputError, KeyError, StoreError) as e:
            yield View(sid, history, f"⚠️ {html.escape(_public(str(e.args[0] if isinstance(e, KeyError) else e)))}")
            return
        if kind == "like":
            msg = f"Noted: you like **{html.escape(title)}**. Later picks will lean that way."
            yield View(session.id, [*history, {"role": "user", "content": f"👍 #{rank} {html.escape(title)}"},
                                    {"role": "assistant", "content": msg}], f"👍 liked {html.escape(title)}")
        elif kind == "dislike":
            yield from self._turn(sid, history, f"👎 Not #{rank} ({html.escape(title)})", f"not #{rank}", token=token)
        elif kind == "more":
            yield from self._turn(sid, history, f"➕ More like #{rank} ({html.escape(title)})", f"more like #{rank}",
                                  token=token)
        else:
            raise ValueError(f"unknown action {kind!r}; valid: like, dislike, more")

    def reset(self) -> View:
        return View(None, [], "New conversation.", [])

    def resume(self, sid: str, token: str | None = None) -> View:
        """Continue a session of this browser by id (a session of another browser reads as unknown)."""
        sid = (sid or "").strip()
        try:
            session = self._session(sid, token) if sid else None
        except (KeyError, StoreError):
            session = None
        if session is None:
            return View(None, [], f"⚠️ no saved session {html.escape(sid[:64])!r} for this browser; started a new one", [])
        return View(session.id, history_of(session), f"Resumed session {session.id} ({len(session.turns)} turns).", [])

    def on_load(self, token: str | None = None, request: gr.Request = None) -> View:
        """Page load: ``?session=ID`` resumes that session (this browser's only), otherwise a new conversation."""
        sid = request.query_params.get("session") if request else None
        return self.resume(sid, token) if sid else self.reset()

    def export(self, sid, token: str | None = None) -> str | None:
        """Path of a JSON file with the tab's whole session, for gr.File."""
        if not sid:
            return None
        try:
            data = self._session(sid, token, check=False).to_dict()  # the tab's own session
        except (KeyError, StoreError):
            return None
        data.pop("owner", None)  # the hash of this browser's secret is nobody's business
        path = Path(tempfile.mkdtemp(prefix="chatrec-")) / f"chatrec-session-{sid}.json"
        path.write_text(json.dumps(data, indent=2, ensure_ascii=False), encoding="utf-8")
        return str(path)

    def profile_md(self, token: str | None = None) -> str:
        """The "What I know about you" panel: this browser's profile, one numbered line per entry."""
        owner = owner_of(token)
        profile = self.rec.store.load_profile(owner) if owner else None
        if not profile:
            return "_Nothing yet. What you like, turn down and ask for is kept here across conversations._"
        return "\n".join(f"{n}. {html.escape(line)}" for n, line in enumerate(profile.lines(), 1))

    def forget(self, token: str | None = None) -> View:
        """Delete this browser's profile and every conversation of it; nothing of them is kept."""
        owner = owner_of(token)
        if owner is None:
            return View(None, [], "Nothing to forget.", [])
        had, n = self.rec.forget(owner)
        said = f"{n} conversation{'' if n == 1 else 's'}"
        return View(None, [], f"Forgotten: {'your profile and ' if had else ''}{said} deleted.", [])


# ---- layout ----------------------------------------------------------------------------------


def _panel_md(rec: Recommender) -> str:
    cfg = rec.cfg
    if rec.lm is None:
        model = "retrieval only (no LLM loaded)"
    else:
        model = html.escape(rec.adapter.note())
    return (f"**Catalog:** {html.escape(Path(rec.catalog.source).name)} ({len(rec.catalog)} items)\n\n"
            f"**Model:** {model}\n\n"
            f"**Retrieval:** {cfg.retrieval.n_candidates} candidates → top {cfg.ranking.top_k}")


def ui_secret(home: Path) -> str:
    """The key Gradio encrypts the browser's secret with in its local storage. Kept in the data folder
    (mode 600): with Gradio's default, a random key per start, a restarted server could not read what
    browsers stored, and every visitor would lose their conversations."""
    path = home / "ui-secret"
    try:
        return path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        home.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(32)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process started at the same moment and wrote it
            return path.read_text(encoding="utf-8").strip()
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(key)
        return key


def browser_token(token: str | None) -> str:
    """This browser's secret: kept when it has one, else 256 fresh random bits."""
    return token if token and len(token) >= 32 else secrets.token_urlsafe(32)


def _session_md(sid: str | None) -> str:
    return f"**Session:** `{sid}`" if sid else "**Session:** new (saved with the first message)"


def build_app(rec: Recommender) -> gr.Blocks:
    ui = ChatUI(rec)
    slots_n = rec.cfg.ranking.top_k  # one card per shown item
    with gr.Blocks(title="chatrec") as demo:
        sid = gr.State(None)
        # The browser's secret, kept in its local storage: sessions are bound to it (see ChatUI._session).
        token = gr.BrowserState("", storage_key="chatrec-browser", secret=ui_secret(rec.cfg.home()))
        with gr.Sidebar(open=True):
            gr.Markdown("### chatrec")
            gr.Markdown(_panel_md(rec), elem_id="panel")
            session_md = gr.Markdown(_session_md(None), elem_id="session-id")
            reset_btn = gr.Button("New conversation", elem_id="reset", size="sm")
            export_btn = gr.Button("Export conversation (JSON)", elem_id="export", size="sm")
            export_file = gr.File(label="Download", elem_id="export-file", interactive=False, visible=False)
            resume_box = gr.Textbox(label="Resume a session by id", placeholder="session id", elem_id="resume")
            resume_btn = gr.Button("Resume", elem_id="resume-btn", size="sm")
            gr.Markdown("### What I know about you")
            profile_md = gr.Markdown(ui.profile_md(None), elem_id="profile")
            forget_btn = gr.Button("Forget me (profile and all conversations)", elem_id="forget", size="sm",
                                   variant="stop")
        gr.Markdown("## 🎬 chatrec — tell me what you feel like watching")
        with gr.Row(equal_height=False):
            with gr.Column(scale=5):
                chat = gr.Chatbot(label="Conversation", height=430, elem_id="chat", buttons=[])
                status = gr.Markdown("", elem_id="status")
                with gr.Row():
                    msg = gr.Textbox(placeholder="e.g. a funny space adventure, nothing too long", show_label=False,
                                     scale=5, elem_id="msg", max_lines=4)
                    send_btn = gr.Button("Send", variant="primary", scale=1, min_width=80, elem_id="send")
                with gr.Row():
                    image = UploadedImage(type="filepath", label="Image (optional)", sources=["upload"], height=140,
                                          elem_id="image")
                    audio = UploadedAudio(sources=["upload", "microphone"], type="filepath",
                                          label="Audio (optional)", elem_id="audio")
            with gr.Column(scale=4):
                gr.Markdown("### Recommendations")
                cards, slots, buttons = [], [], []
                for n in range(1, slots_n + 1):
                    with gr.Group(visible=False, elem_id=f"slot-{n}") as slot:
                        cards.append(gr.HTML(elem_id=f"card-{n}", css_template=CARD_CSS, js_on_load=None))
                        with gr.Row():
                            buttons += [(gr.Button(label, size="sm", elem_id=f"{kind}-{n}", min_width=60), kind, n)
                                        for kind, label in (("like", f"👍 {n}"), ("dislike", f"👎 {n}"),
                                                            ("more", f"More like {n}"))]
                    slots.append(slot)

        outputs = [sid, chat, status, session_md, *cards, *slots, msg, image, audio]

        def flat(v: View) -> tuple:
            shown = v.cards if v.cards is None else [*v.cards, *[None] * slots_n][:slots_n]
            card_vals = [gr.skip()] * slots_n if shown is None else [h or "" for h in shown]
            slot_vals = [gr.skip()] * slots_n if shown is None else [gr.update(visible=bool(h)) for h in shown]
            inputs = ["", None, None] if v.clear_inputs else [gr.skip()] * 3
            return (v.sid, v.history, v.status, _session_md(v.sid), *card_vals, *slot_vals, *inputs)

        def wire(fn):
            """Adapt a handler returning/yielding View to the flat outputs, keeping its signature."""
            if inspect.isgeneratorfunction(fn):
                @functools.wraps(fn)
                def gen(*args, **kw):
                    for v in fn(*args, **kw):
                        yield flat(v)
                return gen
            return functools.wraps(fn)(lambda *args, **kw: flat(fn(*args, **kw)))

        turn_inputs = [sid, chat, msg, image, audio, token]
        refresh = dict(fn=ui.profile_md, inputs=[token], outputs=[profile_md], concurrency_limit=None)
        send_btn.click(wire(ui.send), turn_inputs, outputs).then(**refresh)
        msg.submit(wire(ui.send), turn_inputs, outputs).then(**refresh)
        for btn, kind, n in buttons:
            btn.click(wire(functools.partial(ui.act, kind, n)), [sid, chat, token], outputs).then(**refresh)
        forget_btn.click(wire(ui.forget), [token], outputs).then(**refresh)
        reset_btn.click(wire(ui.reset), None, outputs, concurrency_limit=None)
        resume_btn.click(wire(ui.resume), [resume_box, token], outputs, concurrency_limit=None)
        resume_box.submit(wire(ui.resume), [resume_box, token], outputs, concurrency_limit=None)
        export_btn.click(lambda s, t: gr.update(value=(p := ui.export(s, t)), visible=bool(p)), [sid, token],
                         [export_file], concurrency_limit=None)
        demo.load(browser_token, [token], [token], concurrency_limit=None).then(
            wire(ui.on_load), [token], outputs, concurrency_limit=None).then(**refresh)
    demo.queue(default_concurrency_limit=1)  # 2 CPU cores: one model call at a time
    demo.ui = ui  # for tests and embedding
    return demo


# ---- entry point -----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    from .args import add_common_args, add_server_args, build_config

    ap = argparse.ArgumentParser(prog="chatrec ui", description="Start the chatrec web UI.")
    add_common_args(ap)
    add_server_args(ap, port=7860)
    ap.add_argument("--share", action="store_true", help="open a public Gradio share link (off by default)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    cfg = build_config(args)
    auth = os.environ.get("CHATREC_UI_AUTH")
    if auth and ":" not in auth:
        print("chatrec ui: error: CHATREC_UI_AUTH must look like user:password", file=sys.stderr)
        return 2
    print("Loading models (the first run converts and caches the LLM; up to a minute)…", file=sys.stderr)
    t0 = time.perf_counter()
    rec = Recommender.from_config(cfg, progress=True)  # progress bars for embedding and weights
    print(f"Models ready in {time.perf_counter() - t0:.0f} s. {rec.adapter.note()}", file=sys.stderr)
    demo = build_app(rec)
    demo.launch(server_name=args.host, server_port=args.port, share=args.share,
                auth=tuple(auth.split(":", 1)) if auth else None, max_file_size="20mb")
    return 0


if __name__ == "__main__":
    sys.exit(main())
