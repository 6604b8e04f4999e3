"""A person's profile across sessions: liked and rejected items, genres, people and eras, with evidence.

A profile belongs to an owner (the terminal's local user, a browser's or an API client's hash) and is
built from that owner's sessions. Every entry keeps where it came from (session, turn, time), and its
weight is the sum of its evidence, each piece halved every ``[profile] half_life_days``. A session adds
to the profile after each saved turn (:meth:`Profile.updated_with` replaces that session's evidence, so
an undone like is undone here too); a session switched off (``Session.use_profile``) neither adds to it
nor is shaped by it. A line the person removes stays removed until newer evidence says it again.

Retrieval reads a profile as a bias (:func:`profile_query_bias`): liked items pull (one more ranking in
the fusion, weaker than the session's own likes), rejected and already liked items are not shown again,
genres, people and eras nudge scores up or down. Nothing else in a profile ever filters an item out.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np

from .session import Session, TurnRecord
from .vocab import GENRE_WORDS

if TYPE_CHECKING:
    from .catalog import Catalog
    from .config import ProfileConfig
    from .retrieval import Retriever

KINDS = ("liked_item", "rejected_item", "genre_pref", "genre_avoid", "person", "era")
OPPOSITE = {"liked_item": "rejected_item", "rejected_item": "liked_item",
            "genre_pref": "genre_avoid", "genre_avoid": "genre_pref"}
LOCAL_OWNER = "local"  # the profile key of the terminal's user (its sessions have no owner)
FORMAT = 1  # version of the JSON a profile is stored and exported as
MAX_EVIDENCE = 20  # newest pieces of evidence kept per entry (older ones weigh little after decay)
DAY = 86400.0


def owner_key(owner: str | None) -> str:
    """The key a profile is stored under: the sessions' owner, or :data:`LOCAL_OWNER` for the terminal's."""
    return owner or LOCAL_OWNER


def decay(age_seconds: float, half_life_days: float) -> float:
    """The weight of one piece of evidence this old: 1 now, 0.5 after one half-life (future times count as now)."""
    return 0.5 ** (max(0.0, age_seconds) / DAY / half_life_days)


@dataclass(frozen=True)
class Evidence:
    """Where an entry was seen: a session, the index of its turn (0-based) and that turn's time."""

    session: str
    turn: int
    ts: float


@dataclass(frozen=True)
class ProfileEntry:
    kind: str  # one of KINDS
    value: str  # item id, genre, person (as the catalog writes them), or era "1980-1989" / "-1979" / "2011-"
    weight: float = 0.0  # decayed sum of the evidence, as of the profile's ``updated``
    evidence: tuple[Evidence, ...] = ()  # oldest first
    label: str = ""  # how lines and prompts name the value ("Heat (1995)", "science fiction", "the 1980s")

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.value}"

    @property
    def latest(self) -> float:
        return max((e.ts for e in self.evidence), default=0.0)

    def name(self) -> str:
        return self.label or self.value


