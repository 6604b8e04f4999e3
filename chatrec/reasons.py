"""Reasons: written by the model and shown only if every claim checks out, else built from catalog facts.

A model-written reason is cut back to its last complete sentence and checked claim by claim
(:mod:`chatrec.claims`): facts about the item, with the role of each person; what it says about the user
against the conversation; form (complete, no loops, one or two sentences). A reason with any false claim is
never shown; the fallback then says only what the catalog and the user's own words support, in the
catalog's item noun ("film", "book", "album").
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from .catalog import PERSON_ROLES, Catalog, Item, Schema
from .claims import ClaimCheck, check, complete, content_words, fold_key, junk_people, norm
from .vocab import GENRE_WORDS


@dataclass(frozen=True)
class Reason:
    text: str  # what is shown
    source: str  # "model" | "fallback"
    facts_used: tuple[str, ...]  # the item's facts ("key: value") the shown text states
    raw: str  # the model's text before any check ("" when the model wrote none)
    verdict: ClaimCheck | None  # the model text's claim check (None when the model wrote none)
    hooked: bool = False  # a model text led by a hook to the user (``with_hook``)


def _mentions(text_low: str, phrase: str) -> bool:
    return re.search(rf"(?<!\w){re.escape(norm(phrase))}(?!\w)", text_low) is not None


def facts_in(text: str, item: Item) -> tuple[str, ...]:
    """The item's facts (as "key: value") that ``text`` states."""
    low = norm(text)
    out = []
    # A value that only repeats the title, or a person value that is no name, is no fact to credit.
    junk = junk_people(item) | {v for _, v in item.facts() if fold_key(v) == fold_key(item.title)}
    for key, value in item.facts():
        if value in junk:
            continue
        if key == "year":
            if value in text:
                out.append(f"year: {value}")
        elif len(value) > 2 and _mentions(low, value):
            out.append(f"{key}: {value}")
    return tuple(dict.fromkeys(out))


def reason_grounding(text: str, item: Item) -> bool:
    """True when the text states at least one fact of the item (a listed fact, or a premise word)."""
    return bool(facts_in(text, item)) or bool(content_words(text) & content_words(item.description))


