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
    years3 = [r.year for r in a3.recommendations]
    assert sum(y < oldest for y in years3) >= 2, years3  # pulled older, though not filtered
    assert not {r.item_id for r in a3.recommendations} & {r.item_id for r in a2.recommendations}  # not these again
    _facts_are_true(rec, a3)

    # A restarted process (new Recommender over the same data dir) resumes the conversation.
    again = Recommender.from_config(load_config(None, [f"data_dir={data}"]), load_llm_model=False, progress=False)
    resumed = again.store.load(a3.session.id)
    assert len(resumed.turns) == 6 and resumed.rejected[0] == top1
    assert {r.item_id for r in a2.recommendations} <= set(resumed.rejected)  # "something older" than these
    assert resumed.last_items == [r.item_id for r in a3.recommendations]


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


def test_shipped_adapter_is_loaded_and_changes_the_ranking(real):
    """On known dialogues (the first 30 validation turns) the adapter puts the ground truth first more often."""

    from chatrec.adapter import ADAPTERS_DIR
    from chatrec.evaluation.dialogues import load_dialogues
    from chatrec.evaluation.replay import DATA
    from chatrec.training.examples import build_examples

    if not (ADAPTERS_DIR / "default" / "manifest.json").is_file():
        pytest.skip("no shipped default adapter")
    rec, _ = real
    assert hasattr(rec.lm.lm, "peft_config") and rec.adapter.loaded and not rec.adapter.untuned
    val = load_dialogues(DATA / "val.jsonl", rec.catalog).dialogues[:30]
    ex = [e for e in build_examples(val, rec.catalog, rec.retriever, rec.cfg.retrieval.n_candidates, 0, train=False).rank
          if e.label >= 0]
    tuned = [rec.lm.rank(e.prompt, e.n_labels) for e in ex]
    with rec.lm.lm.disable_adapter():
        base = [rec.lm.rank(e.prompt, e.n_labels) for e in ex]
    tuned_hits = sum(int(t.argmax()) == e.label for t, e in zip(tuned, ex, strict=True))
    base_hits = sum(int(b.argmax()) == e.label for b, e in zip(base, ex, strict=True))
    assert len(ex) >= 20
    assert tuned_hits > base_hits, (tuned_hits, base_hits)
    assert any(int(t.argmax()) != int(b.argmax()) for t, b in zip(tuned, base, strict=True))


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
