"""Catalog items: loading and validation. No torch here.

An item is ``id``, ``title``, ``description``, free ``attributes`` and optional media paths.
Loading validates every row first and raises one :class:`CatalogError` naming file, line and
field, so a catalog is either loaded whole or not at all.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import json
import math
import os
import re
import stat
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
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
class CatalogLimits:
    """Upper bounds :func:`load_catalog` enforces, so that a broken or hostile file is refused in one line
    within milliseconds instead of costing gigabytes and minutes (a 50 MB description once took 6.3 GB).

    The defaults are far above real catalogs (the demo films: rows <= 0.6 kB, titles <= 83 characters,
    descriptions <= 191, <= 16 attribute values an item) and far below what hurts.
    """

    # One JSONL line or CSV record, in bytes. Lines are read with a bounded readline, so this is also the
    # most one row can cost in memory before it is refused; 100 kB is ~150x the largest demo row.
    max_row_bytes: int = 100_000
    # An item id: a key in the index, in saved sessions and in every log line; ids are short slugs.
    max_id_chars: int = 300
    # A title is shown on every card and in every candidate line of the ranking prompt.
    max_title_chars: int = 300
    # The description goes into each candidate's prompt line and its embedding (both truncate far below
    # this); 5,000 characters is a long paragraph, ~1,200 tokens.
    max_description_chars: int = 5_000
    # All attribute values of one item together (a scalar counts 1, a list its length): facts(), text(),
    # the linker and the claim checker go over every value of every shown item on every turn.
    max_attribute_values: int = 200
    # One attribute value or attribute name (a genre, a person, a keyword): these are names, not texts.
    max_value_chars: int = 500
    # An image or audio path or URL (signed URLs can be long; paths are limited to 4 kB by most systems).
    max_media_chars: int = 2_000
    # Items in one catalog: each costs ~1.5 kB of float32 embedding (384 dims) plus its text, so 5M items
    # are ~10 GB of index, more than this project should ever build by accident.
    max_items: int = 5_000_000

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise ValueError(f"CatalogLimits.{f.name} must be a positive integer, got {v!r}")


DEFAULT_LIMITS = CatalogLimits()
# Integers in a JSON catalog longer than this are refused: years, counts and prices are short, and Python
# itself refuses integers over 4,300 digits with a ValueError that would otherwise escape.
_MAX_NUMBER_CHARS = 100
_INTERN_MAX_CHARS = 64  # attribute values up to this long are names (a genre, a person), shared between items
# A schema sidecar holds a noun and a few attribute names; anything near this size is not one.
_MAX_SIDECAR_BYTES = 1_000_000

# Leading bytes of the media formats a catalog may point at; checked at load on the first bytes only
# (a catalog can name a million pictures: decoding them is the encoders' job, not the loader's).
_MAGIC_HEAD_BYTES = 16


def _is_image_head(head: bytes) -> bool:
    return (
        head.startswith((b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"BM"))
        or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")
    )


def _is_audio_head(head: bytes) -> bool:
    return (
        (head[:4] == b"RIFF" and head[8:12] == b"WAVE")
        or head.startswith((b"fLaC", b"OggS", b"ID3"))
        or (len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0)  # MPEG audio frame sync
    )


_MEDIA_SNIFFERS = {"image": (_is_image_head, "an image (PNG, JPEG, GIF, WebP or BMP)"),
                   "audio": (_is_audio_head, "audio (WAV, FLAC, Ogg or MP3)")}


def media_kind_ok(path: str | os.PathLike, kind: str) -> bool:
    """True when the file at ``path`` starts like ``kind`` ("image" or "audio"); reads 16 bytes."""
    try:
        with open(path, "rb") as f:
            return _MEDIA_SNIFFERS[kind][0](f.read(_MAGIC_HEAD_BYTES))
    except (OSError, ValueError):
        return False


def media_path_ok(path: str | os.PathLike, root: str | os.PathLike) -> bool:
    """True when local media ``path`` (relative paths are taken relative to ``root``) lies inside ``root``
    once symlinks and ``..`` are resolved.

    The loader refuses such paths already; the UI calls this again right before it reads a file (defence
    in depth: the catalog, a symlink or a session may have changed since). URLs are not local paths: False.
    """
    if isinstance(path, str) and (not path or path.startswith(("http://", "https://"))):
        return False
    try:
        base = Path(root).resolve()
        p = Path(path)
        return (p if p.is_absolute() else base / p).resolve().is_relative_to(base)
    except (OSError, RuntimeError, ValueError):  # symlink loops, NUL bytes
        return False


def _short(value: Any, n: int = 80) -> str:
    """repr of a value for a one-line message: quotes and escapes newlines, cut to ``n`` characters."""
    r = repr(value)
    return r if len(r) <= n else r[: n - 3] + "..."


def _clip(text: str, n: int = 160) -> str:
    """An exception's text for a one-line message: newlines flattened, cut to ``n`` characters."""
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 3] + "..."


