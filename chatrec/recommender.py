"""The one place where a turn is wired, in order:

catalog -> encoders -> retrieval -> prompt with soft tokens -> ranking and reasons -> dialogue state.

``prepare`` checks a user's turn and encodes its attachments; ``rank`` updates the session and
orders the candidates (evaluation replays dialogues through it); ``reasons`` writes and checks the
reasons of a shown list; ``stream`` chains the three, saves the session and yields typed events that
interfaces consume; ``respond`` is ``stream`` run to its end.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace

from .adapter import AdapterError, AdapterStatus, EncoderSpec, load_adapter, resolve, usable_projectors
from .catalog import Catalog
from .collaborative import CoOccurrence
from .config import Config
from .events import Answer, Done, Event, Ranked, ReasonDone, ReasonToken, Understood
from .model import ChatLM, SoftInputs
from .profiles import Profile, ProfileBias, profile_query_bias
from .prompting import FIT, prompt_turns, rank_prompt, reason_prompt
from .ranking import Ranking, Recommendation, combine
from .reasons import finalize_reason
from .retrieval import Query, Retriever, embed_catalog, vectors_file
from .session import InputError, Session, TurnRecord, interpret
from .store import SessionStore, StoreError, open_store

log = logging.getLogger(__name__)

MAX_MESSAGE_CHARS = 4000
# Stage-1 rankings fused by the main system; "collab" (items liked together) only here, never in the dense, bm25
# and fused baselines (chatrec.evaluation.replay).
RETRIEVERS = ("dense", "bm25", "collab")


@dataclass(frozen=True)
class UserInput:
    """What a person sent in one turn."""

    text: str = ""
    image: str | None = None  # image file path
    audio: str | None = None  # audio file path


@dataclass(frozen=True)
class PreparedTurn:
    """A user turn after its checks and its attachments' encoding: what the pipeline uses."""

    text: str  # every word taken from the turn: the typed text, then the audio's transcript
    image: str | None = None  # attachment paths, as given
    audio: str | None = None
    transcript: str | None = None  # what Whisper heard
    soft: SoftInputs = field(default_factory=SoftInputs)  # soft-token inputs (trained projectors only)
    extra_scores: dict[str, float] = field(default_factory=dict)  # item id -> fused-score bonus from attachments
    understood: dict = field(default_factory=dict)  # shown to the user: transcript, image neighbours
    notes: tuple[str, ...] = ()  # inputs not in use, and why


