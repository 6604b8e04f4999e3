"""Reasons: written by the model, checked against the catalog, or built from catalog facts.

A model-written reason is kept only if it is well formed, states at least one true fact of its item
and invents nothing the catalog contradicts; otherwise a reason is built from the facts that matched
the user's words. Either way every fact a reason cites is listed in ``facts_used``. The checks are
also what evaluation counts (grounded, invents, format ok).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from functools import lru_cache

from .catalog import Catalog, Item
from .vocab import DECADE_WORDS, GENRE_SYNONYMS, GENRE_WORDS

_PEOPLE_KEYS = ("director", "cast", "creators")

# ---- checks -----------------------------------------------------------------------------------

_STOPWORDS = frozenset(
    """a an the and or but if of to in on at by for with from as is are was were be been being it its
    this that these those he she they them his her their you your we our i me my not no so than then
    there here who whom which what when where why how all any both each few more most other some such
    only own same too very can will just about into over after before between through during under
    again also one two three film films movie movies story stories watch like love would could should
    really great good best well much many make makes made get gets while whose""".split()
)
_ARTEFACTS = ("<", ">", "###", "Candidate", "candidate:", "[/", "Assistant:", "User:", "{", "}")


def _norm(text: str) -> str:
    t = unicodedata.normalize("NFKD", text)
    return "".join(c for c in t if not unicodedata.combining(c)).lower()


def _has_phrase(text_norm: str, phrase: str) -> bool:
    phrase = _norm(phrase).strip()
    return bool(phrase) and re.search(rf"(?<!\w){re.escape(phrase)}(?!\w)", text_norm) is not None


def _decade_phrases(year: int) -> list[str]:
    d = year // 10 * 10
    out = [f"{d}s", f"'{d % 100:02d}s", f"{d % 100:02d}s"]
    if d in DECADE_WORDS:
        out.append(DECADE_WORDS[d])
    return out


def item_people(item: Item) -> list[str]:
    return [p for key in _PEOPLE_KEYS for p in item.values(key)]


def reason_grounding(reason_text: str, item: Item) -> bool:
    """True when the reason states at least one true fact of ``item``.

    A fact is a genre (or a common synonym), the year or its decade, a director or cast member (full
    name or surname), a keyword, or a content word of the description.
    """
    text = _norm(reason_text)
    for g in item.values("genres"):
        if _has_phrase(text, g) or any(_has_phrase(text, s) for s in GENRE_SYNONYMS.get(_norm(g), ())):
            return True
    if item.year is not None and (
        _has_phrase(text, str(item.year)) or any(_has_phrase(text, d) for d in _decade_phrases(item.year))
    ):
        return True
    for person in item_people(item):
        surname = person.split()[-1] if person.split() else person
        if _has_phrase(text, person) or (len(surname) > 2 and _has_phrase(text, surname)):
            return True
    if any(_has_phrase(text, kw) for kw in item.values("keywords") + item.values("tags")):
        return True
    words = set(re.findall(r"[a-z]{4,}", text)) - _STOPWORDS
    return bool(words & _content_words(item.description))


def _content_words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]{4,}", _norm(text))) - _STOPWORDS


@lru_cache(maxsize=8)
def _catalog_index(catalog: Catalog) -> tuple[dict[str, str], frozenset[str], tuple[str, ...]]:
    """(normalised person name -> name, catalog first names, catalog titles) for one catalog."""
    people = {_norm(p): p for it in catalog for p in item_people(it)}
    first_names = frozenset(n.split()[0] for n in people if len(n.split()) > 1)
    # Titles in catalog order, so that the inventions list is reproducible.
    return people, first_names, tuple(dict.fromkeys(it.title for it in catalog))


_CAPS = re.compile(r"\b[A-Z][\w'’-]*(?:\s+[A-Z][\w'’-]*)+")
_YEAR = re.compile(r"(?<!\d)(19\d\d|20\d\d)(s?)(?!\d)")


def reason_inventions(reason_text: str, item: Item, catalog: Catalog) -> list[str]:
    """Things the reason claims that are not facts of ``item``.

    Returns, in order of appearance kind: titles of other catalog items; capitalised name sequences
    that are catalog people (or start with a catalog person's first name) but are not this item's
    people; years (or '1990s' decades) that do not match the item's year.
    """
    people, first_names, titles = _catalog_index(catalog)
    own_people = {_norm(p) for p in item_people(item)}
    # Remove the item's own facts first: 'Alien' inside 'Aliens vs Alien', the title 'Amy' inside the
    # item's 'Amy Adams', 'Joseph L' of 'Joseph L. Mankiewicz' or a '1960s' keyword are not inventions.
    text = reason_text.replace(item.title, " ")
    own = [*item_people(item), *item.values("keywords"), *item.values("tags")]
    for phrase in sorted(own, key=len, reverse=True):
        text = re.sub(rf"(?<!\w){re.escape(phrase)}(?!\w)", " ", text, flags=re.IGNORECASE)
    found: list[str] = []
    for title in titles:
        if title == item.title or title in item.title:
            continue
        # Case-sensitive with word boundaries: one-word titles like 'Up' or 'Her' are common words.
        if len(title) >= 3 and re.search(rf"(?<!\w){re.escape(title)}(?!\w)", text):
            found.append(title)
    context = _norm(" | ".join([item.description, *titles]))
    for m in _CAPS.finditer(text):
        words = [re.sub(r"['’]s$", "", w) for w in m.group(0).split()]
        i = 0
        while i < len(words) - 1:
            # The longest span starting here that is a catalog person wins ('Samuel L Jackson').
            j = next((j for j in range(len(words), i + 1, -1) if _norm(" ".join(words[i:j])) in people), 0)
            if j:
                span = " ".join(words[i:j])
                if _norm(span) not in own_people:
                    found.append(span)
                i = j
                continue
            # An unknown 'Firstname Surname' whose first name is a catalog person's is likely a made-up person.
            bigram = " ".join(words[i : i + 2])
            n = _norm(bigram)
            if n.split()[0] in first_names and n not in context:
                found.append(bigram)
                i += 2
                continue
            i += 1
    for m in _YEAR.finditer(text):
        year, decade = int(m.group(1)), bool(m.group(2))
        if item.year is None:
            found.append(m.group(0))
        elif decade and year != item.year // 10 * 10 or not decade and year != item.year:
            found.append(m.group(0))
    return found


def format_valid(reason_text: str, max_words: int = 60) -> bool:
    """Non-empty, at most ``max_words`` words, one or two sentences, no prompt artefacts."""
    text = reason_text.strip()
    if not text or len(text.split()) > max_words:
        return False
    if any(a in text for a in _ARTEFACTS):
        return False
    # Count sentence ends, treating 'Dr.'-style abbreviations and initials as non-terminal.
    sentences = [
        s for s in re.split(r"(?<![A-Z])(?<!Dr)(?<!Mr)(?<!Ms)(?<!Mrs)(?<!St)[.!?]+(?:\s+|$)", text) if s.strip()
    ]
    return 1 <= len(sentences) <= 2


# ---- writing and choosing -----------------------------------------------------------------------


def _mentions(text_low: str, phrase: str) -> bool:
    return re.search(rf"(?<!\w){re.escape(phrase.lower())}(?!\w)", text_low) is not None


def facts_in(text: str, item: Item) -> tuple[str, ...]:
    """The item's facts (as "key: value") that ``text`` states."""
    low = text.lower()
    out = []
    for key, value in item.facts():
        if key == "year":
            if value in text:
                out.append(f"year: {value}")
        elif len(value) > 2 and _mentions(low, value):
            out.append(f"{key}: {value}")
    return tuple(dict.fromkeys(out))


def matched_facts(item: Item, user_text: str, liked: Sequence[Item] = ()) -> list[str]:
    """Phrases about the item that connect it to what the user said or liked; all true facts."""
    low = user_text.lower()
    genres = item.values("genres")
    wanted = {g for w, g in GENRE_WORDS.items() if _mentions(low, w)}
    parts = []
    hit_genres = [g for g in genres if g in wanted or _mentions(low, g)]
    if hit_genres:
        parts.append(f"it is {' and '.join(g.lower() for g in hit_genres[:2])}, as you asked")
    people = [p for k in ("director", "cast") for p in item.values(k) if _mentions(low, p) or _mentions(low, p.split()[-1])]
    if people:
        parts.append(f"it features {people[0]}")
    kws = [k for k in item.values("keywords") if _mentions(low, k) or any(_mentions(low, w) for w in k.split() if len(w) > 4)]
    if kws:
        parts.append(f"it is tagged {' and '.join(kws[:2])}, as you mentioned")  # keywords mix themes and moods
    for other in liked:
        shared_dir = set(item.values("director")) & set(other.values("director"))
        shared_gen = [g for g in genres if g in other.values("genres")]
        if shared_dir:
            parts.append(f"it shares director {sorted(shared_dir)[0]} with {other.title}, which you liked")
            break
        if shared_gen:
            parts.append(f"like {other.title}, which you liked, it is {shared_gen[0].lower()}")
            break
    return parts


def fallback_reason(item: Item, user_text: str, liked: Sequence[Item] = ()) -> str:
    """A reason built only from catalog facts: always true, always well formed."""
    genres = item.values("genres")
    director = item.values("director")
    head = item.title + (f" ({item.year})" if item.year else "")
    desc = f"a {' and '.join(g.lower() for g in genres[:2])} film" if genres else "a film"
    if director:
        desc += f" by {director[0]}"
    matched = matched_facts(item, user_text, liked)
    if matched:
        if matched[0].endswith("as you asked"):  # genres are said there; don't say them twice
            desc = "a film" + (f" by {director[0]}" if director else "")
        return f"{head} is {desc}; {'; '.join(matched[:3])}."
    kws = item.values("keywords")[:2]
    tail = f", tagged {' and '.join(kws)}" if kws else ""
    cast = item.values("cast")[:2]
    star = f", starring {' and '.join(cast)}" if cast else ""
    return f"{head} is {desc}{tail}{star}."


def _words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z']+", text.lower()) if len(w) > 3}


def check_reason(text: str, item: Item, catalog: Catalog, user_text: str = "") -> str | None:
    """None if a model-written reason may be shown; else why it may not."""
    if not format_valid(text):
        return "badly formed"
    words = _words(text)
    if re.match(r"\W*(i|i'm|i'd|my|me|we)\b", text.lower()) or (
        words and len(words & _words(user_text)) / len(words) >= 0.6
    ):
        return "repeats the user's words"  # the untuned base model echoes its prompt
    if not reason_grounding(text, item):
        return "states no fact of the item"
    invented = reason_inventions(text, item, catalog)
    if invented:
        return f"invents {invented[:3]}"
    return None


def finalize_reason(text: str, item: Item, catalog: Catalog, user_text: str, liked: Sequence[Item] = ()) -> tuple[str, str, tuple[str, ...]]:
    """(reason, source, facts_used) for one item from the model's raw text."""
    text = text.strip().strip('"').strip()
    if text and check_reason(text, item, catalog, user_text) is None:
        return text, "model", facts_in(text, item)
    reason = fallback_reason(item, user_text, liked)
    return reason, "fallback", facts_in(reason, item)
