"""Prompt rendering from the templates in ``prompts/``. Owns the <image>/<audio> placeholders.

Catalog and user text are data: it is flattened to one line and stripped of the characters that
delimit the prompt's structure, so a description cannot open a new section, forge a candidate label
or smuggle in a placeholder. The prompt's own field words are defused in data too (:func:`neutralise`):
a title cannot answer its own question ("Fits: yes"), forge a label ("B: ..."), a turn ("User: ...") or
a section header ("### Candidates"), also not with look-alike letters, full-width forms or invisible
characters. Candidate lines are capped per value and per line, and repeated, title-repeating or stuffed
values are dropped (:func:`line_values`). Ordinary titles and values are untouched: the demo catalogs
render byte for byte as before, the text the shipped adapter was trained on. Ranking reads one score per
candidate at its ``<fit>`` mark (the model's " yes" against " no" there), so format and item set are
fixed by construction whatever the data says.
"""

from __future__ import annotations

import hashlib
import re
import string
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

from .catalog import PERSON_ROLES, Item, Schema
from .claims import fold_key, plausible_person
from .session import Session
from .vocab import GENRE_WORDS

IMAGE = "<image>"
AUDIO = "<audio>"
FIT = "<fit>"  # marks where a candidate's line ends: its score is read at the token before the mark
PLACEHOLDERS = (IMAGE, AUDIO, FIT)
LABELS = tuple(string.ascii_uppercase)  # candidate labels, so the user and the model can say "option B"
FIT_QUESTION = ". Fits:"  # ends every candidate line; the answer would be " yes" or " no"


def _resource_dir(name: str) -> Path:
    """A resource folder of the package: ``chatrec/<name>`` in an installed wheel (the build maps the
    repository's top-level folder there), else the top-level folder of the checkout (editable install)."""
    inside = resources.files(__package__) / name
    if inside.is_dir():
        return Path(str(inside))
    return Path(__file__).resolve().parent.parent / name


PROMPTS_DIR = _resource_dir("prompts")
TEMPLATES = ("rank.txt", "reason.txt")

_UNSAFE = re.compile(r"[<>\[\]{}#|\r\n\t]+")
TITLE_CAP = 120  # characters of a title in a prompt
VALUE_CAP = 48  # characters of one attribute value; a longer one is no keyword and is left out (demo: 32 at most)
VALUES_CAP = 160  # characters of one attribute's values together
LINE_CAP = 320  # characters of one candidate line before ". Fits:" (demo catalogs: 238 at most)
STUFFED = 16  # a non-person attribute with more values than this is keyword stuffing: none are shown

# ---- data neutralisation --------------------------------------------------------------------------

# Letters that look like Latin ones (Cyrillic, Greek, a few others), for finding forged field words;
# the text itself keeps them. NFKC already maps full-width and mathematical letters.
_LOOKALIKE = str.maketrans(
    "АВСЕНІЈКМОРЅТХУԁаеһіјӏорԛѕԝху" "ΑΒΕΖΗΙΚΜΝΟΡΤΥΧαεικνορτυχ" "ıɑɡɩʏꓢꓝ",
    "ABCEHIJKMOPSTXYdaehijlopqswxy" "ABEZHIKMNOPTYXaeiknoptux" "iagiySF")
_COLONS = "꞉∶˸ː։׃︓﹕"


def _fold(text: str) -> tuple[str, list[int] | range]:
    """``text`` with look-alikes mapped to Latin letters and colons, invisible characters removed, and
    for each folded character the index of the character it came from."""
    if text.isascii():
        return text, range(len(text))
    out, where = [], []
    for i, ch in enumerate(text):
        if unicodedata.category(ch) == "Cf":
            continue
        f = unicodedata.normalize("NFKC", ch).translate(_LOOKALIKE) if not ch.isascii() else ch
        for c in f:
            out.append(":" if c in _COLONS else c)
            where.append(i)
    return "".join(out), where


