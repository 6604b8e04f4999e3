"""Claim-level checking of a reason: every claim about the item and about the user must be true.

A reason is split into clauses (at ';', ':', ',', ' - ' and sentence ends). Each clause yields claims:

- **person**: a catalog person named in the reason must be one of the item's people, and a role word next
  to the name ("directed by", "starring", "X plays") must match the attribute that names them (a creator
  key such as director/author, or a performer key such as cast); see :data:`chatrec.catalog.PERSON_ROLES`.
- **title**: another catalog title may appear only if the user liked it or named it.
- **year**: a year or decade must be the item's.
- **genre**: a genre word said of the item ("a tense thriller") must be one of its genres, or appear in its
  keywords or premise.
- **user**: a clause that says what the user asked, said, wanted or liked ("as you asked", "since you
  loved Heat") must be backed by the conversation: one of its content words is in what the user wrote,
  or it names a liked item.

Form is checked too: complete sentences (a text cut off mid-sentence fails), no loops (a repeated
four-word run), one or two sentences, no prompt artefacts. :func:`check` returns every claim with its
verdict so evaluation can count them and a UI can show why a reason was replaced.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from .catalog import PERSON_ROLES, Catalog, Item
from .vocab import DECADE_WORDS, GENRE_WORDS

MAX_WORDS = 60
_ARTEFACTS = ("<", ">", "###", "Candidate", "candidate:", "[/", "Assistant:", "User:", "{", "}", "Facts:", "Premise:")
_STOP = frozenset(
    """a an the and or but if of to in on at by for with from as is are was were be been being it its it's
    this that these those he she they them his her their you your you're we our i me my not no so than then
    there here who whom which what when where why how all any both each few more most other some such only own
    same too very can will just about into over after before between through during under again also one two
    three film films movie movies book books item items story watch read like love loved liked would could
    should really great good best well much many make makes made get gets while whose something some asked
    wanted want said mentioned since because enjoy enjoyed tonight night kind sort thing things lot bit
    pick fits fit suits perfect here's there's""".split()
)
# "You asked for / wanted / mentioned / loved ..." and the like: a statement about this user.
_USER_CLAIM = re.compile(
    r"\byou(?:'ve|'re| have| are| were)?\s+(?:(?:just|really|also|already|said you)\s+)?"
    r"(asked|wanted|want|said|mentioned|requested|liked|loved|enjoyed|adored|like|love|enjoy|were after|"
    r"are after|'re after|were looking|are looking|'re looking|named|described|prefer|preferred|need|needed|"
    r"hate|hated|dislike|disliked|did not|didn't|don't|do not)\b|\bas requested\b",
    re.IGNORECASE,
)
_CONDITIONAL = re.compile(r"\b(if|when|whenever|unless|in case)\s+you\b", re.IGNORECASE)
_CREATOR_BEFORE = re.compile(
    r"(?:directed|written|created|composed|produced|helmed|made|penned|illustrated|painted|sung|recorded|"
    r"a film|a novel|a book|an album|a record)\s+by\s+$|\b(?:director|author|writer|novelist|filmmaker|"
    r"auteur|composer)\s+$|\bfrom\s+(?:director|author|writer)\s+$", re.IGNORECASE)
_PERFORMER_BEFORE = re.compile(
    r"(?:starring|stars|featuring|features|with|played by|led by|narrated by|read by|actor|actress|"
    r"performance by|performances from|performances by)\s+$", re.IGNORECASE)
_CREATOR_AFTER = re.compile(r"^(?:'s|’s)?\s*(?:directs|directed|wrote|writes|helms|helmed|direction|script|"
                            r"\s*-directed)\b", re.IGNORECASE)
_PERFORMER_AFTER = re.compile(r"^\s*(?:stars|star|starring|plays|play|played|leads|lead|acts|as\s+(?:a|an|the)\b|"
                              r"gives|co-stars|is superb as|shines)", re.IGNORECASE)
_NAME = re.compile(r"\b[A-Z][a-z]+(?:\s+[A-Z]\.)?\s+[A-Z][a-z]+(?:['’]s)?\b")
_STRONG_ROLE = re.compile(r"(?:starring|directed by|written by|stars|narrated by)\s+$", re.IGNORECASE)
_YEAR = re.compile(r"(?<![\d$£€])(1[89]\d\d|20\d\d)(s?)(?!\d)")
_SHORT_DECADE = re.compile(r"(?<![\w'’])['’]?(\d0)s\b")
_SENTENCE_END = re.compile(r"[.!?…](?:[\"'”’)]*)(?=\s|$)")
_ABBREV = re.compile(r"\b(?:Dr|Mr|Mrs|Ms|St|Jr|Sr|vs|No|Vol|[A-Z])\.$")


@dataclass(frozen=True)
class Claim:
    kind: str  # person | role | title | year | genre | user | form
    text: str  # the words the claim is about
    ok: bool
    why: str = ""  # for a false claim: what the catalog or the conversation says instead


@dataclass(frozen=True)
class ClaimCheck:
    claims: tuple[Claim, ...]
    about_user: bool  # refers to something this user said or liked (a backed user claim, their words, a liked title)

    @property
    def false(self) -> tuple[Claim, ...]:
        return tuple(c for c in self.claims if not c.ok)

    @property
    def ok(self) -> bool:
        return not self.false

    def problem(self) -> str | None:
        """A one-line summary of the first false claim, or None."""
        bad = self.false
        return None if not bad else f"{bad[0].kind}: {bad[0].why or bad[0].text}"


def norm(text: str) -> str:
    if text.isascii():  # the same result, without the per-character pass
        return text.lower()
    t = unicodedata.normalize("NFKD", text)
    return "".join(c for c in t if not unicodedata.combining(c)).lower().replace("’", "'")


def _find(text_norm: str, phrase: str) -> list[re.Match]:
    p = norm(phrase).strip()
    if not p:
        return []
    return list(re.finditer(rf"(?<![\w]){re.escape(p)}(?:'s)?(?![\w])", text_norm))


def content_words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z0-9][a-z0-9'-]{1,}", norm(text)) if w not in _STOP and (len(w) >= 3 or any(c.isdigit() for c in w))}


def fold_key(text: str) -> str:
    """Letters and digits only, accents and case folded: 'Item X', 'ITEM  X!' and 'item-x' are one value."""
    return re.sub(r"[\W_]+", "", norm(text))


_NOT_A_NAME = re.compile(r"[:;/\\@<>\[\]{}#|=*_~]|https?|www\.|\.(?:com|net|org)\b", re.IGNORECASE)


def plausible_person(name: str, title: str = "") -> bool:
    """A person value that can be said of its item as a name ("directed by X"): not the item's own title
    ("Item X is a film by Item X"), not markup, a link or a slogan ("Fits: yes", "BEST FILM 10/10"), not a
    sentence. Every person of the demo catalogs passes."""
    key = fold_key(name)
    if not key or not any(c.isalpha() for c in key) or (title and key == fold_key(title)):
        return False
    return len(name) <= 60 and len(name.split()) <= 6 and not _NOT_A_NAME.search(name)


def junk_people(item: Item) -> set[str]:
    """The item's person values that are no plausible name (see :func:`plausible_person`)."""
    return {p for key in PERSON_ROLES for p in item.values(key) if not plausible_person(p, item.title)}