INDEX_MAX_VALUES = 16  # a word attribute with more values than this is keyword stuffing (demo items: 16 at most)
INDEX_MAX_VALUE_CHARS = 48  # a longer "keyword" is a sentence of stuffing (demo values: 32 characters at most)
_NOT_A_NAME = re.compile(r"[0-9:/@]|https?\b|www\.", re.IGNORECASE)


def _collapse_repeats(title: str) -> str:
    """A long title (7+ words) with every word of 4+ letters said three or more times kept once ("Thriller
    Thriller Thriller Comedy Comedy Comedy Best Film" -> "Thriller Comedy Best Film")."""
    words = title.split()
    counts: dict[str, int] = {}
    for w in words:
        if len(w) > 3:  # "the", "of", "and" repeat in real titles ("The Lord of the Rings: The Return of the King")
            counts[w.lower()] = counts.get(w.lower(), 0) + 1
    if len(words) < 7 or max(counts.values(), default=0) < 3:  # "Linda Linda Linda", "Tora! Tora! Tora!" are titles
        return title
    seen: set[str] = set()
    kept = [w for w in words if counts.get(w.lower(), 0) < 3 or (w.lower() not in seen and not seen.add(w.lower()))]
    return " ".join(kept)


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
        """The text that retrieval indexes: title, every attribute with words in it, and description.

        Stuffing is left out, as in the prompt's candidate lines: a long title that repeats words (see
        :func:`_collapse_repeats`), a word attribute with more than :data:`INDEX_MAX_VALUES` values,
        a value longer than :data:`INDEX_MAX_VALUE_CHARS`, a "person" that is no name (digits, a colon, a
        slash). Otherwise "Thriller Thriller Comedy Comedy Best Film" outranks real matches for a small
        catalog. No demo item has any of these, so their index text is unchanged.
        """
        parts = [_collapse_repeats(self.title)]
        keys = [k for k in FACT_KEYS if k != "price"] + [k for k in self.attributes if k not in FACT_KEYS and k not in _NON_TEXT_KEYS]
        for key in keys:
            vals = self._index_values(key)
            if vals:
                parts.append(f"{key}: {', '.join(vals)}")
        parts.append(self.description)
        return ". ".join(p for p in parts if p)

    def _index_values(self, key: str) -> list[str]:
        vals = self.values(key)
        if key not in PERSON_ROLES and len(vals) > INDEX_MAX_VALUES:
            return []
        ok = (v for v in dict.fromkeys(vals) if len(v) <= INDEX_MAX_VALUE_CHARS)
        return [v for v in ok if key not in PERSON_ROLES or not _NOT_A_NAME.search(v)]

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
            with path.open("rb") as f:
                raw = f.read(_MAX_SIDECAR_BYTES + 1)
            if len(raw) > _MAX_SIDECAR_BYTES:
                raise CatalogError(f"{path}: catalog schema is larger than {_MAX_SIDECAR_BYTES:,} bytes")
            data = _JSON.decode(raw.decode("utf-8-sig"))
        except (OSError, ValueError, RecursionError) as e:  # ValueError: bad JSON, not UTF-8, huge numbers
            if isinstance(e, CatalogError):
                raise
            raise CatalogError(f"{path}: cannot read catalog schema ({_clip(str(e))})") from None
        if not isinstance(data, dict) or set(data) - {"item_noun", "item_nouns", "line_attributes"}:
            raise CatalogError(f"{path}: schema keys are item_noun, item_nouns, line_attributes")
        noun = data.get("item_noun", base.item_noun)
        if not isinstance(noun, str) or not noun.strip():
            raise CatalogError(f"{path}: field 'item_noun' must be a non-empty string")
        lines = data.get("line_attributes")
        if lines is None:
            attrs = base.line_attributes
        elif isinstance(lines, dict) and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in lines.values()):
            attrs = tuple(lines.items())
        else:
            raise CatalogError(f"{path}: field 'line_attributes' must map attribute names to counts > 0")
        nouns = data.get("item_nouns") or noun.strip() + "s"
        if not isinstance(nouns, str):
            raise CatalogError(f"{path}: field 'item_nouns' must be a string")
        return cls(noun.strip(), nouns, attrs)


