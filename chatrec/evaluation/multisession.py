"""Returning simulated users: several sessions each, with and without profiles and the collaborative channel.

A returning user has an owner id and a hidden *taste*: a group of catalog items that share a director
(``taste="director"``, the default) or a genre and a decade (``"genre-decade"``). Their ``sessions``
targets are distinct items of that group, one per session, so what a user liked in earlier sessions is
evidence about the later targets. Each session is a new :class:`Session` with the same owner and one
interactive episode of the template simulator (:class:`SimulatedUser`): up to ``turns`` lists, ending
when the target is in the shown top-k. After a list without the target the user likes every shown item of
their taste (a 👍 through :meth:`Recommender.feedback`, so the profile and the co-occurrence get evidence),
turns down the first shown item outside it (as the single-episode simulator turns one down, but as a 👎, so
no sentence has to be parsed), and says one more fact of the target. An accepted target is liked too.
The user never likes or turns down a target still to come: those films are the ones they have not found yet.

The same users, seeds and utterances go through four conditions in one run (:data:`CONDITIONS`): profiles
off or on (``[profile] enabled``) crossed with the collaborative channel off or on (a co-occurrence model
built for the condition). Every condition starts from an empty session store of its own, so nothing leaks
between them; users run one after another, so within a collaborative condition a later user also sees the
likes of the earlier ones. Per condition and session index: success@turn (share of episodes whose target
was in the shown top-k by turn t) and mean turns to success (a failure counts as ``turns + 1``), with 95%
bootstrap intervals that resample users; the main comparison is sessions >= 2 against the baseline, paired
by user.

    chatrec eval --multisession 30 --set ranking.use_llm=false
    python -m chatrec.evaluation.multisession --users 30 --sessions 3 --turns 5 --set ranking.use_llm=false
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import random
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..catalog import Catalog
from ..collaborative import CoOccurrence
from ..config import Config
from ..recommender import Recommender
from ..session import InputError, Session
from ..store import SessionStore
from .metrics import paired_bootstrap, success_at_turn
from .simulator import SimulatedUser

log = logging.getLogger(__name__)

TASTES = ("director", "genre-decade")
N_BOOT = 1000  # bootstrap resamples (users drawn with replacement)
LATER = "2+"  # the key of sessions >= 2 pooled, the main comparison


@dataclass(frozen=True)
class MultiSessionOptions:
    users: int = 30  # returning simulated users
    sessions: int = 3  # sessions per user, each toward a new target of the same taste
    turns: int = 5  # most lists per session (T); a failure counts as T + 1 turns
    taste: str = "director"  # what ties a user's targets together: one of TASTES
    seed: int | None = None  # users, targets and utterances; None: the config's seed
    out: str = "eval_out"  # report directory (multisession.md, multisession.json, multisession_success.png)
    progress: bool = True

    def __post_init__(self):
        if self.taste not in TASTES:
            raise ValueError(f"unknown taste {self.taste!r}; valid: {', '.join(TASTES)}")
        if min(self.users, self.sessions, self.turns) < 1:
            raise ValueError("users, sessions and turns must be at least 1")


@dataclass(frozen=True)
class Condition:
    name: str
    profiles: bool  # [profile] enabled: earlier sessions of the owner shape the lists
    collab: bool  # the collaborative channel: items liked together, a third ranking in the fusion


CONDITIONS = (
    Condition("baseline", False, False),
    Condition("profiles", True, False),
    Condition("collab", False, True),
    Condition("profiles+collab", True, True),
)


@dataclass(frozen=True)
class Taste:
    kind: str  # one of TASTES
    value: str  # "Alfred Hitchcock", or "Horror, 1980s"
    members: tuple[str, ...]  # item ids of the group, sorted


@dataclass(frozen=True)
class ReturningUser:
    owner: str  # the owner id of all their sessions
    taste: Taste
    targets: tuple[str, ...]  # one per session, in session order
    seed: int  # session i's simulated user is seeded with seed + i


@dataclass(frozen=True)
class Episode:
    condition: str
    owner: str
    session: int  # 1-based index of the user's session
    target: str
    success_turn: int | None  # first turn whose shown top-k held the target; None: not within the turns
    shown: tuple[tuple[str, ...], ...]  # each turn's shown list
    liked: tuple[str, ...] = ()  # items the user liked through feedback (the accepted target included)
    rejected: tuple[str, ...] = ()  # items the user turned down through feedback


# ---- users ---------------------------------------------------------------------------------------


def tastes(catalog: Catalog, kind: str, min_items: int) -> list[Taste]:
    """Every group of at least ``min_items`` items sharing a director, or a genre and a decade, by name."""
    groups: dict[str, set[str]] = {}
    for item in catalog:
        if kind == "director":
            keys = item.values("director")
        elif kind == "genre-decade":
            keys = [f"{g}, {item.year // 10 * 10}s" for g in item.values("genres")] if item.year is not None else []
        else:
            raise ValueError(f"unknown taste {kind!r}; valid: {', '.join(TASTES)}")
        for key in keys:
            groups.setdefault(key, set()).add(item.id)
    return [Taste(kind, k, tuple(sorted(v))) for k, v in sorted(groups.items()) if len(v) >= min_items]


def make_users(catalog: Catalog, n: int, sessions: int, kind: str = "director", seed: int = 0) -> list[ReturningUser]:
    """``n`` users, each with a taste drawn from the groups of at least ``sessions + 1`` items (one to like
    besides the targets) and ``sessions`` distinct targets from it."""
    pool = tastes(catalog, kind, sessions + 1)
    if not pool:
        raise ValueError(f"no {kind} group of the catalog has {sessions + 1} items; use fewer sessions or "
                         f"another taste ({', '.join(TASTES)})")
    rng = random.Random(seed)
    users = []
    for u in range(n):
        taste = rng.choice(pool)
        users.append(ReturningUser(f"sim-user-{u:03d}", taste, tuple(rng.sample(taste.members, sessions)),
                                   rng.randrange(2**31)))
    return users


# ---- episodes ------------------------------------------------------------------------------------


def condition_recommender(base: Recommender, condition: Condition, data_dir: Path) -> Recommender:
    """``base``'s catalog, indexes and LLM with the condition's switches and an empty store in ``data_dir``.

    Not ``Recommender.from_config(reuse=base)``: that shares the store, and with it profiles and likes.
    """
    cfg = replace(base.cfg, data_dir=str(data_dir), profile=replace(base.cfg.profile, enabled=condition.profiles),
                  collaborative=replace(base.cfg.collaborative, enabled=condition.collab))
    store = SessionStore(Path(data_dir) / "sessions.sqlite")
    retriever = copy.copy(base.retriever)  # the dense and BM25 indexes are shared; only the collab model differs
    retriever.collab = CoOccurrence.build(base.catalog, cfg.collaborative, store) if condition.collab else None
    return Recommender(cfg, base.catalog, retriever, base.lm, store, base.adapter)


def run_episode(rec: Recommender, user: ReturningUser, index: int, turns: int, condition: str = "") -> Episode:
    """Session ``index`` (0-based) of ``user``: a new session of theirs, up to ``turns`` answers of ``rec``."""
    target, pending = user.targets[index], set(user.targets[index:])
    sim = SimulatedUser(rec.catalog, target, seed=user.seed + index, max_turns=turns)
    # A target still to come is unseen: the user never names it as a film they liked (that would mark it seen).
    sim.persona.facts["liked"] = [i for i in sim.persona.facts["liked"] if i not in pending]
    session = Session(owner=user.owner)
    text, shown, liked, rejected, success = sim.opening(), [], [], [], None
    for turn in range(1, turns + 1):
        try:
            answer = rec.respond(session, text)
        except InputError:  # the same ending as the single-episode simulation's
            break
        session = answer.session
        top = [r.item_id for r in answer.recommendations]
        shown.append(tuple(top))
        if target in top:
            sim.respond(top)  # accepts
            session = rec.feedback(session, target, liked=True)
            liked.append(target)
            success = turn
            break
        for item_id in top:
            if item_id in user.taste.members and item_id not in pending and item_id not in session.liked:
                session = rec.feedback(session, item_id, liked=True)
                liked.append(item_id)
        other = [i for i in top if i not in user.taste.members and i not in session.rejected]
        if other:
            session = rec.feedback(session, other[0], liked=False)
            rejected.append(other[0])
        text = sim.respond([])  # the turn-down was the 👎: the next message only reveals one more fact
        if sim.done:
            break
    return Episode(condition, user.owner, index + 1, target, success, tuple(shown), tuple(liked), tuple(rejected))


def run_condition(base: Recommender, condition: Condition, users: Sequence[ReturningUser], turns: int,
                  data_dir: Path, progress: bool = False) -> list[Episode]:
    """Every user's sessions in order, user after user, in a fresh store under ``data_dir``."""
    rec = condition_recommender(base, condition, data_dir)
    sessions = len(users[0].targets) if users else 0
    return [run_episode(rec, u, i, turns, condition.name)
            for u in tqdm(users, desc=condition.name, unit="user", disable=not progress) for i in range(sessions)]