def _stem(word: str) -> str:
    return word[:5] if len(word) > 5 else word.rstrip("s")


# ---- form -----------------------------------------------------------------------------------------


def sentences(text: str) -> list[str]:
    """Complete sentences of ``text``, abbreviations and initials ('Dr.', 'F. W. Murnau') kept inside."""
    out, start = [], 0
    for m in _SENTENCE_END.finditer(text):
        if m.group(0).startswith(".") and _ABBREV.search(text[start:m.start() + 1]):
            continue
        out.append(text[start:m.end()].strip())
        start = m.end()
    tail = text[start:].strip()
    return [s for s in out if s] + ([tail] if tail else [])


def complete(text: str) -> str:
    """``text`` cut back to its last complete sentence ('' if it has none): generation stops on a token
    budget, and a reason cut off mid-sentence must not be shown."""
    parts = sentences(text)
    while parts and not _SENTENCE_END.search(parts[-1][-3:] + " "):
        parts.pop()
    return " ".join(parts)


def loops(text: str, n: int = 4) -> bool:
    """True when a run of ``n`` words appears twice: the repetition a greedy small model falls into."""
    words = re.findall(r"\w+", norm(text))
    grams = [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]
    return len(grams) != len(set(grams))


def form_claims(text: str, title: str = "") -> list[Claim]:
    t = text.strip()
    out = []
    if not t:
        return [Claim("form", "", False, "empty")]
    if len(t.split()) > MAX_WORDS:
        out.append(Claim("form", t[:40], False, f"longer than {MAX_WORDS} words"))
    if any(a in t for a in _ARTEFACTS):
        out.append(Claim("form", t[:40], False, "prompt artefacts"))
    parts = sentences(t.replace(title, "Title") if title else t)  # "I Know Where I'm Going!" is a name
    if not _SENTENCE_END.search(t[-3:] + " "):
        out.append(Claim("form", t[-30:], False, "cut off mid-sentence"))
    if len(parts) > 2:
        out.append(Claim("form", t[:40], False, f"{len(parts)} sentences (one or two)"))
    if loops(t):
        out.append(Claim("form", t[:40], False, "repeats itself"))
    return out


