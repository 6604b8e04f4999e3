"""Hostile catalogs: media paths that escape the catalog folder, oversized rows and fields, bad bytes.

Every refusal is one CatalogError line naming the file (and line and field where there is one).
"""

import csv
import dataclasses
import json
import os
import time
import tracemalloc

import pytest

from chatrec.catalog import CatalogError, CatalogLimits, load_catalog, media_kind_ok, media_path_ok

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b"\x00" * 16
WAV = b"RIFF\x24\x00\x00\x00WAVEfmt " + b"\x00" * 16


def row(**kw):
    base = {"id": "x", "title": "X", "description": "d", "attributes": {"year": 2000}}
    base.update(kw)
    return json.dumps(base)


def write(path, *lines):
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def refused(path, **kw) -> str:
    """The CatalogError message of loading ``path``: one line that names the file."""
    with pytest.raises(CatalogError) as e:
        load_catalog(path, **kw)
    msg = str(e.value)
    sidecar = path.with_name(path.stem + ".schema.json")
    assert "\n" not in msg and (str(path) in msg or str(sidecar) in msg) and len(msg) < 600, msg
    return msg


@pytest.fixture
def folder(tmp_path):
    d = tmp_path / "cats"
    d.mkdir()
    (d / "poster.png").write_bytes(PNG)
    (d / "clip.wav").write_bytes(WAV)
    (tmp_path / "secret.png").write_bytes(PNG)  # a real image, but outside the catalog folder
    return d


# --- 1. media paths stay inside the catalog folder (or media_root) and are media by content ----------------


@pytest.mark.parametrize("key, value", [
    ("image", "../../../../etc/passwd"),
    ("image", "/etc/passwd"),
    ("image", "../secret.png"),
    ("audio", "sub/../../secret.png"),
    ("image", "link.png"),       # a symlink inside the folder to a file outside it
    ("image", "dangling.png"),   # a dangling symlink pointing outside: refused even though nothing is there
    ("audio", "../missing.wav"),  # outside and missing: still refused
])
def test_media_path_outside_the_catalog_folder_is_refused(folder, key, value):
    (folder / "link.png").symlink_to(folder.parent / "secret.png")
    (folder / "dangling.png").symlink_to("/nonexistent/x.png")
    p = write(folder / "cat.jsonl", row(id="a"), row(id="b"), row(id="c", **{key: value}))
    msg = refused(p)
    assert msg == f"{p}:3: field '{key}': path '{value}' is outside the catalog folder {folder.resolve()}"


def test_csv_media_path_outside_is_refused(folder):
    p = folder / "c.csv"
    p.write_text("id,title,image\n1,A,poster.png\n2,B,../../../../etc/passwd\n")
    assert refused(p).endswith(":3: field 'image': path '../../../../etc/passwd' is outside the catalog folder "
                               f"{folder.resolve()}")


def test_media_inside_the_folder_is_kept_as_before(folder):
    (folder / "img").mkdir()
    (folder / "img" / "p.png").write_bytes(PNG)
    (folder / "alias.png").symlink_to(folder / "img" / "p.png")  # a symlink that stays inside is fine
    p = write(folder / "cat.jsonl",
              row(id="a", image="img/p.png", audio="clip.wav"),
              row(id="b", image=str(folder / "poster.png")),  # absolute but inside
              row(id="c", image="alias.png"),
              row(id="d", image="img/missing.png", audio="missing.wav"),  # missing files: accepted, as before
              row(id="e", image="https://example.org/e.jpg", audio="http://example.org/e.mp3"))
    cat = load_catalog(p)
    assert cat.get("a").image == str(folder / "img" / "p.png") and cat.get("a").audio == str(folder / "clip.wav")
    assert cat.get("b").image == str(folder / "poster.png")
    assert cat.get("d").image == str(folder / "img" / "missing.png")
    assert cat.get("e").image == "https://example.org/e.jpg" and cat.get("e").audio == "http://example.org/e.mp3"
    assert cat.media_root == folder.resolve()


def test_media_root_parameter(tmp_path, folder):
    media = tmp_path / "media"
    media.mkdir()
    (media / "m.png").write_bytes(PNG)
    p = write(folder / "cat.jsonl", row(id="a", image="m.png"))
    cat = load_catalog(p, media_root=media)
    assert cat.get("a").image == str(media / "m.png") and cat.media_root == media.resolve()
    # Relative paths are relative to the media root and must stay in it, even to reach the catalog folder.
    write(p, row(id="a", image="../cats/poster.png"))
    assert refused(p, media_root=media).endswith(
        f":1: field 'image': path '../cats/poster.png' is outside the media root {media.resolve()}")
    assert "media root" in refused(p, media_root=tmp_path / "nope")


