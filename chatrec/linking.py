"""Linking what people write to the catalog: titles and people, each with a confidence.

Titles are matched as whole-word spans after normalising both sides the same way: case, accents,
punctuation, "&" as "and", a leading article, "Part II" / "part two" / "2" as one sequel number, and
possessive "'s". A title that is a single word ("Heat", "Up", "Stan") is only linked where the writer
marks it as a name (capitalised inside a sentence, or quoted, or right after "seen", "loved", ...) and
never as part of a longer capitalised name ("Stan Lee"). Small typos in longer titles and names are
forgiven with rapidfuzz (Levenshtein ratio). People are any catalog person (director, cast, creators,
author, artist): a full name, or a surname alone when it is capitalised and belongs to one person only.
"""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from rapidfuzz import fuzz, process
from rapidfuzz.distance import Indel

from .catalog import PERSON_KEYS, Catalog

ARTICLES = frozenset({"the", "a", "an"})
NUMBERS = {"ii": "2", "iii": "3", "iv": "4", "two": "2", "three": "3", "four": "4", "one": "1"}
CUES = frozenset("seen saw watched rewatched loved love liked like enjoyed adored hated disliked".split())
FUZZY_MIN_CHARS = 8  # typos are forgiven only in titles / names at least this long
FUZZY_RATIO = 88.0  # rapidfuzz ratio (0-100) a misspelt span needs
WORD_RATIO = 75.0  # ... and each of its words against the title's word in the same place
SHORT_WORD = 5  # words shorter than this must be spelt right (one letter changes a short word)
BLOCK_FROM = 50_000  # names of a kind from which typo matching compares only names sharing a word with the span
MIN_SCORE = 0.7  # links below this confidence are dropped

_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*", re.UNICODE)


@dataclass(frozen=True)
class Mention:
    kind: str  # "title" | "person"
    key: str  # item id for a title; the person's name as the catalog writes it
    start: int  # character span in the text
    end: int
    score: float  # 1.0 exact; lower for a typo, a surname alone or a lower-case single-word title


@dataclass(frozen=True)
class _Token:
    norm: str
    start: int
    end: int
    raw: str


_WORD_OR_AMP = re.compile(rf"{_WORD.pattern}|&", re.UNICODE)
_POSSESSIVE = re.compile(r"['’]s$")


@lru_cache(maxsize=200_000)  # words repeat across a catalog's titles and names: a million items, few words
def normalise_word(word: str) -> str:
    w = unicodedata.normalize("NFKD", word).encode("ascii", "ignore").decode().lower()
    w = _POSSESSIVE.sub("", w).replace("'", "").replace("’", "")
    return w


def tokens(text: str) -> list[_Token]:
    """Words of ``text`` with their spans; "&" counts as "and"; sequel numbers are unified."""
    out: list[_Token] = []
    for m in _WORD_OR_AMP.finditer(text):
        raw = m.group(0)
        out.append(_Token("and" if raw == "&" else normalise_word(raw), m.start(), m.end(), raw))
    # "part two" / "part ii" / "part 2" -> "2"; a bare roman numeral after a word -> its digit
    merged: list[_Token] = []
    for i, t in enumerate(out):
        if t.norm == "part" and i + 1 < len(out) and (out[i + 1].norm in NUMBERS or out[i + 1].norm.isdigit()):
            continue
        if t.norm in NUMBERS and (t.norm != "one" or (i and out[i - 1].norm == "part")):
            merged.append(_Token(NUMBERS[t.norm], t.start, t.end, t.raw))
        else:
            merged.append(t)
    return [t for t in merged if t.norm]


def _forms(title: str) -> list[tuple[tuple[str, ...], float]]:
    """Word sequences that name a title, with a confidence: the whole title, without its article, before a colon."""
    words = tuple(t.norm for t in tokens(title))
    forms = {words: 1.0}
    if len(words) > 1 and words[0] in ARTICLES:
        forms[words[1:]] = 1.0
    if ":" in title:
        head = tuple(t.norm for t in tokens(title.split(":")[0]))
        if head and head[0] in ARTICLES and len(head) > 1:
            head = head[1:]
        forms.setdefault(head, 0.9)
    return [(f, s) for f, s in forms.items() if f]


