"""What a turn yields: typed events for interfaces (terminal, web UI, HTTP), and the final Answer.

``Recommender.stream`` yields, in order: one ``Understood``, one ``Ranked`` (unless nothing fits),
``ReasonToken``s as reasons are written, one ``ReasonDone`` per shown item, and one ``Done`` after the
session was saved. Interfaces render these and never call the model themselves.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .ranking import Recommendation
from .session import Session


@dataclass
class Answer:
    session: Session  # the session after this turn (already saved)
    recommendations: list[Recommendation]
    understood: dict = field(default_factory=dict)  # what the system took from the turn (transcript, constraints)
    notes: list[str] = field(default_factory=list)  # e.g. inputs that are not in use, and why
    timings: dict[str, float] = field(default_factory=dict)  # seconds: ranked, first_token, total

    def to_dict(self) -> dict:
        return {
            "session_id": self.session.id,
            "recommendations": [r.to_dict() for r in self.recommendations],
            "understood": self.understood,
            "notes": self.notes,
            "timings": self.timings,
        }


@dataclass(frozen=True)
class Understood:
    """What the system took from the user's turn, before anything is ranked."""

    understood: dict  # transcript, image neighbours, constraints
    notes: tuple[str, ...]  # inputs not in use, and why


@dataclass(frozen=True)
class Ranked:
    """The shown list, in order, before its reasons."""

    recommendations: tuple[Recommendation, ...]
    seconds: float  # since the turn started


@dataclass(frozen=True)
class ReasonToken:
    """New text of the reason being written for one shown item (not checked yet)."""

    row: int  # 0-based position in the shown list
    text: str


@dataclass(frozen=True)
class ReasonDone:
    """The reason that will be shown for one item: the model's if it passed the checks, else from catalog facts."""

    row: int
    recommendation: Recommendation  # with reason, reason_source and facts_used set


@dataclass(frozen=True)
class Done:
    """The turn is over and saved."""

    answer: Answer


Event = Understood | Ranked | ReasonToken | ReasonDone | Done
