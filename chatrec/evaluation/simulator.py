"""Scripted dialogues and a user simulator over any catalog.

A simulated user has a hidden target item. Turn by turn they reveal facts drawn from it (genre,
era, director, actor, keywords as moods or themes, films they liked that resemble it) and turn
down plausible but wrong suggestions with a reason consistent with the catalog ("too scary" only
for a horror film when the target is not one). The generated dialogue ends with an assistant turn
recommending the target; every assistant suggestion turn carries the target as its ground truth.
This follows the agenda-based user simulation used to bootstrap CRS data (Schatzmann et al., 2007;
Zhang & Balog, 2020), with templates instead of a learned NLG.

Everything random goes through one ``random.Random(seed)`` and iterates sorted ids, so the same
catalog and seed give byte-identical files::

    python -m chatrec.simulator --out chatrec/data/dialogues --n 3200 --seed 0
"""

from __future__ import annotations

import argparse
import logging
import random
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from chatrec.catalog import Catalog, Item, load_catalog, load_demo_catalog
from chatrec.evaluation.dialogues import SPLITS, Dialogue, Turn, save_dialogues
from chatrec.media.audio import speak
from chatrec.vocab import DECADE_WORDS, GENRE_ADJECTIVES, GENRE_NOUNS

log = logging.getLogger(__name__)

# --- templates ------------------------------------------------------------------------------------
# Keys are template families; a template's id is "family.index" and is kept in meta["templates"].

USER_TEMPLATES: dict[str, list[str]] = {
    "open_genre": [
        "I'm in the mood for {a_genre} film.",
        "Can you recommend a good {genre} movie?",
        "Looking for {a_genre} movie tonight.",
        "Any {genre} films you'd suggest?",
        "I feel like watching {a_genre} movie.",
        "Got any {genre} recommendations?",
        "Help me find {a_genre} film to watch.",
        "What's a great {genre} film I should see?",
    ],
    "open_combo": [
        "I'm looking for {a_genre} film from {era}.",
        "{A_genre} movie with {actor}, please.",
        "Something {genre} by {director}?",
        "I want {a_genre} film, something like {title}.",
        "Do you know {a_genre} movie from {era} with {actor}?",
    ],
    "open_lead": [
        "I'm looking for a movie.",
        "Can you help me pick a film?",
        "I need a film recommendation.",
        "Movie night tonight and I have no idea what to watch.",
        "Could you suggest something to watch?",
    ],
    "genre": [
        "I'd say {genre}.",
        "{Genre}, definitely.",
        "Mostly {genre} films.",
        "I usually go for {genre}.",
        "Let's go with {genre}.",
    ],
    "genre2": [
        "Ideally {genre} with a bit of {genre2}.",
        "A mix of {genre} and {genre2} would be perfect.",
        "{Genre}, but with some {genre2} in it too.",
    ],
    "era": [
        "Preferably something from {era}.",
        "I like films from {era}.",
        "Something made in {era}, if possible.",
        "I've been into {era} cinema lately.",
        "{Era} had great movies, something from then?",
    ],
    "era_old": [
        "I'm after an old classic, {era} ideally.",
        "I love older films, {era} or so.",
    ],
    "era_new": [
        "Something fairly recent, from {era} ideally.",
        "Nothing too old, please, {era} would be great.",
    ],
    "director": [
        "I love {director}'s work.",
        "Something by {director} would be great.",
        "Do you have anything directed by {director}?",
        "{director} is my favourite director.",
        "Maybe a {director} film?",
    ],
    "actor": [
        "Anything with {actor} in it?",
        "I'd love to see {actor} in something.",
        "I'm a big fan of {actor}.",
        "I always enjoy {actor}'s performances.",
        "Something starring {actor}, maybe?",
    ],
    "mood": [
        "I want something {kw}.",
        "I'm in the mood for something {kw}.",
        "It should feel {kw}.",
        "Something {kw} would hit the spot.",
        "Ideally something a bit {kw}.",
    ],
    "theme": [
        "I'd like a film about {kw}.",
        "Something involving {kw}, maybe?",
        "I'm interested in stories about {kw}.",
        "A movie dealing with {kw} would be great.",
        "Maybe something with {kw} as a theme.",
    ],
    "vibe": [
        "Something with {kw} vibes.",
        "Give me {kw} vibes.",
        "Ideally it has {a_kw} element to it.",
        "Think {kw}.",
    ],
    "liked": [
        "I really enjoyed {title}.",
        "My favourite film is {title}.",
        "I loved {title}, something like that?",
        "Something similar to {title} would be great.",
        "{title} is one of my all-time favourites.",
        "I just rewatched {title} and loved it.",
        "Films like {title} are my thing.",
    ],
    "liked2": [
        "I liked {title} and {title2}.",
        "Something like {title} or {title2}.",
        "{title} and {title2} are two of my favourites.",
    ],
    "reject_seen": [
        "Not {title}, I've seen it.",
        "I've already seen {title}.",
        "Seen {title} already, something else?",
        "{title}? Watched it last week.",
        "No, I know {title} too well.",
    ],
    "reject_scary": [
        "No, {title} is too scary for me.",
        "{title} sounds too frightening.",
        "Hmm, {title} is a bit too scary.",
    ],
    "reject_genre": [
        "Not {title}, I'm not in the mood for {rgenre}.",
        "I'm not really into {rgenre}, so not {title}.",
        "Not {title}, I'm not big on {rgenre}.",
        "No {rgenre} tonight, please, so not {title}.",
    ],
    "reject_old": [
        "{title} feels too old for me.",
        "Not {title}, something newer please.",
        "{title} is a bit dated for my taste.",
    ],
    "reject_new": [
        "{title} is too recent, I prefer older films.",
        "Not {title}, something older.",
        "Hmm, {title} is too modern for what I want.",
    ],
    "no_pref": [
        "No strong preference there.",
        "I don't mind, really.",
        "Anything works for me on that front.",
    ],
    "accept": [
        "Yes, {title} sounds perfect!",
        "Oh, {title} is exactly what I wanted, thanks!",
        "{title}, great choice. I'll watch it.",
    ],
}
GREETINGS = ["", "", "Hi! ", "Hey! ", "Hello. ", "Hi there! ", "Good evening! "]
CONNECTORS = ["", "", "Also, ", "Oh, and ", "Hmm. ", "Okay. "]


