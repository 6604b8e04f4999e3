"""Catalog items: loading and validation. No torch here.

An item is ``id``, ``title``, ``description``, free ``attributes`` and optional media paths.
Loading validates every row first and raises one :class:`CatalogError` naming file, line and
field, so a catalog is either loaded whole or not at all.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

# Attribute keys shown to the model and used for grounding reasons, in display order.
FACT_KEYS = ("year", "genres", "director", "cast", "keywords", "creators", "tags", "price")
# Attribute keys that name people (linked by name in what users write; a boost when asked for).
PERSON_KEYS = ("director", "cast", "creators", "author", "artist")
_KNOWN_FIELDS = {"id", "title", "description", "attributes", "image", "audio"}


class CatalogError(ValueError):
    """A catalog file that cannot be loaded; the message names file, line and field."""


@dataclass(frozen=True)
class Item:
    id: str  # unique, stable identifier
    title: str  # display title
    description: str = ""  # one or two sentences of content
    attributes: Mapping[str, Any] = field(default_factory=dict)  # genres, year, cast, ...
    image: str | None = None  # path or URL of a picture of the item
    audio: str | None = None  # path of an audio clip of the item

    @property
    def year(self) -> int | None:
        y = self.attributes.get("year")
        return int(y) if isinstance(y, (int, float)) or (isinstance(y, str) and y.isdigit()) else None

    def values(self, key: str) -> list[str]:
        """Attribute ``key`` as a list of strings (scalars become one-element lists)."""
        v = self.attributes.get(key)
        if v is None or v == "":
            return []
        if isinstance(v, (list, tuple)):
            return [str(x) for x in v]
        return [str(v)]

    def people(self) -> set[str]:
        """Every person the item names under a :data:`PERSON_KEYS` attribute."""
        return {p for key in PERSON_KEYS for p in self.values(key)}

    def facts(self) -> list[tuple[str, str]]:
        """(key, value) pairs of the item's facts, for prompts and grounding checks."""
        out = [(k, v) for k in FACT_KEYS for v in self.values(k)]
        out += [(k, v) for k in self.attributes if k not in FACT_KEYS for v in self.values(k)]
        return out

    def text(self) -> str:
        """The text that retrieval indexes: title, facts and description."""
        parts = [self.title]
        for key in FACT_KEYS:
            vals = self.values(key)
            if vals:
                parts.append(f"{key}: {', '.join(vals)}")
        parts.append(self.description)
        return ". ".join(p for p in parts if p)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "id": self.id,
            "title": self.title,
            "description": self.description,
            "attributes": dict(self.attributes),
        }
        if self.image:
            d["image"] = self.image
        if self.audio:
            d["audio"] = self.audio
        return d


class Catalog(Sequence[Item]):
    """An immutable, validated list of items with lookup by id."""

    def __init__(self, items: Sequence[Item], source: str = "<memory>"):
        self.items: tuple[Item, ...] = tuple(items)
        self.source = source
        self._index = {it.id: i for i, it in enumerate(self.items)}
        if len(self._index) != len(self.items):
            seen: set[str] = set()
            dup = next(it.id for it in self.items if it.id in seen or seen.add(it.id))
            raise CatalogError(f"{source}: duplicate id {dup!r}")

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i):  # type: ignore[override]
        return self.items[i]

    def __iter__(self) -> Iterator[Item]:
        return iter(self.items)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._index

    def get(self, item_id: str) -> Item:
        try:
            return self.items[self._index[item_id]]
        except KeyError:
            raise KeyError(f"unknown item id {item_id!r}") from None

    def position(self, item_id: str) -> int:
        return self._index[item_id]

    def content_hash(self) -> str:
        """sha256 over the items' canonical JSON; changes whenever any item changes."""
        h = hashlib.sha256()
        for it in self.items:
            h.update(json.dumps(it.to_dict(), sort_keys=True, ensure_ascii=False).encode())
            h.update(b"\n")
        return h.hexdigest()