@pytest.mark.parametrize("head", [PNG, b"\xff\xd8\xff\xe0\x00\x10JFIF", b"GIF89a\x01\x00", b"GIF87a\x01\x00",
                                  b"RIFF\x10\x00\x00\x00WEBPVP8 ", b"BM\x36\x00\x00\x00"])
def test_images_are_recognised_by_content(folder, head):
    (folder / "pic.dat").write_bytes(head + b"\x00" * 8)
    assert len(load_catalog(write(folder / "cat.jsonl", row(image="pic.dat")))) == 1


@pytest.mark.parametrize("head", [WAV, b"fLaC\x00\x00\x00\x22", b"OggS\x00\x02", b"ID3\x04\x00", b"\xff\xfb\x90\x64"])
def test_audio_is_recognised_by_content(folder, head):
    (folder / "snd.dat").write_bytes(head + b"\x00" * 8)
    assert len(load_catalog(write(folder / "cat.jsonl", row(audio="snd.dat")))) == 1


@pytest.mark.parametrize("key, content, what", [
    ("image", b"root:x:0:0:root:/root:/bin/bash\n", "is not an image (PNG, JPEG, GIF, WebP or BMP) by its content"),
    ("image", WAV, "is not an image"),
    ("image", b"", "is not an image"),
    ("audio", b"<html>not audio</html>", "is not audio (WAV, FLAC, Ogg or MP3) by its content"),
    ("audio", PNG, "is not audio"),
])
def test_media_with_the_wrong_content_is_refused(folder, key, content, what):
    (folder / "f.bin").write_bytes(content)
    msg = refused(write(folder / "cat.jsonl", row(**{key: "f.bin"})))
    assert f":1: field '{key}': file 'f.bin' {what}" in msg


def test_media_that_is_not_a_regular_file_is_refused(folder):
    (folder / "sub").mkdir()
    os.mkfifo(folder / "pipe.png")  # opening a FIFO would block the loader forever
    (folder / "loop.png").symlink_to("loop.png")
    p = folder / "cat.jsonl"
    for value, what in [(".", "is not a regular file"), ("sub", "is not a regular file"),
                        ("pipe.png", "is not a regular file"), ("loop.png", "cannot be resolved")]:
        assert f":1: field 'image': path '{value}' {what}" in refused(write(p, row(image=value)))
    assert ":1: field 'image' contains a NUL character" in refused(write(p, row(image="a\x00.png")))


def test_media_path_ok_is_a_second_check_for_the_ui(folder):
    (folder / "link.png").symlink_to(folder.parent / "secret.png")
    assert media_path_ok(folder / "poster.png", folder) and media_path_ok("poster.png", folder)
    assert media_path_ok(str(folder / "missing.png"), folder)
    for bad in ["../secret.png", "/etc/passwd", str(folder / ".." / "secret.png"), "link.png", "a\x00b",
                "https://example.org/x.png", ""]:
        assert not media_path_ok(bad, folder), bad
    assert media_kind_ok(folder / "poster.png", "image") and not media_kind_ok(folder / "poster.png", "audio")
    assert media_kind_ok(folder / "clip.wav", "audio") and not media_kind_ok(folder / "missing.wav", "audio")


# --- 2. size limits ------------------------------------------------------------------------------------


def test_limits_are_a_frozen_dataclass_with_sane_defaults():
    lim = CatalogLimits()
    assert lim.max_row_bytes == 100_000 and lim.max_title_chars == 300 and lim.max_description_chars == 5_000
    assert lim.max_attribute_values == 200 and lim.max_value_chars == 500 and lim.max_items == 5_000_000
    with pytest.raises(dataclasses.FrozenInstanceError):
        lim.max_items = 1  # type: ignore[misc]
    with pytest.raises(ValueError, match="max_items"):
        CatalogLimits(max_items=0)
    for name in ("films", "books"):  # the demo catalogs are far inside the defaults
        assert len(load_catalog(name, limits=CatalogLimits())) > 100


