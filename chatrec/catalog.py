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
# Attribute keys that name people (linked by name in what users write; a boost when asked for), with the
# role each one gives its people in a sentence ("directed by" / "starring") and whether that role made
# the item (creator) or performs in it (performer): a reason may say "directed by" only of a creator.
PERSON_ROLES: dict[str, tuple[str, str]] = {
    "director": ("directed by", "creator"),
    "creators": ("created by", "creator"),
    "author": ("written by", "creator"),
    "writer": ("written by", "creator"),
    "artist": ("by", "creator"),
    "composer": ("composed by", "creator"),
    "cast": ("starring", "performer"),
    "narrator": ("read by", "performer"),
    "performers": ("performed by", "performer"),
}
PERSON_KEYS = tuple(PERSON_ROLES)
# The item noun a catalog gets when it does not name one: from the attributes its items have.
_NOUN_BY_KEY = (("director", "film"), ("cast", "film"), ("author", "book"), ("artist", "album"))
_NON_TEXT_KEYS = {"popularity", "price", "year"}  # numbers, not words: shown as facts, not indexed as text
_KNOWN_FIELDS = {"id", "title", "description", "attributes", "image", "audio"}
SCHEMA_SUFFIX = ".schema.json"  # optional sidecar next to a catalog file: item noun, line attributes


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
        """The text that retrieval indexes: title, every attribute with words in it, and description."""
        parts = [self.title]
        keys = [k for k in FACT_KEYS if k != "price"] + [k for k in self.attributes if k not in FACT_KEYS and k not in _NON_TEXT_KEYS]
        for key in keys:
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


@dataclass(frozen=True)
class Schema:
    """What a catalog's items are called and which attributes a prompt shows, in which role.

    Read from ``<catalog>.schema.json`` when it exists, else inferred from the items' attributes, so a
    catalog of books says "book" and "written by" without any setting.
    """

    item_noun: str = "item"
    item_nouns: str = "items"
    # (attribute, most values shown) per candidate line, in order; people keys take their role phrase.
    line_attributes: tuple[tuple[str, int], ...] = (("genres", 3), ("keywords", 5))

    def role(self, key: str) -> tuple[str, str] | None:
        """(phrase, "creator" | "performer") of a person attribute, or None for other attributes."""
        return PERSON_ROLES.get(key)

    def person_keys(self) -> tuple[str, ...]:
        return tuple(k for k, _ in self.line_attributes if k in PERSON_ROLES)

    @classmethod
    def infer(cls, items: Sequence[Item]) -> Schema:
        keys: dict[str, None] = {}
        for it in items[:500]:
            keys.update(dict.fromkeys(it.attributes))
        noun = next((n for k, n in _NOUN_BY_KEY if k in keys), "item")
        order = ["genres", *(k for k in PERSON_ROLES if k in keys), "keywords"]
        order += [k for k in keys if k not in order and k not in _NON_TEXT_KEYS and k not in FACT_KEYS]
        limits = {"genres": 3, "cast": 3, "keywords": 5}
        return cls(noun, noun + "s", tuple((k, limits.get(k, 2)) for k in order if k in keys))

    @classmethod
    def from_file(cls, path: Path, items: Sequence[Item]) -> Schema:
        """The sidecar's fields over the inferred ones; a bad sidecar is a CatalogError naming the field."""
        base = cls.infer(items)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as e:
            raise CatalogError(f"{path}: cannot read catalog schema ({e})") from None
        if not isinstance(data, dict) or set(data) - {"item_noun", "item_nouns", "line_attributes"}:
            raise CatalogError(f"{path}: schema keys are item_noun, item_nouns, line_attributes")
        noun = data.get("item_noun", base.item_noun)
        if not isinstance(noun, str) or not noun.strip():
            raise CatalogError(f"{path}: field 'item_noun' must be a non-empty string")
        lines = data.get("line_attributes")
        if lines is None:
            attrs = base.line_attributes
        elif isinstance(lines, dict) and all(isinstance(k, str) and isinstance(v, int) and v > 0 for k, v in lines.items()):
            attrs = tuple(lines.items())
        else:
            raise CatalogError(f"{path}: field 'line_attributes' must map attribute names to counts > 0")
        return cls(noun.strip(), str(data.get("item_nouns") or noun.strip() + "s"), attrs)


class Catalog(Sequence[Item]):
    """An immutable, validated list of items with lookup by id."""

    def __init__(self, items: Sequence[Item], source: str = "<memory>", schema: Schema | None = None):
        self.items: tuple[Item, ...] = tuple(items)
        self.source = source
        self.schema = schema or Schema.infer(self.items)
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


# Demo catalogs shipped inside the package, by the name `catalog = "<name>"` accepts in a config.
PACKAGED_CATALOGS = {"films": "demo_films.jsonl", "books": "demo_books.jsonl"}


def load_catalog(path: str | Path) -> Catalog:
    """Load and validate a ``.jsonl`` or ``.csv`` catalog (or a packaged one by name); all-or-nothing."""
    if isinstance(path, str) and path in PACKAGED_CATALOGS:
        path = Path(str(resources.files("chatrec") / "data" / PACKAGED_CATALOGS[path]))
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
    sidecar = path.with_name(path.stem + SCHEMA_SUFFIX)
    schema = Schema.from_file(sidecar, items) if sidecar.is_file() else None
    return Catalog(items, source=str(path), schema=schema)


def demo_catalog_path() -> Path:
    """The demo film catalog shipped inside the package."""
    return Path(str(resources.files("chatrec") / "data" / "demo_films.jsonl"))


def load_demo_catalog() -> Catalog:
    return load_catalog(demo_catalog_path())