class Linker:
    """Title and person links for one catalog (build once: ``linker_for(catalog)``)."""

    def __init__(self, catalog: Catalog):
        self.years = {item.id: item.year for item in catalog}
        self.titles: dict[tuple[str, ...], list[tuple[str, float]]] = defaultdict(list)
        for item in catalog:
            for form, score in _forms(item.title):
                self.titles[form].append((item.id, score))
        self.people: dict[tuple[str, ...], str] = {}
        surnames: dict[str, set[str]] = defaultdict(set)
        seen: set[str] = set()  # a name is read once, however many items name it
        for item in catalog:
            for key in PERSON_KEYS:
                for name in item.values(key):
                    if name in seen:
                        continue
                    seen.add(name)
                    words = tuple(t.norm for t in tokens(name))
                    if len(words) >= 2:
                        self.people.setdefault(words, name)
                        surnames[words[-1]].add(name)
        self.surnames = {s: next(iter(n)) for s, n in surnames.items() if len(n) == 1 and len(s) >= 4}
        self.longest = max((len(f) for f in [*self.titles, *self.people]), default=1)
        self._fuzzy_titles = _Fuzzy(f for f in self.titles if len(" ".join(f)) >= FUZZY_MIN_CHARS)
        self._fuzzy_people = _Fuzzy(f for f in self.people if len(" ".join(f)) >= FUZZY_MIN_CHARS)

    def link(self, text: str) -> list[Mention]:
        """Non-overlapping mentions in ``text``, in order; the longest, most certain span wins overlaps."""
        toks = tokens(text)
        found = [m for m in self._candidates(text, toks) if m.score >= MIN_SCORE]
        found.sort(key=lambda m: (-(m.end - m.start) * m.score, m.start))
        chosen: list[Mention] = []
        for m in found:
            if all(m.end <= c.start or m.start >= c.end for c in chosen):
                chosen.append(m)
        return sorted(chosen, key=lambda m: m.start)

    def _candidates(self, text: str, toks: list[_Token]):
        for i in range(len(toks)):
            for n in range(min(self.longest, len(toks) - i), 0, -1):
                span = toks[i:i + n]
                words = tuple(t.norm for t in span)
                yield from self._title(text, toks, i, n, words)
                yield from self._person(toks, i, n, words)
        yield from self._surnames(text, toks)

    def _title(self, text: str, toks: list[_Token], i: int, n: int, words: tuple[str, ...]):
        start, end = toks[i].start, toks[i + n - 1].end
        exact = self.titles.get(words)
        content = [w for w in words if w not in ARTICLES]
        if exact:
            year = _year_after(text, end)
            dated = [(item_id, score) for item_id, score in exact if year is not None and self.years[item_id] == year]
            # "Heat (1995)": a matching year marks the words as a title and picks among remakes
            weight = 1.0 if len(content) > 1 or dated else self._single_word_weight(text, toks, i, n)
            if not dated and _described(text, toks, i, n):
                weight = 0.0  # "a love story", "a quiet man": a description in lower case, not a name
            for item_id, score in dated or exact:
                yield Mention("title", item_id, start, end, score * weight)
            return
        joined = " ".join(words)
        if len(content) > 1 and len(joined) >= FUZZY_MIN_CHARS:
            hit = self._fuzzy_titles.best(joined, words)
            if hit is not None and _word_by_word(words, hit[0]):
                for item_id, score in self.titles[hit[0]]:
                    yield Mention("title", item_id, start, end, score * hit[1] / 100)

    def _single_word_weight(self, text: str, toks: list[_Token], i: int, n: int) -> float:
        """How sure a one-word title is meant as a title: 1 when marked as a name, 0 when it is just a word."""
        last = toks[i + n - 1]
        first = next((t for t in toks[i:i + n] if t.norm not in ARTICLES), toks[i])  # "the Godfather": the name word
        opening, closing = text[toks[i].start - 1:toks[i].start], text[last.end:last.end + 1]
        if opening and closing and opening in "\"'“‘" and closing in "\"'”’":
            return 1.0
        neighbours = [toks[j] for j in (i - 1, i + n) if 0 <= j < len(toks)]
        if any(t.raw[:1].isupper() and not _sentence_start(text, t.start) for t in neighbours):
            return 0.0  # part of a longer capitalised name: "Stan Lee", "Ridley Scott's Alien" is handled by the name
        marked = first.raw[:1].isupper() or first.raw[:1].isdigit()
        if marked and not _sentence_start(text, first.start):
            return 1.0
        cue = i > 0 and toks[i - 1].norm in CUES
        # A capital at a sentence start, or a cue word, is weaker evidence; short words ("Up", "Heat") need more.
        return 0.8 if (marked or cue) and len(first.norm) >= 5 else 0.0

    def _person(self, toks: list[_Token], i: int, n: int, words: tuple[str, ...]):
        if n < 2:
            return
        start, end = toks[i].start, toks[i + n - 1].end
        if words in self.people:
            yield Mention("person", self.people[words], start, end, 1.0)
            return
        joined = " ".join(words)
        if len(joined) >= FUZZY_MIN_CHARS:
            hit = self._fuzzy_people.best(joined, words)
            if hit is not None and _word_by_word(words, hit[0]):
                yield Mention("person", self.people[hit[0]], start, end, 0.9 * hit[1] / 100)

    def _surnames(self, text: str, toks: list[_Token]):
        for t in toks:
            if t.norm in self.surnames and t.raw[:1].isupper():
                yield Mention("person", self.surnames[t.norm], t.start, t.end, 0.75)


