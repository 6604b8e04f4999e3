"""A collaborative signal: "people who liked X also liked Y", from items liked together.

A *basket* is a set of items liked together:

- one per person (a session owner, :func:`chatrec.profiles.owner_key`): what they liked over all their
  sessions, a later session's word winning (liked in one, turned down in a later one: out); sessions
  with the profile switched off (``use_profile``) do not count;
- one per training dialogue (``collaborative.dialogue_files``): its targets and the items its user
  liked, minus what it turned down. Training splits only: a file with a validation or test row is
  refused, so the channel never learns the answers it is evaluated on.

Baskets of fewer than two items say nothing about pairs and are left out. With X the basket-item
incidence matrix (B, N), ``counts = X^T X`` (N, N) holds on its diagonal n_i, the baskets holding
item i, and off it c_ij, the baskets holding both. The similarity is the items' cosine shrunk by the
evidence behind it, ``c_ij / sqrt(n_i n_j) * c_ij / (c_ij + shrink)`` (item-based CF, Sarwar et al.
2001; shrinkage as in Bell & Koren 2007), so a pair seen once weighs little.

Persistence is the session store itself: a restart rebuilds the same matrix from the stored sessions
and the dialogue files. A saved like changes the matrix at once (:meth:`CoOccurrence.update` adds the
difference of the owner's old and new basket), so the next answer of anyone who liked the same item
sees it. Another process's likes arrive at its next start.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable, Sequence
from importlib import resources
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from .catalog import Catalog
from .config import CollaborativeConfig
from .profiles import owner_key
from .retrieval import Query
from .session import Session
from .store import SessionStore, StoreError

log = logging.getLogger(__name__)


def dialogue_file(value: str) -> Path:
    """A dialogue JSONL file: a path, or the name of a packaged split ("human_train", "train")."""
    packaged = Path(str(resources.files("chatrec") / "data" / "dialogues" / f"{value}.jsonl"))
    p = packaged if value and "/" not in value and not value.endswith(".jsonl") else Path(value)
    if not p.is_file():
        choices = sorted(f.stem for f in packaged.parent.glob("*.jsonl"))
        raise ValueError(f"collaborative.dialogue_files: {value!r} not found (a JSONL path or a packaged split: {choices})")
    return p


def dialogue_baskets(path: Path, catalog: Catalog) -> list[frozenset[str]]:
    """One basket per dialogue of a training file: targets and liked items, minus turned-down ones; ids
    outside ``catalog`` are dropped (dialogues of another catalog give nothing). ValueError on a row of
    another split or a row that is not a dialogue."""
    out = []
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                split, turns = row.get("split"), row["turns"]
                wanted = {i for t in turns for key in ("targets", "liked") for i in t.get(key, ())}
                refused = {i for t in turns for i in t.get("rejected", ())}
            except (ValueError, TypeError, KeyError, AttributeError) as e:
                raise ValueError(f"{path}:{n}: not a dialogue row ({type(e).__name__}: {e})") from None
            if split != "train":
                raise ValueError(f"{path}:{n}: split {split!r}; the collaborative signal learns from training "
                                 "dialogues only (collaborative.dialogue_files)")
            out.append(frozenset(i for i in wanted - refused if isinstance(i, str) and i in catalog))
    return out


Feedback = tuple[frozenset[str], frozenset[str]]  # one session's (liked, rejected)


def _feedback(session: Session) -> Feedback:
    """What a session adds to its owner's basket: nothing while its profile switch is off."""
    if not session.use_profile:
        return frozenset(), frozenset()
    return frozenset(session.liked), frozenset(session.rejected)


def _fold(feedback: Iterable[Feedback]) -> frozenset[str]:
    """One person's basket from their sessions' feedback, oldest first: a later session's word wins."""
    items: set[str] = set()
    for liked, rejected in feedback:
        items = (items - rejected) | liked
    return frozenset(items)