ASSISTANT_QUESTIONS: dict[str, list[str]] = {
    "genre": ["What genre are you in the mood for?", "Any particular genre?", "What kind of film do you feel like?"],
    "era": ["Any favourite era?", "Old classic or something more recent?", "Any decade you prefer?"],
    "director": ["Is there a director you like?", "Any favourite directors?"],
    "actor": ["Any actors you especially enjoy?", "Who do you like to watch on screen?"],
    "keyword": ["What kind of mood are you in?", "What should it be about?", "Any themes you're drawn to?"],
    "liked": ["What's a film you loved recently?", "Which films have you enjoyed lately?"],
}
ASSISTANT_SUGGEST = [
    "How about {title}?",
    "Have you seen {title}?",
    "Maybe {title} ({year})?",
    "You might like {title}.",
    "What about {title}?",
    "Try {title}.",
]
ASSISTANT_FINAL = ASSISTANT_SUGGEST + [
    "I think you'd enjoy {title}.",
    "Then {title} ({year}) is the one for you.",
    "How about {title}? It's {a_genre} film from {year}.",
    "Try {title}, directed by {director}.",
]

# Keywords mix moods ('eerie') and themes ('time travel'); each needs its own phrasing.
_MOODS = frozenset(
    """absurd anarchic atmospheric bittersweet bleak brutal charming claustrophobic clever contemplative
    convoluted cool creepy cynical dark darker deadpan eccentric eerie enigmatic epic existential
    experimental feel-good fun funny glamorous gothic gritty hardboiled haunting heartbreaking
    heartwarming hilarious hopeful humanist hypnotic iconic innovative inspirational intense inventive
    joyful lavish lyrical melancholy mind-bending nail-biting neurotic nonlinear nostalgic philosophical
    poignant political provocative psychological quirky quotable relentless retro romantic sad scary
    shocking silly slow-burn stylish surreal suspenseful sweeping tender tense terrifying thrilling tragic
    tragicomic twisty unsettling uplifting violent visionary whimsical witty zany""".split()
) | {"darkly funny"}
_THEME_SUFFIXES = ("tion", "ism", "ness", "ship", "ity", "ment", "ance", "ence", "war", "love", "ers", "ies")


