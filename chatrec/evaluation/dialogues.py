"""Dialogue data: the JSONL format shared by generated, imported and handwritten dialogues.

One dialogue per line::

    {"id": "sim-000042",                 # unique within a file
     "source": "simulator",              # "simulator" | "redial" | "inspired" | "handwritten" | ...
     "split": "train",                   # "train" | "val" | "test"
     "target": "the-matrix-1999",        # optional: the item the user is looking for
     "turns": [
       {"role": "user", "text": "Any good sci-fi from the 90s?",
        "image": "img/poster.jpg",       # optional media path, relative to the JSONL file
        "audio": "audio/sim-000042-0.wav",
        "liked": ["dark-city-1998"],     # optional, user turns: items this turn says the user likes
        "rejected": ["alien-1979"]},     # optional, user turns: items this turn turns down
       {"role": "assistant", "text": "How about The Matrix?",
        "targets": ["the-matrix-1999"]}  # only on recommendation turns: the ground truth at that turn
     ],
     "meta": {}}                         # free-form provenance (templates used, original ids, ...)

Evaluation predicts the ``targets`` of an assistant turn from the turns before it. Empty optional
fields are omitted when saving. :func:`load_dialogues` never raises on bad rows: it skips each bad
dialogue with a :class:`Skipped` record naming ``file:line`` and the reason, and loads the rest.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chatrec.catalog import Catalog

log = logging.getLogger(__name__)

ROLES = ("user", "assistant")
SPLITS = ("train", "val", "test")
_TURN_FIELDS = {"role", "text", "image", "audio", "targets", "liked", "rejected"}
_DIALOGUE_FIELDS = {"id", "source", "split", "target", "turns", "meta"}


@dataclass(frozen=True)
class Turn:
    role: str  # "user" or "assistant"
    text: str  # what was said (a transcript when ``audio`` is set)
    image: str | None = None  # path of an image the user showed
    audio: str | None = None  # path of a spoken version of the turn
    targets: tuple[str, ...] = ()  # assistant recommendation turns: ground-truth item ids at this turn
    liked: tuple[str, ...] = ()  # user turns: item ids this turn says the user likes
    rejected: tuple[str, ...] = ()  # user turns: item ids this turn turns down

    @property
    def is_recommendation(self) -> bool:
        return self.role == "assistant" and bool(self.targets)

    def item_ids(self) -> tuple[str, ...]:
        return self.targets + self.liked + self.rejected

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"role": self.role, "text": self.text}
        for key in ("image", "audio"):
            if getattr(self, key):
                d[key] = getattr(self, key)
        for key in ("targets", "liked", "rejected"):
            if getattr(self, key):
                d[key] = list(getattr(self, key))
        return d


@dataclass(frozen=True)
class Dialogue:
    id: str  # unique id within its file
    source: str  # where it comes from: "simulator", "redial", "inspired", "handwritten", ...
    split: str  # "train", "val" or "test"
    turns: tuple[Turn, ...]  # in order; user and assistant usually alternate
    target: str | None = None  # the item the user is after, when there is one
    meta: Mapping[str, Any] = field(default_factory=dict)  # free-form provenance

    def mentioned_before(self, turn_index: int) -> set[str]:
        """Item ids named in turns before ``turn_index``: what metrics exclude at that turn."""
        return {i for t in self.turns[:turn_index] for i in t.item_ids()}

    def recommendation_turns(self) -> list[int]:
        return [i for i, t in enumerate(self.turns) if t.is_recommendation]

    def item_ids(self) -> set[str]:
        ids = {i for t in self.turns for i in t.item_ids()}
        return ids | {self.target} if self.target else ids

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"id": self.id, "source": self.source, "split": self.split}
        if self.target:
            d["target"] = self.target
        d["turns"] = [t.to_dict() for t in self.turns]
        d["meta"] = dict(self.meta)
        return d


@dataclass(frozen=True)
class Skipped:
    where: str  # "file:line"
    reason: str  # why the row was not loaded


@dataclass(frozen=True)
class LoadResult:
    dialogues: list[Dialogue]  # the rows that loaded, in file order
    skipped: list[Skipped]  # one record per row that did not


class _Invalid(ValueError):
    pass


def _ids(value: Any, key: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(x, str) and x for x in value):
        raise _Invalid(f"field {key!r} must be a list of item id strings")
    return tuple(value)


def _media(value: Any, key: str, base: Path) -> str | None:
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise _Invalid(f"field {key!r} must be a path string")
    # Relative paths are relative to the JSONL file, so a data folder can move as a whole.
    path = value if Path(value).is_absolute() or value.startswith(("http://", "https://")) else str(base / value)
    if not path.startswith(("http://", "https://")) and not Path(path).is_file():
        raise _Invalid(f"{key} file not found: {value}")
    return path


def _parse_turn(row: Any, n: int, base: Path) -> Turn:
    if not isinstance(row, Mapping):
        raise _Invalid(f"turn {n}: expected an object")
    unknown = set(row) - _TURN_FIELDS
    if unknown:
        raise _Invalid(f"turn {n}: unknown field(s) {sorted(unknown)}")
    role, text = row.get("role"), row.get("text")
    if role not in ROLES:
        raise _Invalid(f"turn {n}: role must be one of {ROLES}, got {role!r}")
    if not isinstance(text, str):
        raise _Invalid(f"turn {n}: field 'text' must be a string")
    try:
        return Turn(
            role,
            text,
            _media(row.get("image"), "image", base),
            _media(row.get("audio"), "audio", base),
            _ids(row.get("targets"), "targets"),
            _ids(row.get("liked"), "liked"),
            _ids(row.get("rejected"), "rejected"),
        )
    except _Invalid as e:
        raise _Invalid(f"turn {n}: {e}") from None


def dialogue_from_dict(row: Any, base: Path = Path("."), catalog: Catalog | None = None) -> Dialogue:
    """Validate one parsed JSON row; raises ``ValueError`` with the reason."""
    if not isinstance(row, Mapping):
        raise _Invalid(f"expected an object, got {type(row).__name__}")
    unknown = set(row) - _DIALOGUE_FIELDS
    if unknown:
        raise _Invalid(f"unknown field(s) {sorted(unknown)}; known: {sorted(_DIALOGUE_FIELDS)}")
    did, source, split = row.get("id"), row.get("source", ""), row.get("split")
    if not isinstance(did, str) or not did:
        raise _Invalid("field 'id' must be a non-empty string")
    if not isinstance(source, str):
        raise _Invalid("field 'source' must be a string")
    if split not in SPLITS:
        raise _Invalid(f"field 'split' must be one of {SPLITS}, got {split!r}")
    target = row.get("target")
    if target is not None and not (isinstance(target, str) and target):
        raise _Invalid("field 'target' must be an item id string")
    meta = row.get("meta") or {}
    if not isinstance(meta, Mapping):
        raise _Invalid("field 'meta' must be an object")
    turns = row.get("turns")
    if not isinstance(turns, list):
        raise _Invalid("field 'turns' must be a list")
    if not turns:
        raise _Invalid("empty dialogue (no turns)")
    d = Dialogue(did, source, split, tuple(_parse_turn(t, n, base) for n, t in enumerate(turns)), target, dict(meta))
    if catalog is not None:
        unknown_ids = sorted(i for i in d.item_ids() if i not in catalog)
        if unknown_ids:
            raise _Invalid(f"unknown item id(s) {unknown_ids}")
    return d


def load_dialogues(path: str | Path, catalog: Catalog | None = None) -> LoadResult:
    """Load a dialogue JSONL file, skipping (and reporting) malformed rows.

    With ``catalog``, dialogues naming item ids that are not in it are skipped too.
    """
    path = Path(path)
    dialogues: list[Dialogue] = []
    skipped: list[Skipped] = []
    first_line: dict[str, str] = {}
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path}:{n}"
            try:
                d = dialogue_from_dict(json.loads(line), path.parent, catalog)
                if d.id in first_line:
                    raise _Invalid(f"duplicate id {d.id!r} (first at {first_line[d.id]})")
            except json.JSONDecodeError as e:
                skipped.append(Skipped(where, f"invalid JSON ({e.msg} at column {e.colno})"))
                continue
            except _Invalid as e:
                skipped.append(Skipped(where, str(e)))
                continue
            first_line[d.id] = where
            dialogues.append(d)
    for s in skipped:
        log.warning("skipped %s: %s", s.where, s.reason)
    return LoadResult(dialogues, skipped)


def _relative(p: str | None, base: Path) -> str | None:
    if not p or p.startswith(("http://", "https://")):
        return p
    try:
        return str(Path(p).resolve().relative_to(base.resolve()))
    except ValueError:
        return p


def save_dialogues(path: str | Path, dialogues: Iterable[Dialogue]) -> None:
    """Write dialogues as JSONL; media paths under the file's folder are stored relative to it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for d in dialogues:
            row = d.to_dict()
            for t in row["turns"]:
                for key in ("image", "audio"):
                    if key in t:
                        t[key] = _relative(t[key], path.parent)
            f.write(json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n")
