"""Session state: turns, mentioned / liked / rejected items, constraints; and how a message changes it.

``interpret`` reads one user message against the session: feedback on the last list ("not that one",
"more like #2"), titles the user names (liked, or rejected when negated), and constraints
("no horror", "from the 80s", "something older"). It returns a new Session; the old one is untouched,
so a turn that fails later leaves the session exactly as it was.
"""

from __future__ import annotations

import dataclasses
import re
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

from .catalog import Catalog
from .retrieval import Constraints
from .vocab import GENRE_WORDS


class InputError(ValueError):
    """A user turn that cannot be answered; the session is left as it was."""

_NEG = r"(?:no|not|without|nothing|never|hate|avoid|skip|don't want|dont want|not into|isn't|no more)"
_ORDINALS = {"first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "last": -1}
# A word ordinal refers to the shown list only when it stands alone ("the second one", "the last", "the first
# sounds fun"), not when it modifies a noun ("the last Avengers movie", "the first one I saw as a kid").
_ORDINAL_END = r"(?=\s*(?:[,.!?;:)]|$)|\s+(?:sounds|looks|seems|is|was|please|but|and|too|instead|though)\b)"
_REF = (rf"(?:#\s*(\d+)|number\s*(\d+)|the\s+(first|second|third|fourth|fifth|last)(?:\s+(?:one|pick|option))?{_ORDINAL_END}"
        r"|(\d)(?:st|nd|rd|th)?\s+one\b)")
_SEEN = r"\b(?:seen|already (?:watched|saw))\b"
# A reply that turns the shown list down in words: "seen both", "we did those last year", "too old for us,
# something else". It rejects the list only when it also points at it ("both", "those", or "it" after a
# one-item list) and does not accept anything ("sounds good", "perfect").
_PIVOT = (r"\b(?:something else|anything else|other options?|instead|this time|not tonight|not in the mood|"
          r"too (?:old|slow|long|much|scary|sad|dark|violent|old-fashioned|heavy|young|childish|gory|tame)|"
          r"seen|watched|saw|did (?:it|that|both|those)|studied|not (?:really )?(?:my|our|her|his) thing|already)\b")
_ACCEPT = r"\b(?:sounds? (?:good|great|perfect|fun|lovely|fab)|perfect|i'll (?:try|take|watch)|let's do|yes|yess?|ok(?:ay)?,? (?:that|we'll))\b"
_WHOLE_LIST = r"\b(?:both|those|these|them|all of them|either|neither|none of them|so old)\b"
_ONE_ITEM = r"\b(?:it|that|this one|that one)\b"  # "watched X" / "saw X" usually come with praise
_POSITIVE = r"\b(?:lov\w*|lik\w*|enjoy\w*|ador\w*|great|favou?rite|amazing|brilliant|fantastic)\b"


@dataclass
class TurnRecord:
    role: str  # "user" | "assistant"
    text: str  # user: every word the system took from the turn (typed text, then the transcript)
    image: str | None = None  # attachment path as given
    audio: str | None = None
    transcript: str | None = None  # what Whisper heard, for audio turns (already part of ``text``)
    items: list[str] = field(default_factory=list)  # assistant: ranked item ids shown
    ts: float = field(default_factory=time.time)


def new_session_id() -> str:
    """128 random bits: one id tells nothing about another (ids are shown, typed and put in URLs)."""
    return secrets.token_hex(16)


@dataclass
class Session:
    id: str = field(default_factory=new_session_id)
    turns: list[TurnRecord] = field(default_factory=list)
    liked: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    mentioned: list[str] = field(default_factory=list)  # named by the user: seen, so not recommended back
    include_genres: list[str] = field(default_factory=list)
    exclude_genres: list[str] = field(default_factory=list)
    year_min: int | None = None  # hard filters: only years the user wrote ("from the 80s", "before 1960")
    year_max: int | None = None
    prefer_year_min: int | None = None  # soft wishes from words ("something recent", "older"): a boost
    prefer_year_max: int | None = None
    people: list[str] = field(default_factory=list)  # catalog people the user asked for (soft: a boost)
    version: int = 0  # the store's row version this session was read at (compare-and-swap on save)
    owner: str | None = None  # UI sessions: a hash of the browser's secret; None = the local terminal's
    use_profile: bool = True  # the owner's profile shapes this session's lists, and this session adds to it

    @property
    def last_items(self) -> list[str]:
        for t in reversed(self.turns):
            if t.role == "assistant" and t.items:
                return t.items
        return []

    def constraints(self) -> Constraints:
        return Constraints(frozenset(self.include_genres), frozenset(self.exclude_genres), self.year_min, self.year_max,
                           self.prefer_year_min, self.prefer_year_max, frozenset(self.people))

    def excluded(self) -> frozenset[str]:
        return frozenset(self.rejected) | frozenset(self.mentioned)

    def user_text(self, max_turns: int = 6) -> str:
        """What the user asked for, feedback phrases ("not #2") removed: for queries and reasons."""
        texts = [strip_feedback(t.text) for t in self.turns if t.role == "user"]
        return " ".join(x for x in texts[-max_turns:] if x)

    def copy(self) -> Session:
        return Session.from_dict(self.to_dict())

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Session:
        """A session from :meth:`to_dict` output; TypeError on fields this version does not know."""
        d = dict(d)
        d["turns"] = [TurnRecord(**t) for t in d.get("turns", [])]
        return cls(**d)

    # ---- feedback ------------------------------------------------------------------------------

    def like(self, item_id: str) -> None:
        if item_id in self.rejected:
            self.rejected.remove(item_id)
        if item_id not in self.liked:
            self.liked.append(item_id)

    def reject(self, item_id: str) -> None:
        if item_id in self.liked:
            self.liked.remove(item_id)
        if item_id not in self.rejected:
            self.rejected.append(item_id)

    def item_at(self, rank: int) -> str:
        """Item id at 1-based ``rank`` of the last list (-1 = last); InputError names the problem."""
        items = self.last_items
        if not items:
            raise InputError("there is no list yet to refer to")
        if rank == -1:
            return items[-1]
        if not 1 <= rank <= len(items):
            raise InputError(f"the last list has items 1 to {len(items)}, not {rank}")
        return items[rank - 1]


_SET_FIELDS = ("liked", "rejected", "mentioned", "include_genres", "exclude_genres", "people")
_SCALAR_FIELDS = ("year_min", "year_max", "prefer_year_min", "prefer_year_max", "use_profile")


def merge(base: Session, mine: Session, theirs: Session) -> Session:
    """``theirs`` (saved by another writer since ``base`` was read) with ``mine``'s changes since ``base``.

    Turns ``mine`` added are appended after the ones ``theirs`` added; list fields get ``mine``'s
    additions and removals; a scalar ``mine`` changed takes ``mine``'s value. ``mine`` is the later
    writer, so where both touched one item (a like here, a rejection there), ``mine`` wins.
    """
    out = theirs.copy()
    out.turns += [dataclasses.replace(t) for t in mine.turns[len(base.turns):]]
    added: dict[str, list[str]] = {}
    for name in _SET_FIELDS:
        before, now = getattr(base, name), getattr(mine, name)
        added[name], removed = [x for x in now if x not in before], {x for x in before if x not in now}
        merged = [x for x in getattr(out, name) if x not in removed]
        setattr(out, name, merged + [x for x in added[name] if x not in merged])
    out.rejected = [x for x in out.rejected if x not in added["liked"]]  # liked here after a rejection there
    out.liked = [x for x in out.liked if x not in added["rejected"]]
    for name in _SCALAR_FIELDS:
        if getattr(mine, name) != getattr(base, name):
            setattr(out, name, getattr(mine, name))
    return out


_FEEDBACK = re.compile(
    rf"\b(?:more like|not|no|like|loved?)\s+{_REF}|\b(?:not that one|not this one|seen that|seen it|already seen|nope)\b",
    re.IGNORECASE,
)


def strip_feedback(text: str) -> str:
    return re.sub(r"\s+", " ", _FEEDBACK.sub(" ", text)).strip(" ,.;")


def _ref_rank(m: re.Match) -> int:
    """The rank a matched reference names (patterns hold several _REF groups; one is set)."""
    value = next(g for g in m.groups() if g)
    return int(value) if value.isdigit() else _ORDINALS[value]


def _negated_before(low: str, pos: int) -> bool:
    window = low[max(0, pos - 30):pos]
    return re.search(rf"{_NEG}\b[\w\s,']*$", window) is not None


def _seen_not_loved(low: str, pos: int) -> bool:
    """"seen Alien", "already watched Heat": seen, so not to be recommended (unless the clause praises it)."""
    clause = re.split(r"[.!?;]", low[max(0, pos - 40):pos])[-1]
    after = re.split(r"[.!?;,]", low[pos:pos + 60])[0]
    seen = re.search(_SEEN, clause) is not None or (  # "saw gone girl already"
        re.search(r"\b(?:saw|watched)\s*$", clause) is not None and re.search(r"\balready\b", after) is not None)
    return seen and re.search(_POSITIVE, clause + " " + after) is None


def interpret(session: Session, text: str, catalog: Catalog) -> Session:
    """Return a copy of the session updated with what this message says. Pure: no model calls.

    Raises InputError only for a reference the shown list cannot satisfy ("#9" after five items); a
    sentence without a list to refer to is read as ordinary text.
    """
    s = session.copy()
    low = " " + text.lower().strip() + " "
    if s.last_items:
        _list_feedback(s, low)
    _linked(s, text, catalog)
    _genres(s, low)
    _years(s, low, catalog)
    return s


def _list_feedback(s: Session, low: str) -> None:
    """Likes and rejections of the shown list: "more like #2", "not the first one", "seen it", "seen both"."""
    for m in re.finditer(rf"more like {_REF}|like {_REF} (?:but|more)|(?:love|loved|like|liked) {_REF}", low):
        s.like(s.item_at(_ref_rank(m)))
    for m in re.finditer(rf"{_NEG}\s+(?:a\s+fan\s+of\s+)?{_REF}|{_REF}\s+(?:is|was)\s+(?:bad|boring|awful|not for me)", low):
        s.reject(s.item_at(_ref_rank(m)))
    if re.search(r"\b(?:seen (?:both|them all|all of them|all three|those)|not (?:any of )?those)\b", low):
        for item_id in s.last_items:
            s.reject(item_id)
    elif re.search(r"\b(not that one|not this one|seen that|seen it|already seen|don't like that|nope)\b", low):
        s.reject(s.last_items[0])
    elif re.search(_PIVOT, low) and not re.search(_ACCEPT, low):
        items = s.last_items
        if re.search(_WHOLE_LIST, low) or (len(items) == 1 and re.search(_ONE_ITEM, low)):
            for item_id in items:
                if item_id not in s.liked:
                    s.reject(item_id)


def _linked(s: Session, text: str, catalog: Catalog) -> None:
    """Titles the user names become mentioned (and liked, or rejected when negated or merely seen);
    people become soft wishes."""
    from .linking import linker_for  # rapidfuzz loads with the first message

    low = text.lower()
    for m in linker_for(catalog).link(text):
        if m.kind == "person":
            if not _negated_before(low, m.start) and m.key not in s.people:
                s.people.append(m.key)
            continue
        if m.key not in s.mentioned:
            s.mentioned.append(m.key)
        if _negated_before(low, m.start) or _seen_not_loved(low, m.start):
            s.reject(m.key)
        else:
            s.like(m.key)


def _genres(s: Session, low: str) -> None:
    """"no horror" excludes a genre; "a comedy" asks for one (a boost)."""
    for word, genre in GENRE_WORDS.items():
        for m in re.finditer(rf"(?<![\w-]){re.escape(word)}(?![\w-])", low):
            if _negated_before(low, m.start()):
                if genre not in s.exclude_genres:
                    s.exclude_genres.append(genre)
                if genre in s.include_genres:
                    s.include_genres.remove(genre)
            elif genre not in s.include_genres and genre not in s.exclude_genres:
                s.include_genres.append(genre)


def _years(s: Session, low: str, catalog: Catalog) -> None:
    """Years the user writes are filters; time words without a number are soft wishes."""
    m = re.search(r"\b(?:from the |in the |the )?(?:(19|20)(\d)0s|'?(\d)0s)\b", low)
    if m:
        century = m.group(1) or ("20" if m.group(3) in ("0", "1", "2") else "19")
        decade = int(century + (m.group(2) or m.group(3)) + "0")
        s.year_min, s.year_max = decade, decade + 9
    if m := re.search(r"\b(?:before|older than|pre-?)\s*((?:18|19|20)\d\d)\b", low):
        s.year_max = int(m.group(1)) - 1
    if m := re.search(r"\b(?:after|since|newer than|post-?)\s*((?:18|19|20)\d\d)\b", low):
        s.year_min = int(m.group(1)) + 1
    shown = [catalog.get(i).year for i in s.last_items if i in catalog and catalog.get(i).year]
    older = re.search(r"\b(older|earlier|classic|less recent)\b", low)
    newer = re.search(r"\b(newer|more recent|recent|modern|latest)\b", low)
    if older:
        s.prefer_year_max, s.prefer_year_min = (min(shown) - 1) if shown else 1979, None
    if newer:
        s.prefer_year_min, s.prefer_year_max = (max(shown) + 1) if shown else 2010, None
    if (older or newer) and shown:  # "something older" than these: not these again
        for item_id in s.last_items:
            if item_id not in s.liked:
                s.reject(item_id)


# ---- replaying recorded dialogues ----------------------------------------------------------------


class RecordedTurn(Protocol):
    """A turn of a recorded dialogue (evaluation and training data)."""

    role: str
    text: str
    image: str | None
    audio: str | None


def shown_items(text: str, catalog: Catalog) -> list[str]:
    """Item ids an assistant message names, in the order it names them: the list "#2" refers to.

    Read by the same linker as user messages, so a one-word title ("Drive", "Heat") counts only where
    it is written as a name, not as an ordinary word of the sentence.
    """
    from .linking import linker_for

    ids = [m.key for m in linker_for(catalog).link(text) if m.kind == "title"]
    return list(dict.fromkeys(ids))


def replay(turns: Iterable[RecordedTurn], catalog: Catalog, session_id: str | None = None) -> Session:
    """The session a Recommender would hold after these recorded turns.

    User turns are interpreted as live ones are; assistant turns become shown lists. A user turn the
    interpreter refuses raises InputError naming the turn, as a live turn would be refused.
    """
    s = Session(id=session_id) if session_id else Session()
    for n, t in enumerate(turns):
        if t.role == "user":
            try:
                s = interpret(s, t.text, catalog)
            except InputError as e:
                raise InputError(f"user turn {n} cannot be interpreted ({e})") from None
            s.turns.append(TurnRecord("user", t.text, image=t.image, audio=t.audio))
        else:
            s.turns.append(TurnRecord("assistant", t.text, items=shown_items(t.text, catalog)))
    return s