def keyword_kind(kw: str) -> str:
    """'mood' (an adjective), 'theme' (a noun phrase) or 'any' when unsure."""
    k = kw.lower()
    if k in _MOODS or (" " not in k and k.endswith(("ous", "ful", "ive", "esque"))):
        return "mood"
    if k.endswith(_THEME_SUFFIXES) or " and " in k or (" " in k and not k.endswith(("ish", "y"))):
        return "theme"
    return "any"


def genre_word(genre: str, rng: random.Random) -> str:
    return rng.choice(GENRE_ADJECTIVES.get(genre.lower(), [genre.lower()]))


def genre_noun(genre: str) -> str:
    """A genre as a plural noun phrase, for "I'm not into {genre}"."""
    return GENRE_NOUNS.get(genre.lower(), genre.lower())


def era_phrase(year: int, rng: random.Random) -> str:
    d = year // 10 * 10
    options = [f"the {d}s"] + ([f"the '{d % 100:02d}s"] if d < 2000 else [])
    # "the noughties" is left out: the shipped template dialogues were generated without it and must
    # regenerate exactly.
    options += [f"the {DECADE_WORDS[d]}"] if d in DECADE_WORDS and d < 2000 else []
    return rng.choice(options)


def _article(word: str) -> str:
    return ("an " if word[:1].lower() in "aeiou" else "a ") + word


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def _decade(item: Item) -> int | None:
    return item.year // 10 * 10 if item.year is not None else None


# --- item similarity ------------------------------------------------------------------------------


def similarity(a: Item, b: Item) -> float:
    """How much b resembles a: shared people weigh most, then keywords and genres, then era."""

    def shared(key: str) -> int:
        return len(set(a.values(key)) & set(b.values(key)))

    same_decade = _decade(a) is not None and _decade(a) == _decade(b)
    return 3 * shared("director") + 2 * shared("cast") + 1.5 * shared("keywords") + shared("genres") + same_decade


class Neighbours:
    """For every item, the other items ordered by :func:`similarity` (ties by id, for determinism)."""

    def __init__(self, catalog: Catalog):
        self.catalog = catalog
        self._cache: dict[str, list[tuple[float, str]]] = {}

    def of(self, item_id: str) -> list[tuple[float, str]]:
        if item_id not in self._cache:
            a = self.catalog.get(item_id)
            scored = [(similarity(a, b), b.id) for b in self.catalog if b.id != item_id]
            self._cache[item_id] = sorted(scored, key=lambda s: (-s[0], s[1]))
        return self._cache[item_id]


# --- the simulated user's agenda ------------------------------------------------------------------


@dataclass(frozen=True)
class Utterance:
    text: str  # what the user says
    templates: tuple[str, ...]  # template ids used, "family.index"
    liked: tuple[str, ...] = ()  # item ids named as liked
    rejected: tuple[str, ...] = ()  # item ids turned down
    plain_start: bool = False  # starts with an ordinary word, so a connector may lowercase it