_SEP = r"[ \t]*[:=>→\-–—|]+\s*"  # "Fits: yes", "fits = yes", "Fits -> YES"
_ANSWER = r"(?:yes|true|(?:no|false)(?!\s+(?-i:[a-z])))(?![\w'’-])"  # "no" before a word is prose ("fit: no gore")
_FORGERIES = (
    # An answer after a fits-like word, with or without a separator: the whole phrase goes.
    re.compile(rf"\b(?:fits?|fitting|match(?:es)?|suits?|relevant|answer|verdict)(?:{_SEP}|\s+){_ANSWER}", re.I),
    # The prompt's own question word as a field: "Fits:" ("a good fit: a linguist ..." stays: lower case).
    re.compile(r"\b(?:Fits?|FITS?)\s*:"),
    # A candidate label and its answer, "B: yes".
    re.compile(rf"(?<![\w.'’&*/-])[A-Z]\s*:\s*{_ANSWER}"),
    # Chat-template turn markers, once their angle brackets are gone.
    re.compile(r"\b(?:start|end)_of_turn\b", re.I),
    # A section header: hashes then a section word, or a section word alone on a line.
    re.compile(r"#+[ \t]*(?:conversation|candidates?)\b", re.I),
    re.compile(r"(?m)^[ \t=*_~-]*(?:conversation|candidates?)[ \t=*_~:-]*\n", re.I),
)
# Field forms that lose their colon only, so the words stay readable: a label "A: ...", a turn
# "User: ...", a section or reason-prompt field "Candidates: ...", "The user liked: ...".
_COLON_FORMS = (
    re.compile(r"(?<![\w.'’&*/-])[A-Z](\s*:)(?!//)"),
    re.compile(r"\b(?:user|assistant|system|human|bot|ai)(\s*:)", re.I),
    re.compile(r"\b(?:the\s+)?user\s+(?:asked\s+for|liked|likes|wants?|said)(\s*:)", re.I),
    re.compile(r"\b(?:Conversation|Candidates?|Facts|Premise|Answer|Question|Instructions?|Response|Model)(\s*:)"),
)
_RULE = re.compile(r"[=*_~`-]{3,}")  # "=== Candidates ===", "--- Conversation ---"


# Every forgery above has one of these; text without any (most names and keywords) is left at once.
_TRIGGER = re.compile(r"[:#=*_~`-]|yes|true|\bno\b|false", re.I)


def _edits(folded: str) -> list[tuple[int, int]]:
    if not _TRIGGER.search(folded):
        return []
    spans = [m.span() for rx in _FORGERIES for m in rx.finditer(folded)]
    spans += [m.span(1) for rx in _COLON_FORMS for m in rx.finditer(folded)]
    spans += [m.span() for m in _RULE.finditer(folded)]
    return spans


def neutralise(text: str) -> str:
    """``text`` without the prompt's structural phrases: forged answers ("Fits: yes"), labels ("B:"),
    turns ("User:"), section headers, also written with look-alike letters or invisible characters.
    Text without them is returned unchanged (the same string)."""
    edited = False
    for _ in range(4):  # a removal can join a new forgery ("Fi: ts: yes"); a few passes settle it
        folded, where = _fold(text)
        spans = _edits(folded)
        if not spans:
            break
        drop = bytearray(len(text))
        for a, b in spans:
            if b > a:
                for i in range(where[a], where[b - 1] + 1):
                    drop[i] = 1
        text = "".join(" " if drop[i] and (i == 0 or not drop[i - 1]) else c
                       for i, c in enumerate(text) if not drop[i] or i == 0 or not drop[i - 1])
        edited = True
    if edited:  # tidy what a removal left: "Seminar. ." -> "Seminar."
        text = re.sub(r"[ \t]+([.,;!?])", r"\1", text)
        text = re.sub(r"([.,;!?])(?:[ \t]*[.,;])+", r"\1", text)
        text = re.sub(r"^[\s.,;:!?]+|[\s,;:]+$", "", text)
    return text


