"""chatrec: a conversational recommender around a small language model.

    import chatrec
    rec = chatrec.Recommender.from_config(chatrec.load_config())
    answer = rec.respond(rec.new_session(), "a tense sci-fi thriller set in space")
    for r in answer.recommendations:
        print(r.rank, r.title, r.reason)

The names below are the public API; they are imported on first use, so ``import chatrec`` stays
light (torch and transformers load with the Recommender).
"""

from __future__ import annotations

import importlib
import os

# OpenMP threads that wait between parallel regions sleep instead of spinning. On a busy 2-core machine
# spinning threads made the ranked list 13.1 s instead of 2.3 s with 2 threads, and idle it costs nothing
# (1.31 vs 1.38 s): benchmarks/threads.py. Read when torch loads, so it is set before anything imports torch.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
from typing import TYPE_CHECKING

__version__ = "0.1.0"

_EXPORTS = {
    "load_config": "chatrec.config",
    "Config": "chatrec.config",
    "ConfigError": "chatrec.config",
    "Recommender": "chatrec.recommender",
    "UserInput": "chatrec.recommender",
    "Answer": "chatrec.events",
    "Recommendation": "chatrec.ranking",
    "Session": "chatrec.session",
    "InputError": "chatrec.session",
    "MediaError": "chatrec.media.files",
    "load_catalog": "chatrec.catalog",
}
__all__ = ["Answer", "Config", "ConfigError", "InputError", "MediaError", "Recommendation", "Recommender",
           "Session", "UserInput", "load_catalog", "load_config"]

if TYPE_CHECKING:
    from .catalog import load_catalog
    from .config import Config, ConfigError, load_config
    from .events import Answer
    from .media.files import MediaError
    from .ranking import Recommendation
    from .recommender import Recommender, UserInput
    from .session import InputError, Session


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'chatrec' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value
