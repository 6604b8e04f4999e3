"""Import public conversational-recommendation datasets into the dialogue format.

- ReDial (Li et al., 2018, "Towards Deep Conversational Recommendations"): ``train_data.jsonl`` /
  ``test_data.jsonl``; movies appear in the text as ``@12345`` and are named in ``movieMentions``.
- INSPIRED (Hayati et al., 2020): ``dialog_data/{train,dev,test}.tsv``, one utterance per row.

Movie titles map to catalog items by normalised title, and by year when the dataset gives one.
Titles that match no item are counted in ``ImportResult.unmatched`` rather than dropped silently;
their text stays in the dialogue, they just cannot be targets.
"""

from __future__ import annotations

import csv
import json
import logging
import re
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chatrec.catalog import Catalog
from chatrec.evaluation.dialogues import Dialogue, Skipped, Turn

log = logging.getLogger(__name__)

_ARTICLES = ("the", "a", "an")
# "Title (1999)", and Wikipedia-style disambiguation: "Title (2012 film)", "Title (1999 American film)", "Title (film)"
_YEAR_SUFFIX = re.compile(r"^(.*?)\s*\((?:(\d{4})(?:\s+[A-Za-z][\w -]*)?\s+film|(\d{4})|[A-Za-z][\w -]*\s+film|film)\)\s*$")


@dataclass(frozen=True)
class ImportResult:
    dialogues: list[Dialogue]  # imported dialogues, in file order
    unmatched: Counter[str]  # dataset titles with no catalog item -> number of mentions
    skipped: list[Skipped]  # rows or dialogues that could not be imported, with file:line


def normalize_title(title: str) -> str:
    """Lowercase, strip accents, punctuation and a leading/trailing article: 'The Matrix' -> 'matrix'."""
    t = unicodedata.normalize("NFKD", title)
    t = "".join(c for c in t if not unicodedata.combining(c)).lower().replace("&", " and ")
    t = re.sub(r"[^\w\s]", " ", t).replace("_", " ")
    words = t.split()
    # 'Matrix, The' (library style) and 'The Matrix' normalise alike.
    if len(words) > 1 and words[0] in _ARTICLES:
        words = words[1:]
    elif len(words) > 1 and words[-1] in _ARTICLES and "," in title:
        words = words[:-1]
    return " ".join(words)


def split_title_year(text: str) -> tuple[str, int | None]:
    """'The Matrix (1999)' -> ('The Matrix', 1999); 'The Woman in Black (2012 film)' -> ('The Woman in Black',
    2012); 'Heat (film)' -> ('Heat', None); a title without a year -> (title, None)."""
    m = _YEAR_SUFFIX.match(text.strip())
    if not m:
        return text.strip(), None
    year = m.group(2) or m.group(3)
    return m.group(1).strip(), int(year) if year else None


class TitleMatcher:
    """Map dataset titles to catalog ids by normalised title, disambiguated by year."""

    def __init__(self, catalog: Catalog):
        self._by_title: dict[str, list[tuple[int | None, str]]] = defaultdict(list)
        for item in catalog:
            self._by_title[normalize_title(item.title)].append((item.year, item.id))
        self.catalog = catalog

    def match(self, title: str, year: int | None = None) -> str | None:
        candidates = self._by_title.get(normalize_title(title), [])
        if year is None:
            # Without a year only an unambiguous title matches; guessing would make wrong targets.
            return candidates[0][1] if len(candidates) == 1 else None
        exact = [i for y, i in candidates if y == year]
        if len(exact) > 1:  # two items with one title and year: a target would be a guess
            log.warning("ambiguous title %r (%s): %d catalog items match; not linked", title, year, len(exact))
            return None
        if exact:
            return exact[0]
        # Datasets often date a film by its festival or release year: allow one year of slack.
        near = [i for y, i in candidates if y is not None and abs(y - year) <= 1]
        return near[0] if len(near) == 1 else None

    def match_mention(self, text: str) -> str | None:
        return self.match(*split_title_year(text))


