"""Evaluation metrics: pure functions over ids and numpy arrays, RecBole style.

Ranking metrics are counted per ground-truth item, as in conversational-recommendation work on
ReDial (Chen et al., 2019, KBRD; Zhou et al., 2020, KGSF): a recommendation turn with two target
items contributes two samples. Items already mentioned in the dialogue are removed from the ranked
list and from the targets first (``exclude``), since recommending what the user just named is trivial.

Every ranking metric derives from the 1-based rank of each target (``inf`` when absent):
``recall@k = mean(rank <= k)``, ``ndcg@k = mean(1/log2(rank + 1) if rank <= k else 0)`` (one relevant
item per sample, so IDCG = 1), ``mrr@k = mean(1/rank if rank <= k else 0)``.

Reason metrics check a generated "why you'd like it" sentence against the item's catalog facts.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection, Iterable, Sequence
from functools import lru_cache

import numpy as np

from chatrec.catalog import Catalog, Item

DEFAULT_KS = (1, 10, 50)
_PEOPLE_KEYS = ("director", "cast", "creators")


def target_ranks(ranked_ids: Sequence[str], relevant_ids: Iterable[str], exclude: Collection[str] = ()) -> np.ndarray:
    """1-based rank of each relevant item after dropping ``exclude``; ``inf`` if not ranked.

    Returns shape (R,) float, one entry per relevant item not in ``exclude`` (duplicates counted once).
    """
    excluded = set(exclude)
    ranked = [i for i in dict.fromkeys(ranked_ids) if i not in excluded]
    position = {item: r for r, item in enumerate(ranked, 1)}
    relevant = [i for i in dict.fromkeys(relevant_ids) if i not in excluded]
    return np.array([position.get(i, np.inf) for i in relevant], dtype=float)


def _mean(values: np.ndarray) -> float:
    return float(values.mean()) if values.size else float("nan")


def recall_from_ranks(ranks: np.ndarray, k: int) -> float:
    return _mean((ranks <= k).astype(float))


def ndcg_from_ranks(ranks: np.ndarray, k: int) -> float:
    gains = np.zeros_like(ranks)
    hit = ranks <= k
    gains[hit] = 1.0 / np.log2(ranks[hit] + 1.0)
    return _mean(gains)


def mrr_from_ranks(ranks: np.ndarray, k: int | None = None) -> float:
    hit = ranks <= (k if k is not None else np.inf)
    return _mean(np.where(hit, 1.0 / ranks, 0.0))


def recall_at_k(ranked_ids: Sequence[str], relevant_ids: Iterable[str], k: int, exclude: Collection[str] = ()) -> float:
    """Share of relevant items in the top ``k``; NaN when no relevant item is left after ``exclude``."""
    return recall_from_ranks(target_ranks(ranked_ids, relevant_ids, exclude), k)


def ndcg_at_k(ranked_ids: Sequence[str], relevant_ids: Iterable[str], k: int, exclude: Collection[str] = ()) -> float:
    """Mean over relevant items of ``1/log2(rank+1)`` within the top ``k``."""
    return ndcg_from_ranks(target_ranks(ranked_ids, relevant_ids, exclude), k)


def mrr(
    ranked_ids: Sequence[str], relevant_ids: Iterable[str], k: int | None = None, exclude: Collection[str] = ()
) -> float:
    """Mean over relevant items of ``1/rank`` (0 beyond ``k`` or when absent)."""
    return mrr_from_ranks(target_ranks(ranked_ids, relevant_ids, exclude), k)


def aggregate_ranks(ranks: np.ndarray, ks: Sequence[int] = DEFAULT_KS) -> dict[str, float]:
    """Recall/NDCG/MRR@k over a pooled array of per-target ranks, shape (N,)."""
    out: dict[str, float] = {}
    for k in ks:
        out[f"recall@{k}"] = recall_from_ranks(ranks, k)
        out[f"ndcg@{k}"] = ndcg_from_ranks(ranks, k)
        out[f"mrr@{k}"] = mrr_from_ranks(ranks, k)
    out["n"] = float(ranks.size)
    return out


def evaluate_rankings(
    cases: Iterable[tuple[Sequence[str], Iterable[str], Collection[str]]], ks: Sequence[int] = DEFAULT_KS
) -> dict[str, float]:
    """Pool ``(ranked_ids, relevant_ids, exclude)`` cases per ground-truth item and aggregate."""
    parts = [target_ranks(r, rel, ex) for r, rel, ex in cases]
    return aggregate_ranks(np.concatenate(parts) if parts else np.zeros(0), ks)


def first_success_turn(ranked_per_turn: Sequence[Sequence[str]], target: str, k: int) -> int | None:
    """1-based index of the first turn whose top ``k`` holds ``target``; None if it never does."""
    for t, ranked in enumerate(ranked_per_turn, 1):
        if target in list(ranked)[:k]:
            return t
    return None


def success_at_turn(success_turns: Sequence[int | None], turn: int) -> float:
    """SR@t: share of episodes that succeeded at or before ``turn`` (None = never succeeded)."""
    hits = np.array([s is not None and s <= turn for s in success_turns], dtype=float)
    return _mean(hits)


def mean_and_ci(values: Sequence[float], z: float = 1.96) -> tuple[float, float]:
    """Mean and normal-approximation 95% half-width, ignoring NaNs."""
    v = np.asarray(values, dtype=float)
    v = v[~np.isnan(v)]
    if v.size == 0:
        return float("nan"), float("nan")
    half = z * v.std(ddof=1) / np.sqrt(v.size) if v.size > 1 else 0.0
    return float(v.mean()), float(half)


# --- reason metrics -------------------------------------------------------------------------------

_STOPWORDS = frozenset(
    """a an the and or but if of to in on at by for with from as is are was were be been being it its
    this that these those he she they them his her their you your we our i me my not no so than then
    there here who whom which what when where why how all any both each few more most other some such
    only own same too very can will just about into over after before between through during under
    again also one two three film films movie movies story stories watch like love would could should
    really great good best well much many make makes made get gets while whose""".split()
)
_GENRE_SYNONYMS = {
    "science fiction": ("sci-fi", "scifi", "sci fi"),
    "animation": ("animated", "cartoon"),
    "documentary": ("doc",),
    "romance": ("romantic",),
    "comedy": ("comic", "funny", "comedic"),
    "horror": ("scary", "horrifying"),
    "thriller": ("thrilling", "suspense", "suspenseful"),
    "fantasy": ("fantastical",),
    "musical": ("music", "songs"),
    "war": ("wartime",),
    "crime": ("criminal", "gangster", "heist"),
    "mystery": ("mysterious", "whodunit"),
    "family": ("kids", "children"),
    "adventure": ("adventurous",),
    "western": ("cowboy", "cowboys"),
}
_DECADE_WORDS = {
    1920: "twenties",
    1930: "thirties",
    1940: "forties",
    1950: "fifties",
    1960: "sixties",
    1970: "seventies",
    1980: "eighties",
    1990: "nineties",
    2000: "noughties",
}
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
    if d in _DECADE_WORDS:
        out.append(_DECADE_WORDS[d])
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
        if _has_phrase(text, g) or any(_has_phrase(text, s) for s in _GENRE_SYNONYMS.get(_norm(g), ())):
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
