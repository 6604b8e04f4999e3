"""Replay recorded dialogues through the real pipeline and collect, per system, what it ranked.

For each assistant turn that carries ``targets``, the session is rebuilt from the turns before it
(:func:`chatrec.session.replay`) and every system ranks the catalog for the last user turn through
:meth:`Recommender.rank` — the same call ``respond()`` makes — so all systems see the same state and
the same candidate pool and differ only in how they order it:

    popularity  how often other dialogues of the evaluated file name an item (targets and likes),
                leaving the scored dialogue out; catalog order breaks ties
    bm25/dense  one stage-1 retriever;  fused: both, reciprocal-rank fused (stage 1 alone)
    linked      the dialogue state alone: boosts for linked people, wanted genres and eras, no text retriever
    llm-base    stage 1 + the base LLM's ranking (per-candidate yes/no scores), no adapter
    chatrec     the configured system (stage 1 + LLM with its adapter, if any)

The LLM orders the top ``n_candidates``; the rest of the retrieval pool follows, so every list is
long enough for Recall@50. Ranking metrics are counted per ground-truth item after removing items
already mentioned (``Dialogue.mentioned_before``), as in :mod:`chatrec.evaluation.metrics`.
"""

from __future__ import annotations

import enum
import logging
import random
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from tqdm import tqdm

from .. import claims
from ..events import ReasonDone
from ..media.files import MediaError
from ..ranking import Ranking
from ..recommender import RETRIEVERS, PreparedTurn, Recommender, UserInput
from ..session import InputError, Session, TurnRecord, replay
from .dialogues import Dialogue, Turn
from .metrics import first_success_turn, target_ranks

log = logging.getLogger(__name__)

DATA = Path(__file__).resolve().parent.parent / "data" / "dialogues"
MAX_K = 50  # longest cut-off reported (Recall@50); lists are at least this long when the catalog allows
INTERACTIVE_TURNS = 5


class SkipTurn(Exception):
    """A turn that cannot be replayed; the message is the reason counted in the report."""


class Kind(enum.Enum):
    """How a system orders the catalog."""

    LLM = "llm"  # stage 1 + the LLM's scores (with whatever adapter its recommender loaded)
    POPULARITY = "popularity"
    BM25 = "bm25"
    DENSE = "dense"
    FUSED = "fused"
    LINKED = "linked"  # the linked-entity signal alone (people, genres, eras from the dialogue state)

    @property
    def retrievers(self) -> tuple[str, ...]:
        # fused is stage 1's text retrievers alone: the main system's "collab" ranking is not a baseline's
        return {Kind.BM25: ("bm25",), Kind.DENSE: ("dense",), Kind.FUSED: ("dense", "bm25"),
                Kind.LINKED: ()}.get(self, RETRIEVERS)


BASELINES = ("popularity", "linked", "bm25", "dense", "fused", "llm-base")  # names accepted by --baselines


@dataclass(frozen=True)
class System:
    name: str  # row label in the report
    kind: Kind
    rec: Recommender  # whose catalog, retriever and LLM it uses
    main: bool = False  # the configured system: its reasons are written and checked
    popular: Counter[str] = field(default_factory=Counter)  # popularity: interactions per item id


@dataclass(frozen=True)
class SystemRanking:
    session: Session  # the session after the scored user turn
    ids: list[str]  # full ranked list of item ids, best first
    ranking: Ranking | None = None  # the pipeline's ranking (None for popularity)


def rank_system(system: System, session: Session, turn: PreparedTurn, own: Counter[str] | None = None) -> SystemRanking:
    """The full ranked list a system gives for ``turn`` after ``session``.

    ``own``: the scored dialogue's interactions, removed from popularity counts so that a dialogue
    never counts towards its own answer.
    """
    rec = system.rec
    if system.kind is Kind.POPULARITY:
        state = rec.rank(session, turn, retrievers=(), use_llm=False).session
        counts = system.popular - (own or Counter())
        order = sorted(range(len(rec.catalog)), key=lambda p: -counts[rec.catalog[p].id])
        return SystemRanking(state, [rec.catalog[p].id for p in order if rec.catalog[p].id not in state.excluded()])
    depth = max(rec.cfg.retrieval.pool, MAX_K)
    ranking = rec.rank(session, turn, retrievers=system.kind.retrievers, use_llm=system.kind is Kind.LLM and rec.uses_llm,
                       depth=depth)
    return SystemRanking(ranking.session, ranking.ids(), ranking)


def interactions(d: Dialogue) -> Counter[str]:
    """Items a dialogue shows interest in: its targets and the items its user liked."""
    return Counter(i for t in d.turns for i in (*t.targets, *t.liked))


def popularity_counts(dialogues: Sequence[Dialogue]) -> Counter[str]:
    """Interactions per item over the evaluated dialogues (the data being evaluated, on its own catalog)."""
    total: Counter[str] = Counter()
    for d in dialogues:
        total += interactions(d)
    return total


