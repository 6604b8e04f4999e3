"""The one place where the pipeline is wired, in order:

catalog -> encoders -> retrieval -> prompt with soft tokens -> ranking and reasons -> dialogue state.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from .adapter import AdapterError, load_adapter, resolve
from .catalog import Catalog, load_catalog, load_demo_catalog
from .config import Config
from .dialogue import Session, SessionStore, TurnRecord, interpret
from .model import ChatLM, Media
from .packaged import load_embedder, load_llm
from .prompting import FIT, UserTurn, rank_prompt, reason_prompt
from .ranking import Recommendation, combine, finalize_reason
from .retrieval import Query, Retriever, embed_catalog

log = logging.getLogger(__name__)


class InputError(ValueError):
    """A user turn that cannot be answered; the session is left as it was."""


@dataclass
class Answer:
    session: Session  # the session after this turn (already saved)
    recommendations: list[Recommendation]
    understood: dict = field(default_factory=dict)  # what the system took from the turn (transcript, constraints)
    notes: list[str] = field(default_factory=list)  # e.g. inputs that are not in use, and why
    timings: dict[str, float] = field(default_factory=dict)  # seconds: ranked, first_token, total

    def to_dict(self) -> dict:
        return {
            "session_id": self.session.id,
            "recommendations": [r.to_dict() for r in self.recommendations],
            "understood": self.understood,
            "notes": self.notes,
            "timings": self.timings,
        }


def usable_projectors(projectors: dict, encoders: dict[str, str], media) -> tuple[dict, list[str]]:
    """Projectors whose training encoder is the one configured now; the rest are dropped with a note.

    A projector reads one encoder's vectors: Whisper tiny.en states through a projector aligned on
    Whisper base would be noise, so that modality falls back to transcript / retrieval only.
    """
    expected = {"audio": f"whisper-{media.whisper}", "image": media.clip_model}
    keep, dropped = {}, []
    for kind, proj in projectors.items():
        trained_on = encoders.get(kind, "")
        name, _, detail = trained_on.partition(":")
        if kind in expected and name != expected[kind]:
            dropped.append(f"{kind} projector not used: trained on {trained_on or 'an unrecorded encoder'}, "
                           f"but {expected[kind]} is configured")
        elif kind == "audio" and detail and detail != f"{media.audio_tokens} states":
            # Pooling into another number of windows changes what each state summarises.
            dropped.append(f"audio projector not used: trained on {detail} (pooled Whisper states per clip), "
                           f"but media.audio_tokens is {media.audio_tokens}")
        else:
            keep[kind] = proj
    return keep, dropped


def _device(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


class Recommender:
    def __init__(self, cfg: Config, catalog: Catalog, retriever: Retriever, lm: ChatLM | None,
                 store: SessionStore, adapter_note: str = ""):
        self.cfg = cfg
        self.catalog = catalog
        self.retriever = retriever
        self.lm = lm
        self.store = store
        self.adapter_note = adapter_note
        self.media = None  # multimodal encoders, attached lazily by chatrec.multimodal

    @classmethod
    def from_config(cls, cfg: Config, load_llm_model: bool = True, progress: bool = True) -> Recommender:
        if cfg.model.threads:
            torch.set_num_threads(cfg.model.threads)
        device = _device(cfg.model.device)
        cache = cfg.cache()
        catalog = load_catalog(cfg.catalog) if cfg.catalog else load_demo_catalog()
        embedder = load_embedder(cfg.model.embedder, device=device)
        vectors = embed_catalog(catalog, embedder, cfg.model.embedder, cache, progress=progress)
        retriever = Retriever(catalog, embedder, vectors, cfg.retrieval)
        lm, note = None, ""
        if load_llm_model and (cfg.ranking.use_llm or cfg.generation.reasons):
            tok, model, identity = load_llm(cfg.model.llm, cache, cfg.model.dtype, device)
            projectors = {}
            if cfg.adapter:
                try:
                    model, projectors, manifest = load_adapter(model, identity, cfg.adapter)
                    projectors, dropped = usable_projectors(projectors, manifest.encoders, cfg.media)
                    note = "; ".join([f"adapter {cfg.adapter!r} ({', '.join(['LoRA'] + sorted(projectors))})", *dropped])
                except AdapterError as e:
                    if resolve(cfg.adapter).exists() or cfg.adapter != "default":
                        raise
                    note = f"no trained adapter at {resolve(cfg.adapter)}: ranking with the untuned base LLM ({e})"
                    log.info(note)
            lm = ChatLM(tok, model, identity, projectors)
            lm.rank(f"warm-up{FIT}", 1)  # the first forward pass pays one-off setup costs
        store = SessionStore(cfg.home() / "sessions.sqlite")
        return cls(cfg, catalog, retriever, lm, store, note)

    # ---- one turn ------------------------------------------------------------------------------

    def respond(
        self,
        session: Session,
        text: str,
        image: str | None = None,
        audio: str | None = None,
        on_ranked: Callable[[list[Recommendation]], None] | None = None,
        on_token: Callable[[int, str], None] | None = None,
    ) -> Answer:
        """Answer one user turn. Raises InputError (or MediaError) before anything changes."""
        t0 = time.perf_counter()
        text = (text or "").strip()
        if len(text) > 4000:
            raise InputError(f"message too long ({len(text)} characters; the limit is 4000)")
        understood: dict = {}
        notes: list[str] = []
        media = Media()
        extra_scores: dict[str, float] = {}
        if image or audio:
            if self.media is None:
                from .multimodal import MultimodalInputs

                self.media = MultimodalInputs(self)
            heard = self.media.prepare(image, audio, media, extra_scores, understood, notes)
            text = (text + " " + heard).strip() if heard else text
        if not text and not (image and media.image) and not extra_scores:
            raise InputError("empty message: type a request, or attach an image or audio file")
        try:
            new = interpret(session, text, self.catalog)
        except IndexError as e:  # "more like #9" with a 5-item list
            raise InputError(str(e)) from None
        new.turns.append(TurnRecord("user", text, image=image, audio=audio, transcript=understood.get("transcript")))
        query = Query(new.user_text(), tuple(new.liked), new.excluded(), new.constraints(), extra_scores)
        candidates = self.retriever.retrieve(query, self.cfg.retrieval.n_candidates)
        understood["constraints"] = {k: v for k, v in {
            "genres": new.include_genres, "not_genres": new.exclude_genres,
            "year_min": new.year_min, "year_max": new.year_max,
        }.items() if v}
        if not candidates:
            notes.append("no catalog item fits all constraints; try relaxing one (e.g. a genre or year)")
            new.turns.append(TurnRecord("assistant", "Nothing in the catalog fits all of that.", items=[]))
            self.store.save(new)
            return Answer(new, [], understood, notes, {"total": time.perf_counter() - t0})
        turns = [UserTurn(t.role, t.transcript or t.text, bool(t.image) and bool(media.image) and t is new.turns[-1],
                          bool(t.audio) and bool(media.audio) and t is new.turns[-1])
                 if t.role == "user" else UserTurn(t.role, t.text) for t in new.turns]
        logprobs = None
        if self.lm is not None and self.cfg.ranking.use_llm:
            prompt = rank_prompt(turns, [c.item for c in candidates])
            logprobs = self.lm.rank(prompt, len(candidates), media).tolist()
        ranked = combine(candidates, logprobs, self.cfg.ranking.llm_weight, self.cfg.ranking.retrieval_weight)
        top = ranked[: self.cfg.ranking.top_k]
        recs = [
            Recommendation(c.item.id, c.item.title, r, score, lp, c.score, year=c.item.year,
                           attributes=dict(c.item.attributes), image=c.item.image)
            for r, (c, score, lp) in enumerate(top, 1)
        ]
        t_ranked = time.perf_counter() - t0
        if on_ranked:
            on_ranked(recs)
        recs, t_first = self._reasons(recs, new, on_token, t0)
        new.turns.append(TurnRecord("assistant", "Recommended: " + "; ".join(r.title for r in recs),
                                    items=[r.item_id for r in recs]))
        self.store.save(new)
        if self.adapter_note and "untuned" in self.adapter_note:
            notes.append(self.adapter_note)
        timings = {"ranked": t_ranked, "first_token": t_first, "total": time.perf_counter() - t0}
        return Answer(new, recs, understood, notes, timings)

    def _reasons(self, recs: list[Recommendation], session: Session, on_token, t0: float):
        user_text = session.user_text()
        liked = [self.catalog.get(i) for i in session.liked if i in self.catalog]
        raw = [""] * len(recs)
        first = [None]

        def relay(row: int, piece: str) -> None:
            if first[0] is None:
                first[0] = time.perf_counter() - t0
            if on_token:
                on_token(row, piece)

        if self.lm is not None and self.cfg.generation.reasons:
            prompts = [reason_prompt(self.catalog.get(r.item_id), user_text) for r in recs]
            if self.cfg.generation.batch_reasons:
                raw = self.lm.generate(prompts, self.cfg.generation.max_reason_tokens, relay)
            else:
                raw = []
                for i, p in enumerate(prompts):
                    raw += self.lm.generate([p], self.cfg.generation.max_reason_tokens,
                                            lambda _r, s, i=i: relay(i, s))
        out = []
        for rec, text in zip(recs, raw, strict=True):
            item = self.catalog.get(rec.item_id)
            reason, source, facts = finalize_reason(text, item, self.catalog, user_text, liked)
            out.append(Recommendation(**{**rec.__dict__, "reason": reason, "reason_source": source, "facts_used": facts}))
        return out, first[0] if first[0] is not None else time.perf_counter() - t0

    # ---- feedback without a new message (CLI /like, UI buttons) --------------------------------

    def feedback(self, session: Session, rank_or_id: int | str, liked: bool) -> Session:
        """Like or reject an item of the last list (1-based rank) or by id; saved at once."""
        new = session.copy()
        item_id = rank_or_id if isinstance(rank_or_id, str) else new.item_at(rank_or_id)
        if item_id not in self.catalog:
            raise InputError(f"unknown item id {item_id!r}")
        (new.like if liked else new.reject)(item_id)
        self.store.save(new)
        return new

    def new_session(self) -> Session:
        s = Session()
        self.store.save(s)
        return s
