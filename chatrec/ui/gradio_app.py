"""A thin Gradio UI over :class:`chatrec.recommender.Recommender`: chat, ranked cards, feedback buttons.

Every event loads the browser session's Session from the recommender's store by id (held in a
gr.State), so two tabs never share a conversation and a restarted server resumes any of them.
Answers stream from ``Recommender.stream``: the ranked list as soon as it is ranked, then each
reason as its tokens arrive. One card slot per ``ranking.top_k``.
"""

import argparse
import base64
import functools
import html
import inspect
import json
import logging
import mimetypes
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from ..events import Done, Ranked, ReasonDone, ReasonToken
from ..media.files import MediaError
from ..ranking import Recommendation
from ..recommender import Recommender, UserInput
from ..session import InputError, Session

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


def _image_src(path: str | None) -> str | None:
    """A URL the browser can load: http(s) as is, a small local file inlined as a data URI."""
    if not path:
        return None
    if path.startswith(("http://", "https://", "data:")):
        return path
    p = Path(path)
    if not p.is_file() or p.stat().st_size > 2_000_000:
        return None
    mime = mimetypes.guess_type(p.name)[0] or "image/jpeg"
    return f"data:{mime};base64,{base64.b64encode(p.read_bytes()).decode()}"


def card_html(rec: Recommendation, bar: float, reason: str | None = None) -> str:
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
    src = _image_src(rec.image)
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


def cards_html(recs: list[Recommendation], live: dict[int, str] | None = None) -> list[str]:
    """Cards for a ranked list; ``live`` maps row -> reason text streamed so far (None = final)."""
    scores = [r.score for r in recs]
    lo, hi = min(scores, default=0.0), max(scores, default=0.0)
    bars = [0.15 + 0.85 * ((s - lo) / (hi - lo) if hi > lo else 1.0) for s in scores]
    return [card_html(r, b, None if live is None else live.get(i, "")) for i, (r, b) in enumerate(zip(recs, bars, strict=True))]


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

    def _session(self, sid: str | None) -> Session:
        return self.rec.store.load(sid) if sid else Session()

    def _turn(self, sid, history, shown: str, text: str, image=None, audio=None):
        """One model turn: stream the list, then the reasons; on bad input, say why and change nothing."""
        session = self._session(sid)
        base = [*history, {"role": "user", "content": shown}]
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
                               f"✍️ Writing reasons… (ranked in {t_ranked:.1f} s)", cards_html(recs, live))
        except (InputError, MediaError) as e:
            msg = f"⚠️ {html.escape(str(e))}. Nothing was changed; please try again."
            yield View(sid, [*base, {"role": "assistant", "content": msg}], f"⚠️ {html.escape(str(e))}")

    def _final(self, base: list[dict], a) -> View:
        notes = [n for n in a.notes if n != self.rec.adapter.note()]  # already in the side panel
        reply = "\n\n".join(p for p in (_understood_md(a.understood, notes), _list_md(a.recommendations)) if p)
        t = a.timings
        status = f"✅ {len(a.recommendations)} picks in {t.get('total', 0):.1f} s" + (
            f" (ranked after {t['ranked']:.1f} s)" if "ranked" in t else "")
        return View(a.session.id, [*base, {"role": "assistant", "content": reply or "…"}], status,
                    cards_html(a.recommendations))

    def send(self, sid, history, text, image=None, audio=None):
        yield from self._turn(sid, history, _user_md(text or "", image, audio), text or "", image, audio)

    def act(self, kind: str, rank: int, sid, history):
        """A card button: "like" (no new list), "dislike" or "more" (feedback plus a new list)."""
        try:
            session = self._session(sid)
            title = self.rec.catalog.get(session.item_at(rank)).title
        except (InputError, KeyError) as e:
            yield View(sid, history, f"⚠️ {html.escape(str(e))}")
            return
        if kind == "like":
            session = self.rec.feedback(session, rank, liked=True)
            msg = f"Noted: you like **{html.escape(title)}**. Later picks will lean that way."
            yield View(session.id, [*history, {"role": "user", "content": f"👍 #{rank} {html.escape(title)}"},
                                    {"role": "assistant", "content": msg}], f"👍 liked {html.escape(title)}")
        elif kind == "dislike":
            yield from self._turn(sid, history, f"👎 Not #{rank} ({html.escape(title)})", f"not #{rank}")
        elif kind == "more":
            yield from self._turn(sid, history, f"➕ More like #{rank} ({html.escape(title)})", f"more like #{rank}")
        else:
            raise ValueError(f"unknown action {kind!r}; valid: like, dislike, more")

    def reset(self) -> View:
        return View(None, [], "New conversation.", [])

    def resume(self, sid: str) -> View:
        sid = (sid or "").strip()
        try:
            session = self.rec.store.load(sid)
        except KeyError:
            return View(None, [], f"⚠️ no saved session {html.escape(sid)!r}; started a new one", [])
        return View(session.id, history_of(session), f"Resumed session {session.id} ({len(session.turns)} turns).", [])

    def on_load(self, request: gr.Request) -> View:
        """Page load: ``?session=ID`` resumes that session, otherwise a new conversation starts."""
        sid = request.query_params.get("session") if request else None
        return self.resume(sid) if sid else self.reset()

    def export(self, sid) -> str | None:
        """Path of a JSON file with the whole session, for gr.File."""
        if not sid:
            return None
        path = Path(tempfile.mkdtemp(prefix="chatrec-")) / f"chatrec-session-{sid}.json"
        path.write_text(json.dumps(self._session(sid).to_dict(), indent=2, ensure_ascii=False), encoding="utf-8")
        return str(path)


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