def build_systems(rec: Recommender, baselines: Sequence[str], dialogues: Sequence[Dialogue] = ()) -> list[System]:
    """The main system first, then the requested baselines (llm-base shares catalog and retriever).

    ``dialogues``: the evaluated dialogues, from which the popularity baseline counts interactions.
    """
    unknown = sorted(set(baselines) - set(BASELINES))
    if unknown:
        raise ValueError(f"unknown baseline(s) {unknown}; valid: {list(BASELINES)}, 'all' or 'none'")
    tuned = rec.lm is not None and rec.adapter.loaded
    main_name = f"chatrec+{rec.cfg.adapter}" if tuned else "chatrec"
    if not rec.uses_llm:
        main_name += " (retrieval only: no LLM ranking)"
    elif "llm-base" in baselines and not tuned:
        main_name += " (= llm-base: no adapter loaded)"
    systems = [System(main_name, Kind.LLM, rec, main=True)]
    for b in baselines:
        if b == "popularity":
            systems.append(System(b, Kind.POPULARITY, rec, popular=popularity_counts(dialogues)))
        elif b in ("linked", "bm25", "dense", "fused"):
            systems.append(System(b, Kind(b), rec))
        elif tuned:
            systems.append(System(b, Kind.LLM, base_recommender(rec)))
        elif not rec.uses_llm:
            log.warning("baseline llm-base skipped: the LLM is not loaded (ranking.use_llm=false)")
    return systems


def base_recommender(rec: Recommender) -> Recommender:
    """The same pipeline without the adapter (and without reasons), sharing catalog, retriever and store."""
    cfg = replace(rec.cfg, adapter=None, generation=replace(rec.cfg.generation, reasons=False))
    return Recommender.from_config(cfg, progress=False, reuse=rec)


# ---- replay --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReasonCheck:
    """One shown reason, checked claim by claim (chatrec.claims), and the model text behind it."""

    where: str  # dialogue#turn
    item_id: str
    shown: str  # the reason shown
    source: str  # "model" | "fallback": which reason is shown
    false_claim: bool  # the shown reason has a false claim (goal: never)
    about_user: bool  # the shown reason refers to something this user said or liked
    broken: bool  # the shown reason is cut off or loops (goal: never)
    raw: str  # the model's text ("" when nothing was generated)
    raw_passes: bool | None  # the model's text passed every check and was shown (None: nothing generated)
    raw_problem: str  # kind of the model text's first failed check ("" when it passed)


@dataclass
class SystemRun:
    """Everything measured for one system, pooled over turns."""

    name: str
    ranks: list[float] = field(default_factory=list)  # 1-based rank of each fresh target (inf: absent)
    groups: list[str] = field(default_factory=list)  # the dialogue id of each rank (the bootstrap's unit)
    rankings: list[dict] = field(default_factory=list)  # per scored turn: where, targets, top ids (rankings.jsonl)
    latencies: list[float] = field(default_factory=list)  # seconds per scored turn
    reasons: list[ReasonCheck] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)  # generated reason tokens per turn
    success_turns: list[int | None] = field(default_factory=list)  # interactive: first hit turn per episode


@dataclass
class Counts:
    dialogues_loaded: int = 0
    dialogues_evaluated: int = 0
    dialogues_skipped: list[dict] = field(default_factory=list)  # {"where": file:line, "reason"}
    turns_evaluated: int = 0
    turns_without_fresh_target: int = 0  # every target was already mentioned: nothing to score
    turns_skipped: list[dict] = field(default_factory=list)  # {"where": dialogue#turn, "reason"}


def session_before(rec: Recommender, d: Dialogue, upto: int) -> Session:
    """The session built from turns [0, upto): user turns interpreted, assistant turns as shown lists."""
    try:
        return replay(d.turns[:upto], rec.catalog)
    except InputError as e:
        raise SkipTurn(str(e)) from None


def prepare_turn(rec: Recommender, t: Turn) -> PreparedTurn:
    """The scored user turn as the pipeline uses it; SkipTurn when attached media cannot be used.

    An audio turn's text in a dialogue file is what was said, so the system hears it (its transcript)
    instead of reading it.
    """
    try:
        prepared = rec.prepare(UserInput("" if t.audio else t.text, t.image, t.audio))
    except (MediaError, InputError, OSError, KeyError, ValueError) as e:
        raise SkipTurn(f"media unusable ({e})") from None
    if (t.image or t.audio) and not (prepared.soft.image or prepared.soft.audio or prepared.extra_scores
                                     or prepared.transcript):
        raise SkipTurn("media unusable (" + ("; ".join(prepared.notes) or "nothing was taken from it") + ")")
    return prepared


