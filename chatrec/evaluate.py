"""``chatrec eval``: replay scripted dialogues through the real pipeline and score every system.

For each assistant turn that carries ``targets``, the session is rebuilt from the turns before it
(user turns through :func:`interpret`, assistant turns as shown lists) and each system ranks the
catalog for the last user turn. All systems go through :func:`ranked_list`, so they see the same
state and the same candidate pool and differ only in how they order it:

    popularity  target counts in the train dialogues (catalog order breaks ties)
    bm25/dense  one stage-1 retriever;  fused: both, reciprocal-rank fused (stage 1 alone)
    llm-base    stage 1 + the base LLM's ranking (per-candidate yes/no scores), no adapter
    chatrec     the configured system (stage 1 + LLM with its adapter, if any)

The LLM orders the top ``n_candidates``; the rest of the retrieval pool follows, so every list is
long enough for Recall@50. Ranking metrics are counted per ground-truth item after removing items
already mentioned (``Dialogue.mentioned_before``), as in :mod:`chatrec.metrics`.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import random
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .catalog import Item
from .config import Config, ConfigError
from .dialogue import Session, TurnRecord, interpret
from .dialogues import Dialogue, Turn, load_dialogues
from .media import MediaError
from .metrics import (
    first_success_turn,
    format_valid,
    mrr_from_ranks,
    ndcg_from_ranks,
    reason_grounding,
    reason_inventions,
    recall_from_ranks,
    success_at_turn,
    target_ranks,
)
from .model import Media
from .prompting import FIT, UserTurn, rank_prompt
from .ranking import Recommendation, combine
from .recommender import Recommender
from .retrieval import Query

log = logging.getLogger(__name__)

DATA = Path(__file__).resolve().parent / "data" / "dialogues"
BASELINES = ("popularity", "bm25", "dense", "fused", "llm-base")
KINDS = ("llm", "popularity", "bm25", "dense", "fused")
MAX_K = 50  # longest cut-off reported (Recall@50); lists are at least this long when the catalog allows
INTERACTIVE_TURNS = 5


class SkipTurn(Exception):
    """A turn that cannot be replayed; the message is the reason counted in the report."""


# ---- systems and one ranking ---------------------------------------------------------------------


@dataclass(frozen=True)
class System:
    name: str  # row label in the report
    kind: str  # one of KINDS: how ranked_list orders the catalog
    rec: Recommender  # whose catalog, retriever and LLM it uses
    popular: tuple[str, ...] = ()  # popularity: item ids, most popular first


@dataclass(frozen=True)
class Ranking:
    session: Session  # the session after the scored user turn
    ids: list[str]  # full ranked list of item ids, best first
    top: list[Recommendation]  # the top_k the system would show (no reasons yet)


@dataclass(frozen=True)
class TurnInput:
    """The scored user turn, prepared once and shared by all systems."""

    text: str
    image: str | None = None  # paths, set only when the media is in use
    audio: str | None = None
    media: Media | None = None
    extra_scores: dict[str, float] | None = None


def rank_turn(rec: Recommender, session: Session, turn: TurnInput, system: str, popular: Sequence[str] = ()) -> Ranking:
    """Rank the catalog for one user turn, mirroring Recommender.respond up to the top-k cut."""
    if system not in KINDS:
        raise ValueError(f"unknown system kind {system!r}; valid: {list(KINDS)}")
    new = interpret(session, turn.text, rec.catalog)
    new.turns.append(TurnRecord("user", turn.text, image=turn.image, audio=turn.audio))
    k = rec.cfg.ranking.top_k
    if system == "popularity":
        ids = [i for i in popular if i not in new.excluded()]
        return Ranking(new, ids, [_rec(rec, i, r, 0.0, None, 0.0) for r, i in enumerate(ids[:k], 1)])
    query = Query(new.user_text(), tuple(new.liked), new.excluded(), new.constraints(), turn.extra_scores)
    use = {"bm25": ("bm25",), "dense": ("dense",)}.get(system, ("dense", "bm25"))
    # The retriever sorts stably, so the first n_candidates of this pool are exactly what respond() ranks.
    pool = rec.retriever.retrieve(query, max(rec.cfg.retrieval.pool, MAX_K), use=use)
    head = pool[: rec.cfg.retrieval.n_candidates] if system == "llm" else pool
    logprobs = None
    if system == "llm" and head and rec.lm is not None and rec.cfg.ranking.use_llm:
        media = (
            turn.media
            if turn.media
            and all(
                kind in rec.lm.projectors for kind, v in (("image", turn.media.image), ("audio", turn.media.audio)) if v
            )
            else None
        )
        turns = [
            UserTurn(
                t.role,
                t.text,
                bool(t.image) and bool(media and media.image) and t is new.turns[-1],
                bool(t.audio) and bool(media and media.audio) and t is new.turns[-1],
            )
            for t in new.turns
        ]
        logprobs = rec.lm.rank(rank_prompt(turns, [c.item for c in head]), len(head), media).tolist()
    ranked = combine(head, logprobs, rec.cfg.ranking.llm_weight, rec.cfg.ranking.retrieval_weight)
    ids = [c.item.id for c, _, _ in ranked] + [c.item.id for c in pool[len(head) :]]
    top = [_rec(rec, c.item.id, r, s, lp, c.score) for r, (c, s, lp) in enumerate(ranked[:k], 1)]
    return Ranking(new, ids, top)


def ranked_list(
    rec: Recommender, session: Session, text: str | TurnInput, system: str, popular: Sequence[str] = ()
) -> list[str]:
    """The full ranked list of item ids a system gives for ``text`` after ``session``; best first."""
    turn = text if isinstance(text, TurnInput) else TurnInput(text)
    return rank_turn(rec, session, turn, system, popular).ids


def _rec(rec: Recommender, item_id: str, rank: int, score: float, lp: float | None, retrieval: float) -> Recommendation:
    it = rec.catalog.get(item_id)
    return Recommendation(
        it.id, it.title, rank, score, lp, retrieval, year=it.year, attributes=dict(it.attributes), image=it.image
    )


def popularity_order(rec: Recommender, train: Path) -> tuple[str, ...]:
    """Catalog ids by how often each is a target in the train dialogues; ties in catalog order."""
    counts: Counter[str] = Counter()
    for d in load_dialogues(train, rec.catalog).dialogues:
        for t in d.turns:
            counts.update(t.targets)
    order = sorted(range(len(rec.catalog)), key=lambda p: -counts[rec.catalog[p].id])
    return tuple(rec.catalog[p].id for p in order)


def build_systems(rec: Recommender, baselines: Sequence[str], train: Path = DATA / "train.jsonl") -> list[System]:
    """The main system first, then the requested baselines (llm-base shares catalog and retriever)."""
    unknown = sorted(set(baselines) - set(BASELINES))
    if unknown:
        raise ValueError(f"unknown baseline(s) {unknown}; valid: {list(BASELINES)}, 'all' or 'none'")
    tuned = rec.lm is not None and hasattr(rec.lm.lm, "peft_config")
    main_name = f"chatrec+{rec.cfg.adapter}" if tuned else "chatrec"
    if rec.lm is None or not rec.cfg.ranking.use_llm:
        main_name += " (retrieval only: no LLM ranking)"
    elif "llm-base" in baselines and not tuned:
        main_name += " (= llm-base: no adapter loaded)"
    systems = [System(main_name, "llm", rec)]
    for b in baselines:
        if b == "popularity":
            systems.append(System(b, b, rec, popularity_order(rec, train)))
        elif b in ("bm25", "dense", "fused"):
            systems.append(System(b, b, rec))
        elif tuned:
            systems.append(System(b, "llm", _base_recommender(rec)))
        elif rec.lm is None or not rec.cfg.ranking.use_llm:
            log.warning("baseline llm-base skipped: the LLM is not loaded (ranking.use_llm=false)")
    return systems


def _base_recommender(rec: Recommender) -> Recommender:
    from .model import ChatLM
    from .packaged import load_llm
    from .recommender import _device

    cfg = replace(rec.cfg, adapter=None, generation=replace(rec.cfg.generation, reasons=False))
    tok, model, identity = load_llm(cfg.model.llm, cfg.cache(), cfg.model.dtype, _device(cfg.model.device))
    lm = ChatLM(tok, model, identity)
    lm.rank(f"warm-up{FIT}", 1)
    return Recommender(cfg, rec.catalog, rec.retriever, lm, rec.store, "base LLM (no adapter)")


# ---- replay --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReasonCheck:
    source: str  # "model" | "fallback": which reason is shown
    grounded: bool  # shown reason states a true fact of the item
    invents: bool  # shown reason claims something the catalog contradicts (films the user named are allowed)
    format_ok: bool  # shown reason is well formed
    raw_grounded: bool | None  # the same three checks on the model's raw text (None: nothing generated)
    raw_invents: bool | None
    raw_format_ok: bool | None


@dataclass
class SystemRun:
    """Everything measured for one system, pooled over turns."""

    name: str
    ranks: list[float] = field(default_factory=list)  # 1-based rank of each fresh target (inf: absent)
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
    s = Session()
    for n, t in enumerate(d.turns[:upto]):
        if t.role == "user":
            try:
                s = interpret(s, t.text, rec.catalog)
            except IndexError as e:
                raise SkipTurn(f"user turn {n} cannot be interpreted ({e})") from None
            s.turns.append(TurnRecord("user", t.text, image=t.image, audio=t.audio))
        else:
            s.turns.append(TurnRecord("assistant", t.text, items=_titles(rec, t.text)))
    return s


def _titles(rec: Recommender, text: str) -> list[str]:
    try:
        return interpret(Session(), text, rec.catalog).mentioned
    except IndexError:
        return []


def prepare_turn(rec: Recommender, t: Turn) -> TurnInput:
    """Text plus usable media of the scored user turn; SkipTurn when attached media cannot be used."""
    if not (t.image or t.audio):
        return TurnInput(t.text)
    try:
        from .multimodal import MultimodalInputs
    except ImportError as e:
        raise SkipTurn(f"media input unavailable ({e})") from None
    if rec.media is None:
        rec.media = MultimodalInputs(rec)
    media, extra, understood, notes = Media(), {}, {}, []
    try:
        heard = rec.media.prepare(t.image, t.audio, media, extra, understood, notes)
    except (MediaError, OSError, KeyError, ValueError) as e:
        raise SkipTurn(f"media unusable ({e})") from None
    if not (media.image or media.audio or extra or heard):
        raise SkipTurn("media unusable (" + ("; ".join(notes) or "nothing was taken from it") + ")")
    # An audio turn's text is its transcript: the system hears it instead of reading it.
    text = (("" if t.audio else t.text) + " " + (heard or "")).strip()
    return TurnInput(
        text, t.image if media.image or extra else None, t.audio if heard or media.audio else None, media, extra or None
    )


def replay(
    systems: Sequence[System], dialogues: Sequence[Dialogue], reasons: bool, counts: Counts, progress: bool = True
) -> dict[str, SystemRun]:
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
                for s in systems:
                    t0 = time.perf_counter()
                    rankings[s.name] = rank_turn(s.rec, session, turn, s.kind, s.popular)
                    latency[s.name] = time.perf_counter() - t0
            except (SkipTurn, IndexError) as e:  # IndexError: "more like #9" with a 5-item list
                counts.turns_skipped.append({"where": where, "reason": str(e)})
                log.warning("skipped turn %s: %s", where, e)
                continue
            if reasons and main.rec.lm is not None:
                t0 = time.perf_counter()
                checks, tokens = reason_checks(main.rec, rankings[main.name])
                latency[main.name] += time.perf_counter() - t0
                runs[main.name].reasons += checks
                runs[main.name].tokens.append(tokens)
            for s in systems:
                runs[s.name].ranks += target_ranks(rankings[s.name].ids, d.turns[i].targets, exclude).tolist()
                runs[s.name].latencies.append(latency[s.name])
            counts.turns_evaluated += 1
    return runs


def reason_checks(rec: Recommender, ranking: Ranking) -> tuple[list[ReasonCheck], int]:
    """Write reasons for the shown top-k as respond() does; check them and count generated tokens."""
    raw = [""] * len(ranking.top)

    def collect(row: int, piece: str) -> None:
        raw[row] += piece

    recs, _ = rec._reasons(ranking.top, ranking.session, collect, time.perf_counter())
    # Naming a film the user brought up ("like Superbad, which you liked") is not an invention.
    known = {rec.catalog.get(i).title for i in ranking.session.mentioned if i in rec.catalog}

    def invents(t: str, item: Item) -> bool:
        return any(x not in known for x in reason_inventions(t, item, rec.catalog))

    checks, tokens = [], 0
    for r, text in zip(recs, raw, strict=True):
        item, text = rec.catalog.get(r.item_id), text.strip()
        tokens += len(rec.lm.tok(text, add_special_tokens=False).input_ids) if text else 0
        checks.append(
            ReasonCheck(
                r.reason_source,
                reason_grounding(r.reason, item),
                invents(r.reason, item),
                format_valid(r.reason),
                reason_grounding(text, item) if text else None,
                invents(text, item) if text else None,
                format_valid(text) if text else None,
            )
        )
    return checks, tokens


def interactive(
    systems: Sequence[System],
    targets: Sequence[str],
    episodes: int,
    seed: int,
    runs: dict[str, SystemRun],
    progress: bool = True,
) -> None:
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
                    r = rank_turn(s.rec, session, TurnInput(text), s.kind, s.popular)
                except IndexError:  # the user referred to an item the list does not have
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


# ---- metrics and report --------------------------------------------------------------------------


@dataclass(frozen=True)
class ReasonMetrics:
    n: int  # reasons checked (shown top-k over all turns)
    grounded: float  # share of shown reasons stating a true fact of the item
    invents: float  # share of shown reasons inventing something
    format_ok: float  # share of shown reasons that are well formed
    model_written: float  # share written by the model (the rest are attribute-based fallbacks)
    raw_grounded: float  # the same checks on the model's raw output, before the fallback
    raw_invents: float
    raw_format_ok: float
    tokens_per_turn: float  # generated tokens per turn (tokenizer count of the raw reasons)


@dataclass(frozen=True)
class SystemMetrics:
    name: str
    n_targets: int  # ground-truth items scored
    recall: dict[int, float]  # K -> Recall@K, K = 1..50
    ndcg10: float
    mrr: float
    latency_p50: float  # seconds per turn (ranking, plus reasons for the main system)
    latency_p95: float
    reasons: ReasonMetrics | None = None
    success_at_turn: dict[int, float] | None = None  # interactive: t -> share of episodes hit by turn t


def _share(values: Sequence[bool | None]) -> float:
    v = [x for x in values if x is not None]
    return float(np.mean(v)) if v else float("nan")


def summarize(run: SystemRun) -> SystemMetrics:
    ranks = np.asarray(run.ranks, dtype=float)
    lat = np.asarray(run.latencies, dtype=float)
    reasons = None
    if run.reasons:
        r = run.reasons
        reasons = ReasonMetrics(
            len(r),
            _share([c.grounded for c in r]),
            _share([c.invents for c in r]),
            _share([c.format_ok for c in r]),
            _share([c.source == "model" for c in r]),
            _share([c.raw_grounded for c in r]),
            _share([c.raw_invents for c in r]),
            _share([c.raw_format_ok for c in r]),
            float(np.mean(run.tokens)),
        )
    success = None
    if run.success_turns:
        success = {t: success_at_turn(run.success_turns, t) for t in range(1, INTERACTIVE_TURNS + 1)}
    return SystemMetrics(
        run.name,
        int(ranks.size),
        {k: recall_from_ranks(ranks, k) for k in range(1, MAX_K + 1)},
        ndcg_from_ranks(ranks, 10),
        mrr_from_ranks(ranks),
        float(np.percentile(lat, 50)) if lat.size else float("nan"),
        float(np.percentile(lat, 95)) if lat.size else float("nan"),
        reasons,
        success,
    )


def _fmt(x: float | None, digits: int = 3) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def markdown_table(metrics: Sequence[SystemMetrics]) -> str:
    cols = ["R@1", "R@5", "R@10", "R@50", "NDCG@10", "MRR", "p50 s", "p95 s"]
    has_reasons = any(m.reasons for m in metrics)
    has_sr = any(m.success_at_turn for m in metrics)
    if has_reasons:
        cols += ["grounded", "invents", "format ok", "model-written", "raw grounded", "raw invents", "tok/turn"]
    if has_sr:
        cols += [f"SR@{t}" for t in range(1, INTERACTIVE_TURNS + 1)]
    lines = ["| system | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for m in metrics:
        row = [_fmt(m.recall[k]) for k in (1, 5, 10, 50)] + [
            _fmt(m.ndcg10),
            _fmt(m.mrr),
            _fmt(m.latency_p50, 2),
            _fmt(m.latency_p95, 2),
        ]
        if has_reasons:
            r = m.reasons
            row += (
                [
                    _fmt(r.grounded),
                    _fmt(r.invents),
                    _fmt(r.format_ok),
                    _fmt(r.model_written),
                    _fmt(r.raw_grounded),
                    _fmt(r.raw_invents),
                    _fmt(r.tokens_per_turn, 1),
                ]
                if r
                else ["–"] * 7
            )
        if has_sr:
            row += [_fmt(m.success_at_turn[t]) if m.success_at_turn else "–" for t in range(1, INTERACTIVE_TURNS + 1)]
        lines.append(f"| {m.name} | " + " | ".join(row) + " |")
    return "\n".join(lines)


def _clean_json(x):
    if isinstance(x, float):
        return None if math.isnan(x) or math.isinf(x) else x
    if isinstance(x, dict):
        return {str(k): _clean_json(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean_json(v) for v in x]
    return x


def write_plots(out: Path, metrics: Sequence[SystemMetrics], runs: dict[str, SystemRun]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for n, m in enumerate(metrics):
        ks = sorted(m.recall)
        ax.step(
            ks,
            [m.recall[k] for k in ks],
            where="post",
            label=m.name,
            ls=("-", "--", ":", "-.")[n % 4],
            lw=2.2 if n == 0 else 1.4,
        )
    ax.set(xlabel="K", ylabel="Recall@K", title="Recall@K", xlim=(1, MAX_K), ylim=(0, 1))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "recall_at_k.png", dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 4.5))
    lat = [np.asarray(runs[m.name].latencies) * 1000 for m in metrics if runs[m.name].latencies]
    if lat:
        top = max(float(x.max()) for x in lat)
        bins = np.logspace(np.log10(max(min(float(x.min()) for x in lat), 1e-2)), np.log10(max(top, 1e-1)), 40)
        for m, x in zip([m for m in metrics if runs[m.name].latencies], lat, strict=True):
            ax.hist(np.maximum(x, bins[0]), bins=bins, alpha=0.5, label=m.name)
        ax.set_xscale("log")
        ax.legend(fontsize=8)
    ax.set(xlabel="latency per turn (ms)", ylabel="turns", title="Per-turn latency")
    fig.tight_layout()
    fig.savefig(out / "latency.png", dpi=120)
    plt.close(fig)

    if any(m.success_at_turn for m in metrics):
        fig, ax = plt.subplots(figsize=(6, 4))
        for m in metrics:
            if m.success_at_turn:
                ts = sorted(m.success_at_turn)
                ax.plot(ts, [m.success_at_turn[t] for t in ts], marker="o", label=m.name)
        ax.set(xlabel="turn", ylabel="success rate", title="Success@turn (simulated users)", ylim=(0, 1))
        ax.set_xticks(range(1, INTERACTIVE_TURNS + 1))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out / "success_at_turn.png", dpi=120)
        plt.close(fig)


def write_report(
    out: Path, header: dict, counts: Counts, metrics: Sequence[SystemMetrics], runs: dict[str, SystemRun]
) -> str:
    """report.json, report.md and the plots in ``out``; returns the Markdown table."""
    out.mkdir(parents=True, exist_ok=True)
    reasons = Counter(t["reason"] for t in counts.turns_skipped)
    report = {
        **header,
        "counts": {
            **asdict(counts),
            "dialogues_skipped_n": len(counts.dialogues_skipped),
            "turns_skipped_n": len(counts.turns_skipped),
            "turns_skipped_by_reason": dict(reasons),
        },
        "systems": {m.name: asdict(m) for m in metrics},
    }
    (out / "report.json").write_text(json.dumps(_clean_json(report), indent=2, ensure_ascii=False), encoding="utf-8")
    table = markdown_table(metrics)
    notes = [
        f"- dialogues: {counts.dialogues_evaluated} evaluated of {counts.dialogues_loaded} loaded, "
        f"{len(counts.dialogues_skipped)} rows skipped",
        f"- recommendation turns: {counts.turns_evaluated} scored, {len(counts.turns_skipped)} skipped, "
        f"{counts.turns_without_fresh_target} without a target not mentioned before",
        f"- model: {header['model']}; adapter: {header['adapter']['note'] or header['adapter']['requested']}",
        f"- config {header['config_hash']}, catalog {header['catalog']['hash'][:16]}, seed {header['seeds']['config']}",
    ]
    notes += [f"- skipped {s['where']}: {s['reason']}" for s in counts.dialogues_skipped + counts.turns_skipped]
    (out / "report.md").write_text(f"# chatrec eval\n\n{table}\n\n" + "\n".join(notes) + "\n", encoding="utf-8")
    write_plots(out, metrics, runs)
    return table


# ---- command line --------------------------------------------------------------------------------


def _baselines(spec: str) -> list[str]:
    spec = (spec or "none").strip()
    if spec == "all":
        return list(BASELINES)
    return [] if spec == "none" else [b.strip() for b in spec.split(",") if b.strip()]


def main(args: argparse.Namespace, cfg: Config) -> int:
    started = time.perf_counter()
    if args.no_reasons:
        cfg = replace(cfg, generation=replace(cfg.generation, reasons=False))
    baselines = _baselines(args.baselines)
    if sorted(set(baselines) - set(BASELINES)):
        raise ConfigError(
            f"unknown baseline(s) {sorted(set(baselines) - set(BASELINES))}; valid: {list(BASELINES)}, 'all' or 'none'"
        )
    path = Path(args.dialogues) if args.dialogues else DATA / "test.jsonl"
    progress = not getattr(args, "quiet", False)
    rec = Recommender.from_config(cfg, progress=progress)
    systems = build_systems(rec, baselines)
    loaded = load_dialogues(path, rec.catalog)
    dialogues = loaded.dialogues[: args.limit] if args.limit else loaded.dialogues
    counts = Counts(len(loaded.dialogues), len(dialogues), [asdict(s) for s in loaded.skipped])
    runs = replay(systems, dialogues, cfg.generation.reasons, counts, progress)
    if args.interactive:
        targets = [t for d in dialogues for turn in d.turns for t in turn.targets] or [
            t
            for d in load_dialogues(DATA / "test.jsonl", rec.catalog).dialogues
            for turn in d.turns
            for t in turn.targets
        ]
        interactive(systems, targets, args.interactive, cfg.seed, runs, progress)
    metrics = [summarize(runs[s.name]) for s in systems]
    header = {
        "config_hash": cfg.hash(),
        "config": cfg.to_dict(),
        "seeds": {"config": cfg.seed, "interactive": cfg.seed if args.interactive else None},
        "model": rec.lm.identity if rec.lm is not None else None,
        "adapter": {
            "requested": cfg.adapter,
            "loaded": systems[0].name.startswith("chatrec+"),
            "note": rec.adapter_note,
        },
        "catalog": {"source": rec.catalog.source, "hash": rec.catalog.content_hash(), "items": len(rec.catalog)},
        "dialogues_file": str(path),
        "limit": args.limit,
        "reasons": cfg.generation.reasons,
        "interactive_episodes": args.interactive,
        "systems_kinds": {s.name: s.kind for s in systems},
    }
    header["wall_seconds"] = round(time.perf_counter() - started, 2)
    table = write_report(Path(args.out), header, counts, metrics, runs)
    log.info("report written to %s (%.1f s)", args.out, header["wall_seconds"])
    print(table)
    return 0
