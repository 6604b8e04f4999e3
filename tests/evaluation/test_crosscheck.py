import json

from chatrec.evaluation.crosscheck import crosscheck, main, same_person

FULL = {"id": "seven-samurai-1954", "title": "Seven Samurai", "description": "Villagers hire ronin.",
        "attributes": {"year": 1954, "genres": ["Action", "Drama"], "director": ["Akira Kurosawa"],
                       "cast": ["Toshiro Mifune", "Takashi Shimura", "Keiko Tsushima"],
                       "keywords": ["samurai", "village", "bandits", "epic", "black and white"]},
        "meta": {"author": "hal", "country": "Japan"}}
FACTS = {"id": "k-1", "title": "Seven Samurai", "year": 1954, "director": ["Akira Kurosawa"],
         "cast": ["Toshirō Mifune", "Takashi Shimura", "Yoshio Inaba"], "genres": ["Drama", "Adventure"], "author": "max"}


def check(**change):
    facts = {**FACTS, **change}
    return crosscheck([FULL], [facts], {"k-1": FULL["id"]})


def test_agreement_ships_only_the_agreed_facts():
    r = check()
    assert [x["id"] for x in r.kept] == ["seven-samurai-1954"]
    row = r.kept[0]["attributes"]
    assert row["cast"] == ["Toshiro Mifune", "Takashi Shimura"]  # the third lead was not confirmed
    assert row["genres"] == ["Drama"] and row["year"] == 1954
    assert "meta" not in r.kept[0] and r.trimmed == {"cast": 1, "genres": 1}


def test_each_disagreement_drops_the_item_with_its_reason():
    cases = {"year": {"year": 1955}, "director": {"director": ["Kihachi Okamoto"]},
             "lead cast": {"cast": ["Toshiro Mifune", "Someone Else"]}, "genres": {"genres": ["Comedy"]},
             "second author did not know it": {"unknown": True}}
    for reason, change in cases.items():
        r = check(**change)
        assert not r.kept and r.dropped == {reason: 1}, reason
    assert crosscheck([FULL], [], {}).dropped == {"no second author": 1}
    # a co-director only one author lists is a disagreement too
    assert check(director=["Akira Kurosawa", "Hiroshi Inagaki"]).dropped == {"director": 1}


def test_spelling_variants_are_the_same_person():
    assert same_person("Toshirō Mifune", "toshiro mifune") and same_person("F. W. Murnau", "F.W. Murnau")
    assert not same_person("Joel Coen", "Ethan Coen")


def test_command_line(tmp_path, capsys):
    (tmp_path / "a.jsonl").write_text(json.dumps(FULL) + "\n")
    (tmp_path / "b.jsonl").write_text(json.dumps(FACTS) + "\n")
    (tmp_path / "k.json").write_text(json.dumps({"k-1": FULL["id"]}))
    main(["--full", str(tmp_path / "a.jsonl"), "--facts", str(tmp_path / "b.jsonl"), "--keys", str(tmp_path / "k.json"),
          "--out", str(tmp_path / "o.jsonl"), "--report", str(tmp_path / "r.json")])
    assert "kept 1" in capsys.readouterr().out
    assert json.loads((tmp_path / "o.jsonl").read_text())["id"] == FULL["id"]
    assert json.loads((tmp_path / "r.json").read_text())["kept"] == 1


def test_books_are_checked_on_author_year_and_genre():
    from chatrec.evaluation.crosscheck import KINDS, crosscheck

    full = [{"id": "emma-1815", "key": "b1", "title": "Emma", "description": "d",
             "attributes": {"year": 1815, "author": ["Jane Austen"], "genres": ["Classic", "Romance"], "keywords": ["k"]}},
            {"id": "x-1900", "key": "b2", "title": "X", "description": "d",
             "attributes": {"year": 1900, "author": ["A B"], "genres": ["Classic"], "keywords": ["k"]}}]
    facts = [{"key": "b1", "year": 1815, "author": ["Jane Austen"], "genres": ["Romance"]},
             {"key": "b2", "year": 1900, "author": ["C D"], "genres": ["Classic"]}]
    out = crosscheck(full, facts, {}, KINDS["books"])
    assert [r["id"] for r in out.kept] == ["emma-1815"] and out.dropped == {"author": 1}
    assert out.kept[0]["attributes"]["genres"] == ["Romance"] and "cast" not in out.kept[0]["attributes"]