class Recommender:
    def __init__(self, cfg: Config, catalog: Catalog, retriever: Retriever, lm: ChatLM | None,
                 store: SessionStore, adapter: AdapterStatus | None = None):
        self.cfg = cfg
        self.catalog = catalog
        self.retriever = retriever
        self.lm = lm
        self.store = store
        self.adapter = adapter or AdapterStatus(cfg.adapter)
        self._media = None  # MediaInputs, built at the first attachment (loads CLIP / Whisper)
        self._reason_vocab = None  # token ids reasons may use (chatrec.decoding), built at the first reasons

    @classmethod
    def from_config(cls, cfg: Config, load_llm_model: bool = True, progress: bool = True,
                    reuse: Recommender | None = None) -> Recommender:
        """Load everything ``cfg`` names. ``reuse`` shares another recommender's catalog, retriever and
        store (same catalog and embedder), e.g. to compare adapters in one process."""
        import torch

        from .weights.packaged import load_embedder

        if cfg.model.threads:
            torch.set_num_threads(cfg.model.threads)
        device = cfg.model.resolved_device()
        if reuse is not None:
            catalog, retriever, store = reuse.catalog, reuse.retriever, reuse.store
        else:
            # The store and the catalog first: a bad file is reported before minutes of model loading.
            store = open_store(cfg)
            catalog = cfg.load_catalog()
            collab = CoOccurrence.build(catalog, cfg.collaborative, store) if cfg.collaborative.enabled else None
            embedder = load_embedder(cfg.model.embedder, device=device)
            vectors = embed_catalog(catalog, embedder, cfg.model.embedder, cfg.cache(), progress=progress)
            retriever = Retriever(catalog, embedder, vectors, cfg.retrieval, collab,
                                  vectors_file(catalog, cfg.model.embedder, cfg.cache()), progress)
        lm, status = None, AdapterStatus(cfg.adapter)
        if load_llm_model and (cfg.ranking.use_llm or cfg.generation.reasons):
            lm, status = load_ranker(cfg, device)
        return cls(cfg, catalog, retriever, lm, store, status)

    @classmethod
    def from_pretrained(cls, adapter: str = "default", *, config: str | None = None,
                        overrides: Sequence[str] = (), **kwargs) -> Recommender:
        """chatrec with an adapter bundle: a directory (e.g. ``runs/stage4`` from ``chatrec train``) or the
        name of a shipped one, as Hugging Face users load a fine-tuned model. ``config`` and ``overrides``
        (``"section.key=value"``) are read as the command line reads them; ``kwargs`` go to :meth:`from_config`."""
        from .config import load_config

        return cls.from_config(load_config(config, [*overrides, f"adapter={adapter}"]), **kwargs)

    # ---- one turn, step by step --------------------------------------------------------------------

    def prepare(self, turn: UserInput) -> PreparedTurn:
        """Check the turn and encode its attachments. Raises InputError or MediaError; nothing changes."""
        text = (turn.text or "").strip()
        if len(text) > MAX_MESSAGE_CHARS:
            raise InputError(f"message too long ({len(text)} characters; the limit is {MAX_MESSAGE_CHARS})")
        if not (turn.image or turn.audio):
            if not text:
                raise InputError("empty message: type a request, or attach an image or audio file")
            return PreparedTurn(text)
        got = self.media_inputs().prepare(turn.image, turn.audio)
        words = f"{text} {got.heard}".strip()
        if len(words) > MAX_MESSAGE_CHARS:  # a long recording can say more than a message may hold
            raise InputError(f"message and transcript too long ({len(words)} characters; the limit is "
                             f"{MAX_MESSAGE_CHARS}); send a shorter recording")
        if not words and not got.soft.image and not got.extra_scores:
            raise InputError("empty message: type a request, or attach an image or audio file")
        return PreparedTurn(words, turn.image, turn.audio, got.heard or None, got.soft, got.extra_scores,
                            got.understood, tuple(got.notes))

    def rank(self, session: Session, turn: UserInput | PreparedTurn, *, retrievers: Sequence[str] = RETRIEVERS,
             use_llm: bool | None = None, depth: int = 0, profile: Profile | None = None) -> Ranking:
        """The session after ``turn`` and its candidates in final order. Pure: nothing is saved.

        ``retrievers`` and ``use_llm`` select a stage-1 baseline; ``depth`` keeps retrieval's pool down
        to that many items after the candidates (for Recall@K beyond the candidates). ``profile`` (the
        owner's, :meth:`profile_for`) shapes the query and adds a line to the prompt while the session's
        ``use_profile`` is on; without one (evaluation replays) nothing but the session counts.
        """
        prepared = turn if isinstance(turn, PreparedTurn) else self.prepare(turn)
        new = interpret(session, prepared.text, self.catalog)
        new.turns.append(TurnRecord("user", prepared.text, image=prepared.image, audio=prepared.audio,
                                    transcript=prepared.transcript))
        known, bias = self._profile_bias(new, profile)
        bonus = bias.bonus(self.retriever, self.cfg.profile) if bias else None
        query = Query(new.user_text(), tuple(new.liked), new.excluded() | bias.exclude, new.constraints(),
                      dict(prepared.extra_scores), bonus)
        n = self.cfg.retrieval.n_candidates
        pool = self.retriever.retrieve(query, max(n, depth), use=retrievers)
        head = pool[:n]
        logprobs = None
        if (self.uses_llm if use_llm is None else use_llm) and head:
            turns = prompt_turns(new, bool(prepared.soft.image), bool(prepared.soft.audio))
            prompt = rank_prompt(turns, [c.item for c in head], self.catalog.schema, known)
            logprobs = self.lm.rank(prompt, len(head), prepared.soft).tolist()
        ordered = combine(head, logprobs, self.cfg.ranking.llm_weight, self.cfg.ranking.retrieval_weight)
        return Ranking(new, ordered, pool[n:])

    def reasons(self, recs: Sequence[Recommendation], session: Session) -> Iterator[ReasonToken | ReasonDone]:
        """Write the reasons of a shown list (streamed), then check each and yield what will be shown."""
        user_text = session.user_text()
        raw = [""] * len(recs)
        if self.lm is not None and self.cfg.generation.reasons and recs:
            liked = [self.catalog.get(i) for i in session.liked if i in self.catalog]
            prompts = [reason_prompt(self.catalog.get(r.item_id), user_text, liked, self.catalog.schema) for r in recs]
            # Batched: one generate call for all rows; else one row at a time (a same-run baseline).
            groups = [list(range(len(recs)))] if self.cfg.generation.batch_reasons else [[i] for i in range(len(recs))]
            for rows in groups:
                for event in self.lm.generate_stream([prompts[i] for i in rows], self.cfg.generation.max_reason_tokens,
                                                       no_repeat_ngram=self.cfg.generation.no_repeat_ngram,
                                                       vocab=self.reason_vocab()):
                    if isinstance(event, list):
                        for i, text in zip(rows, event, strict=True):
                            raw[i] = text
                    else:
                        yield ReasonToken(rows[event[0]], event[1])
        liked = [self.catalog.get(i) for i in session.liked if i in self.catalog]
        used_leads: set[str] = set()  # each hook lead ("You asked for horror") opens at most one reason of the list
        for row, (rec, text) in enumerate(zip(recs, raw, strict=True)):
            r = finalize_reason(text, self.catalog.get(rec.item_id), self.catalog, user_text, liked,
                                self.cfg.generation.lead_with_hook, used_leads)
            why = (r.verdict.problem() or "not about the item, or an echo of the request") if r.source == "fallback" and r.verdict else ""
            yield ReasonDone(row, replace(rec, reason=r.text, reason_source=r.source, facts_used=r.facts_used,
                                          reason_raw=r.raw, reason_rejected=why))

    def reason_vocab(self):
        """The token ids reasons are decoded over (None: the whole vocabulary, ``generation.restrict_vocab``)."""
        if not self.cfg.generation.restrict_vocab or self.lm is None:
            return None
        if self._reason_vocab is None:
            from .decoding import cached_reason_vocabulary

            self._reason_vocab = cached_reason_vocabulary(self.lm.tok, self.catalog, self.lm.identity, self.cfg.cache())
        return self._reason_vocab

    # ---- one turn, end to end ----------------------------------------------------------------------

    def stream(self, session: Session, turn: UserInput) -> Iterator[Event]:
        """Answer one user turn as events; the last one, ``Done``, comes after the session is saved.

        Raises InputError (or MediaError) before the first event when the turn cannot be used: the
        session and the store are left exactly as they were.
        """
        t0 = time.perf_counter()
        prepared = self.prepare(turn)
        ranking = self.rank(session, prepared, profile=self.profile_for(session))
        new = ranking.session
        understood = {**prepared.understood, "constraints": _constraints(new)}
        notes = list(prepared.notes)
        yield Understood(understood, tuple(notes))
        if not ranking.ordered:
            notes.append("no catalog item fits all constraints; try relaxing one (e.g. a genre or year)")
            new.turns.append(TurnRecord("assistant", "Nothing in the catalog fits all of that.", items=[]))
            new = self.store.save(new, base=session)
            self.update_profile(new)
            self.update_collaborative(new)
            yield Done(Answer(new, [], understood, notes, {"total": time.perf_counter() - t0}))
            return
        recs = ranking.top(self.cfg.ranking.top_k)
        t_ranked = time.perf_counter() - t0
        yield Ranked(tuple(recs), t_ranked)
        t_first = None
        for event in self.reasons(recs, new):
            if t_first is None:
                t_first = time.perf_counter() - t0
            if isinstance(event, ReasonDone):
                recs[event.row] = event.recommendation
            yield event
        new.turns.append(TurnRecord("assistant", "Recommended: " + "; ".join(r.title for r in recs),
                                    items=[r.item_id for r in recs]))
        new = self.store.save(new, base=session)  # merged if the session changed meanwhile (no lost turns)
        self.update_profile(new)
        self.update_collaborative(new)
        if self.adapter.untuned:
            notes.append(self.adapter.note())
        timings = {"ranked": t_ranked, "first_token": t_first or t_ranked, "total": time.perf_counter() - t0}
        yield Done(Answer(new, recs, understood, notes, timings))

    def respond(self, session: Session, text: str, image: str | None = None, audio: str | None = None) -> Answer:
        """Answer one user turn (``stream`` run to its end). Raises InputError or MediaError before anything changes."""
        answer = None
        for event in self.stream(session, UserInput(text, image, audio)):
            if isinstance(event, Done):
                answer = event.answer
        assert answer is not None, "stream() always ends with Done"
        return answer

    # ---- feedback without a new message (CLI /like, UI buttons) ------------------------------------

    def feedback(self, session: Session, rank_or_id: int | str, liked: bool) -> Session:
        """Like or reject an item of the last list (1-based rank) or by id; saved at once."""
        new = session.copy()
        item_id = rank_or_id if isinstance(rank_or_id, str) else new.item_at(rank_or_id)
        if item_id not in self.catalog:
            raise InputError(f"unknown item id {item_id!r}")
        (new.like if liked else new.reject)(item_id)
        new = self.store.save(new, base=session)
        self.update_profile(new)
        self.update_collaborative(new)
        return new

    def new_session(self) -> Session:
        return self.store.save(Session())

    # ---- the owner's profile (chatrec.profiles) ------------------------------------------------------

    def profile_for(self, session: Session) -> Profile | None:
        """The profile of the session's owner, when profiles are on for the config and for this session."""
        if not (self.cfg.profile.enabled and session.use_profile):
            return None
        try:
            return self.store.load_profile(session.owner)
        except StoreError as e:  # a profile row from a newer chatrec: answer without it
            log.warning("%s", e)
            return None

    def update_profile(self, session: Session) -> None:
        """Fold a saved session into its owner's profile (or take it out while its ``use_profile`` is off).
        Cheap: one row read and, when the evidence changed, written; only this session's evidence is redone."""
        if not self.cfg.profile.enabled:
            return
        half_life = self.cfg.profile.half_life_days
        try:
            self.store.update_profile(session.owner, lambda p: p.updated_with(session, time.time(), half_life,
                                                                              self.catalog))
        except StoreError as e:  # the turn itself is saved; the profile catches up at the next one
            log.warning("profile not updated: %s", e)

    def update_collaborative(self, session: Session) -> None:
        """Fold a saved session's likes into the item co-occurrence at once: the next answer of anyone who
        liked the same items sees them (the store keeps them; a restart rebuilds the same matrix)."""
        if self.retriever.collab is not None:
            self.retriever.collab.update(session)

    def forget(self, owner: str | None) -> tuple[bool, int]:
        """Delete ``owner``'s profile and sessions from the store and their likes from the co-occurrence:
        (a profile was deleted, sessions deleted)."""
        had, n = self.store.forget(owner)
        if self.retriever.collab is not None:
            self.retriever.collab.forget(owner)
        return had, n

    def delete_session(self, session_id: str, owner: str | None) -> None:
        """Delete one session and take its likes out of the co-occurrence."""
        self.store.delete(session_id, owner)
        if self.retriever.collab is not None:
            self.retriever.collab.forget(owner, session_id)

    def _profile_bias(self, session: Session, profile: Profile | None) -> tuple[str, ProfileBias]:
        """The prompt's phrase and retrieval's bias from ``profile`` without this session's own evidence."""
        pc = self.cfg.profile
        if profile is None or not (pc.enabled and session.use_profile):
            return "", ProfileBias()
        earlier = profile.without_session(session.id).reweighed(time.time(), pc.half_life_days)
        earlier.entries = [e for e in earlier.entries if e.weight >= pc.min_weight]
        return earlier.summary(pc.prompt_items), profile_query_bias(earlier, pc.min_weight)

    # ---- parts ---------------------------------------------------------------------------------------

    @property
    def uses_llm(self) -> bool:
        return self.lm is not None and self.cfg.ranking.use_llm

    def media_inputs(self):
        """The attachment encoders (CLIP, Whisper), built at the first image or audio turn."""
        if self._media is None:
            from .media.inputs import MediaInputs

            kinds = self.lm.projectors if self.lm is not None else ()
            self._media = MediaInputs(self.catalog, self.cfg.media, self.cfg.retrieval.rrf_k, kinds)
        return self._media