class Persona:
    """A user with a hidden target: an agenda of facts to reveal and reasons to reject."""

    KINDS = ("genre", "era", "director", "actor", "keyword", "liked")

    def __init__(self, catalog: Catalog, target: str, rng: random.Random, neighbours: Neighbours | None = None):
        self.catalog, self.rng = catalog, rng
        self.target = catalog.get(target)
        self.neighbours = neighbours or Neighbours(catalog)
        t = self.target
        similar = [i for s, i in self.neighbours.of(t.id)[:8] if s >= 2.5]
        rng.shuffle(similar)
        keywords = t.values("keywords")
        rng.shuffle(keywords)
        genres = t.values("genres")
        # Remaining facts per kind; revealing one pops it, so nothing is said twice.
        self.facts: dict[str, list[str]] = {
            "genre": genres[:1],
            "era": [str(t.year)] if t.year is not None else [],
            "director": t.values("director")[:1],
            "actor": rng.sample(t.values("cast")[:3], min(2, len(t.values("cast")[:3]))),
            "keyword": keywords[:2],
            "liked": similar[:3],
        }
        self.second_genre = genres[1] if len(genres) > 1 else None
        self.shown: list[str] = []  # items already named in the dialogue, never named again as liked

    def available(self) -> list[str]:
        return [k for k in self.KINDS if self.facts[k]]

    def _say(
        self,
        family: str,
        index: int | None = None,
        liked: Sequence[str] = (),
        rejected: Sequence[str] = (),
        **values: str,
    ) -> Utterance:
        """Fill a random template of ``family`` (or template ``index``) with ``values``."""
        templates = USER_TEMPLATES[family]
        i = self.rng.randrange(len(templates)) if index is None else index
        if "genre" in values:
            values["a_genre"] = _article(values["genre"])
        text = _tidy(templates[i].format(**values, **{_cap(k): _cap(v) for k, v in values.items()}))
        # Only a template's own words may be lowercased after "Also, "; names and titles may not.
        plain = not templates[i].startswith("{") or templates[i].startswith(("{Genre}", "{Era}", "{A_genre}"))
        plain = plain and text.split(" ", 1)[0].split("'")[0] != "I"
        return Utterance(text, (f"{family}.{i}",), tuple(liked), tuple(rejected), plain)

    def _liked_titles(self, n: int) -> list[str]:
        ids = [i for i in self.facts["liked"] if i not in self.shown][:n]
        for i in ids:
            self.facts["liked"].remove(i)
        self.shown += ids
        return ids

    def reveal(self, kind: str | None = None) -> Utterance:
        """Say one more fact of the target, of ``kind`` if given (else a random remaining kind)."""
        kinds = self.available()
        if kind is None:
            kind = self.rng.choice(kinds) if kinds else "none"
        if kind not in kinds:
            return self._say("no_pref")
        rng = self.rng
        if kind == "genre":
            g = self.facts["genre"].pop()
            if self.second_genre and rng.random() < 0.35:
                g2, self.second_genre = self.second_genre, None
                return self._say("genre2", genre=genre_word(g, rng), genre2=genre_word(g2, rng))
            return self._say("genre", genre=genre_word(g, rng))
        if kind == "era":
            year = int(self.facts["era"].pop())
            family = rng.choice(["era", "era_old" if year < 1970 else "era_new" if year >= 2010 else "era"])
            return self._say(family, era=era_phrase(year, rng))
        if kind in ("director", "actor"):
            return self._say(kind, **{kind: self.facts[kind].pop()})
        if kind == "keyword":
            kw = self.facts["keyword"].pop()
            kk = keyword_kind(kw)
            family = rng.choice([kk, "vibe"]) if kk != "any" else "vibe"
            return self._say(family, kw=kw, a_kw=_article(kw))
        ids = self._liked_titles(2 if len(self.facts["liked"]) > 1 and rng.random() < 0.3 else 1)
        titles = [self.catalog.get(i).title for i in ids]
        return self._say("liked2" if len(ids) == 2 else "liked", liked=ids, title=titles[0], title2=titles[-1])

    def opening(self) -> Utterance:
        """The first user turn: a genre request, a combined request, or a lead-in plus one fact."""
        rng = self.rng
        style = rng.random()
        greeting = rng.choice(GREETINGS)
        if style < 0.35 and self.facts["genre"]:
            u = self._say("open_genre", genre=genre_word(self.facts["genre"].pop(), rng))
            return replace(u, text=greeting + u.text)
        if style < 0.6 and self.facts["genre"]:
            return self._open_combo(greeting)
        lead = self._say("open_lead")
        first = self.reveal()
        return Utterance(f"{greeting}{lead.text} {first.text}", lead.templates + first.templates, first.liked)

    def _open_combo(self, greeting: str) -> Utterance:
        rng = self.rng
        options = [i for i, tpl in enumerate(USER_TEMPLATES["open_combo"]) if self._combo_ok(tpl)]
        i = rng.choice(options)
        tpl = USER_TEMPLATES["open_combo"][i]
        values = {"genre": genre_word(self.facts["genre"].pop(), rng)}
        liked: tuple[str, ...] = ()
        if "{era}" in tpl:
            values["era"] = era_phrase(int(self.facts["era"].pop()), rng)
        if "{actor}" in tpl:
            values["actor"] = self.facts["actor"].pop()
        if "{director}" in tpl:
            values["director"] = self.facts["director"].pop()
        if "{title}" in tpl:
            liked = tuple(self._liked_titles(1))
            values["title"] = self.catalog.get(liked[0]).title
        u = self._say("open_combo", i, liked, **values)
        return replace(u, text=greeting + u.text)

    def _combo_ok(self, tpl: str) -> bool:
        need = {"era": "{era}", "actor": "{actor}", "director": "{director}", "liked": "{title}"}
        return all(self.facts[k] for k, slot in need.items() if slot in tpl)

    def reject(self, item_id: str) -> Utterance:
        """Turn down a wrong suggestion with a reason that is true of it relative to the target."""
        rng, t, x = self.rng, self.target, self.catalog.get(item_id)
        extra_genres = [g for g in x.values("genres") if g not in t.values("genres")]
        options = ["reject_seen"]
        if "Horror" in extra_genres:
            options.append("reject_scary")
        elif extra_genres:
            options.append("reject_genre")
        if x.year is not None and t.year is not None:
            if x.year < t.year - 15:
                options.append("reject_old")
            elif x.year > t.year + 15:
                options.append("reject_new")
        family = rng.choice(options)
        rgenre = genre_noun(rng.choice(extra_genres)) if extra_genres else ""
        self.shown.append(item_id)
        if item_id in self.facts["liked"]:
            self.facts["liked"].remove(item_id)
        return self._say(family, rejected=(item_id,), title=x.title, rgenre=rgenre)

    def accept(self) -> Utterance:
        return self._say("accept", liked=(self.target.id,), title=self.target.title)

    def wrong_suggestion(self) -> str | None:
        """A plausible but wrong item: close to the target, not yet named in the dialogue."""
        skip = set(self.shown) | set(self.facts["liked"])
        pool = [i for s, i in self.neighbours.of(self.target.id)[:25] if i not in skip]
        return self.rng.choice(pool) if pool else None