class Catalog(Sequence[Item]):
    """An immutable, validated list of items with lookup by id."""

    def __init__(self, items: Sequence[Item], source: str = "<memory>", schema: Schema | None = None,
                 media_root: Path | None = None):
        self.items: tuple[Item, ...] = tuple(items)
        self.source = source
        # The folder every local image/audio path of a loaded catalog lies in (resolved): what the UI passes
        # to media_path_ok before it reads a file. None for catalogs built in memory.
        self.media_root = media_root
        self.schema = schema or Schema.infer(self.items)
        self._index = {it.id: i for i, it in enumerate(self.items)}
        self._hash: str | None = None
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
        """sha256 over the items' canonical JSON; changes whenever any item changes (computed once: the
        catalog is immutable, and at a million items it takes seconds)."""
        if self._hash is None:
            h = hashlib.sha256()
            for it in self.items:
                h.update(json.dumps(it.to_dict(), sort_keys=True, ensure_ascii=False).encode())
                h.update(b"\n")
            self._hash = h.hexdigest()
        return self._hash


@dataclass(frozen=True)
class _MediaRoot:
    base: Path  # relative media paths are joined to this, as given (stored paths keep their old form)
    root: Path  # base resolved: every local media path must resolve inside it
    label: str  # "the catalog folder" or "the media root", for messages


def _too_long(where: str, name: str, n: int, limit: int, limit_name: str) -> CatalogError:
    return CatalogError(f"{where}: field {_short(name)} is {n:,} characters long, over the limit of {limit:,} "
                        f"(CatalogLimits.{limit_name})")


def _local_media(value: str, key: str, where: str, media: _MediaRoot) -> str:
    """The stored form of a local media path, after checking it stays inside the root and, when the file
    exists, that it is a regular file whose first bytes are an image / audio format."""
    if "\x00" in value:
        raise CatalogError(f"{where}: field {key!r}: path contains a NUL character")
    p = Path(value)
    full = p if p.is_absolute() else media.base / p
    try:
        resolved = full.resolve()
    except (OSError, RuntimeError) as e:  # a symlink loop
        raise CatalogError(f"{where}: field {key!r}: path {_short(value)} cannot be resolved ({_clip(str(e))})") from None
    if not resolved.is_relative_to(media.root):
        raise CatalogError(f"{where}: field {key!r}: path {_short(value)} is outside {media.label} {media.root}")
    try:
        st = resolved.stat()
    except (FileNotFoundError, NotADirectoryError):
        return str(full)  # a missing file is accepted, as it always was: the encoders report it when used
    except OSError as e:
        raise CatalogError(f"{where}: field {key!r}: cannot read {_short(value)} ({e.strerror or e})") from None
    if not stat.S_ISREG(st.st_mode):  # a folder, a FIFO (opening one would block), a device
        raise CatalogError(f"{where}: field {key!r}: path {_short(value)} is not a regular file")
    sniff, what = _MEDIA_SNIFFERS[key]
    try:
        with resolved.open("rb") as f:
            head = f.read(_MAGIC_HEAD_BYTES)
    except OSError as e:
        raise CatalogError(f"{where}: field {key!r}: cannot read {_short(value)} ({e.strerror or e})") from None
    if not sniff(head):
        raise CatalogError(f"{where}: field {key!r}: file {_short(value)} is not {what} by its content")
    return str(full)