def _destuff(text: str) -> str:
    """A word said four times or more ("Yes Yes Yes Yes"), or three times in eight words or more ("Thriller
    Thriller Thriller Comedy ..."), is kept once; "Linda Linda Linda" stays."""
    words = re.findall(r"[^\W\d_]{3,}", text.lower())
    least = 3 if len(text.split()) >= 8 else 4
    stuffed = {w for w in set(words) if words.count(w) >= least and w not in _COMMON}
    if not stuffed:
        return text
    seen: set[str] = set()

    def once(m: re.Match) -> str:
        w = m.group(0).lower()
        if w in stuffed:
            if w in seen:
                return ""
            seen.add(w)
        return m.group(0)

    return re.sub(r"[^\W\d_]{3,}", once, text)


_COMMON = frozenset("the and for with from that this who his her their its you not all one".split())


def clean(text: str, limit: int = 600) -> str:
    """One line of data text: no structural characters or phrases, bounded length."""
    text = neutralise(text)
    text = _UNSAFE.sub(" ", text)
    text = re.sub(r"\s+", " ", text).strip()
    return text[:limit].rstrip() + ("…" if len(text) > limit else "")


@cache
def template(name: str) -> str:
    path = PROMPTS_DIR / name
    if not path.is_file():
        raise FileNotFoundError(f"prompt template {path} is missing")
    return path.read_text(encoding="utf-8").rstrip("\n")


def templates_hash() -> str:
    """sha256 over the prompt templates and the candidate-line format; an adapter is valid for this value only."""
    h = hashlib.sha256()
    for name in TEMPLATES:
        h.update(name.encode() + b"\0" + template(name).encode() + b"\0")
    h.update(repr((LINE_FORMAT, FIT_QUESTION)).encode())
    return h.hexdigest()


LINE_FORMAT = "title (year); attribute values joined by ', ' per schema line attribute; '; ' between"


def item_line(item: Item, schema: Schema) -> str:
    """Key facts of one candidate on one line, the attributes the catalog's schema names. Users name
    third-billed actors and fifth keywords too: with 2 and 4 of them, 60 of 325 validation requests
    named a fact the line did not show."""
    parts = [title_text(item)]
    for key, n in schema.line_attributes:
        vals = line_values(item, key, n)
        if vals:
            parts.append(clean(", ".join(vals), VALUES_CAP))
    line = "; ".join(parts)
    return line if len(line) <= LINE_CAP else line[:LINE_CAP].rstrip(" ,;") + "…"


def title_text(item: Item) -> str:
    """The title as a prompt shows it, with its year."""
    return clean(_destuff(neutralise(item.title)), TITLE_CAP) + (f" ({item.year})" if item.year else "")


def _stuffed_value(value: str) -> bool:
    """A value that is no keyword or name: longer than :data:`VALUE_CAP`, more than eight words, or a run
    of three genres and more ("feel-good animated family comedy thriller ...")."""
    if len(value) > VALUE_CAP or len(value.split()) > 8:
        return True
    return len({GENRE_WORDS[w] for w in _GENRE_WORD.findall(_fold(value)[0].lower())}) >= 3


_GENRE_WORD = re.compile(r"(?<!\w)(" + "|".join(sorted(map(re.escape, GENRE_WORDS), key=len, reverse=True)) + r")(?!\w)")


def line_values(item: Item, key: str, n: int) -> list[str]:
    """Up to ``n`` values of attribute ``key`` as a prompt shows them, without repeats (case, accents and
    punctuation aside), values that only repeat the title, people that are no plausible name, stuffed
    values (:func:`_stuffed_value`), or any value of a non-person attribute that has more than
    :data:`STUFFED` of them."""
    values = item.values(key)
    if len(values) > STUFFED and key not in PERSON_ROLES:
        return []
    out: list[str] = []
    seen = {fold_key(item.title)}
    for v in values:
        if key in PERSON_ROLES and not plausible_person(v, item.title) or _stuffed_value(v):
            continue
        shown = clean(_destuff(neutralise(v)), VALUE_CAP)
        k = fold_key(shown)
        if k and k not in seen:
            seen.add(k)
            out.append(shown)
            if len(out) == n:
                break
    return out