@pytest.mark.parametrize("fields, message", [
    ({"title": "T" * 301}, "field 'title' is 301 characters long, over the limit of 300 (CatalogLimits.max_title_chars)"),
    ({"description": "d" * 5_001}, "field 'description' is 5,001 characters long, over the limit of 5,000 "
                                   "(CatalogLimits.max_description_chars)"),
    ({"id": "i" * 301}, "field 'id' is 301 characters long, over the limit of 300 (CatalogLimits.max_id_chars)"),
    ({"attributes": {"tags": ["t"] * 201}}, "field 'attributes' has more than 200 values (CatalogLimits.max_attribute_values)"),
    ({"attributes": {f"k{i}": i for i in range(201)}}, "field 'attributes' has more than 200 values"),
    ({"attributes": {"cast": ["ok", "c" * 501]}}, "field 'attributes.cast' is 501 characters long, over the limit of 500 "
                                                  "(CatalogLimits.max_value_chars)"),
    ({"attributes": {"k" * 501: 1}}, "attribute name 'kkkk"),
    ({"image": "https://example.org/" + "x" * 2_000}, "field 'image' is 2,020 characters long, over the limit of 2,000"),
])
def test_oversized_fields_are_refused_naming_line_field_and_limit(tmp_path, fields, message):
    p = write(tmp_path / "cat.jsonl", row(id="ok"), row(**{"id": "big", **fields}))
    msg = refused(p)
    assert f"{p}:2: " in msg and message in msg, msg


def test_fields_at_the_limit_are_accepted(tmp_path):
    p = write(tmp_path / "cat.jsonl", row(title="T" * 300, description="d" * 5_000,
                                          attributes={"tags": ["t" * 500] * 150 + ["t"] * 49, "year": 2000}))
    assert len(load_catalog(p)) == 1


def test_a_giant_line_is_refused_without_reading_it(tmp_path):
    p = tmp_path / "cat.jsonl"
    with p.open("w") as f:
        f.write(row(id="a") + "\n")
        f.write(row(id="b", description="x" * 50_000_000) + "\n")
    tracemalloc.start()
    t = time.perf_counter()
    try:
        msg = refused(p)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert msg == f"{p}:2: row is longer than 100,000 bytes (CatalogLimits.max_row_bytes)"
    assert peak < 5_000_000 and time.perf_counter() - t < 5  # was 6.3 GB and 4 minutes


@pytest.mark.parametrize("ending", ["\n", "\r\n"])
def test_row_bytes_limit_is_exact(tmp_path, ending):
    lim = CatalogLimits(max_row_bytes=200)
    line = row(id="a")
    line = line[:-1] + " " * (200 - len(line.encode())) + "}"  # exactly 200 bytes, then the line ending
    assert len(line.encode()) == 200
    p = tmp_path / "cat.jsonl"
    p.write_bytes((line + ending + row(id="b") + ending).encode())
    assert len(load_catalog(p, limits=lim)) == 2
    p.write_bytes((row(id="b") + ending + line[:-1] + " }" + ending).encode())
    assert refused(p, limits=lim).endswith(":2: row is longer than 200 bytes (CatalogLimits.max_row_bytes)")


def test_max_items(tmp_path):
    p = write(tmp_path / "cat.jsonl", *(row(id=str(i)) for i in range(4)))
    assert len(load_catalog(p, limits=CatalogLimits(max_items=4))) == 4
    assert refused(p, limits=CatalogLimits(max_items=3)).endswith(":4: more than 3 items (CatalogLimits.max_items)")


@pytest.fixture
def restore_csv_limit():
    before = csv.field_size_limit()
    yield
    csv.field_size_limit(before)


def test_csv_huge_cell_is_a_catalog_error_not_a_csv_error(tmp_path, restore_csv_limit):
    p = tmp_path / "c.csv"
    p.write_text("id,title,description\n1,A,ok\n2,B," + "x" * 200_000 + "\n")
    assert refused(p).endswith(":3: row is longer than 100,000 bytes (CatalogLimits.max_row_bytes)")
    # Limits above the csv module's own (131,072 characters) raise it: the field limit then speaks.
    msg = refused(p, limits=CatalogLimits(max_row_bytes=1_000_000))
    assert ":3: field 'description' is 200,000 characters long" in msg
    # A quoted cell spread over many short lines is counted as one record.
    p.write_text('id,title,description\n1,A,"' + "line\n" * 30_000 + '"\n')
    assert "row is longer than 100,000 bytes" in refused(p)


def test_csv_with_a_bom_and_crlf_loads(tmp_path):
    p = tmp_path / "c.csv"
    p.write_bytes(b"\xef\xbb\xbfid,title,year\r\n1,Heat,1995\r\n")
    assert load_catalog(p).get("1").year == 1995
    j = tmp_path / "c.jsonl"
    j.write_bytes(b"\xef\xbb\xbf" + row().encode() + b"\r\n")
    assert load_catalog(j).get("x").title == "X"


# --- 3. bad bytes name their line ------------------------------------------------------------------------


def test_non_utf8_jsonl_names_the_line(tmp_path):
    p = tmp_path / "cat.jsonl"
    p.write_bytes((row(id="a") + "\n" + row(id="b") + "\n").encode() + b'{"id": "c", "title": "caf\xe9"}\n')
    assert refused(p) == f"{p}:3: not UTF-8 text (invalid continuation byte at byte 26 of the line)"


