from pathlib import Path

import pytest

from chatrec.catalog import load_catalog
from chatrec.evaluation.importers import TitleMatcher, import_inspired, import_redial, normalize_title, split_title_year

FIXTURES = Path(__file__).parents[1] / "fixtures"


@pytest.fixture(scope="module")
def catalog():
    return load_catalog(FIXTURES / "films_small.jsonl")


@pytest.mark.parametrize(
    "raw, norm",
    [
        ("The Matrix", "matrix"),
        ("Matrix, The", "matrix"),
        ("Amélie", "amelie"),
        ("Terminator 2: Judgment Day", "terminator 2 judgment day"),
        ("Lilo & Stitch", "lilo and stitch"),
        ("A", "a"),  # a title that is only an article keeps it
    ],
)
def test_normalize_title(raw, norm):
    assert normalize_title(raw) == norm


def test_split_title_year():
    assert split_title_year("The Matrix (1999)") == ("The Matrix", 1999)
    assert split_title_year("Jaws") == ("Jaws", None)
    assert split_title_year("The Woman in Black (2012 film)") == ("The Woman in Black", 2012)
    assert split_title_year("Heat (1995 American film)") == ("Heat", 1995)
    assert split_title_year("Heat (film)") == ("Heat", None)
    assert split_title_year("Up (Pixar film)") == ("Up", None)
    assert split_title_year("1917 (2019)") == ("1917", 2019)


def test_two_items_with_one_title_and_year_are_not_guessed():
    from chatrec.catalog import Catalog, Item

    twins = Catalog([Item("a-1999", "Twin", attributes={"year": 1999}), Item("b-1999", "Twin", attributes={"year": 1999})])
    assert TitleMatcher(twins).match("Twin", 1999) is None


def test_matcher_uses_year_to_disambiguate(catalog):
    m = TitleMatcher(catalog)
    assert m.match("All Quiet on the Western Front", 1930) == "all-quiet-on-the-western-front-1930"
    assert m.match("All Quiet on the Western Front", 2022) == "all-quiet-on-the-western-front-2022"
    assert m.match("All Quiet on the Western Front") is None  # ambiguous without a year
    assert m.match("Heat", 1996) == "heat-1995"  # one year of slack
    assert m.match("Heat", 2005) is None
    assert m.match_mention("Amelie (2001)") == "amelie-2001"


def test_import_redial(catalog):
    res = import_redial(FIXTURES / "redial" / "test_data.jsonl", catalog)
    assert [d.id for d in res.dialogues] == ["redial-20001", "redial-20002", "redial-20003"]
    assert all(d.split == "test" and d.source == "redial" for d in res.dialogues)
    # Line 3 is broken JSON, line 5 has no messages.
    assert [s.where.rsplit(":", 1)[1] for s in res.skipped] == ["3", "5"]
    assert res.unmatched == {"Zzyzx Road (2006)": 1}

    d1 = res.dialogues[0]
    assert [t.role for t in d1.turns] == ["user", "assistant", "user", "assistant", "user"]
    assert d1.turns[0].text == "Hi! I want a good sci-fi movie I loved The Matrix"  # runs merged, @ids replaced
    assert d1.turns[0].liked == ("the-matrix-1999",)
    assert d1.turns[1].targets == ("the-terminator-1984",)
    assert d1.turns[2].rejected == ("the-terminator-1984",)  # the reply to the suggestion carries the opinion
    assert d1.turns[3].targets == ("blade-runner-1982",)
    assert d1.turns[4].liked == ("blade-runner-1982",)
    assert d1.target == "blade-runner-1982"

    d2 = res.dialogues[1]
    assert d2.turns[1].targets == ("amelie-2001",)
    assert "Zzyzx Road" in d2.turns[2].text  # unmatched titles stay in the text
    assert d2.turns[3].targets == ("spirited-away-2001",)

    d3 = res.dialogues[2]
    assert d3.turns[0].liked == ("all-quiet-on-the-western-front-1930",)
    assert d3.turns[1].targets == ("casablanca-1942", "jaws-1975")
    assert d3.turns[2].liked == ("casablanca-1942",) and d3.turns[2].rejected == ("jaws-1975",)


def test_redial_does_not_target_what_the_user_named(catalog):
    res = import_redial(FIXTURES / "redial" / "test_data.jsonl", catalog)
    for d in res.dialogues:
        for i in d.recommendation_turns():
            said = {x for t in d.turns[:i] if t.role == "user" for x in t.liked + t.rejected}
            assert not said & set(d.turns[i].targets)


def test_import_inspired_folder(catalog):
    res = import_inspired(FIXTURES / "inspired" / "dialog_data", catalog)
    by_id = {d.id: d for d in res.dialogues}
    assert set(by_id) == {
        "inspired-20191127-224739_530_live",
        "inspired-20191130-081727_440_live",
        "inspired-20191202-101010_777_live",
    }
    assert res.unmatched == {"Hustlers (2019)": 1}
    assert len(res.skipped) == 1 and "NARRATOR" in res.skipped[0].reason

    d = by_id["inspired-20191127-224739_530_live"]
    assert d.split == "test" and d.meta["case"] == "accept_rating_good"
    assert [t.role for t in d.turns] == ["assistant", "user", "assistant", "user", "assistant", "user"]
    assert d.turns[1].text.endswith('"Toy Story".')
    assert d.turns[2].targets == ()  # Hustlers is not in the catalog
    assert d.turns[4].targets == ("finding-nemo-2003", "spirited-away-2001")

    d = by_id["inspired-20191130-081727_440_live"]
    assert d.turns[1].targets == ("die-hard-1988",)
    assert d.turns[3].targets == ("the-terminator-1984",)
    assert by_id["inspired-20191202-101010_777_live"].split == "train"


def test_import_inspired_single_file(catalog):
    res = import_inspired(FIXTURES / "inspired" / "dialog_data" / "train.tsv", catalog)
    assert len(res.dialogues) == 1 and res.dialogues[0].turns[1].targets == ("the-shining-1980",)
