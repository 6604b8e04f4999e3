"""The real packaged models (Gemma 3 270M, MiniLM, Whisper base) on the demo catalog."""

import pytest

from chatrec.config import load_config
from chatrec.recommender import Recommender
from chatrec.session import Session

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    data = tmp_path_factory.mktemp("data")
    return Recommender.from_config(load_config(None, [f"data_dir={data}"]), progress=False), data


def _facts_are_true(rec, answer):
    """Every shown reason is complete and passes the claim checker; the facts it lists are the item's."""
    from chatrec import claims

    liked = [rec.catalog.get(i) for i in answer.session.liked if i in rec.catalog]
    for r in answer.recommendations:
        item = rec.catalog.get(r.item_id)
        facts = {f"{k}: {v}" for k, v in item.facts()}
        assert r.reason.strip() and r.reason.rstrip()[-1] in ".!?", r
        assert set(r.facts_used) <= facts, (r.reason, r.facts_used)
        verdict = claims.check(r.reason, item, rec.catalog, answer.session.user_text(), liked)
        assert verdict.ok, (r.reason, verdict.false)


def test_three_turn_conversation_and_restart(real):
    rec, data = real
    a1 = rec.respond(Session(), "I want a tense science fiction thriller set in space")
    assert len(a1.recommendations) == 5
    assert all(r.item_id in rec.catalog for r in a1.recommendations)
    assert sum("Science Fiction" in rec.catalog.get(r.item_id).values("genres") for r in a1.recommendations) >= 3
    _facts_are_true(rec, a1)

    a2 = rec.respond(a1.session, "not that one")
    top1 = a1.recommendations[0].item_id
    assert top1 not in [r.item_id for r in a2.recommendations]
    assert [r.item_id for r in a2.recommendations] != [r.item_id for r in a1.recommendations]

    a3 = rec.respond(a2.session, "something older")  # a wish (a boost), not a filter
    oldest = min(r.year for r in a2.recommendations)
    assert a3.session.prefer_year_max == oldest - 1 and a3.session.year_max is None
    assert not {r.item_id for r in a3.recommendations} & {r.item_id for r in a2.recommendations}  # not these again
    _facts_are_true(rec, a3)

    # A restarted process (new Recommender over the same data dir) resumes the conversation.
    again = Recommender.from_config(load_config(None, [f"data_dir={data}"]), load_llm_model=False, progress=False)
    resumed = again.store.load(a3.session.id)
    assert len(resumed.turns) == 6 and resumed.rejected[0] == top1
    assert {r.item_id for r in a2.recommendations} <= set(resumed.rejected)  # "something older" than these
    assert resumed.last_items == [r.item_id for r in a3.recommendations]


@pytest.mark.xfail(strict=True, reason="known regression: with the LLM scoring 20 candidates at retrieval weight 6 "
                   "(issue 14's defaults) 'something older' pulls 1 of 5 older films here, not >= 2 (a soft era "
                   "wish needs a final-stage bonus, to be measured on human_val)")
def test_something_older_pulls_older_films(real, tmp_path):
    from chatrec.store import SessionStore

    rec0, _ = real  # a store of its own: no profile from the other tests' sessions
    rec = Recommender(rec0.cfg, rec0.catalog, rec0.retriever, rec0.lm, SessionStore(tmp_path / "s.sqlite"), rec0.adapter)
    a1 = rec.respond(Session(), "I want a tense science fiction thriller set in space")
    a2 = rec.respond(a1.session, "not that one")
    a3 = rec.respond(a2.session, "something older")
    oldest = min(r.year for r in a2.recommendations)
    years3 = [r.year for r in a3.recommendations]
    assert sum(y < oldest for y in years3) >= 2, years3  # pulled older, though not filtered


def test_spoken_request_is_transcribed_and_answered(real):
    from conftest import FIXTURES

    rec, _ = real
    ans = rec.respond(Session(), "", audio=str(FIXTURES / "speech_romcom.wav"))
    heard = ans.understood["transcript"].lower()
    assert "romantic comedy" in heard and "paris" in heard
    genres = [g for r in ans.recommendations for g in rec.catalog.get(r.item_id).values("genres")]
    assert "Romance" in genres and "Comedy" in genres
    assert any("transcript only" in n for n in ans.notes)  # no trained audio projector yet: said so


def test_image_without_clip_weights_is_refused_clearly(real, tmp_path):
    from PIL import Image

    from chatrec.recommender import InputError

    rec, _ = real
    p = tmp_path / "poster.png"
    Image.new("RGB", (64, 64), "red").save(p)
    s = Session()
    with pytest.raises(InputError, match="empty message"):
        rec.respond(s, "", image=str(p))
    ans = rec.respond(s, "something like this", image=str(p))
    assert any("--clip-pretrained" in n for n in ans.notes)