# ---- the catalog's names --------------------------------------------------------------------------


@lru_cache(maxsize=8)
def _names(catalog: Catalog) -> tuple[dict[str, str], dict[str, tuple[str, ...]]]:
    """(normalised person -> name, first word -> titles starting with it, longest first) for one catalog.

    Lookups by word position keep a check at a few milliseconds on a catalog of thousands of items."""
    people = {norm(p).rstrip("."): p for it in catalog for p in it.people() if plausible_person(p, it.title)}
    titles: dict[str, list[str]] = {}
    for t in sorted({it.title for it in catalog}, key=len, reverse=True):
        if t.split():
            titles.setdefault(t.split()[0], []).append(t)
    return people, {k: tuple(v) for k, v in titles.items()}


_TOKEN = re.compile(r"[\w'.-]+")


def _spans(low: str, longest: int = 5) -> list[tuple[int, int, str]]:
    """(start, end, words) for every run of up to ``longest`` words, longest first at each position;
    a trailing possessive or full stop is not part of a name."""
    toks = [(m.start(), m.end()) for m in _TOKEN.finditer(low)]
    out = []
    for i in range(len(toks)):
        for n in range(min(longest, len(toks) - i), 0, -1):
            start, end = toks[i][0], toks[i + n - 1][1]
            words = re.sub(r"(?:'s|\.)$", "", low[start:end])
            out.append((start, start + len(words), words))
    return out


# Words that state a genre when said of an item, and the genre they state. Narrower than the words that
# ask for one (vocab.GENRE_WORDS): "her children", "a family of thieves" or "space" say nothing of genre.
_GENRE_CLAIMS = {
    "comedy": "comedy", "comedies": "comedy", "comedic": "comedy", "rom-com": "romance", "romcom": "romance",
    "horror": "horror", "thriller": "thriller", "thrillers": "thriller", "western": "western",
    "westerns": "western", "musical": "musical", "musicals": "musical", "documentary": "documentary",
    "documentaries": "documentary", "sci-fi": "science fiction", "science fiction": "science fiction",
    "science-fiction": "science fiction", "animated": "animation", "animation": "animation",
    "fantasy": "fantasy", "mystery": "mystery", "whodunit": "mystery", "biopic": "biography",
    "romance": "romance", "war film": "war", "war movie": "war", "war drama": "war", "war epic": "war",
    "crime drama": "crime", "crime thriller": "crime", "crime film": "crime", "crime story": "crime",
    "action film": "action", "action movie": "action", "action thriller": "action", "family film": "family",
    "family movie": "family", "sports drama": "sport", "sports film": "sport", "sports movie": "sport",
}
# A genre also backs the words of its neighbours: a thriller is suspenseful, a crime film may be a mystery.
_GENRE_USER = {norm(w): norm(g) for w, g in GENRE_WORDS.items()}


def _role_of(before: str, after: str) -> str | None:
    """The role the words around a name give it. "with Alfred Hitchcock's Psycho" gives none: a
    possessive names what the person made or is known for, not a part they play."""
    if _CREATOR_AFTER.search(after):
        return "creator"
    if _PERFORMER_AFTER.search(after):
        return "performer"
    if re.match(r"^(?:'s|’s)\b", after):
        return None
    if _CREATOR_BEFORE.search(before):
        return "creator"
    if _PERFORMER_BEFORE.search(before):
        return "performer"
    return None