def run(base: Recommender, opts: MultiSessionOptions) -> tuple[list[ReturningUser], list[Episode]]:
    """The same users under every condition of :data:`CONDITIONS`; reasons are never written."""
    base = Recommender(replace(base.cfg, generation=replace(base.cfg.generation, reasons=False)), base.catalog,
                       base.retriever, base.lm, base.store, base.adapter)
    seed = base.cfg.seed if opts.seed is None else opts.seed
    users = make_users(base.catalog, opts.users, opts.sessions, opts.taste, seed)
    episodes: list[Episode] = []
    with tempfile.TemporaryDirectory(prefix="chatrec-multisession-") as tmp:
        for c in CONDITIONS:
            t0 = time.perf_counter()
            episodes += run_condition(base, c, users, opts.turns, Path(tmp) / c.name.replace("+", "_"), opts.progress)
            log.info("%s: %d episodes in %.1f s", c.name, len(users) * opts.sessions, time.perf_counter() - t0)
    return users, episodes


# ---- metrics -------------------------------------------------------------------------------------


def turns_to_success(success_turns: Sequence[int | None], max_turns: int) -> np.ndarray:
    """(E,) the turn of each episode's first success; a failure counts as ``max_turns + 1``."""
    return np.array([max_turns + 1 if s is None else s for s in success_turns], dtype=float)


