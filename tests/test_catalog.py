import json

import pytest

from chatrec.catalog import Catalog, CatalogError, Item, load_catalog, load_demo_catalog


def write(tmp_path, name, lines):
    p = tmp_path / name
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return p


def row(**kw):
    base = {"id": "x", "title": "X", "description": "d", "attributes": {"year": 2000, "genres": ["Drama"]}}
    base.update(kw)
    return json.dumps(base)


def test_demo_catalog_is_large_and_well_formed():
    cat = load_demo_catalog()
    assert len(cat) >= 300
    years = [it.year for it in cat]
    assert all(isinstance(y, int) for y in years)
    assert min(years) < 1950 and max(years) > 2015  # spans decades
    for it in cat:
        assert it.description and it.values("genres") and it.values("director"), it.id
        assert 2 <= len(it.values("cast")) <= 3 or "Documentary" in it.values("genres"), it.id
    assert len({g for it in cat for g in it.values("genres")}) >= 15


@pytest.mark.parametrize(
    "lines, message",
    [
        ([row(id="a"), row(id="a")], ":2: field 'id': duplicate id 'a' (first at"),
        ([row(id="a"), row(id="b", title="")], ":2: field 'title' is missing"),
        ([row(id="a", attributes={"year": "1999"})], ":1: field 'attributes.year' must be an integer"),
        ([row(id="a"), "{not json"], ":2: invalid JSON"),
        ([row(id="a", attributes=[1, 2])], ":1: field 'attributes' must be an object"),
        ([row(id="a", colour="red")], ":1: unknown field(s) ['colour']"),
        ([row(id="")], ":1: field 'id' must be a non-empty string"),
        ([row(id="a", attributes={"cast": [{"name": "x"}]})], "attributes.cast' must be a scalar or a list"),
    ],
)
def test_validation_names_file_line_and_field(tmp_path, lines, message):
    p = write(tmp_path, "cat.jsonl", lines)
    with pytest.raises(CatalogError) as e:
        load_catalog(p)
    assert str(p) in str(e.value) and message in str(e.value)


def test_csv_reader_with_list_cells(tmp_path):
    p = tmp_path / "c.csv"
    p.write_text("id,title,description,year,genres,image\n1,Heat,Cops and robbers,1995,Crime|Thriller,heat.jpg\n")
    cat = load_catalog(p)
    it = cat.get("1")
    assert it.year == 1995 and it.values("genres") == ["Crime", "Thriller"]
    assert it.image == str(tmp_path / "heat.jpg")  # relative to the catalog file


def test_csv_bad_header_and_empty(tmp_path):
    p = tmp_path / "c.csv"
    p.write_text("name,desc\nx,y\n")
    with pytest.raises(CatalogError, match="header must include 'id' and 'title'"):
        load_catalog(p)
    e = write(tmp_path, "e.jsonl", [""])
    with pytest.raises(CatalogError, match="no items"):
        load_catalog(e)
    with pytest.raises(CatalogError, match="unsupported catalog format"):
        load_catalog(write(tmp_path, "c.xml", ["<x/>"]))


def test_content_hash_changes_with_any_item():
    a = Catalog([Item("1", "A", "x", {"year": 1})])
    b = Catalog([Item("1", "A", "x", {"year": 2})])
    assert a.content_hash() != b.content_hash()
    assert a.content_hash() == Catalog([Item("1", "A", "x", {"year": 1})]).content_hash()


def test_item_facts_and_text():
    it = Item("1", "Heat", "A heist.", {"year": 1995, "genres": ["Crime"], "director": "Michael Mann"})
    assert ("director", "Michael Mann") in it.facts() and ("year", "1995") in it.facts()
    assert "Heat" in it.text() and "Michael Mann" in it.text()


def test_schema_is_inferred_from_the_attributes():
    from chatrec.catalog import Schema

    films = Catalog([Item("a", "A", attributes={"director": ["X"], "cast": ["Y"], "genres": ["Drama"]})])
    books = Catalog([Item("b", "B", attributes={"author": ["Z"], "genres": ["Classic"], "pages": 300})])
    other = Catalog([Item("c", "C", attributes={"colour": "red"})])
    assert films.schema == Schema("film", "films", (("genres", 3), ("director", 2), ("cast", 3)))
    assert books.schema.item_noun == "book" and books.schema.person_keys() == ("author",)
    assert other.schema.item_noun == "item" and ("colour", 2) in other.schema.line_attributes


def test_schema_sidecar_overrides_and_bad_sidecar_is_refused(tmp_path):
    path = tmp_path / "albums.jsonl"
    path.write_text(json.dumps({"id": "k", "title": "Kind of Blue", "attributes": {"artist": ["Miles Davis"],
                                                                                  "label": "Columbia"}}) + "\n")
    assert load_catalog(path).schema.item_noun == "album"
    (tmp_path / "albums.schema.json").write_text(json.dumps({"item_noun": "record", "line_attributes": {"artist": 1}}))
    cat = load_catalog(path)
    assert cat.schema.item_noun == "record" and cat.schema.line_attributes == (("artist", 1),)
    # Every attribute with words reaches retrieval, not only the film keys.
    assert "label: Columbia" in cat[0].text() and "artist: Miles Davis" in cat[0].text()
    (tmp_path / "albums.schema.json").write_text(json.dumps({"noun": "record"}))
    with pytest.raises(CatalogError, match="albums.schema.json"):
        load_catalog(path)


def test_packaged_catalogs_by_name():
    books = load_catalog("books")
    assert len(books) >= 150 and books.schema.item_noun == "book"
    assert all(it.values("author") and it.year for it in books)