class _Fuzzy:
    """Names by word count, for typo matching. A typo changes letters, not words (``_word_by_word``), so a span
    is only compared with names of its own length, which keeps a message's linking to milliseconds. Above
    ``BLOCK_FROM`` names (a catalog of hundreds of thousands), only names sharing a word with the span are
    compared: a span with every word misspelt is then missed, and a turn stays in milliseconds, not seconds."""

    def __init__(self, forms: Iterable[tuple[str, ...]]):
        self.by_length: dict[int, dict[str, tuple[str, ...]]] = defaultdict(dict)  # {word count: {joined: form}}
        for f in forms:
            self.by_length[len(f)][" ".join(f)] = f
        self.by_word: dict[tuple[int, str], list[str]] | None = None  # (word count, word) -> joined forms
        if sum(len(v) for v in self.by_length.values()) >= BLOCK_FROM:
            self.by_word = defaultdict(list)
            for n, forms_n in self.by_length.items():
                for joined, f in forms_n.items():
                    for w in set(f) - ARTICLES:
                        self.by_word[(n, w)].append(joined)

    def best(self, joined: str, words: tuple[str, ...]) -> tuple[tuple[str, ...], float] | None:
        """(name form, rapidfuzz ratio) of the closest name of ``len(words)`` words at or over FUZZY_RATIO."""
        forms = self.by_length.get(len(words))
        if not forms:
            return None
        choices = forms.keys() if self.by_word is None else {
            c for w in set(words) - ARTICLES for c in self.by_word.get((len(words), w), ())}
        hit = process.extractOne(joined, choices, scorer=fuzz.ratio, score_cutoff=FUZZY_RATIO) if choices else None
        return None if hit is None else (forms[hit[0]], hit[1])


def _word_by_word(said: tuple[str, ...], name: tuple[str, ...]) -> bool:
    """A typo changes letters, not words: every word must be close to its counterpart ("thing and" is not
    "thin man", "7 days later" is not "28 days later"), and a short word must be exact: one letter turns
    "they love" into "they live" and "last weekend" into "lost weekend". A short word may only gain or
    lose a letter ("nemmo", "mann"), which is how people mistype them."""
    return len(said) == len(name) and all(
        a == b or (fuzz.ratio(a, b) >= WORD_RATIO if min(len(a), len(b)) >= SHORT_WORD else Indel.distance(a, b) <= 1)
        for a, b in zip(said, name, strict=True))


_DETERMINERS = frozenset("a an another some any this that my our his her their your such".split())


def _described(text: str, toks: list[_Token], i: int, n: int) -> bool:
    """A span written in lower case right after a determiner that is not part of the title ("a love
    story", "a cold war spy novel") describes something; a name is capitalised ("a Love Story rewatch")."""
    span = text[toks[i].start:toks[i + n - 1].end]
    return i > 0 and toks[i - 1].norm in _DETERMINERS and span == span.lower()


def _year_after(text: str, pos: int) -> int | None:
    """The year in "(1995)" right after a span, if any."""
    m = re.match(r"\s*\((\d{4})\)", text[pos:pos + 10])
    return int(m.group(1)) if m else None


def _sentence_start(text: str, pos: int) -> bool:
    before = text[:pos].rstrip(" \"'“‘(")
    return not before or before[-1] in ".!?\n;"


@lru_cache(maxsize=4)
def linker_for(catalog: Catalog) -> Linker:
    """The catalog's linker, built once per catalog object."""
    return Linker(catalog)