def _validate_row(row: Mapping[str, Any], where: str, base: Path | None) -> Item:
    if not isinstance(row, Mapping):
        raise CatalogError(f"{where}: expected an object, got {type(row).__name__}")
    unknown = set(row) - _KNOWN_FIELDS
    if unknown:
        raise CatalogError(f"{where}: unknown field(s) {sorted(unknown)}; known: {sorted(_KNOWN_FIELDS)}")
    item_id = row.get("id")
    if isinstance(item_id, int) and not isinstance(item_id, bool):
        item_id = str(item_id)
    if not isinstance(item_id, str) or not item_id.strip():
        raise CatalogError(f"{where}: field 'id' must be a non-empty string, got {item_id!r}")
    title = row.get("title")
    if not isinstance(title, str) or not title.strip():
        raise CatalogError(f"{where}: field 'title' is missing or empty (id {item_id!r})")
    desc = row.get("description", "") or ""
    if not isinstance(desc, str):
        raise CatalogError(f"{where}: field 'description' must be a string, got {type(desc).__name__}")
    attrs = row.get("attributes", {}) or {}
    if not isinstance(attrs, Mapping):
        raise CatalogError(f"{where}: field 'attributes' must be an object, got {type(attrs).__name__}")
    for k, v in attrs.items():
        ok_scalar = isinstance(v, (str, int, float, bool)) or v is None
        ok_list = isinstance(v, list) and all(isinstance(x, (str, int, float)) for x in v)
        if not (ok_scalar or ok_list):
            raise CatalogError(f"{where}: field 'attributes.{k}' must be a scalar or a list of scalars")
    year = attrs.get("year")
    if year is not None and not (isinstance(year, int) and not isinstance(year, bool)):
        raise CatalogError(f"{where}: field 'attributes.year' must be an integer, got {year!r}")
    media = {}
    for key in ("image", "audio"):
        v = row.get(key)
        if v in (None, ""):
            media[key] = None
            continue
        if not isinstance(v, str):
            raise CatalogError(f"{where}: field {key!r} must be a path or URL string")
        is_url = v.startswith(("http://", "https://"))
        # Relative media paths are relative to the catalog file, so a catalog folder can move.
        media[key] = v if is_url or base is None or Path(v).is_absolute() else str(base / v)
    return Item(item_id.strip(), title.strip(), desc.strip(), dict(attrs), media["image"], media["audio"])


def _parse_csv_cell(key: str, value: str) -> Any:
    value = value.strip()
    if key == "year":
        return int(value) if value.lstrip("-").isdigit() else value
    if "|" in value:
        return [v.strip() for v in value.split("|") if v.strip()]
    return value


def _rows_jsonl(path: Path) -> Iterator[tuple[str, Any]]:
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path}:{n}"
            try:
                yield where, json.loads(line)
            except json.JSONDecodeError as e:
                raise CatalogError(f"{where}: invalid JSON ({e.msg} at column {e.colno})") from None


def _rows_csv(path: Path) -> Iterator[tuple[str, Any]]:
    """CSV columns: id,title,description,image,audio and any others as attributes.

    List-valued cells use ``|`` as separator (``Drama|Crime``).
    """
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames or "id" not in reader.fieldnames or "title" not in reader.fieldnames:
            raise CatalogError(f"{path}:1: CSV header must include 'id' and 'title', got {reader.fieldnames}")
        for row in reader:
            where = f"{path}:{reader.line_num}"
            if None in row:
                raise CatalogError(f"{where}: more cells than header columns")
            out: dict[str, Any] = {"attributes": {}}
            for k, v in row.items():
                if k in _KNOWN_FIELDS - {"attributes"}:
                    out[k] = v
                elif v is not None and v.strip():
                    out["attributes"][k] = _parse_csv_cell(k, v)
            yield where, out


def load_catalog(path: str | Path) -> Catalog:
    """Load and validate a ``.jsonl`` or ``.csv`` catalog; all-or-nothing."""
    path = Path(path)
    if not path.is_file():
        raise CatalogError(f"{path}: catalog file not found")
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json"):
        rows = _rows_jsonl(path)
    elif suffix == ".csv":
        rows = _rows_csv(path)
    else:
        raise CatalogError(f"{path}: unsupported catalog format {suffix!r}; use .jsonl or .csv")
    items: list[Item] = []
    first_line: dict[str, str] = {}
    try:
        for where, row in rows:
            item = _validate_row(row, where, path.parent)
            if item.id in first_line:
                raise CatalogError(f"{where}: field 'id': duplicate id {item.id!r} (first at {first_line[item.id]})")
            first_line[item.id] = where
            items.append(item)
    except UnicodeDecodeError as e:
        raise CatalogError(f"{path}: not UTF-8 text ({e.reason})") from None
    if not items:
        raise CatalogError(f"{path}: catalog has no items")
    return Catalog(items, source=str(path))


def demo_catalog_path() -> Path:
    """The demo film catalog shipped inside the package."""
    return Path(str(resources.files("chatrec") / "data" / "demo_films.jsonl"))


def load_demo_catalog() -> Catalog:
    return load_catalog(demo_catalog_path())