def person_claims(text: str, item: Item, catalog: Catalog) -> list[Claim]:
    """Every catalog person (full name, or the surname of one of the item's people) and the role said."""
    people, _ = _names(catalog)
    low = norm(text)
    roles: dict[str, set[str]] = {}
    junk = junk_people(item)
    for key in PERSON_ROLES:
        for p in item.values(key):
            if p not in junk:
                roles.setdefault(norm(p).rstrip("."), set()).add(PERSON_ROLES[key][1])
    surnames = {n.split()[-1]: n for n in roles if " " in n and len(n.split()[-1]) > 3}
    taken: list[tuple[int, int]] = []
    out = []
    # A junk person value ("Item X" directed "Item X") said in a role ("a film by Item X") is no fact: the
    # catalog row is broken, and a checked reason must not repeat it. Named without a role it is only the title.
    for p in sorted(junk, key=len, reverse=True):
        for m in _find(low, p):
            if any(a <= m.start() < b for a, b in taken):
                continue
            before, after = low[max(0, m.start() - 40):m.start()], low[m.end():m.end() + 30]
            if _role_of(before, after) or re.search(r"\bby\s+$", before):
                taken.append((m.start(), m.end()))
                out.append(Claim("person", p, False, f"{p!r} is no person's name (a broken catalog value)"))
    for start, end, words in _spans(low):
        if any(a <= start < b for a, b in taken):
            continue
        if words in roles:
            taken.append((start, end))
            said = _role_of(low[max(0, start - 40):start], low[end:end + 30])
            shown = people.get(words, words)
            if said and said not in roles[words]:
                actual = "/".join(k for k in PERSON_ROLES if words in (norm(v).rstrip(".") for v in item.values(k)))
                out.append(Claim("role", shown, False, f"{shown} is credited as {actual}, not as a {said}"))
            else:
                out.append(Claim("person", shown, True))
        elif " " in words and words in people:
            taken.append((start, end))
            out.append(Claim("person", people[words], False, f"{people[words]} is not one of this item's people"))
        elif words in surnames:  # "a Kubrick film": surnames count for the item's own people only
            taken.append((start, end))
            out.append(Claim("person", words, True))
    # A name after a strong role word that is no catalog person ("starring Keanu Smith"), or an unknown
    # "Firstname Surname" whose first name is a catalog person's: a made-up person.
    first_names = {n.split()[0] for n in people if " " in n}
    context = norm(item.description)
    for m in _NAME.finditer(text):
        span = re.sub(r"['’]s$", "", m.group(0))
        n = norm(span)
        if any(a <= m.start() < b for a, b in taken) or n in people or n in roles or n in context \
                or n in norm(item.title) or any(t.startswith(span) for t in _names(catalog)[1].get(span.split()[0], ())):
            continue
        if _STRONG_ROLE.search(text[max(0, m.start() - 20):m.start()]) or n.split()[0] in first_names:
            taken.append((m.start(), m.end()))
            out.append(Claim("person", span, False, f"{span} is not a person of this item"))
    return out


_REFERENCE_BEFORE = re.compile(r"(?:like|than|of|loved|love|liked|enjoyed|after|as in|unlike|to|watched|saw|"
                               r"remember|and|or)\s+$", re.IGNORECASE)


def _one_word_title(text: str, start: int, end: int) -> bool:
    """A one-word title ('Chicago', 'Earth', 'Hook') is read as a title only where it is referred to as
    one ('like Heat', 'Heat (1995)') and is not part of a longer name ('Captain Hook', 'Fury Road')."""
    before, after = text[:start], text[end:]
    if re.match(r"\s+[A-Z]", after):
        return False
    if re.match(r"\s*\(\d{4}\)", after) or _REFERENCE_BEFORE.search(before):
        return True
    return False