@dataclass
class Profile:
    owner: str  # owner_key() of the sessions it is built from
    entries: list[ProfileEntry] = field(default_factory=list)  # in line order (see :func:`_ordered`)
    removed: dict[str, float] = field(default_factory=dict)  # entry key -> when its line was removed
    updated: float = 0.0  # when the weights were computed

    def __bool__(self) -> bool:
        return bool(self.entries)

    # ---- JSON ---------------------------------------------------------------------------------------

    def to_dict(self, with_owner: bool = True) -> dict:
        d = {"format": FORMAT, "owner": self.owner, "updated": self.updated,
             "entries": [{"kind": e.kind, "value": e.value, "label": e.label, "weight": e.weight,
                          "evidence": [[x.session, x.turn, x.ts] for x in e.evidence]} for e in self.entries],
             "removed": dict(self.removed)}
        if not with_owner:
            del d["owner"]
        return d

    def to_json(self, indent: int | None = None, with_owner: bool = True) -> str:
        return json.dumps(self.to_dict(with_owner), indent=indent, ensure_ascii=False)

    @classmethod
    def from_dict(cls, d: dict) -> Profile:
        """A profile from :meth:`to_dict` output; ValueError on another format or an unknown kind."""
        if d.get("format") != FORMAT:
            raise ValueError(f"profile format {d.get('format')!r} is not {FORMAT}")
        entries = []
        for e in d.get("entries", []):
            if e["kind"] not in KINDS:
                raise ValueError(f"unknown profile entry kind {e['kind']!r}; valid: {', '.join(KINDS)}")
            evidence = tuple(Evidence(str(s), int(t), float(ts)) for s, t, ts in e.get("evidence", []))
            entries.append(ProfileEntry(e["kind"], str(e["value"]), float(e.get("weight", 0.0)), evidence,
                                        str(e.get("label", ""))))
        return cls(str(d["owner"]), entries, {str(k): float(v) for k, v in d.get("removed", {}).items()},
                   float(d.get("updated", 0.0)))

    @classmethod
    def from_json(cls, text: str) -> Profile:
        return cls.from_dict(json.loads(text))

    # ---- in words -----------------------------------------------------------------------------------

    def lines(self, now: float | None = None) -> list[str]:
        """One plain sentence per entry, in order; ``remove(n)`` takes the 1-based number of a line."""
        now = time.time() if now is None else now
        return [_line(e, now) for e in self.entries]

    def remove(self, line_id: int | str, now: float | None = None) -> ProfileEntry:
        """Remove line ``line_id`` (1-based, as :meth:`lines` numbers them, or an entry key). Its evidence so far
        is forgotten: a later session that says it again brings it back. IndexError for no such line."""
        found = [e for e in self.entries if e.key == line_id] if isinstance(line_id, str) else (
            [self.entries[line_id - 1]] if 1 <= line_id <= len(self.entries) else [])
        if not found:
            raise IndexError(f"no profile line {line_id!r} (there are {len(self.entries)})")
        entry = found[0]
        self.entries.remove(entry)
        self.removed[entry.key] = max(time.time() if now is None else now, entry.latest)
        return entry

    def summary(self, max_items: int = 3) -> str:
        """A short phrase for the rank prompt: "liked Heat (1995), Alien (1979); avoids horror" ("" when empty)."""
        words = {"liked_item": "liked", "rejected_item": "turned down", "genre_pref": "likes",
                 "genre_avoid": "avoids", "person": "asked for", "era": "asked for"}
        parts = []
        for kind in KINDS:
            names = [e.name() for e in self.entries if e.kind == kind][:max_items]
            if names:
                parts.append(f"{words[kind]} {', '.join(names)}")
        return "; ".join(parts)

    # ---- building -----------------------------------------------------------------------------------

    def without_session(self, session_id: str) -> Profile:
        """This profile without the evidence of one session (entries left without evidence go)."""
        entries = []
        for e in self.entries:
            kept = tuple(x for x in e.evidence if x.session != session_id)
            if kept:
                entries.append(replace(e, evidence=kept) if len(kept) < len(e.evidence) else e)
        return Profile(self.owner, entries, dict(self.removed), self.updated)

    def updated_with(self, session: Session, now: float, half_life_days: float,
                     catalog: Catalog | None = None) -> Profile:
        """The profile with ``session``'s evidence replaced by what the session says now (none when it is
        switched off), weights as of ``now``. Pure: this profile is unchanged."""
        base = self.without_session(session.id)
        found = session_entries(session, catalog) if session.use_profile else []
        return base.merged(found, now, half_life_days)

    def merged(self, found: Iterable[ProfileEntry], now: float, half_life_days: float) -> Profile:
        """This profile plus new evidence: removed lines ignore evidence from before their removal, an item
        (or genre) both liked and rejected keeps the side said last, and weights are recomputed at ``now``."""
        by_key = {e.key: e for e in self.entries}
        for new in found:
            fresh = tuple(x for x in new.evidence if x.ts > self.removed.get(new.key, float("-inf")))
            if not fresh:
                continue
            old = by_key.get(new.key)
            evidence = fresh if old is None else tuple(sorted(set(old.evidence) | set(fresh), key=lambda x: x.ts))
            by_key[new.key] = ProfileEntry(new.kind, new.value, 0.0, evidence[-MAX_EVIDENCE:],
                                           new.label or (old.label if old else ""))
        for key, e in list(by_key.items()):
            other = by_key.get(f"{OPPOSITE.get(e.kind)}:{e.value}")
            if other is not None and other.latest > e.latest:
                del by_key[key]
        entries = [replace(e, weight=sum(decay(now - x.ts, half_life_days) for x in e.evidence)) for e in by_key.values()]
        return Profile(self.owner, _ordered(entries), dict(self.removed), now)

    def reweighed(self, now: float, half_life_days: float) -> Profile:
        """The same evidence with weights as of ``now``."""
        entries = [replace(e, weight=sum(decay(now - x.ts, half_life_days) for x in e.evidence)) for e in self.entries]
        return Profile(self.owner, _ordered(entries), dict(self.removed), now)

    def evidence_key(self) -> tuple:
        """What the profile knows, without its weights: equal keys need no new write."""
        return (tuple((e.key, e.label, e.evidence) for e in self.entries), tuple(sorted(self.removed.items())))