def _tidy(text: str) -> str:
    # Titles that end in punctuation ('Airplane!') meet the template's own: 'Airplane!?' -> 'Airplane!'.
    for a, b in (("!?", "!"), ("!.", "!"), ("?.", "?"), ("?,", "?")):
        text = text.replace(a, b)
    return text


def _connect(u: Utterance, rng: random.Random) -> str:
    connector = rng.choice(CONNECTORS)
    if connector.endswith((", ", "and ")) and u.plain_start and not u.text.startswith("I "):
        return connector + u.text[:1].lower() + u.text[1:]
    return connector + u.text


def _join(*parts: Utterance, rng: random.Random) -> Utterance:
    texts = [parts[0].text] + [_connect(p, rng) for p in parts[1:]]
    return Utterance(
        " ".join(texts),
        tuple(t for p in parts for t in p.templates),
        tuple(i for p in parts for i in p.liked),
        tuple(i for p in parts for i in p.rejected),
    )


def _assistant_final(target: Item, rng: random.Random) -> str:
    options = [
        t
        for t in ASSISTANT_FINAL
        if ("{director}" not in t or target.values("director"))
        and ("{a_genre}" not in t or target.values("genres"))
        and ("{year}" not in t or target.year)
    ]
    genre = genre_word(target.values("genres")[0], rng) if target.values("genres") else ""
    return _tidy(
        rng.choice(options).format(
            title=target.title,
            year=target.year,
            a_genre=_article(genre) if genre else "",
            director=(target.values("director") or [""])[0],
        )
    )


def _assistant_suggest(item: Item, rng: random.Random) -> str:
    options = [t for t in ASSISTANT_SUGGEST if "{year}" not in t or item.year]
    return _tidy(rng.choice(options).format(title=item.title, year=item.year))