def _merge_runs(utterances: Sequence[tuple[str, str, list[str]]]) -> list[tuple[str, str, list[str]]]:
    """Join consecutive utterances of one speaker into one turn, since both datasets split them."""
    out: list[tuple[str, str, list[str]]] = []
    for role, text, mentions in utterances:
        if out and out[-1][0] == role:
            r, t, m = out[-1]
            out[-1] = (r, f"{t} {text}".strip(), m + [x for x in mentions if x not in m])
        else:
            out.append((role, text.strip(), list(mentions)))
    return out


def _build_turns(
    merged: Sequence[tuple[str, str, list[str]]],
    liked: AbstractSet[str] = frozenset(),
    disliked: AbstractSet[str] = frozenset(),
) -> list[Turn]:
    """Turn (role, text, matched ids) runs into turns with targets and liked/rejected.

    An assistant turn naming items the user has not named yet is a recommendation turn, with those
    items as its targets. A user opinion goes on the user turn naming the item or, when only the
    assistant named it, on the user's reply right after.
    """
    turns: list[Turn] = []
    user_said: set[str] = set()
    opinion_given: set[str] = set()
    pending: list[str] = []  # items the assistant just suggested, awaiting the user's reaction
    for role, text, ids in merged:
        if role == "assistant":
            targets = tuple(i for i in ids if i not in user_said)
            pending = [i for i in targets if i not in pending] + pending
            turns.append(Turn("assistant", text, targets=targets))
            continue
        user_said.update(ids)
        about = [i for i in dict.fromkeys(ids + pending) if i not in opinion_given]
        lk = tuple(i for i in about if i in liked)
        rj = tuple(i for i in about if i in disliked)
        opinion_given.update(lk + rj)
        pending = []
        turns.append(Turn("user", text, liked=lk, rejected=rj))
    return turns


def _split_from_name(path: Path) -> str:
    name = path.stem.lower()
    return "test" if "test" in name else "val" if ("dev" in name or "val" in name) else "train"


def _as_dict(value: Any) -> Mapping[str, Any]:
    # ReDial stores an empty mapping as [] in some rows.
    return value if isinstance(value, Mapping) else {}


def _redial_dialogue(row: Mapping[str, Any], matcher: TitleMatcher, unmatched: Counter[str], split: str) -> Dialogue:
    mentions = {str(k): v for k, v in _as_dict(row.get("movieMentions")).items() if isinstance(v, str) and v}
    ids = {k: matcher.match_mention(v) for k, v in mentions.items()}
    names = {k: split_title_year(v)[0] for k, v in mentions.items()}
    for k, v in mentions.items():
        if ids[k] is None:
            unmatched[v] += 1

    # Seeker opinions: the initiator's own answers, else the respondent's report of them.
    questions = _as_dict(row.get("initiatorQuestions")) or _as_dict(row.get("respondentQuestions"))
    liked = {ids[k] for k, q in questions.items() if ids.get(k) and _as_dict(q).get("liked") == 1}
    disliked = {ids[k] for k, q in questions.items() if ids.get(k) and _as_dict(q).get("liked") == 0}
    suggested_liked = [
        ids[k] for k, q in questions.items() if ids.get(k) and _as_dict(q).get("suggested") == 1 and ids[k] in liked
    ]

    initiator = row.get("initiatorWorkerId")
    utterances = []
    for msg in row.get("messages") or []:
        text = str(msg.get("text", ""))
        found = re.findall(r"@(\d+)", text)
        text = re.sub(r"@(\d+)", lambda m: names.get(m.group(1), m.group(0)), text)
        role = "user" if msg.get("senderWorkerId") == initiator else "assistant"
        utterances.append((role, text, list(dict.fromkeys(ids[k] for k in found if ids.get(k)))))
    if not utterances:
        raise ValueError("empty dialogue (no messages)")
    turns = _build_turns(_merge_runs(utterances), liked, disliked)
    cid = str(row.get("conversationId", ""))
    return Dialogue(
        f"redial-{cid}",
        "redial",
        split,
        tuple(turns),
        suggested_liked[0] if suggested_liked else None,
        {"conversationId": cid},
    )