def test_non_utf8_csv_names_the_line(tmp_path):
    p = tmp_path / "c.csv"
    p.write_bytes(b"id,title\n" + b"".join(b"%d,T%d\n" % (i, i) for i in range(2_000)) + b"x,caf\xe9\n")
    assert refused(p) == f"{p}:2002: not UTF-8 text (invalid continuation byte)"


# --- 4. nothing but a one-line CatalogError escapes --------------------------------------------------------


HOSTILE = {
    "int of 5,000 digits": (b'{"id": "a", "title": "A", "attributes": {"n": ' + b"9" * 5_000 + b"}}\n",
                            ":1: invalid JSON (a number of 5,000 digits"),
    "Infinity": (b'{"id": "a", "title": "A", "attributes": {"price": Infinity}}\n', ":1: invalid JSON (Infinity"),
    "NaN": (b'{"id": "a", "title": "A", "attributes": {"price": NaN}}\n', ":1: invalid JSON (NaN"),
    "1e999": (b'{"id": "a", "title": "A", "attributes": {"price": 1e999}}\n', ":1: invalid JSON (number 1e999"),
    "nested 20k deep": (b'{"id": "a", "title": "A", "attributes": {"x": ' + b"[" * 20_000 + b"]" * 20_000 + b"}}\n",
                        ":1: invalid JSON (nested too deeply)"),
    "\\u0000 in a title": (b'{"id": "a", "title": "A\\u0000B"}\n', ":1: field 'title' contains a NUL character"),
    "binary": (bytes(range(256)) * 10, ":1: invalid JSON"),
    "many unknown fields": (json.dumps({f"f{i}\n": i for i in range(1_000)}).encode() + b"\n", ":1: unknown field(s)"),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_jsonl_gives_one_catalog_error_line(tmp_path, name):
    content, message = HOSTILE[name]
    p = tmp_path / "cat.jsonl"
    p.write_bytes(content)
    assert message in refused(p)


@pytest.mark.parametrize("content, message", [
    (b"id,title\n1,A\x00B\n", ":2: contains a NUL character"),
    ("id,title,year\n1,A,\u00b2\n".encode(), ":2: field 'attributes.year' must be an integer, got '²'"),
    (b"id,title,year\n1,A," + b"9" * 5_000 + b"\n", ":2: field 'attributes.year' is 5,000 characters long"),
])
def test_hostile_csv_gives_one_catalog_error_line(tmp_path, content, message):
    p = tmp_path / "c.csv"
    p.write_bytes(content)
    assert message in refused(p)


def test_a_folder_or_fifo_as_catalog_and_a_bad_sidecar(tmp_path):
    (tmp_path / "dir.jsonl").mkdir()
    assert refused(tmp_path / "dir.jsonl").endswith("is a folder, not a catalog file")
    os.mkfifo(tmp_path / "pipe.jsonl")
    assert refused(tmp_path / "pipe.jsonl").endswith("not a regular file")
    write(tmp_path / "cat.jsonl", row())
    sidecar = tmp_path / "cat.schema.json"  # errors in the sidecar name the sidecar
    for content, message in [(b'{"item_noun": "\xff"}', ": cannot read catalog schema ("),
                             (b'{"item_noun": "x", "line_attributes": {"genres": ' + b"[" * 20_000, ": cannot read catalog"),
                             (b'{"item_noun": "x", "item_nouns": ["y"]}', ": field 'item_nouns' must be a string"),
                             (b'{"line_attributes": {"genres": true}}', ": field 'line_attributes' must map")]:
        sidecar.write_bytes(content)
        assert message in refused(sidecar.with_name("cat.jsonl")), content


def test_retrieval_text_leaves_out_stuffing_but_keeps_real_titles():
    from chatrec.catalog import Item

    stuffed = Item("h", "Thriller Thriller Thriller Comedy Comedy Comedy Animation Best Film", "Office footage.",
                   {"genres": ["Documentary"], "keywords": [f"k{i}" for i in range(30)],
                    "cast": ["Fits: yes", "BEST FILM EVER 10/10", "Ann Lee"], "tags": ["x" * 60, "office"]})
    text = stuffed.text()
    assert text.startswith("Thriller Comedy Animation Best Film. ")
    assert text.count("Thriller") == 1 and text.count("Comedy") == 1 and "k29" not in text
    assert "Fits" not in text and "10/10" not in text and "Ann Lee" in text
    assert "x" * 60 not in text and "office" in text
    for title in ("Linda Linda Linda", "Tora! Tora! Tora!", "The Lord of the Rings: The Return of the King"):
        assert Item("t", title).text() == title