# --- generation -----------------------------------------------------------------------------------


def _user_turn(u: Utterance) -> Turn:
    return Turn("user", u.text, liked=u.liked, rejected=u.rejected)


def generate_dialogue(
    catalog: Catalog, target: str, n_user_turns: int, rng: random.Random, neighbours: Neighbours, dialogue_id: str
) -> Dialogue:
    """One dialogue: ``n_user_turns`` user turns, each answered by the assistant; the last answer is the target."""
    persona = Persona(catalog, target, rng, neighbours)
    item = persona.target
    turns: list[Turn] = []
    templates: list[str] = []
    utterance = persona.opening()
    for k in range(n_user_turns):
        turns.append(_user_turn(utterance))
        templates += utterance.templates
        if k == n_user_turns - 1:
            turns.append(Turn("assistant", _assistant_final(item, rng), targets=(item.id,)))
            break
        wrong = persona.wrong_suggestion() if rng.random() < 0.5 else None
        if wrong is not None:
            # A wrong suggestion still has the target as its ground truth: the model should have found it.
            turns.append(Turn("assistant", _assistant_suggest(catalog.get(wrong), rng), targets=(item.id,)))
            reject = persona.reject(wrong)
            utterance = _join(reject, persona.reveal(), rng=rng) if rng.random() < 0.7 else reject
        else:
            kinds = persona.available() or list(ASSISTANT_QUESTIONS)
            kind = rng.choice(kinds)
            turns.append(Turn("assistant", rng.choice(ASSISTANT_QUESTIONS[kind])))
            utterance = persona.reveal(kind)
    return Dialogue(dialogue_id, "simulator", "train", tuple(turns), item.id, {"templates": templates})


def generate_dialogues(
    catalog: Catalog, n: int, seed: int = 0, min_turns: int = 2, max_turns: int = 6
) -> list[Dialogue]:
    """``n`` dialogues with ``min_turns``..``max_turns`` user turns each; targets cycle evenly over the catalog."""
    if not 1 <= min_turns <= max_turns:
        raise ValueError(f"need 1 <= min_turns <= max_turns, got {min_turns}, {max_turns}")
    rng = random.Random(seed)
    neighbours = Neighbours(catalog)
    ids = sorted(it.id for it in catalog)
    targets: list[str] = []
    while len(targets) < n:
        # Shuffled rounds over the catalog keep the number of dialogues per target within one.
        round_ = ids[:]
        rng.shuffle(round_)
        targets += round_
    return [
        generate_dialogue(catalog, t, rng.randint(min_turns, max_turns), rng, neighbours, f"sim-{i:05d}")
        for i, t in enumerate(targets[:n])
    ]


def dialogue_target(d: Dialogue) -> str | None:
    """The dialogue's target, else the first target of its last recommendation turn."""
    if d.target:
        return d.target
    rec = d.recommendation_turns()
    return d.turns[rec[-1]].targets[0] if rec else None


def split_by_target(
    dialogues: Sequence[Dialogue], fractions: tuple[float, float, float] = (0.8, 0.1, 0.1), seed: int = 0
) -> dict[str, list[Dialogue]]:
    """Split into train/val/test by target item, so no val/test target is ever a target in train.

    Targets are shuffled and dealt to test, then val, until each holds its fraction of the dialogues;
    the rest go to train. Dialogues without any target go to train. Each dialogue's ``split`` is set.
    """
    if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-6:
        raise ValueError(f"fractions must be three non-negative numbers summing to 1, got {fractions}")
    by_target: dict[str, list[Dialogue]] = {}
    for d in dialogues:
        by_target.setdefault(dialogue_target(d) or "", []).append(d)
    keys = sorted(k for k in by_target if k)
    random.Random(seed).shuffle(keys)
    total = len(dialogues)
    quota = {"test": fractions[2] * total, "val": fractions[1] * total}
    assign: dict[str, str] = {"": "train"}
    counts = {s: 0 for s in SPLITS}
    for key in keys:
        split = next((s for s in ("test", "val") if counts[s] + len(by_target[key]) / 2 <= quota[s]), "train")
        assign[key] = split
        counts[split] += len(by_target[key])
    out: dict[str, list[Dialogue]] = {s: [] for s in SPLITS}
    for d in dialogues:
        split = assign[dialogue_target(d) or ""]
        out[split].append(replace(d, split=split))
    return out