def title_claims(text: str, item: Item, catalog: Catalog, user_text: str, liked: Sequence[Item]) -> list[Claim]:
    """Other catalog titles, matched as written (case and word boundaries): 'the others' in a sentence is
    not The Others, and a one-word title opening a sentence ('Up close, ...') is a word."""
    _, titles = _names(catalog)
    rest = text
    allowed = {norm(it.title) for it in liked} | {norm(item.title)}
    # The item's own title, liked titles and the item's people first: 'Your Name' inside a liked
    # 'Call Me by Your Name', the title 'Amy' inside the item's 'Amy Adams'.
    for p in sorted([item.title, *(it.title for it in liked), *item.people()], key=len, reverse=True):
        rest = rest.replace(p, " " * len(p))
    user_low = norm(user_text)
    found: list[tuple[int, int, str]] = []
    for m in re.finditer(r"(?<![\w'’])\S+", rest):
        for t in titles.get(m.group(0).rstrip(".,;:!?)'\"’”"), ()) + titles.get(m.group(0), ()):
            end = m.start() + len(t)
            if len(t) < 3 or norm(t) in allowed or not rest.startswith(t, m.start()) or re.match(r"\w", rest[end:end + 1]):
                continue
            if " " not in t and not _one_word_title(rest, m.start(), end):
                continue
            found.append((m.start(), end, t))
    out, taken = [], []
    for start, end, t in sorted(found, key=lambda f: f[0] - f[1]):  # longest first: 'Mission: Impossible' over 'Impossible'
        if any(a < end and start < b for a, b in taken):
            continue
        taken.append((start, end))
        ok = bool(_find(user_low, t))
        out.append(Claim("title", t, ok, "" if ok else f"names {t!r}, which the user neither liked nor named"))
    return out


