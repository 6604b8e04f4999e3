import pytest

from chatrec.catalog import Catalog, Item
from chatrec.linking import Linker, tokens


@pytest.fixture(scope="module")
def linker(small_catalog):
    return Linker(small_catalog)


def titles(linker, text):
    return [m.key for m in linker.link(text) if m.kind == "title"]


def people(linker, text):
    return [m.key for m in linker.link(text) if m.kind == "person"]


@pytest.mark.parametrize("text, want", [
    ("i loved the godfather", ["the-godfather-1972"]),  # lower case, article
    ("Godfather was great", ["the-godfather-1972"]),  # without its article, at a sentence start
    ("my kids watched toy story 2 twice", ["toy-story-2-1999"]),  # the sequel, not the first film
    ("terminator 2 or The Terminator?", ["terminator-2-judgment-day-1991", "the-terminator-1984"]),  # before the colon
    ("finding nemmo made me cry", ["finding-nemo-2003"]),  # a typo in a longer title
    ("We loved Amelie and Spirited Away", ["amelie-2001", "spirited-away-2001"]),  # accents
    ("Tonight: Heat or Jaws?", ["heat-1995", "jaws-1975"]),  # one-word titles marked by capitals
    ("saw casablanca last week", ["casablanca-1942"]),  # lower case after a cue word
    ("I'd like 'Jaws' please", ["jaws-1975"]),  # quoted
])
def test_titles_people_write_are_linked(linker, text, want):
    assert titles(linker, text) == want


@pytest.mark.parametrize("text", [
    "I can't stand the heat of summer",  # a word, not a title
    "we went to an Alien Ant Farm concert",  # inside a longer capitalised name
    "Heat wave here, so something cool",  # short word at a sentence start
    "my son jaws on about sharks",  # lower case, no cue
])
def test_words_that_only_look_like_titles_are_not(linker, text):
    assert titles(linker, text) == []


def test_people_by_full_name_or_unique_surname(linker):
    assert people(linker, "anything with al pacino?") == ["Al Pacino"]
    assert people(linker, "Something Kubrick-ish please") == ["Stanley Kubrick"]
    assert people(linker, "a kubrick film") == []  # a lower-case surname alone is too weak
    assert people(linker, "loved Jamie Lee Curtis in it") == ["Jamie Lee Curtis"]
    assert titles(linker, "loved Jamie Lee Curtis in it") == []


def test_spans_and_confidence(linker):
    text = "Loved Heat, and ridley scott too"
    heat, ridley = linker.link(text)
    assert text[heat.start:heat.end] == "Heat" and heat.score == 1.0
    assert text[ridley.start:ridley.end] == "ridley scott" and ridley.kind == "person"
    fuzzy = linker.link("finding nemmo")[0]
    assert 0.7 <= fuzzy.score < 1.0


def test_tokens_unify_sequel_numbers_and_possessives():
    assert [t.norm for t in tokens("The Godfather Part II & Kubrick's")] == ["the", "godfather", "2", "and", "kubrick"]
    assert [t.norm for t in tokens("Dune: Part Two")] == ["dune", "2"]


def test_a_year_in_parentheses_marks_a_title_and_picks_the_remake():
    from chatrec.catalog import Catalog, Item

    cat = Catalog([Item("scarface-1932", "Scarface", attributes={"year": 1932}),
                   Item("scarface-1983", "Scarface", attributes={"year": 1983}),
                   Item("heat-1995", "Heat", attributes={"year": 1995})])
    linker = Linker(cat)
    assert [m.key for m in linker.link("heat (1995) is a crime epic")] == ["heat-1995"]  # lower case, sentence start
    assert [m.key for m in linker.link("Then try Scarface (1983), the remake.")] == ["scarface-1983"]
    assert [m.key for m in linker.link("the heat was unbearable")] == []


def test_a_typo_changes_letters_not_words(small_catalog):
    from chatrec.catalog import Catalog, Item

    cat = Catalog([Item("the-thin-man-1934", "The Thin Man", attributes={"year": 1934}),
                   Item("28-days-later-2002", "28 Days Later", attributes={"year": 2002})])
    linker = Linker(cat)
    assert linker.link("just watched the thing and i'm obsessed") == []
    assert linker.link("the one where you die 7 days later") == []
    assert [m.key for m in linker.link("loved the thin mann")] == ["the-thin-man-1934"]


def test_descriptions_and_one_letter_changes_are_not_titles():
    from chatrec.catalog import Catalog, Item
    from chatrec.linking import Linker

    cat = Catalog([Item("ls", "Love Story", attributes={"year": 1970}), Item("tl", "They Live", attributes={"year": 1988}),
                   Item("lw", "The Lost Weekend", attributes={"year": 1945}), Item("qm", "The Quiet Man", attributes={"year": 1952})])
    linker = Linker(cat)
    keys = lambda text: [m.key for m in linker.link(text)]  # noqa: E731
    assert keys("something with a love story at its heart") == []
    assert keys("they love slapstick") == [] and keys("we went camping last weekend") == []
    assert keys("she is such a quiet man kind of person") == []
    # Names still link: capitalised, without the determiner, or with a small typo in a long word.
    assert keys("I loved Love Story") == ["ls"] and keys("we watched love story twice") == ["ls"]
    assert keys("have you seen They Live?") == ["tl"] and keys("the lost weeknd was great") == ["lw"]


def test_a_very_large_catalog_compares_typos_only_with_titles_sharing_a_word(monkeypatch):
    """Above BLOCK_FROM names, fuzzy matching is blocked by shared words: a typo in one word still links."""
    import chatrec.linking as linking

    monkeypatch.setattr(linking, "BLOCK_FROM", 3)
    cat = Catalog([Item("gf", "The Godfather Returns"), Item("sr", "The Silent River"), Item("cm", "Copper Mirror"),
                   Item("hl", "Hollow Lantern")])
    linker = linking.Linker(cat)
    assert linker._fuzzy_titles.by_word is not None
    assert [m.key for m in linker.link("I loved The Silent Rivr")] == ["sr"]  # "silent" is shared
    assert [m.key for m in linker.link("anything like Coper Mirror?")] == ["cm"]
    assert not linker.link("anything like Coper Mirro?")  # every word misspelt: missed when blocked, by design
    monkeypatch.setattr(linking, "BLOCK_FROM", 10**9)
    assert [m.key for m in linking.Linker(cat).link("anything like Coper Mirro?")] == ["cm"]