def _validate_row(row: Mapping[str, Any], where: str, media: _MediaRoot | None,
                  limits: CatalogLimits = DEFAULT_LIMITS) -> Item:
    if not isinstance(row, Mapping):
        raise CatalogError(f"{where}: expected an object, got {type(row).__name__}")
    unknown = set(row) - _KNOWN_FIELDS
    if unknown:
        names = sorted(unknown)
        shown = _short(names if len(names) <= 5 else [*names[:5], "..."], 200)
        raise CatalogError(f"{where}: unknown field(s) {shown}; known: {sorted(_KNOWN_FIELDS)}")
    item_id = row.get("id")
    if isinstance(item_id, int) and not isinstance(item_id, bool):
        item_id = str(item_id)
    if not isinstance(item_id, str) or not item_id.strip():
        raise CatalogError(f"{where}: field 'id' must be a non-empty string, got {_short(item_id)}")
    if len(item_id) > limits.max_id_chars:
        raise _too_long(where, "id", len(item_id), limits.max_id_chars, "max_id_chars")
    title = row.get("title")
    if not isinstance(title, str) or not title.strip():
        raise CatalogError(f"{where}: field 'title' is missing or empty (id {_short(item_id)})")
    if len(title) > limits.max_title_chars:
        raise _too_long(where, "title", len(title), limits.max_title_chars, "max_title_chars")
    desc = row.get("description", "") or ""
    if not isinstance(desc, str):
        raise CatalogError(f"{where}: field 'description' must be a string, got {type(desc).__name__}")
    if len(desc) > limits.max_description_chars:
        raise _too_long(where, "description", len(desc), limits.max_description_chars, "max_description_chars")
    attrs = row.get("attributes", {}) or {}
    if not isinstance(attrs, Mapping):
        raise CatalogError(f"{where}: field 'attributes' must be an object, got {type(attrs).__name__}")
    n_values, max_chars = 0, limits.max_value_chars
    for k, v in attrs.items():
        if len(k) > max_chars:
            raise CatalogError(f"{where}: attribute name {_short(k)} is {len(k):,} characters long, over the limit "
                               f"of {max_chars:,} (CatalogLimits.max_value_chars)")
        vals = v if isinstance(v, list) else (v,)
        n_values += len(vals)
        if n_values > limits.max_attribute_values:
            raise CatalogError(f"{where}: field 'attributes' has more than {limits.max_attribute_values:,} values "
                               f"(CatalogLimits.max_attribute_values)")
        ok_scalar = isinstance(v, (str, int, float, bool)) or v is None
        ok_list = isinstance(v, list) and all(isinstance(x, (str, int, float)) for x in v)
        if not (ok_scalar or ok_list):
            raise CatalogError(f"{where}: field {_short('attributes.' + k)} must be a scalar or a list of scalars")
        for x in vals:
            if isinstance(x, str) and len(x) > max_chars:
                raise _too_long(where, f"attributes.{k}", len(x), max_chars, "max_value_chars")
    year = attrs.get("year")
    if year is not None and not (isinstance(year, int) and not isinstance(year, bool)):
        raise CatalogError(f"{where}: field 'attributes.year' must be an integer, got {_short(year)}")
    found: dict[str, str | None] = {}
    for key in ("image", "audio"):
        v = row.get(key)
        if v in (None, ""):
            found[key] = None
            continue
        if not isinstance(v, str):
            raise CatalogError(f"{where}: field {key!r} must be a path or URL string")
        if len(v) > limits.max_media_chars:
            raise _too_long(where, key, len(v), limits.max_media_chars, "max_media_chars")
        if v.startswith(("http://", "https://")):
            found[key] = v
        elif media is None:
            found[key] = v
        else:
            # Relative media paths are relative to the catalog file (or the media root), so a catalog
            # folder can move; whatever the path, it must resolve inside that folder.
            found[key] = _local_media(v, key, where, media)
    return Item(item_id.strip(), title.strip(), desc.strip(), _interned(attrs), found["image"], found["audio"])