def facts_text(item: Item, schema: Schema) -> str:
    """The item's facts in words, people with their role ("directed by X"), for the reason prompt."""
    parts = [f"from {item.year}"] if item.year else []
    for key, n in schema.line_attributes:
        vals = line_values(item, key, max(n, 4))
        if not vals:
            continue
        role = schema.role(key)
        parts.append(f"{role[0]} {', '.join(vals)}" if role else f"{key} {', '.join(vals)}")
    return clean("; ".join(parts), 400)


@dataclass(frozen=True)
class PromptTurn:
    """One turn of the conversation as the prompt shows it."""

    role: str  # "user" | "assistant"
    text: str
    has_image: bool = False  # an <image> placeholder precedes the text (soft tokens are spliced there)
    has_audio: bool = False


def prompt_turns(session: Session, image_in_use: bool = False, audio_in_use: bool = False) -> list[PromptTurn]:
    """The session's turns for the rank prompt. Only the newest user turn can carry placeholders, and
    only for media whose soft tokens are in use (a trained projector and an encoded input)."""
    last = session.turns[-1] if session.turns else None
    return [
        PromptTurn(t.role, t.text, bool(t.image) and image_in_use and t is last, bool(t.audio) and audio_in_use and t is last)
        if t.role == "user" else PromptTurn(t.role, t.text)
        for t in session.turns
    ]


def dialogue_text(turns: Sequence[PromptTurn], max_turns: int = 8) -> str:
    lines = []
    for t in turns[-max_turns:]:
        who = "User" if t.role == "user" else "Assistant"
        marks = (IMAGE + " " if t.has_image else "") + (AUDIO + " " if t.has_audio else "")
        lines.append(f"{who}: {marks}{clean(t.text)}")
    return "\n".join(lines)


PROFILE_LINE = "Known from earlier sessions: {known}."  # first line of the conversation, only when a profile says something


def rank_prompt(turns: Sequence[PromptTurn], candidates: Sequence[Item], schema: Schema | None = None,
                known: str = "") -> str:
    """The ranking prompt; ``schema`` is the catalog's (inferred from the candidates when not given).

    ``known`` is what the user's profile says ("liked Heat (1995); avoids horror"): a non-empty one is
    added as the first line of the conversation; without one the prompt is exactly the template's.
    """
    schema = schema or Schema.infer(candidates)
    if len(candidates) > len(LABELS):
        raise ValueError(f"at most {len(LABELS)} candidates can be labelled, got {len(candidates)}")
    # The conversation comes first, so each candidate's score position has read all of it; the score
    # is per line (pointwise in a listwise prompt), which a small LM learns far faster than picking
    # one letter for the whole list (README, "Training").
    cands = "\n".join(f"{LABELS[i]}: {item_line(it, schema)}{FIT_QUESTION}{FIT}" for i, it in enumerate(candidates))
    dialogue = dialogue_text(turns)
    known = clean(known, 300).rstrip(".")
    if known:
        dialogue = PROFILE_LINE.format(known=known) + ("\n" + dialogue if dialogue else "")
    return template("rank.txt").format(candidates=cands, dialogue=dialogue, noun=schema.item_noun,
                                       nouns=schema.item_nouns)


def reason_prompt(item: Item, request: str, liked: Sequence[Item] = (), schema: Schema | None = None) -> str:
    """The reason prompt: the item's facts with roles, what the user asked for and what they liked."""
    schema = schema or Schema.infer([item])
    return template("reason.txt").format(
        noun=schema.item_noun,
        Noun=schema.item_noun[:1].upper() + schema.item_noun[1:],
        title=title_text(item),
        facts=facts_text(item, schema),
        description=clean(item.description, 300),
        request=clean(request, 300),
        liked=clean(", ".join(it.title for it in liked[-3:]), 200) or "nothing named yet",
    )


def split_placeholders(prompt: str) -> list[str]:
    """Split a prompt into text pieces and placeholder pieces, in order."""
    return [p for p in re.split(f"({'|'.join(map(re.escape, PLACEHOLDERS))})", prompt) if p]