# ---- the fallback: true by construction -----------------------------------------------------------


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def _join(names: Sequence[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _people(item: Item, schema: Schema, kind: str, skip: frozenset[str] = frozenset()) -> tuple[str, list[str]] | None:
    """(role phrase, names) of the item's first person attribute of ``kind`` (creator or performer)."""
    keys = [k for k in schema.person_keys() if PERSON_ROLES[k][1] == kind] or [
        k for k in PERSON_ROLES if PERSON_ROLES[k][1] == kind]
    junk = junk_people(item)
    for key in keys:
        names = [n for n in item.values(key) if n not in skip and n not in junk]
        if names:
            return PERSON_ROLES[key][0], names[: 2 if kind == "performer" else 1]
    return None


def describe(item: Item, schema: Schema, skip: frozenset[str] = frozenset(), first: str = "") -> str:
    """'Groundhog Day (1993) is a comedy and fantasy film directed by Harold Ramis, starring Bill Murray.'
    ``first``: a genre to name first (the one the user asked for)."""
    genres = [g for g in item.values("genres") if fold_key(g) != fold_key(item.title)]  # not a stuffed title
    genres = sorted(genres, key=lambda g: g.lower() != first.lower())
    genres = [g.lower() for g in genres[:2]]
    noun = f"{' and '.join(genres)} {schema.item_noun}" if genres else schema.item_noun
    text = f"{item.title}{f' ({item.year})' if item.year else ''} is {_article(noun)} {noun}"
    creator = _people(item, schema, "creator", skip)
    if creator:
        text += f" {creator[0]} {_join(creator[1])}"
    performer = _people(item, schema, "performer", skip)
    if performer:
        text += f"{',' if creator else ''} {performer[0]} {_join(performer[1])}"
    return text


_AVOIDS = re.compile(r"\b(?:not|no|nothing|never|without|avoid\w*|hate\w*|can't stand|don't like|dislike\w*|"
                     r"scared of|too|rather than|instead of|other than|anything but|less)\b(?:\W+\w+){0,5}\W*$")
# What follows a genre word when the user turns it down: "horror films give me nightmares", "cartoons are babyish".
_AVOIDED_AFTER = re.compile(r"\W*(?:(?:films?|movies?|ones?|stuff)\W+)?(?:gives? me nightmares|scares? me|bores? me|"
                            r"(?:is|are) (?:too|babyish|boring|not for|overrated|a no)|(?:is|are)n't for)")


def _wanted(low: str, phrase: str) -> bool:
    """``phrase`` is in the user's words and not as something they avoid ("no horror", "hate ghosts")."""
    return any(not _AVOIDS.search(low[max(0, m.start() - 50):m.start()]) and
               not _AVOIDED_AFTER.match(low[m.end():m.end() + 40])
               for m in re.finditer(rf"(?<!\w){re.escape(norm(phrase))}(?!\w)", low))


@dataclass(frozen=True)
class Hook:
    """One true statement linking an item to this user, in two wordings."""

    clause: str  # "you asked for horror": joined to a description ("...; you asked for horror.")
    lead: str  # "You asked for horror": put before a model-written reason, with a colon


def _person_hook(item: Item, key: str, person: str) -> Hook:
    kind = PERSON_ROLES[key][1]
    verb = "wrote" if key == "author" else "directed" if key == "director" else "made" if kind == "creator" else "stars in"
    return Hook(f"you mentioned {person}, who {verb} it",
                f"You mentioned {person}" if kind == "performer" else f"From {person}, whom you mentioned")


def find_hooks(item: Item, user_text: str, liked: Sequence[Item] = (), noun: str = "film") -> list[Hook]:
    """True statements linking the item to what this user wrote or liked, strongest first."""
    low = norm(user_text)
    out = []
    junk = junk_people(item)
    for key in PERSON_ROLES:
        for p in item.values(key):
            if p in junk:
                continue
            if _mentions(low, p) or (len(p.split()) > 1 and len(p.split()[-1]) > 3 and _mentions(low, p.split()[-1])):
                out.append(_person_hook(item, key, p))
    genres = {g.lower() for g in item.values("genres")}
    asked = [g for w, g in GENRE_WORDS.items() if _wanted(low, w) and g.lower() in genres]
    asked += [g for g in item.values("genres") if _wanted(low, g) and g not in asked]
    if asked:
        out.append(Hook(f"you asked for {asked[0].lower()}", f"You asked for {asked[0].lower()}"))
    for kw in item.values("keywords") + item.values("tags"):
        if len(kw) > 3 and fold_key(kw) != fold_key(item.title) and _wanted(low, kw):
            out.append(Hook(f"you mentioned {kw}, one of its themes", f"You mentioned {kw}"))
            break
    for other in liked:
        if other.id == item.id:
            continue
        shared = [p for k, (_, kind) in PERSON_ROLES.items() if kind == "creator"
                  for p in item.values(k) if p in other.values(k) and p not in junk]
        common = [g for g in item.values("genres") if g in other.values("genres")]
        if shared:
            out.append(Hook(f"you liked {other.title}, and {shared[0]} made both",
                            f"You liked {other.title}, and {shared[0]} made this one too"))
            break
        if common:
            genre = f"{_article(common[0])} {common[0].lower()}"
            # "it is drama too", not "it is a drama": the description that follows says "is a drama ... film",
            # and the same four words twice would read (and check) as a loop.
            out.append(Hook(f"like {other.title}, which you liked, it is {common[0].lower()} too",
                            f"Like {other.title}, which you liked, this is {genre} {noun}"))
            break
    return out


def hooks(item: Item, user_text: str, liked: Sequence[Item] = ()) -> list[str]:
    """The hooks' clauses ("you asked for horror"), strongest first."""
    return [h.clause for h in find_hooks(item, user_text, liked)]


def _premise(item: Item, budget: int) -> str:
    first = re.split(r"(?<=[.!?])\s+", item.description.strip())[0] if item.description else ""
    if fold_key(first) == fold_key(item.title):  # "Item X." says nothing the title does not
        return ""
    return first if first and len(first.split()) <= budget and first[-1] in ".!?" else ""


def fallback_reason(item: Item, user_text: str, liked: Sequence[Item] = (), schema: Schema | None = None,
                    used_leads: set[str] | None = None) -> str:
    """A reason built only from catalog facts and the user's own words: always true, always complete.

    The wording varies with the item and the request (a stable hash), so a list does not read as one
    template five times. ``used_leads``: the leads ("You asked for horror") earlier reasons of the same list
    opened with; a lead already used goes at the end instead, and one used here is added.
    """
    schema = schema or Schema.infer([item])
    found = hooks(item, user_text, liked)
    # A person the hook names is not named again in the description.
    skip = frozenset(p for p in item.people() if found and p in found[0])
    asked = next((g for g in item.values("genres") if found and found[0].endswith(g.lower())), "")
    body = describe(item, schema, skip, asked)
    pick = int(hashlib.sha256(f"{item.id}|{user_text}".encode()).hexdigest(), 16)
    if found:
        hook = found[0]
        lead = f"{hook[0].upper()}{hook[1:]}"
        if pick % 2 and lead not in (used_leads or ()):
            if used_leads is not None:
                used_leads.add(lead)
            return f"{lead}: {body}."
        return f"{body}; {hook}."
    premise = _premise(item, 60 - len(body.split()))
    return f"{body}. {premise}" if premise else f"{body}."


# ---- choosing what is shown -----------------------------------------------------------------------


def _echoes_prompt(text: str, user_text: str) -> bool:
    """The untuned base model tends to answer as the user ("I'd love...") or copy the request."""
    words = content_words(text)
    return bool(re.match(r"\W*(i|i'm|i'd|my|me|we)\b", text.lower())) or (
        len(words) >= 3 and len(words & content_words(user_text)) / len(words) >= 0.6)


def with_hook(text: str, item: Item, user_text: str, liked: Sequence[Item] = (), noun: str = "film",
              used_leads: Collection[str] = ()) -> str:
    """``text`` led by the strongest true hook to this user ("You asked for horror: ..."), or "" if none.

    The small model often writes a true premise that never says why it suits this user; the hook is
    built from the user's own words and the item's facts, so it is true by construction and the claim
    check runs again on the whole. A lead in ``used_leads`` (one an earlier reason of the same list opened
    with) is skipped: five reasons opening "You asked for horror:" read as a template. When every lead is
    used, the strongest hook ends the text instead ("...; you asked for horror."), as the fallback does.
    """
    found = find_hooks(item, user_text, liked, noun)
    fresh = [h for h in found if h.lead not in used_leads]
    if fresh:
        return f"{fresh[0].lead}: {text}"
    if found and text.endswith("."):  # every lead opened an earlier reason: the strongest hook goes at the end
        return f"{text[:-1]}; {found[0].clause}."
    return ""



def finalize_reason(raw: str, item: Item, catalog: Catalog, user_text: str, liked: Sequence[Item] = (),
                    lead_with_hook: bool = True, used_leads: set[str] | None = None) -> Reason:
    """The reason to show for one item, from the model's raw text (possibly empty).

    ``lead_with_hook``: a passing model text that says nothing about this user is led by a true hook.
    ``used_leads``: one set shared by the reasons of one list, so that each hook lead opens at most one of them.
    """
    used = set() if used_leads is None else used_leads
    raw = raw.strip()
    text = complete(raw.strip('"').strip())
    verdict = None
    if raw:
        verdict = check(text or raw, item, catalog, user_text, liked)
        if text and verdict.ok and not _echoes_prompt(text, user_text) and reason_grounding(text, item):
            if lead_with_hook and not verdict.about_user:
                led = with_hook(text, item, user_text, liked, catalog.schema.item_noun, used)
                led_verdict = check(led, item, catalog, user_text, liked) if led else None
                if led_verdict is not None and led_verdict.ok:
                    if led.endswith(text):  # f"{lead}: {text}", not the hook at the end
                        used.add(led[: len(led) - len(text) - 2])
                    return Reason(led, "model", facts_in(led, item), raw, led_verdict, hooked=True)
            return Reason(text, "model", facts_in(text, item), raw, verdict)
    shown = fallback_reason(item, user_text, liked, catalog.schema, used)
    return Reason(shown, "fallback", facts_in(shown, item), raw, verdict)