def _session_md(sid: str | None) -> str:
    return f"**Session:** `{sid}`" if sid else "**Session:** new (saved with the first message)"


def build_app(rec: Recommender) -> gr.Blocks:
    ui = ChatUI(rec)
    slots_n = rec.cfg.ranking.top_k  # one card per shown item
    with gr.Blocks(title="chatrec") as demo:
        sid = gr.State(None)
        with gr.Sidebar(open=True):
            gr.Markdown("### chatrec")
            gr.Markdown(_panel_md(rec), elem_id="panel")
            session_md = gr.Markdown(_session_md(None), elem_id="session-id")
            reset_btn = gr.Button("New conversation", elem_id="reset", size="sm")
            export_btn = gr.Button("Export conversation (JSON)", elem_id="export", size="sm")
            export_file = gr.File(label="Download", elem_id="export-file", interactive=False, visible=False)
            resume_box = gr.Textbox(label="Resume a session by id", placeholder="session id", elem_id="resume")
            resume_btn = gr.Button("Resume", elem_id="resume-btn", size="sm")
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
                    image = gr.Image(type="filepath", label="Image (optional)", sources=["upload"], height=140,
                                     elem_id="image")
                    audio = gr.Audio(sources=["upload", "microphone"], type="filepath", label="Audio (optional)",
                                     elem_id="audio")
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

        turn_inputs = [sid, chat, msg, image, audio]
        send_btn.click(wire(ui.send), turn_inputs, outputs)
        msg.submit(wire(ui.send), turn_inputs, outputs)
        for btn, kind, n in buttons:
            btn.click(wire(functools.partial(ui.act, kind, n)), [sid, chat], outputs)
        reset_btn.click(wire(ui.reset), None, outputs, concurrency_limit=None)
        resume_btn.click(wire(ui.resume), [resume_box], outputs, concurrency_limit=None)
        resume_box.submit(wire(ui.resume), [resume_box], outputs, concurrency_limit=None)
        export_btn.click(lambda s: gr.update(value=(p := ui.export(s)), visible=bool(p)), [sid], [export_file],
                         concurrency_limit=None)
        demo.load(wire(ui.on_load), None, outputs, concurrency_limit=None)
    demo.queue(default_concurrency_limit=1)  # 2 CPU cores: one model call at a time
    demo.ui = ui  # for tests and embedding
    return demo


# ---- entry point -----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    from .args import add_common_args, build_config

    ap = argparse.ArgumentParser(prog="chatrec ui", description="Start the chatrec web UI.")
    add_common_args(ap)
    ap.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    ap.add_argument("--port", type=int, default=7860)
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