def replay_dialogues(systems: Sequence[System], dialogues: Sequence[Dialogue], reasons: bool, counts: Counts,
                     progress: bool = True) -> dict[str, SystemRun]:
    """Score every system on every recommendation turn with a target not mentioned before."""
    runs = {s.name: SystemRun(s.name) for s in systems}
    main = systems[0]
    for d in tqdm(dialogues, desc="eval", unit="dialogue", disable=not progress):
        for i in d.recommendation_turns():
            where = f"{d.id}#{i}"
            exclude = d.mentioned_before(i)
            if not set(d.turns[i].targets) - exclude:
                counts.turns_without_fresh_target += 1
                continue
            users = [n for n in range(i) if d.turns[n].role == "user"]
            try:
                if not users:
                    raise SkipTurn("no user turn before the recommendation")
                session = session_before(main.rec, d, users[-1])
                turn = prepare_turn(main.rec, d.turns[users[-1]])
                rankings, latency = {}, {}
                own = interactions(d)
                for s in systems:
                    t0 = time.perf_counter()
                    rankings[s.name] = rank_system(s, session, turn, own)
                    latency[s.name] = time.perf_counter() - t0
            except (SkipTurn, InputError) as e:  # InputError: "more like #9" with a 5-item list
                counts.turns_skipped.append({"where": where, "reason": str(e)})
                log.warning("skipped turn %s: %s", where, e)
                continue
            if reasons and main.rec.lm is not None:
                t0 = time.perf_counter()
                checks, tokens = reason_checks(main.rec, rankings[main.name].ranking, where)
                latency[main.name] += time.perf_counter() - t0
                runs[main.name].reasons += checks
                runs[main.name].tokens.append(tokens)
            fresh = [t for t in d.turns[i].targets if t not in exclude]
            for s in systems:
                ranks = target_ranks(rankings[s.name].ids, d.turns[i].targets, exclude).tolist()
                runs[s.name].ranks += ranks
                runs[s.name].groups += [d.id] * len(ranks)
                runs[s.name].latencies.append(latency[s.name])
                runs[s.name].rankings.append({"turn": where, "dialogue": d.id, "targets": fresh,
                                              "ids": [x for x in rankings[s.name].ids if x not in exclude][:MAX_K]})
            counts.turns_evaluated += 1
    return runs


def reason_checks(rec: Recommender, ranking: Ranking, where: str = "") -> tuple[list[ReasonCheck], int]:
    """Write reasons for the shown top-k as ``stream()`` does; check them and count generated tokens."""
    session = ranking.session
    done = [e.recommendation for e in rec.reasons(ranking.top(rec.cfg.ranking.top_k), session)
            if isinstance(e, ReasonDone)]
    liked = [rec.catalog.get(i) for i in session.liked if i in rec.catalog]
    user_text = session.user_text()
    checks, tokens = [], 0
    for r in done:
        item, raw = rec.catalog.get(r.item_id), r.reason_raw
        tokens += len(rec.lm.tok(raw, add_special_tokens=False).input_ids) if raw else 0
        shown = claims.check(r.reason, item, rec.catalog, user_text, liked)
        broken = any(c.kind == "form" and c.why in ("cut off mid-sentence", "repeats itself") for c in shown.claims)
        raw_problem = ""
        if raw and r.reason_source != "model":
            verdict = claims.check(claims.complete(raw) or raw, item, rec.catalog, user_text, liked)
            raw_problem = verdict.false[0].kind if verdict.false else "other"
        checks.append(ReasonCheck(where, r.item_id, r.reason, r.reason_source, not shown.ok, shown.about_user,
                                  broken, raw, (r.reason_source == "model") if raw else None, raw_problem))
    return checks, tokens


def interactive(systems: Sequence[System], targets: Sequence[str], episodes: int, seed: int,
                runs: dict[str, SystemRun], progress: bool = True) -> None:
    """Simulated-user episodes: success turn of each (target in the shown top-k), per system."""
    from .simulator import SimulatedUser

    rng = random.Random(seed)
    picks = [rng.choice(sorted(set(targets))) for _ in range(episodes)] if targets else []
    for e, target in enumerate(tqdm(picks, desc="interactive", unit="episode", disable=not progress)):
        for s in systems:
            user = SimulatedUser(s.rec.catalog, target, seed=seed + e, max_turns=INTERACTIVE_TURNS)
            session, text, shown = Session(), user.opening(), []
            for _ in range(INTERACTIVE_TURNS):
                try:
                    r = rank_system(s, session, s.rec.prepare(UserInput(text)))  # no dialogue of its own
                except InputError:  # the user referred to an item the list does not have
                    break
                top = r.ids[: s.rec.cfg.ranking.top_k]
                shown.append(top)
                session = r.session
                session.turns.append(
                    TurnRecord(
                        "assistant", "Recommended: " + "; ".join(s.rec.catalog.get(i).title for i in top), items=top
                    )
                )
                text = user.respond(top)
                if user.done:
                    break
            runs[s.name].success_turns.append(first_success_turn(shown, target, s.rec.cfg.ranking.top_k))