# --- audio ----------------------------------------------------------------------------------------


def synthesize_audio(
    dialogues: Sequence[Dialogue], out_dir: str | Path, fraction: float, seed: int = 0, voice: str = "en-us"
) -> list[Dialogue]:
    """Speak a ``fraction`` of user turns with ``espeak-ng -w`` and set their ``audio`` path.

    Returns the dialogues unchanged (with a warning) when espeak-ng is not installed.
    """
    if shutil.which("espeak-ng") is None:
        log.warning("espeak-ng not found; no audio synthesised")
        return list(dialogues)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    out = []
    for d in dialogues:
        turns = list(d.turns)
        for i, t in enumerate(turns):
            if t.role != "user" or rng.random() >= fraction:
                continue
            wav = out_dir / f"{d.id}-{i}.wav"
            speak(t.text, wav, voice)
            turns[i] = replace(t, audio=str(wav))
        out.append(replace(d, turns=tuple(turns)))
    return out


# --- interactive simulation -----------------------------------------------------------------------


class SimulatedUser:
    """A user with a hidden ``target`` for interactive evaluation.

    ``opening()`` gives the first request; ``respond(ids)`` reacts to a list of recommended ids:
    accepting (and ending the episode) when the target is among them, otherwise rejecting one shown
    item with a reason and revealing one more fact. After ``max_turns`` responses the user gives up.
    """

    def __init__(self, catalog: Catalog, target: str, seed: int = 0, max_turns: int = 10):
        self.rng = random.Random(seed)
        self.persona = Persona(catalog, target, self.rng)
        self.target = target
        self.max_turns = max_turns
        self.turns = 0  # responses given so far
        self.accepted = False
        self.done = False
        self.liked: list[str] = []  # items named as liked so far
        self.rejected: list[str] = []  # items turned down so far

    def opening(self) -> str:
        u = self.persona.opening()
        self.liked += u.liked
        return u.text

    def respond(self, recommended_ids: Sequence[str]) -> str:
        if self.done:
            raise RuntimeError("the episode is over")
        self.turns += 1
        if self.target in recommended_ids:
            self.accepted = self.done = True
            return self.persona.accept().text
        if self.turns >= self.max_turns:
            self.done = True
            return "Never mind, I'll find something myself. Thanks anyway."
        shown = [i for i in recommended_ids if i in self.persona.catalog and i not in self.rejected]
        parts = []
        if shown:
            parts.append(self.persona.reject(shown[0]))
            self.rejected.append(shown[0])
        parts.append(self.persona.reveal())
        u = _join(*parts, rng=self.rng)
        self.liked += u.liked
        return u.text


# --- command line ---------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Generate scripted dialogues split by target.")
    p.add_argument("--out", required=True, type=Path, help="folder for train/val/test.jsonl")
    p.add_argument("--n", type=int, default=3200, help="number of dialogues")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--catalog", type=Path, default=None, help="catalog file (default: the demo films)")
    p.add_argument("--min-turns", type=int, default=2, help="fewest user turns per dialogue")
    p.add_argument("--max-turns", type=int, default=6, help="most user turns per dialogue")
    p.add_argument("--audio-fraction", type=float, default=0.0, help="share of user turns to speak with espeak-ng")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    catalog = load_catalog(args.catalog) if args.catalog else load_demo_catalog()
    dialogues = generate_dialogues(catalog, args.n, args.seed, args.min_turns, args.max_turns)
    if args.audio_fraction > 0:
        dialogues = synthesize_audio(dialogues, args.out / "audio", args.audio_fraction, args.seed)
    for split, ds in split_by_target(dialogues, seed=args.seed).items():
        save_dialogues(args.out / f"{split}.jsonl", ds)
        log.info("%s: %d dialogues, %d targets", split, len(ds), len({d.target for d in ds}))


if __name__ == "__main__":
    main()