def _interval(values: np.ndarray, groups: Sequence[str], minus: np.ndarray | None = None, seed: int = 0
              ) -> tuple[float, float]:
    """95% bootstrap interval of mean(values) (or of mean(values) - mean(minus), paired), users resampled."""
    if len(values) == 0:
        return float("nan"), float("nan")
    other = np.zeros_like(values) if minus is None else minus
    return paired_bootstrap(values, other, groups, np.mean, N_BOOT, seed)


def summarize_episodes(episodes: Sequence[Episode], max_turns: int, seed: int = 0) -> dict:
    """success@t (t = 1..T) and mean turns to success of some episodes, each with a 95% interval over users."""
    groups = [e.owner for e in episodes]
    success = [e.success_turn for e in episodes]
    tts = turns_to_success(success, max_turns)
    return {
        "episodes": len(episodes),
        "users": len(set(groups)),
        "success_at_turn": {t: success_at_turn(success, t) for t in range(1, max_turns + 1)},
        "success_ci": {t: _interval((tts <= t).astype(float), groups, seed=seed) for t in range(1, max_turns + 1)},
        "turns_to_success": float(tts.mean()) if len(tts) else float("nan"),
        "turns_ci": _interval(tts, groups, seed=seed),
    }


def _select(episodes: Sequence[Episode], condition: str, session: int | str) -> list[Episode]:
    """One condition's episodes of one session index (or of sessions >= 2 for LATER), by owner and session."""
    keep = [e for e in episodes
            if e.condition == condition and (e.session >= 2 if session == LATER else e.session == session)]
    return sorted(keep, key=lambda e: (e.owner, e.session))


def session_keys(sessions: int) -> list[int | str]:
    """1..S, then LATER when there is a later session."""
    return [*range(1, sessions + 1), *([LATER] if sessions >= 2 else [])]