def _ordered(entries: Iterable[ProfileEntry]) -> list[ProfileEntry]:
    """Line order: by kind (KINDS), heaviest first, then by value."""
    return sorted(entries, key=lambda e: (KINDS.index(e.kind), -e.weight, e.value))


def build_profile(sessions: Iterable[Session], now: float, half_life_days: float, owner: str | None = None,
                  catalog: Catalog | None = None) -> Profile:
    """An owner's profile from their sessions, weights as of ``now`` (sessions switched off add nothing)."""
    sessions = list(sessions)
    profile = Profile(owner_key(owner if owner is not None else (sessions[0].owner if sessions else None)))
    for s in sorted(sessions, key=lambda s: s.turns[-1].ts if s.turns else 0.0):
        profile = profile.updated_with(s, now, half_life_days, catalog)
    return profile.reweighed(now, half_life_days)


# ---- what one session says ----------------------------------------------------------------------------


def session_entries(session: Session, catalog: Catalog | None = None) -> list[ProfileEntry]:
    """The entries one session gives (weights unset), each with the turn that first showed it."""
    turns = session.turns
    out = []
    for kind, ids in (("liked_item", session.liked), ("rejected_item", session.rejected)):
        for item_id in ids:
            item = catalog.get(item_id) if catalog is not None and item_id in catalog else None
            title = item.title.lower() if item else None
            turn = _first_turn(turns, lambda t, i=item_id, x=title: i in t.items if t.role == "assistant"
                               else bool(x) and x in t.text.lower())
            label = f"{item.title} ({item.year})" if item and item.year else (item.title if item else item_id)
            out.append(_entry(session, kind, item_id, turn, label))
    for kind, genres in (("genre_pref", session.include_genres), ("genre_avoid", session.exclude_genres)):
        for genre in genres:
            words = [w for w, g in GENRE_WORDS.items() if g == genre] or [genre.lower()]
            said = re.compile(r"(?<![\w-])(?:" + "|".join(map(re.escape, words)) + r")(?![\w-])", re.I)
            turn = _first_turn(turns, lambda t, rx=said: t.role == "user" and rx.search(t.text) is not None)
            out.append(_entry(session, kind, genre, turn, genre.lower()))
    for person in session.people:
        last = person.split()[-1].lower() if person.split() else person.lower()
        turn = _first_turn(turns, lambda t, w=last: t.role == "user" and w in t.text.lower())
        out.append(_entry(session, "person", person, turn, person))
    if session.year_min is not None or session.year_max is not None:  # years the user wrote, not "older"
        lo, hi = session.year_min, session.year_max
        turn = _first_turn(turns, lambda t: t.role == "user" and re.search(r"\d0s|\b\d{4}\b", t.text) is not None)
        out.append(_entry(session, "era", f"{'' if lo is None else lo}-{'' if hi is None else hi}", turn, _era_label(lo, hi)))
    return out


def _first_turn(turns: list[TurnRecord], said) -> int:
    """The first turn ``said`` holds for, else the last user turn (the evidence is at least that old)."""
    for i, t in enumerate(turns):
        if said(t):
            return i
    users = [i for i, t in enumerate(turns) if t.role == "user"]
    return users[-1] if users else max(len(turns) - 1, 0)


def _entry(session: Session, kind: str, value: str, turn: int, label: str) -> ProfileEntry:
    ts = session.turns[turn].ts if session.turns else time.time()
    return ProfileEntry(kind, value, 0.0, (Evidence(session.id, turn, ts),), label)


def _era_label(lo: int | None, hi: int | None) -> str:
    if lo is not None and hi is not None:
        return f"the {lo}s" if lo % 10 == 0 and hi == lo + 9 else f"{lo} to {hi}"
    return f"after {lo - 1}" if lo is not None else f"before {hi + 1}"


def era_range(value: str) -> tuple[int | None, int | None]:
    lo, _, hi = value.partition("-")
    return (int(lo) if lo else None, int(hi) if hi else None)


_SAYS = {"liked_item": "You liked {}", "rejected_item": "You turned down {}", "genre_pref": "You asked for {}",
         "genre_avoid": "You asked for no {}", "person": "You asked for {}", "era": "You asked for {}"}