def _interned(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """The attributes with names and short string values interned: genres, people and keywords repeat across
    items, and one shared string per distinct value is a third less memory at a million items."""
    def one(v: Any) -> Any:
        return sys.intern(v) if isinstance(v, str) and len(v) <= _INTERN_MAX_CHARS else v

    return {sys.intern(k): [one(x) for x in v] if isinstance(v, list) else one(v) for k, v in attrs.items()}


def _parse_csv_cell(key: str, value: str) -> Any:
    value = value.strip()
    if key == "year" and value.lstrip("-").isdigit():
        try:
            return int(value) if len(value) <= _MAX_NUMBER_CHARS else value
        except ValueError:  # str.isdigit() holds for "²", which int() refuses: kept as text, refused as a year
            return value
    if "|" in value:
        return [v.strip() for v in value.split("|") if v.strip()]
    return value


class _BadNumber(ValueError):
    pass


def _json_int(s: str) -> int:
    if len(s) > _MAX_NUMBER_CHARS:
        raise _BadNumber(f"a number of {len(s):,} digits; at most {_MAX_NUMBER_CHARS} are accepted")
    return int(s)


def _json_float(s: str) -> float:
    v = float(s)
    if not math.isfinite(v):
        raise _BadNumber(f"number {s[:40]} is out of range")
    return v


def _json_constant(s: str) -> Any:
    raise _BadNumber(f"{s} is not a JSON number")


# json.loads with hooks would build a decoder per line; one shared decoder keeps the C scanner's speed.
_JSON = json.JSONDecoder(parse_int=_json_int, parse_float=_json_float, parse_constant=_json_constant)


def _nul_field(row: Any) -> str | None:
    """The field of a parsed row that holds a NUL character (JSON ``\\u0000``), if any."""
    if not isinstance(row, dict):
        return None
    for k, v in row.items():
        if "\x00" in k:
            return k
        if k == "attributes" and isinstance(v, dict):
            for ak, av in v.items():
                if "\x00" in ak or any(isinstance(x, str) and "\x00" in x for x in (av if isinstance(av, list) else (av,))):
                    return f"attributes.{ak}"
        elif isinstance(v, str) and "\x00" in v:
            return k
    return None


def _row_too_long(where: str, limits: CatalogLimits) -> CatalogError:
    return CatalogError(f"{where}: row is longer than {limits.max_row_bytes:,} bytes (CatalogLimits.max_row_bytes)")


def _rows_jsonl(path: Path, limits: CatalogLimits = DEFAULT_LIMITS) -> Iterator[tuple[str, Any]]:
    """Rows of a JSONL file, read line by line in bytes: a line longer than ``max_row_bytes`` is refused
    after reading that much of it, and a bad byte is reported at its line."""
    cap = limits.max_row_bytes + 2  # room for the "\r\n" after a row of exactly max_row_bytes
    with path.open("rb") as f:
        n = 0
        while raw := f.readline(cap):
            n += 1
            where = f"{path}:{n}"
            if len(raw) > limits.max_row_bytes and (not raw.endswith(b"\n") or len(raw.rstrip(b"\r\n")) > limits.max_row_bytes):
                raise _row_too_long(where, limits)
            if n == 1 and raw.startswith(codecs.BOM_UTF8):
                raw = raw[len(codecs.BOM_UTF8):]
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise CatalogError(f"{where}: not UTF-8 text ({e.reason} at byte {e.start + 1} of the line)") from None
            if not line.strip():
                continue
            try:
                row = _JSON.decode(line)
            except json.JSONDecodeError as e:
                raise CatalogError(f"{where}: invalid JSON ({e.msg} at column {e.colno})") from None
            except RecursionError:
                raise CatalogError(f"{where}: invalid JSON (nested too deeply)") from None
            except ValueError as e:  # _BadNumber, and anything else the decoder refuses
                raise CatalogError(f"{where}: invalid JSON ({_clip(str(e))})") from None
            if "\\u0000" in line and (bad := _nul_field(row)) is not None:
                raise CatalogError(f"{where}: field {_short(bad)} contains a NUL character")
            yield where, row


def _utf8_error_line(path: Path) -> tuple[int, str]:
    """(line, reason) of the first byte of ``path`` that is not UTF-8; lines counted by "\\n"."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    n = 1
    with path.open("rb") as f:
        while chunk := f.readline(1 << 20):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as e:
                return n, e.reason
            n += chunk.endswith(b"\n")
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError as e:
            return n, e.reason
    return n, "invalid byte"


def _rows_csv(path: Path, limits: CatalogLimits = DEFAULT_LIMITS) -> Iterator[tuple[str, Any]]:
    """CSV columns: id,title,description,image,audio and any others as attributes.

    List-valued cells use ``|`` as separator (``Drama|Crime``). Physical lines are read with a bounded
    readline and a record (which quoted cells may spread over lines) is refused once it passes
    ``max_row_bytes``, before the csv module has to hold it.
    """
    if csv.field_size_limit() < limits.max_row_bytes:
        # Process-wide and only ever raised here: the byte count below refuses large records first.
        csv.field_size_limit(limits.max_row_bytes)
    cap = limits.max_row_bytes + 2
    record = [0, 0]  # [bytes of the record being read, physical lines read]

    def lines(f) -> Iterator[str]:
        while line := f.readline(cap):
            record[1] += 1
            where = f"{path}:{record[1]}"
            size = len(line) if line.isascii() else len(line.encode("utf-8"))
            ending = len(line) - len(line.rstrip("\r\n"))
            if len(line) == cap and not ending or record[0] + size - ending > limits.max_row_bytes:
                raise _row_too_long(where, limits)
            record[0] += size
            if "\x00" in line:
                raise CatalogError(f"{where}: contains a NUL character")
            yield line

    with path.open(encoding="utf-8-sig", newline="") as f:
        reader = csv.DictReader(lines(f))
        try:
            if not reader.fieldnames or "id" not in reader.fieldnames or "title" not in reader.fieldnames:
                raise CatalogError(f"{path}:1: CSV header must include 'id' and 'title', got {_short(reader.fieldnames, 200)}")
            record[0] = 0
            for row in reader:
                where = f"{path}:{reader.line_num}"
                record[0] = 0
                if None in row:
                    raise CatalogError(f"{where}: more cells than header columns")
                out: dict[str, Any] = {"attributes": {}}
                for k, v in row.items():
                    if k in _KNOWN_FIELDS - {"attributes"}:
                        out[k] = v
                    elif v is not None and v.strip():
                        out["attributes"][k] = _parse_csv_cell(k, v)
                yield where, out
        except csv.Error as e:
            raise CatalogError(f"{path}:{reader.line_num}: malformed CSV ({e})") from None
        except UnicodeDecodeError:
            n, reason = _utf8_error_line(path)
            raise CatalogError(f"{path}:{n}: not UTF-8 text ({reason})") from None


# Demo catalogs shipped inside the package, by the name `catalog = "<name>"` accepts in a config.
PACKAGED_CATALOGS = {"films": "demo_films.jsonl", "books": "demo_books.jsonl"}


def load_catalog(path: str | Path, *, limits: CatalogLimits | None = None,
                 media_root: str | os.PathLike | None = None) -> Catalog:
    """Load and validate a ``.jsonl`` or ``.csv`` catalog (or a packaged one by name); all-or-nothing.

    ``limits`` bounds rows, fields and item count (:class:`CatalogLimits`, defaults when None). Local
    image/audio paths are relative to the catalog file's folder, or to ``media_root`` when given, and must
    resolve (symlinks followed) inside that folder; an existing one must be an image / audio file by its
    first bytes. http(s) URLs are kept as they are. Every problem is one :class:`CatalogError` line naming
    the file, and the line and field where there is one.
    """
    limits = limits or DEFAULT_LIMITS
    if isinstance(path, str) and path in PACKAGED_CATALOGS:
        path = Path(str(resources.files("chatrec") / "data" / PACKAGED_CATALOGS[path]))
    path = Path(path)
    if not path.exists():
        raise CatalogError(f"{path}: catalog file not found")
    if path.is_dir():
        raise CatalogError(f"{path}: is a folder, not a catalog file")
    if not path.is_file():
        raise CatalogError(f"{path}: not a regular file")
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json"):
        rows = _rows_jsonl(path, limits)
    elif suffix == ".csv":
        rows = _rows_csv(path, limits)
    else:
        raise CatalogError(f"{path}: unsupported catalog format {suffix!r}; use .jsonl or .csv")
    base = path.parent if media_root is None else Path(media_root)
    if not base.is_dir():
        raise CatalogError(f"{path}: media root {base} is not a folder")
    try:
        media = _MediaRoot(base, base.resolve(), "the catalog folder" if media_root is None else "the media root")
    except (OSError, RuntimeError) as e:
        raise CatalogError(f"{path}: cannot resolve the media folder {base} ({_clip(str(e))})") from None
    items: list[Item] = []
    first_line: dict[str, str] = {}
    try:
        for where, row in rows:
            if len(items) >= limits.max_items:
                raise CatalogError(f"{where}: more than {limits.max_items:,} items (CatalogLimits.max_items)")
            item = _validate_row(row, where, media, limits)
            if item.id in first_line:
                raise CatalogError(f"{where}: field 'id': duplicate id {_short(item.id)} (first at {first_line[item.id]})")
            first_line[item.id] = where
            items.append(item)
    except UnicodeDecodeError as e:  # the readers name the line; this is a last resort
        raise CatalogError(f"{path}: not UTF-8 text ({e.reason})") from None
    except OSError as e:
        raise CatalogError(f"{path}: cannot read catalog ({e.strerror or e})") from None
    if not items:
        raise CatalogError(f"{path}: catalog has no items")
    sidecar = path.with_name(path.stem + SCHEMA_SUFFIX)
    schema = Schema.from_file(sidecar, items) if sidecar.is_file() else None
    return Catalog(items, source=str(path), schema=schema, media_root=media.root)


def demo_catalog_path() -> Path:
    """The demo film catalog shipped inside the package."""
    return Path(str(resources.files("chatrec") / "data" / "demo_films.jsonl"))


def load_demo_catalog() -> Catalog:
    return load_catalog(demo_catalog_path())