def summarize(episodes: Sequence[Episode], sessions: int, max_turns: int, seed: int = 0) -> dict:
    """condition -> session key (1..S, LATER) -> :func:`summarize_episodes`."""
    names = list(dict.fromkeys(e.condition for e in episodes))
    return {c: {str(k): summarize_episodes(_select(episodes, c, k), max_turns, seed) for k in session_keys(sessions)}
            for c in names}


def differences(episodes: Sequence[Episode], sessions: int, max_turns: int, baseline: str = "baseline",
                seed: int = 0) -> dict:
    """condition -> session key ("1", LATER) -> metric -> (difference, low, high): the condition minus the
    baseline on the same users' same sessions, with a paired 95% bootstrap interval over users."""
    out: dict[str, dict] = {}
    names = [c for c in dict.fromkeys(e.condition for e in episodes) if c != baseline]
    for c in names:
        out[c] = {}
        for key in [1, *([LATER] if sessions >= 2 else [])]:
            a, b = _select(episodes, c, key), _select(episodes, baseline, key)
            if [(e.owner, e.session) for e in a] != [(e.owner, e.session) for e in b]:
                raise ValueError(f"{c} and {baseline} ran different users or sessions")
            ta = turns_to_success([e.success_turn for e in a], max_turns)
            tb = turns_to_success([e.success_turn for e in b], max_turns)
            groups = [e.owner for e in a]
            cells = {f"S@{t}": ((ta <= t).astype(float), (tb <= t).astype(float)) for t in (1, max_turns)}
            cells["turns"] = (ta, tb)
            out[c][str(key)] = {m: (float(x.mean() - y.mean()), *_interval(x, groups, y, seed))
                                for m, (x, y) in cells.items()}
    return out


# ---- report --------------------------------------------------------------------------------------


def _f(x: float, digits: int = 3) -> str:
    return "–" if x is None or np.isnan(x) else f"{x:.{digits}f}"


def _session_label(key: str) -> str:
    return "≥ 2" if key == LATER else key