def year_claims(text: str, item: Item, catalog: Catalog | None = None) -> list[Claim]:
    """Years and decades said of the item; titles that hold a number ('1917', 'Blade Runner 2049') are names,
    and a year or decade the item's own premise or keywords state ('in 1943', 'the sixties') is true by the card."""
    out = []
    if catalog is not None:
        for t in _numbered_titles(catalog):
            text = text.replace(t, " ")
    card = norm(" ".join([item.description, *item.values("keywords")]))
    for phrase in set(re.findall(r"(?:(?:early|mid|late)-)?(?:1[89]\d\d|20\d\d)s?|['’]?\d0s|the \w+ties", card)):
        text = re.sub(rf"(?<!\w){re.escape(phrase)}(?!\w)", " ", text, flags=re.IGNORECASE)
    low = norm(text)
    for m in _YEAR.finditer(low):
        year, decade = int(m.group(1)), bool(m.group(2))
        ok = item.year is not None and (year == item.year // 10 * 10 if decade else year == item.year)
        out.append(Claim("year", m.group(0), ok, "" if ok else f"{m.group(0)} but the item is from {item.year}"))
    for m in _SHORT_DECADE.finditer(low):
        d = int(m.group(1))
        ok = item.year is not None and item.year // 10 % 10 * 10 == d
        out.append(Claim("year", m.group(0), ok, "" if ok else f"{m.group(0)} but the item is from {item.year}"))
    for decade, word in DECADE_WORDS.items():  # "the sixties"; "in his forties" is an age
        m = re.search(rf"(?<!\w)the {word}(?!\w)", low)
        if m and not _negated(low, m.start()):
            ok = item.year is not None and item.year // 10 * 10 == decade
            out.append(Claim("year", word, ok, "" if ok else f"{word} but the item is from {item.year}"))
    return out


@lru_cache(maxsize=8)
def _numbered_titles(catalog: Catalog) -> tuple[str, ...]:
    return tuple(sorted({it.title for it in catalog if re.search(r"\d{4}", it.title)}, key=len, reverse=True))


_NEGATION = re.compile(r"\b(?:not|no|nor|never|isn't|wasn't|rather than|instead of|less|without|neither|"
                       r"far from|nothing like|nowhere near|minus)\b(?:\W+\w+){0,3}\W*$")


def _negated(low: str, start: int) -> bool:
    """'not a western', 'no romance', 'less horror than': a denial, not a claim that the item is one."""
    return bool(_NEGATION.search(low[max(0, start - 40):start]))


def genre_claims(clause: str, item: Item) -> list[Claim]:
    """Genre words said of the item; backed by its genres, or its keywords and premise."""
    low = norm(clause)
    own = {norm(g) for g in item.values("genres")}
    backing = norm(" ".join(item.values("keywords") + item.values("tags") + [item.description, item.title]))
    out = []
    for term, genre in _GENRE_CLAIMS.items():
        hits = [m for m in _find(low, term) if not _negated(low, m.start())]
        if not hits:
            continue
        ok = genre in own or term in own or bool(_find(backing, term))
        out.append(Claim("genre", term, ok, "" if ok else f"'{term}' but the item is {', '.join(item.values('genres'))}"))
    return out


def user_claims(clause: str, user_text: str, liked: Sequence[Item], sentence: str = "") -> list[Claim]:
    """A clause that speaks of the user must be backed by what they wrote or liked. A bare "you said"
    clause is about the rest of its sentence ("Heat was great, you said")."""
    if not _USER_CLAIM.search(clause) or _CONDITIONAL.search(clause):
        return []
    if not content_words(re.sub(_USER_CLAIM, " ", clause)) and sentence:
        clause = sentence
    low = norm(clause)
    if any(_find(low, it.title) for it in liked):
        return [Claim("user", clause.strip(), True)]
    said = content_words(user_text)
    stems = {_stem(w) for w in said}
    user_genres = {g for w, g in _GENRE_USER.items() if _find(norm(user_text), w)}
    words = content_words(re.sub(_USER_CLAIM, " ", clause))
    backed = [w for w in words if w in said or _stem(w) in stems
              or (_GENRE_CLAIMS.get(w) or _GENRE_USER.get(w)) in user_genres]
    backed += [t for t, g in (*_GENRE_CLAIMS.items(), *_GENRE_USER.items()) if g in user_genres and _find(low, t)]
    if backed:
        return [Claim("user", clause.strip(), True)]
    return [Claim("user", clause.strip(), False, "says the user asked for or liked something they did not")]


_AS_ROLE = re.compile(r"^\s+as\s+(?:(?:a|an|the|his|her|their)\s+)?((?:[\w'-]+\s*){1,4})", re.IGNORECASE)
_DENIAL = re.compile(r"\b(?:not|no|never|isn't|wasn't|without|nothing)\s+(?:(?:a|an|the|about|really|too|very|so|at all)\s+)*"
                     r"([\w'-]+(?:\s+[\w'-]+)?)", re.IGNORECASE)


def character_claims(text: str, item: Item) -> list[Claim]:
    """"Bill Murray as a weatherman": the card lists cast, not who plays whom, so only the first-billed lead may
    be given a part, and the part's words must be in the premise."""
    out = []
    cast = item.values("cast")
    premise = content_words(" ".join([item.description, *item.values("keywords")]))
    for i, name in enumerate(cast):
        for m in re.finditer(rf"(?<!\w){re.escape(name)}(?:['’]s)?(?!\w)", text):
            part = _AS_ROLE.match(text[m.end():])
            if not part:
                continue
            words = content_words(part.group(1))
            ok = i == 0 and bool(words & premise or {_stem(w) for w in words} & {_stem(w) for w in premise})
            out.append(Claim("role", f"{name} as {part.group(1).strip()}", ok,
                             "" if ok else f"the card does not say {name} plays {part.group(1).strip()}"))
    return out


def denial_claims(text: str, item: Item) -> list[Claim]:
    """"It's not about ice" of Frozen: denying what the card states is false."""
    card_text = " ".join([item.description, *item.values("keywords"), *item.values("genres")])
    card, card_low = content_words(card_text), norm(card_text)
    out = []
    for m in _DENIAL.finditer(text):
        if norm(m.group(0)) in card_low:  # "with no memory of the night" repeats the premise, it denies nothing
            continue
        words = content_words(m.group(1))
        hit = words & card
        if hit:
            out.append(Claim("denial", m.group(0), False, f"denies {sorted(hit)[0]!r}, which the card states"))
    return out


def _clauses(text: str) -> list[str]:
    return [c for c in re.split(r"[;:,.!?]\s+|\s+[-–—]\s+|[;:.!?]$", text) if c.strip()]


def check(text: str, item: Item, catalog: Catalog, user_text: str = "", liked: Sequence[Item] = ()) -> ClaimCheck:
    """Every claim ``text`` makes about ``item`` and about the user, each with its verdict."""
    claims = form_claims(text, item.title)
    claims += person_claims(text, item, catalog)
    claims += title_claims(text, item, catalog, user_text, liked)
    claims += year_claims(text, item, catalog)
    claims += character_claims(text, item)
    claims += denial_claims(text, item)
    for sentence in sentences(text):
        for clause in _clauses(sentence):
            users = user_claims(clause, user_text, liked, sentence)
            claims += users
            if not users:  # "you asked for a comedy": the genre word is about the user, checked there
                claims += genre_claims(clause, item)
    about = any(c.kind == "user" and c.ok for c in claims) or bool(content_words(text) & content_words(user_text)) \
        or any(_find(norm(text), it.title) for it in liked)
    return ClaimCheck(tuple(claims), about)