def test_shipped_adapter_is_loaded_and_improves_the_ranking_on_peoples_words(real):
    """On the first 40 human validation dialogues the shipped pipeline (adapter + retrieval prior) puts the ground
    truth first more often than the same pipeline without the adapter (llm-base). Measured 2026-12-07 on 60
    dialogues: R@1 0.323 vs 0.240. (The stage-4 LLM scored alone no longer beats the base model's argmax on the
    template split: it is trained as a correction to retrieval's order on people's words.)"""
    from chatrec.adapter import ADAPTERS_DIR
    from chatrec.evaluation.dialogues import load_dialogues
    from chatrec.evaluation.replay import DATA, Counts, build_systems, replay_dialogues
    from chatrec.evaluation.report import summarize

    if not (ADAPTERS_DIR / "default" / "manifest.json").is_file():
        pytest.skip("no shipped default adapter")
    rec, _ = real
    assert hasattr(rec.lm.lm, "peft_config") and rec.adapter.loaded and not rec.adapter.untuned
    dialogues = load_dialogues(DATA / "human_val.jsonl", rec.catalog).dialogues[:40]
    systems = build_systems(rec, ["llm-base"], dialogues)
    counts = Counts()
    runs = replay_dialogues(systems, dialogues, reasons=False, counts=counts, progress=False)
    tuned, base = (summarize(runs[s.name]) for s in systems)
    assert counts.turns_evaluated >= 40 and tuned.n_targets == base.n_targets
    assert tuned.recall[1] > base.recall[1], (tuned.recall[1], base.recall[1])
    assert runs[systems[0].name].rankings != runs[systems[1].name].rankings  # the adapter changes the order


def test_book_catalog_speaks_of_books_and_reasons_hold(tmp_path):
    """The second packaged catalog, end to end: its noun and roles reach the prompts and every shown
    reason passes the claim checker."""
    from chatrec import claims
    from chatrec.prompting import reason_prompt

    rec = Recommender.from_config(load_config(None, [f"data_dir={tmp_path}", "catalog=books"]), progress=False)
    assert rec.catalog.schema.item_noun == "book" and len(rec.catalog) >= 150
    ans = rec.respond(Session(), "a funny fantasy novel for a long train ride")
    assert len(ans.recommendations) == 5
    user = ans.session.user_text()
    for r in ans.recommendations:
        item = rec.catalog.get(r.item_id)
        verdict = claims.check(r.reason, item, rec.catalog, user)
        assert verdict.ok, (r.reason, verdict.false)
        assert " film" not in r.reason.lower(), r.reason
    prompt = reason_prompt(rec.catalog.get(ans.recommendations[0].item_id), user, (), rec.catalog.schema)
    assert prompt.startswith("Book: ") and "written by" in prompt


@pytest.mark.xfail(strict=True, reason="issue 18 not met on the real models yet: after liking Toy Story, Finding Nemo and "
                   "Spirited Away, 'a film for tonight' in a new session changed 1 of 5 films and showed no animation "
                   "(profile.like_weight 1.0 was set on the tiny test models; tune it with the multi-session eval)")
def test_three_films_liked_in_one_session_shape_the_next_sessions_first_answer(real, tmp_path, capsys):
    """Issue 18's case on the real models, in a store of its own; then `chatrec profile show/export/delete`."""
    import json

    from chatrec.store import SessionStore
    from chatrec.ui.cli import main

    rec0, _ = real
    rec = Recommender(rec0.cfg, rec0.catalog, rec0.retriever, rec0.lm, SessionStore(tmp_path / "sessions.sqlite"),
                      rec0.adapter)
    liked = {"toy-story-1995", "finding-nemo-2003", "spirited-away-2001"}
    before = rec.respond(rec.new_session(), "a film for tonight")
    first = rec.respond(rec.new_session(), "I loved Toy Story, Finding Nemo and Spirited Away")
    assert set(first.session.liked) == liked
    after = rec.respond(rec.new_session(), "a film for tonight")
    shown = [r.item_id for r in after.recommendations]
    assert not set(shown) & liked  # seen: not again

    def animated(answer):
        return sum("Animation" in rec.catalog.get(r.item_id).values("genres") for r in answer.recommendations)

    assert animated(after) > animated(before), (shown, [r.item_id for r in before.recommendations])

    args = ["--data-dir", str(tmp_path)]
    assert main(["profile", "show", *args]) == 0
    assert "Toy Story" in capsys.readouterr().out
    assert main(["profile", "export", *args]) == 0
    assert liked <= {e["value"] for e in json.loads(capsys.readouterr().out)["entries"]}
    assert main(["profile", "delete", "--yes", *args]) == 0
    assert SessionStore(tmp_path / "sessions.sqlite").load_profile(None) is None
    assert b"Finding Nemo" not in (tmp_path / "sessions.sqlite").read_bytes()