class CoOccurrence:
    """Item-item co-occurrence over one catalog's positions, updated in place by saved sessions."""

    def __init__(self, catalog: Catalog, cfg: CollaborativeConfig, baskets: Iterable[Iterable[str]] = ()):
        """``baskets``: fixed evidence (training dialogues), item ids; people's baskets come with :meth:`update`."""
        self.catalog = catalog
        self.cfg = cfg
        self._lock = threading.Lock()  # the UI answers from worker threads
        self._sessions: dict[str, dict[str, Feedback]] = {}  # owner key -> session id -> its feedback, oldest first
        self._owner_baskets: dict[str, frozenset[int]] = {}  # owner key -> positions counted in ``counts``
        self.counts = self._pairs(self._positions(b) for b in baskets)  # (N, N): diagonal n_i, off it c_ij
        self._similarity: sp.csr_matrix | None = None  # built from ``counts`` when first needed

    @classmethod
    def build(cls, catalog: Catalog, cfg: CollaborativeConfig, store: SessionStore | None = None) -> CoOccurrence:
        """The model from ``cfg.dialogue_files`` and every readable session in ``store``."""
        fixed = [b for name in cfg.dialogue_files for b in dialogue_baskets(dialogue_file(name), catalog)]
        model = cls(catalog, cfg, fixed)
        if store is not None:
            model.add_sessions(_stored_sessions(store))
        return model

    # ---- evidence ------------------------------------------------------------------------------------

    def _positions(self, ids: Iterable[str]) -> frozenset[int]:
        pos = frozenset(self.catalog.position(i) for i in ids if i in self.catalog)
        return pos if len(pos) >= 2 else frozenset()  # one item co-occurs with nothing

    def _pairs(self, baskets: Iterable[frozenset[int]], signs: Sequence[float] | None = None) -> sp.csr_matrix:
        """X^T X (N, N) for the baskets as the rows of X, each row counted with its sign (+1: add, -1: remove)."""
        baskets = list(baskets)
        signs = signs if signs is not None else [1.0] * len(baskets)
        rows = np.repeat(np.arange(len(baskets)), [len(b) for b in baskets])
        cols = np.fromiter((p for b in baskets for p in sorted(b)), np.int64, len(rows))
        x = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(baskets), len(self.catalog)))  # (B, N)
        pairs = (x.T @ sp.diags(np.asarray(signs, np.float64)) @ x).tocsr()  # (N, N)
        pairs.eliminate_zeros()
        return pairs

    def add_sessions(self, sessions: Iterable[Session]) -> None:
        """Add stored sessions (oldest first) in one step, as at start-up."""
        with self._lock:
            for s in sessions:
                self._remember(s)
            added = {k: self._basket(k) for k in self._sessions}
            changed = [k for k, b in added.items() if b != self._owner_baskets.get(k, frozenset())]
            self._apply({k: added[k] for k in changed})

    def update(self, session: Session) -> None:
        """Fold one saved session into its owner's basket; the matrix changes at once."""
        with self._lock:
            self._remember(session)
            key = owner_key(session.owner)
            new = self._basket(key)
            if new != self._owner_baskets.get(key, frozenset()):
                self._apply({key: new})

    def forget(self, owner: str | None, session_id: str | None = None) -> None:
        """Take a deleted session's likes out, or every session of ``owner`` without ``session_id``."""
        with self._lock:
            key = owner_key(owner)
            if session_id is None:
                self._sessions.pop(key, None)
            else:
                self._sessions.get(key, {}).pop(session_id, None)
            new = self._basket(key)
            if new != self._owner_baskets.get(key, frozenset()):
                self._apply({key: new})

    def _remember(self, session: Session) -> None:
        sessions = self._sessions.setdefault(owner_key(session.owner), {})
        sessions.pop(session.id, None)  # the latest save is the newest word
        sessions[session.id] = _feedback(session)

    def _basket(self, key: str) -> frozenset[int]:
        return self._positions(_fold(self._sessions.get(key, {}).values()))

    def _apply(self, baskets: dict[str, frozenset[int]]) -> None:
        """Replace owners' baskets in ``counts``: add the new ones, subtract the old ones."""
        if not baskets:
            return
        old = [self._owner_baskets.get(k, frozenset()) for k in baskets]
        delta = self._pairs([*baskets.values(), *old], [1.0] * len(baskets) + [-1.0] * len(old))
        counts = (self.counts + delta).tocsr()
        counts.eliminate_zeros()  # a pair no basket holds any more is no entry (a rebuild has none)
        self.counts = counts  # readers see the old matrix or the new one, never half of it
        self._owner_baskets.update(baskets)
        self._similarity = None

    def evidence(self, item_ids: Iterable[str]) -> float:
        """Baskets that hold each of the items together with another, summed over the items."""
        pos = [self.catalog.position(i) for i in dict.fromkeys(item_ids) if i in self.catalog]
        return float(self.counts.diagonal()[pos].sum()) if pos else 0.0

    # ---- scores --------------------------------------------------------------------------------------

    def similarity(self) -> sp.csr_matrix:
        """(N, N) shrunk cosine between items, zero diagonal."""
        with self._lock:
            if self._similarity is None:
                c = self.counts.tocoo()
                n = self.counts.diagonal()
                off = c.row != c.col
                i, j, v = c.row[off], c.col[off], c.data[off]
                s = v / np.sqrt(n[i] * n[j]) * v / (v + self.cfg.shrink)
                self._similarity = sp.csr_matrix((s, (i, j)), shape=self.counts.shape)
            return self._similarity

    def scores(self, liked_ids: Sequence[str]) -> np.ndarray:
        """(N,) summed similarity of every item to the liked items (zeros when none is known)."""
        pos = [self.catalog.position(i) for i in dict.fromkeys(liked_ids) if i in self.catalog]
        if not pos:
            return np.zeros(len(self.catalog))
        return np.asarray(self.similarity()[pos].sum(axis=0)).ravel()

    def ranking(self, query: Query, pool: int) -> list[int]:
        """Item positions with co-occurrence to the query's liked items, best first, at most ``pool``; the
        liked and excluded items left out. Empty without evidence: the channel then adds nothing (cold start)."""
        s = self.scores(query.liked)
        skip = [self.catalog.position(i) for i in (*query.liked, *query.exclude) if i in self.catalog]
        s[skip] = 0.0
        found = np.flatnonzero(s > 0)
        order = found[np.argsort(-s[found], kind="stable")]  # ties in catalog order
        return order[:pool].tolist()

    def weight(self, query: Query) -> float:
        """The channel's fusion weight: ``cfg.weight`` scaled by the evidence behind the liked items."""
        return self.cfg.weight * min(1.0, self.evidence(query.liked) / self.cfg.evidence_full)


def _stored_sessions(store: SessionStore) -> list[Session]:
    """Every readable session in ``store``, least recently saved first (unreadable ones are skipped)."""
    out = []
    for session_id, _ in reversed(store.list(limit=-1)):  # SQLite: a negative LIMIT has no bound
        try:
            out.append(store.load(session_id))
        except (KeyError, StoreError) as e:  # deleted meanwhile, or from a newer chatrec (warned)
            log.debug("collaborative: skipped session %s (%s)", session_id, e)
    return out
