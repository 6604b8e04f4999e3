"""The terminal's rendering of a turn: titles at once, checked reasons, no raw scores unless verbose."""

from __future__ import annotations

from rich.console import Console

from chatrec.events import Answer, Done, Ranked, ReasonDone, ReasonToken, Understood
from chatrec.ranking import Recommendation
from chatrec.session import Session
from chatrec.ui.cli import print_events


def _events():
    recs = (Recommendation("a", "Heat [/]", 1, -19.74, None, 0.1, year=1995),
            Recommendation("b", "Ronin", 2, -21.5, None, 0.09, year=1998))
    done = [r.__class__(**{**r.__dict__, "reason": f"Why {r.title}."}) for r in recs]
    yield Understood({"transcript": "a heist film"}, ())
    yield Ranked(recs, 0.4)
    yield ReasonToken(0, "Why ")
    yield ReasonDone(0, done[0])
    yield ReasonDone(1, done[1])
    yield Done(Answer(Session(), list(done), {}, ["image not used: no CLIP weights"], {}))


def _render(verbose: bool) -> str:
    console = Console(record=True, width=120, force_terminal=False)
    answer = print_events(console, _events(), verbose)
    assert [r.title for r in answer.recommendations] == ["Heat [/]", "Ronin"]
    return console.export_text()


def test_titles_reasons_and_notes_without_scores():
    out = _render(False)
    assert "heard: a heist film" in out and "1. Heat [/]  2. Ronin" in out
    assert "Why Heat [/]." in out and "note: image not used" in out
    assert "-19.74" not in out and "-19.7" not in out


def test_verbose_shows_scores():
    assert "-19.74" in _render(True)