def import_redial(path: str | Path, catalog: Catalog, split: str | None = None) -> ImportResult:
    """Import a ReDial ``*_data.jsonl`` file. ``split`` defaults to "test" for test files, else "train"."""
    path = Path(path)
    split = split or _split_from_name(path)
    matcher = TitleMatcher(catalog)
    dialogues: list[Dialogue] = []
    unmatched: Counter[str] = Counter()
    skipped: list[Skipped] = []
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path}:{n}"
            try:
                row = json.loads(line)
                if not isinstance(row, Mapping):
                    raise ValueError("expected an object")
                dialogues.append(_redial_dialogue(row, matcher, unmatched, split))
            except json.JSONDecodeError as e:
                skipped.append(Skipped(where, f"invalid JSON ({e.msg} at column {e.colno})"))
            except (ValueError, TypeError, AttributeError) as e:
                skipped.append(Skipped(where, str(e)))
    _log_summary(path, dialogues, unmatched, skipped)
    return ImportResult(dialogues, unmatched, skipped)


def _inspired_titles(cell: str) -> list[str]:
    # The movies column is a ';'-separated list of 'Title (Year)'.
    return [t.strip() for t in (cell or "").split(";") if t.strip()]


def _import_inspired_tsv(
    path: Path, matcher: TitleMatcher, unmatched: Counter[str], skipped: list[Skipped]
) -> list[Dialogue]:
    split = _split_from_name(path)
    rows: dict[str, list[tuple[str, str, list[str]]]] = {}
    cases: dict[str, str] = {}
    first_line: dict[str, int] = {}
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = reader.fieldnames or []
        missing = {"dialog_id", "speaker", "text"} - set(header)
        if missing:
            skipped.append(Skipped(f"{path}:1", f"header lacks column(s) {sorted(missing)}; got {header}"))
            return []
        for row in reader:
            where = f"{path}:{reader.line_num}"
            did, speaker = (row.get("dialog_id") or "").strip(), (row.get("speaker") or "").strip().upper()
            if not did or speaker not in ("SEEKER", "RECOMMENDER"):
                skipped.append(Skipped(where, f"row without dialog_id or with unknown speaker {speaker!r}"))
                continue
            text = (row.get("text") or "").replace("QUOTATION_MARK", '"').strip()
            ids = []
            for title in _inspired_titles(row.get("movies") or ""):
                item_id = matcher.match_mention(title)
                if item_id:
                    ids.append(item_id)
                else:
                    unmatched[title] += 1
            role = "user" if speaker == "SEEKER" else "assistant"
            rows.setdefault(did, []).append((role, text, ids))
            first_line.setdefault(did, reader.line_num)
            if row.get("case"):
                cases[did] = row["case"]
    out = []
    for did, utterances in rows.items():
        turns = _build_turns(_merge_runs(utterances))
        meta = {"dialog_id": did, **({"case": cases[did]} if did in cases else {})}
        out.append(Dialogue(f"inspired-{Path(did).stem}", "inspired", split, tuple(turns), None, meta))
    return out


def import_inspired(dir_or_tsv: str | Path, catalog: Catalog) -> ImportResult:
    """Import INSPIRED: one ``.tsv`` file, or every ``*.tsv`` in a folder (split taken from the name)."""
    path = Path(dir_or_tsv)
    files = sorted(path.glob("*.tsv")) if path.is_dir() else [path]
    matcher = TitleMatcher(catalog)
    unmatched: Counter[str] = Counter()
    skipped: list[Skipped] = []
    dialogues = [d for f in files for d in _import_inspired_tsv(f, matcher, unmatched, skipped)]
    _log_summary(path, dialogues, unmatched, skipped)
    return ImportResult(dialogues, unmatched, skipped)


def _log_summary(path: Path, dialogues: list[Dialogue], unmatched: Counter[str], skipped: list[Skipped]) -> None:
    log.info(
        "%s: %d dialogues, %d unmatched titles (%d mentions), %d skipped",
        path,
        len(dialogues),
        len(unmatched),
        sum(unmatched.values()),
        len(skipped),
    )
    for s in skipped:
        log.warning("skipped %s: %s", s.where, s.reason)
