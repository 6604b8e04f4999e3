"""Claim-level checks: people and their roles, titles, years, genres, claims about the user, and form."""

import pytest

from chatrec.catalog import Catalog, Item
from chatrec.claims import check, complete, loops, sentences

SE7EN = Item("se7en", "Se7en", "Two detectives hunt a killer who stages each murder after one of the seven deadly sins.",
             {"year": 1995, "genres": ["Crime", "Thriller"], "director": ["David Fincher"],
              "cast": ["Brad Pitt", "Morgan Freeman"], "keywords": ["serial killer", "rain", "bleak"]})
GROUNDHOG = Item("gd", "Groundhog Day", "A cynical TV weatherman relives the same winter day in a small town.",
                 {"year": 1993, "genres": ["Comedy", "Fantasy", "Romance"], "director": ["Harold Ramis"],
                  "cast": ["Bill Murray", "Andie MacDowell"], "keywords": ["time loop", "small town", "feel-good"]})
HEAT = Item("heat", "Heat", "A detective hunts a crew of bank robbers in Los Angeles.",
            {"year": 1995, "genres": ["Crime", "Thriller"], "director": ["Michael Mann"], "cast": ["Al Pacino"]})
KELLY = Item("sitr", "Singin' in the Rain", "", {"year": 1952, "genres": ["Musical"], "director": ["Stanley Donen"],
                                                   "cast": ["Gene Kelly"]})
THE_OTHERS = Item("others", "The Others", "", {"year": 2001, "genres": ["Horror"], "director": ["Alejandro Amenábar"],
                                               "cast": ["Nicole Kidman"]})
CAT = Catalog([SE7EN, GROUNDHOG, HEAT, KELLY, THE_OTHERS])


def verdict(text, item=GROUNDHOG, user="", liked=()):
    return check(text, item, CAT, user, liked)


@pytest.mark.parametrize("text, kind", [
    ("Se7en is a crime film; it features David Fincher.", "role"),  # a director is not 'featured'
    ("Directed by Brad Pitt, a bleak thriller.", "role"),
    ("A thriller starring Gene Kelly.", "person"),  # a catalog person of another item
    ("A thriller starring Keanu Smith.", "person"),  # a made-up person after a role word
    ("A 1997 thriller about a serial killer.", "year"),
    ("A bleak 80s thriller.", "year"),
    ("A gentle comedy about two detectives.", "genre"),
    ("Like Heat, it is a thriller about detectives.", "title"),  # the user never named or liked Heat
])
def test_false_item_claims_are_caught(text, kind):
    v = verdict(text, SE7EN, user="something feel-good")
    assert not v.ok and v.false[0].kind == kind, v.claims


@pytest.mark.parametrize("text", [
    "A bleak 1995 thriller directed by David Fincher, with Brad Pitt and Morgan Freeman hunting a serial killer.",
    "David Fincher's 90s crime story follows two detectives through the rain.",
    "Fincher keeps it bleak: Pitt and Freeman chase a killer built around the seven deadly sins.",
])
def test_true_item_claims_pass(text):
    v = verdict(text, SE7EN, user="a dark crime thriller")
    assert v.ok, v.false


def test_claims_about_the_user_need_the_conversation():
    assert not verdict("Home Alone is tagged romantic, as you mentioned.", user="something for christmas").ok
    assert verdict("You wanted a time loop: Bill Murray relives one small-town day.", user="a film with a time loop").ok
    assert not verdict("You wanted a time loop: Bill Murray relives one small-town day.", user="a war epic").ok
    # A liked film may be named; one the user never liked or named may not.
    assert verdict("Since you loved Heat, here is Bill Murray in a comedy.", user="more", liked=[HEAT]).ok
    assert not verdict("Since you loved Heat, here is Bill Murray in a comedy.", user="more").ok
    assert verdict("Heat was great, you said; this comedy is lighter.", user="I loved Heat, now something light").ok
    # A conditional is not a claim about the user.
    assert verdict("If you want something lighter, Bill Murray's comedy is it.", user="a war film").ok


