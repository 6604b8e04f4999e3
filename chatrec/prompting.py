"""Prompt rendering from the templates in ``prompts/``. Owns the <image>/<audio> placeholders.

Catalog and user text are data: it is flattened to one line and stripped of the characters that
delimit the prompt's structure, so a description cannot open a new section, forge a candidate label
or smuggle in a placeholder. Ranking reads one score per candidate at its ``<fit>`` mark (the
model's " yes" against " no" there), so format and item set are fixed by construction whatever the
data says.
"""

from __future__ import annotations

import hashlib
import re
import string
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from .catalog import Item, Schema
from .session import Session

IMAGE = "<image>"
AUDIO = "<audio>"
FIT = "<fit>"  # marks where a candidate's line ends: its score is read at the token before the mark
PLACEHOLDERS = (IMAGE, AUDIO, FIT)
LABELS = tuple(string.ascii_uppercase)  # candidate labels, so the user and the model can say "option B"
FIT_QUESTION = ". Fits:"  # ends every candidate line; the answer would be " yes" or " no"
PROMPTS_DIR = Path(__file__).resolve().parent.parent / "prompts"
TEMPLATES = ("rank.txt", "reason.txt")

_UNSAFE = re.compile(r"[<>\[\]{}#|\r\n\t]+")


def clean(text: str, limit: int = 600) -> str:
    """One line of data text: no structural characters, bounded length."""
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
    parts = [clean(item.title, 120) + (f" ({item.year})" if item.year else "")]
    for key, n in schema.line_attributes:
        vals = item.values(key)[:n]
        if vals:
            parts.append(clean(", ".join(vals), 160))
    return "; ".join(parts)


def facts_text(item: Item, schema: Schema) -> str:
    """The item's facts in words, people with their role ("directed by X"), for the reason prompt."""
    parts = [f"from {item.year}"] if item.year else []
    for key, n in schema.line_attributes:
        vals = item.values(key)[: max(n, 4)]
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


def rank_prompt(turns: Sequence[PromptTurn], candidates: Sequence[Item], schema: Schema | None = None) -> str:
    """The ranking prompt; ``schema`` is the catalog's (inferred from the candidates when not given)."""
    schema = schema or Schema.infer(candidates)
    if len(candidates) > len(LABELS):
        raise ValueError(f"at most {len(LABELS)} candidates can be labelled, got {len(candidates)}")
    # The conversation comes first, so each candidate's score position has read all of it; the score
    # is per line (pointwise in a listwise prompt), which a small LM learns far faster than picking
    # one letter for the whole list (README, "Training").
    cands = "\n".join(f"{LABELS[i]}: {item_line(it, schema)}{FIT_QUESTION}{FIT}" for i, it in enumerate(candidates))
    return template("rank.txt").format(candidates=cands, dialogue=dialogue_text(turns), noun=schema.item_noun,
                                       nouns=schema.item_nouns)


def reason_prompt(item: Item, request: str, liked: Sequence[Item] = (), schema: Schema | None = None) -> str:
    """The reason prompt: the item's facts with roles, what the user asked for and what they liked."""
    schema = schema or Schema.infer([item])
    return template("reason.txt").format(
        noun=schema.item_noun,
        Noun=schema.item_noun[:1].upper() + schema.item_noun[1:],
        title=clean(item.title, 120) + (f" ({item.year})" if item.year else ""),
        facts=facts_text(item, schema),
        description=clean(item.description, 300),
        request=clean(request, 300),
        liked=clean(", ".join(it.title for it in liked[-3:]), 200) or "nothing named yet",
    )


def split_placeholders(prompt: str) -> list[str]:
    """Split a prompt into text pieces and placeholder pieces, in order."""
    return [p for p in re.split(f"({'|'.join(map(re.escape, PLACEHOLDERS))})", prompt) if p]