def markdown(summary: dict, diffs: dict, max_turns: int) -> str:
    """The success@turn table per condition and session, then the paired differences against the baseline."""
    t = max_turns
    head = ["condition", "session", "episodes", *[f"S@{i}" for i in range(1, t)], f"S@{t} (95% CI)",
            "turns to success (95% CI)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for c, by_session in summary.items():
        for key, m in by_session.items():
            lo, hi = m["success_ci"][t]
            tlo, thi = m["turns_ci"]
            cells = [c, _session_label(key), str(m["episodes"]), *[_f(m["success_at_turn"][i]) for i in range(1, t)],
                     f"{_f(m['success_at_turn'][t])} ({_f(lo, 2)}–{_f(hi, 2)})",
                     f"{_f(m['turns_to_success'], 2)} ({_f(tlo, 2)}–{_f(thi, 2)})"]
            lines.append("| " + " | ".join(cells) + " |")
    text = "\n".join(lines)
    if diffs:
        rows = [f"| condition minus baseline | sessions | S@1 | S@{t} | turns to success |", "|---|---|---|---|---|"]
        for c, by_session in diffs.items():
            for key, ms in by_session.items():
                cells = []
                for name in ("S@1", f"S@{t}", "turns"):
                    d, lo, hi = ms[name]
                    star = " *" if lo > 0 or hi < 0 else ""
                    cells.append(f"{d:+.3f} [{lo:+.3f}, {hi:+.3f}]{star}")
                rows.append(f"| {c} | {_session_label(key)} | " + " | ".join(cells) + " |")
        text += ("\n\nPaired bootstrap over users (95% interval; * excludes 0; fewer turns is better):\n\n"
                 + "\n".join(rows))
    return text


def plot(path: Path, summary: dict, max_turns: int) -> None:
    """Success@turn per condition: session 1, and sessions >= 2 pooled (the returning user)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [k for k in ("1", LATER) if any(k in s for s in summary.values())]
    fig, axes = plt.subplots(1, len(keys), figsize=(5.5 * len(keys), 4), squeeze=False)
    ts = list(range(1, max_turns + 1))
    for ax, key in zip(axes[0], keys, strict=True):
        for n, (c, by_session) in enumerate(summary.items()):
            ax.plot(ts, [by_session[key]["success_at_turn"][t] for t in ts], marker="o", label=c,
                    ls=("-", "--", ":", "-.")[n % 4])
        ax.set(xlabel="turn", ylabel="success rate", ylim=(0, 1),
               title="session 1" if key == "1" else "sessions ≥ 2 (returning user)")
        ax.set_xticks(ts)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("Success@turn, simulated returning users")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _json_ready(x):
    if isinstance(x, float):
        return None if np.isnan(x) or np.isinf(x) else x
    if isinstance(x, dict):
        return {str(k): _json_ready(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_ready(v) for v in x]
    return x


def evaluate(cfg: Config, opts: MultiSessionOptions, rec: Recommender | None = None) -> tuple[str, dict]:
    """Run every condition on the same users; write multisession.md/.json and multisession_success.png to
    ``opts.out``. ``rec``: an already loaded pipeline to share (else one is loaded from ``cfg``, without
    the LLM unless ``ranking.use_llm``). Returns (Markdown, the JSON report)."""
    started = time.perf_counter()
    cfg = replace(cfg, generation=replace(cfg.generation, reasons=False))
    # Each condition sets [profile] and [collaborative] itself; the shared pipeline needs no co-occurrence of its own.
    rec = rec or Recommender.from_config(replace(cfg, collaborative=replace(cfg.collaborative, enabled=False)),
                                         progress=opts.progress)
    users, episodes = run(rec, opts)
    seed = cfg.seed if opts.seed is None else opts.seed
    summary = summarize(episodes, opts.sessions, opts.turns, seed)
    diffs = differences(episodes, opts.sessions, opts.turns, seed=seed)
    table = markdown(summary, diffs, opts.turns)
    report = {
        "config_hash": cfg.hash(),
        "config": cfg.to_dict(),
        "options": asdict(opts),
        "seed": seed,
        "llm": rec.lm.identity if rec.uses_llm else None,
        "catalog": {"source": rec.catalog.source, "hash": rec.catalog.content_hash(), "items": len(rec.catalog)},
        "conditions": [asdict(c) for c in CONDITIONS],
        "failure_turns": opts.turns + 1,
        "users": [asdict(u) for u in users],
        "summary": summary,
        "differences": diffs,
        "episodes": [asdict(e) for e in episodes],
        "wall_seconds": round(time.perf_counter() - started, 2),
    }
    out = Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    what = "retrieval only" if not rec.uses_llm else f"LLM ranking ({rec.lm.identity})"
    (out / "multisession.md").write_text(
        f"# Multi-session evaluation\n\n{opts.users} users x {opts.sessions} sessions x up to {opts.turns} turns, "
        f"taste: {opts.taste}, {what}; a failure counts as {opts.turns + 1} turns.\n\n{table}\n", encoding="utf-8")
    (out / "multisession.json").write_text(json.dumps(_json_ready(report), indent=1, ensure_ascii=False),
                                           encoding="utf-8")
    plot(out / "multisession_success.png", summary, opts.turns)
    log.info("multi-session report written to %s (%.1f s)", out, report["wall_seconds"])
    return table, report


def main(argv: Sequence[str] | None = None) -> int:
    """python -m chatrec.evaluation.multisession [--users N ...] [--set key=value ...]: print the tables."""
    from ..config import load_config

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=MultiSessionOptions.users)
    ap.add_argument("--sessions", type=int, default=MultiSessionOptions.sessions)
    ap.add_argument("--turns", type=int, default=MultiSessionOptions.turns)
    ap.add_argument("--taste", choices=TASTES, default=MultiSessionOptions.taste)
    ap.add_argument("--seed", type=int, default=None, help="default: the config's seed")
    ap.add_argument("--out", default=MultiSessionOptions.out)
    ap.add_argument("--config", help="TOML or YAML config file")
    ap.add_argument("--set", action="extend", nargs="+", default=[], dest="overrides", metavar="KEY=VALUE")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    opts = MultiSessionOptions(args.users, args.sessions, args.turns, args.taste, args.seed, args.out)
    table, _ = evaluate(load_config(args.config, args.overrides), opts)
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