def test_about_user():
    assert verdict("You asked for something funny: a comedy with Bill Murray.", user="something funny").about_user
    assert not verdict("A comedy with Bill Murray.", user="a war film").about_user
    assert verdict("Like Heat, which you liked, it is from 1995.", SE7EN, "more", [HEAT]).about_user


def test_titles_are_matched_as_written():
    # 'the others' in a sentence is not the film The Others; at a sentence start 'Heat' is a word.
    assert verdict("Bill Murray outlasts the others in a small town.", user="funny").ok
    assert not verdict("Like The Others, a chilly 1993 comedy.", user="funny").ok


@pytest.mark.parametrize("text, why", [
    ("Toy Story (1995) is a film by John Lasseter; it is animation, as you asked; it features Toy Story (19", "cut off"),
    ("A Man Called Ove is a film by A Man Called Ove is a film by A Man Called Ove.", "repeats"),
    ("One. Two. Three.", "sentences"),
    ("<Candidate 3> is great.", "artefacts"),
    ("", "empty"),
])
def test_form(text, why):
    v = verdict(text)
    assert any(c.kind == "form" and why in c.why for c in v.claims), v.claims


def test_sentences_keep_abbreviations_and_initials():
    assert sentences("Dr. Strangelove is by F. W. Murnau. Yes!") == ["Dr. Strangelove is by F. W. Murnau.", "Yes!"]
    assert complete("It is good. And then the") == "It is good."
    assert complete("No end here") == ""
    assert loops("a b c d e a b c d") and not loops("a b c d e f g h")


def test_titles_inside_titles_and_years_inside_titles():
    call = Item("call", "Call Me by Your Name", "", {"year": 2017, "genres": ["Romance"]})
    name = Item("name", "Your Name", "", {"year": 2016, "genres": ["Animation"]})
    war = Item("1917", "1917", "", {"year": 2019, "genres": ["War"], "director": ["Sam Mendes"]})
    cat = Catalog([call, name, war, HEAT])
    # A liked title that contains another title is the liked one; a year that is a title is a name.
    assert check("Since you loved Call Me by Your Name, a 2016 anime.", name, cat, "more", [call]).ok
    assert check("After 1917, Sam Mendes's 2019 war film, ...", war, cat, "war").ok
    assert check("Like 1917, it is a 1995 thriller.", HEAT, cat, "I loved 1917").ok


def test_the_fallback_kinds_of_sentence_pass():
    war = Item("cas", "Come and See", "A village boy joins the partisans in 1943 and sees the horrors of the late-1960s... no.",
               {"year": 1985, "genres": ["War", "Drama"], "director": ["Elem Klimov"], "cast": ["Aleksei Kravchenko"]})
    going = Item("ikw", "I Know Where I'm Going!", "A young woman is stranded by storms on her way to marry.",
                 {"year": 1945, "genres": ["Romance"], "director": ["Michael Powell"], "cast": ["Wendy Hiller"]})
    gravity = Item("g", "Gravity", "", {"year": 2013, "genres": ["Science Fiction"], "cast": ["Sandra Bullock"]})
    cat = Catalog([war, going, gravity])
    # A year the premise states is true by the card; a title's '!' is no sentence end; 'sci-fi' asked is science fiction.
    assert check("Come and See (1985) is a war film. A village boy joins the partisans in 1943.", war, cat).ok
    assert not check("Come and See is set in 1950.", war, cat).ok
    assert check("I Know Where I'm Going! (1945) is a romance film. A young woman is stranded by storms.", going, cat).ok
    assert check("You asked for science fiction: Gravity (2013) stars Sandra Bullock.", gravity, cat, "some sci-fi").ok


def test_parts_and_denials_need_the_card():
    # Only the first-billed lead may be given a part, and the part must be in the premise.
    assert verdict("Bill Murray as a weatherman relives one day.", user="funny").ok
    assert not verdict("Andie MacDowell as a weatherman relives one day.", user="funny").ok
    assert not verdict("Bill Murray as a pirate captain.", user="funny").ok
    # Denying what the card states is false; denying what it does not say is not checked.
    assert not verdict("A comedy, but not about a time loop.", user="funny").ok
    assert verdict("Not a western: a comedy about one small-town day.", user="funny").ok
