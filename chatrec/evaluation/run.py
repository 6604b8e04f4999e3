"""``chatrec eval``: load the pipeline, replay a dialogue file for every system, write the report."""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from ..config import Config, ConfigError
from ..recommender import Recommender
from .dialogues import load_dialogues
from .replay import BASELINES, DATA, Counts, build_systems, interactive, replay_dialogues
from .report import SystemMetrics, summarize, write_report

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvalOptions:
    dialogues: str = ""  # dialogue JSONL; "" = the packaged template test split
    baselines: tuple[str, ...] = ()  # names from BASELINES
    limit: int = 0  # only the first N dialogues; 0 = all
    out: str = "eval_out"  # report directory
    interactive: int = 0  # simulated-user episodes to add
    reasons: bool = True  # write and check reasons for the main system
    progress: bool = True


def parse_baselines(spec: str) -> tuple[str, ...]:
    """'all', 'none' or a comma list -> baseline names; unknown names are a ConfigError."""
    spec = (spec or "none").strip()
    names = list(BASELINES) if spec == "all" else [] if spec == "none" else [b.strip() for b in spec.split(",") if b.strip()]
    unknown = sorted(set(names) - set(BASELINES))
    if unknown:
        raise ConfigError(f"unknown baseline(s) {unknown}; valid: {list(BASELINES)}, 'all' or 'none'")
    return tuple(names)


def evaluate(cfg: Config, opts: EvalOptions) -> tuple[str, list[SystemMetrics]]:
    """Run the evaluation, write report.json / report.md / plots to ``opts.out``; return (table, metrics)."""
    started = time.perf_counter()
    if not opts.reasons:
        cfg = replace(cfg, generation=replace(cfg.generation, reasons=False))
    path = Path(opts.dialogues) if opts.dialogues else DATA / "test.jsonl"
    rec = Recommender.from_config(cfg, progress=opts.progress)
    systems = build_systems(rec, opts.baselines)
    loaded = load_dialogues(path, rec.catalog)
    dialogues = loaded.dialogues[: opts.limit] if opts.limit else loaded.dialogues
    counts = Counts(len(loaded.dialogues), len(dialogues), [asdict(s) for s in loaded.skipped])
    runs = replay_dialogues(systems, dialogues, cfg.generation.reasons, counts, opts.progress)
    if opts.interactive:
        targets = [t for d in dialogues for turn in d.turns for t in turn.targets] or [
            t for d in load_dialogues(DATA / "test.jsonl", rec.catalog).dialogues for turn in d.turns for t in turn.targets
        ]
        interactive(systems, targets, opts.interactive, cfg.seed, runs, opts.progress)
    metrics = [summarize(runs[s.name]) for s in systems]
    header = {
        "config_hash": cfg.hash(),
        "config": cfg.to_dict(),
        "seeds": {"config": cfg.seed, "interactive": cfg.seed if opts.interactive else None},
        "model": rec.lm.identity if rec.lm is not None else None,
        "adapter": {"requested": cfg.adapter, "loaded": rec.adapter.loaded, "note": rec.adapter.note()},
        "catalog": {"source": rec.catalog.source, "hash": rec.catalog.content_hash(), "items": len(rec.catalog)},
        "dialogues_file": str(path),
        "limit": opts.limit,
        "reasons": cfg.generation.reasons,
        "interactive_episodes": opts.interactive,
        "systems_kinds": {s.name: s.kind.value for s in systems},
    }
    header["wall_seconds"] = round(time.perf_counter() - started, 2)
    table = write_report(Path(opts.out), header, counts, metrics, runs)
    log.info("report written to %s (%.1f s)", opts.out, header["wall_seconds"])
    return table, metrics