def load_ranker(cfg: Config, device: str) -> tuple[ChatLM, AdapterStatus]:
    """The LLM with the configured adapter and its usable projectors, warmed up."""
    from .weights.packaged import load_llm

    tok, model, identity = load_llm(cfg.model.llm, cfg.cache(), cfg.model.dtype, device)
    projectors: dict = {}
    status = AdapterStatus(cfg.adapter)
    if cfg.adapter:
        try:
            model, projectors, manifest = load_adapter(model, identity, cfg.adapter)
        except AdapterError as e:
            if resolve(cfg.adapter).exists() or cfg.adapter != "default":
                raise
            status = AdapterStatus(cfg.adapter, path=str(resolve(cfg.adapter)), missing=str(e))
            log.info(status.note())
        else:
            expected = {"audio": EncoderSpec.whisper(cfg.media.whisper, cfg.media.audio_tokens),
                        "image": EncoderSpec(cfg.media.clip_model)}
            projectors, dropped = usable_projectors(projectors, manifest.encoders, expected)
            status = AdapterStatus(cfg.adapter, True, str(resolve(cfg.adapter)), tuple(sorted(projectors)), tuple(dropped))
    lm = ChatLM(tok, model, identity, projectors)
    lm.rank(f"warm-up{FIT}", 1)  # the first forward pass pays one-off setup costs
    return lm, status


def _constraints(s: Session) -> dict:
    return {k: v for k, v in {"genres": s.include_genres, "not_genres": s.exclude_genres,
                              "year_min": s.year_min, "year_max": s.year_max}.items() if v}