def _line(e: ProfileEntry, now: float) -> str:
    last = max(e.evidence, key=lambda x: x.ts)
    days = int(max(0.0, now - last.ts) // DAY)
    ago = "today" if days == 0 else "yesterday" if days == 1 else f"{days} days ago"
    more = len({x.session for x in e.evidence}) - 1
    also = f" (and {more} earlier session{'s' if more > 1 else ''})" if more > 0 else ""
    return f"{_SAYS[e.kind].format(e.name())} — session {last.session[:4]}…, turn {last.turn + 1}, {ago}{also}"


# ---- what retrieval reads -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ProfileBias:
    """What retrieval takes from a profile; weights are decayed evidence, capped at 1 for the soft boosts."""

    liked: dict[str, float] = field(default_factory=dict)  # item id -> pull
    exclude: frozenset[str] = frozenset()  # rejected items, and liked ones (seen): not recommended again
    genres: dict[str, float] = field(default_factory=dict)  # genre -> +weight (preferred) or -weight (avoided)
    people: dict[str, float] = field(default_factory=dict)  # person -> weight
    eras: tuple[tuple[int | None, int | None, float], ...] = ()  # (first year, last year, weight)

    def __bool__(self) -> bool:
        return bool(self.liked or self.exclude or self.genres or self.people or self.eras)

    def bonus(self, retriever: Retriever, profile: ProfileConfig) -> np.ndarray:
        """(N,) fused-score bonuses by catalog position (negative for avoided genres), for ``Query.bonus``.

        Liked items: the items nearest to their weighted mean embedding (the retriever's dense index, so an
        approximate one at scale), as one more ranking in the reciprocal-rank fusion with weight
        ``profile.like_weight``. Genres, people, eras: retrieval's own boosts times ``profile.soft_weight``
        times the entry's weight, computed over the retriever's arrays (no loop over the items).
        """
        catalog, retrieval = retriever.catalog, retriever.cfg
        out = np.zeros(len(catalog), dtype=np.float64)
        liked = [(catalog.position(i), w) for i, w in self.liked.items() if i in catalog]
        if liked and profile.like_weight > 0:
            pos, w = np.array([p for p, _ in liked]), np.array([w for _, w in liked], np.float32)
            centre = (retriever.item_vectors[pos] * w[:, None]).sum(0) / w.sum()  # (D,)
            own = set(pos.tolist())  # the liked items themselves are not pulled, nor anything excluded
            near, _ = retriever.dense.search(centre, retrieval.pool)
            order = [int(i) for i in near if int(i) not in own and catalog[int(i)].id not in self.exclude]
            out[order] += profile.like_weight / (retrieval.rrf_k + np.arange(1, len(order) + 1))
        if (self.genres or self.people or self.eras) and profile.soft_weight > 0:
            soft = retrieval.genre_boost * retriever.attribute_sum("genres", self.genres)
            soft += retrieval.people_boost * retriever.attribute_sum("people", self.people)
            for lo, hi, w in self.eras:
                soft += retrieval.era_boost * w * retriever.in_years(lo, hi)
            soft[[catalog.position(i) for i in self.exclude if i in catalog]] = 0.0
            out += profile.soft_weight * soft
        return out

    def scores(self, retriever: Retriever, profile: ProfileConfig) -> dict[str, float]:
        """:meth:`bonus` as item id -> bonus, for the items that get one."""
        b = self.bonus(retriever, profile)
        return {retriever.catalog[int(i)].id: float(b[i]) for i in np.flatnonzero(b)}


def profile_query_bias(profile: Profile, min_weight: float = 0.0) -> ProfileBias:
    """What retrieval needs from ``profile``: entries weighing less than ``min_weight`` are left out."""
    live = [e for e in profile.entries if e.weight >= min_weight and e.weight > 0]
    liked = {e.value: e.weight for e in live if e.kind == "liked_item"}
    genres = {e.value: min(e.weight, 1.0) for e in live if e.kind == "genre_pref"}
    genres.update({e.value: -min(e.weight, 1.0) for e in live if e.kind == "genre_avoid"})
    return ProfileBias(
        liked=liked,
        exclude=frozenset(liked) | {e.value for e in live if e.kind == "rejected_item"},
        genres=genres,
        people={e.value: min(e.weight, 1.0) for e in live if e.kind == "person"},
        eras=tuple((*era_range(e.value), min(e.weight, 1.0)) for e in live if e.kind == "era"),
    )
