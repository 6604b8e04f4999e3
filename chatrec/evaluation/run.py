"""``chatrec eval``: load the pipeline, replay a dialogue file for every system, write the report."""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from ..config import Config, ConfigError
from ..recommender import Recommender
from .beyond import EvalData
from .dialogues import Dialogue, load_dialogues
from .replay import BASELINES, DATA, Counts, build_systems, interactions, interactive, replay_dialogues
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
    injection: bool = True  # also rank ordinary requests over the catalog plus 25 hostile items (~1 min)


def parse_baselines(spec: str) -> tuple[str, ...]:
    """'all', 'none' or a comma list -> baseline names; unknown names are a ConfigError."""
    spec = (spec or "none").strip()
    names = list(BASELINES) if spec == "all" else [] if spec == "none" else [b.strip() for b in spec.split(",") if b.strip()]
    unknown = sorted(set(names) - set(BASELINES))
    if unknown:
        raise ConfigError(f"unknown baseline(s) {unknown}; valid: {list(BASELINES)}, 'all' or 'none'")
    return tuple(names)


# The default evaluation: people's words are the headline; the template split and the 33 hand-written
# dialogues are secondary tables (ranking only, and without llm-base, to keep the run short), showing that
# nothing else collapsed.
SUITE = (("human test", "human_test.jsonl"), ("template test", "test.jsonl"), ("hand-written", "handwritten.jsonl"))


def evaluate(cfg: Config, opts: EvalOptions) -> tuple[str, list[SystemMetrics]]:
    """Run the evaluation, write report.json / report.md / rankings.jsonl / plots to ``opts.out``.

    With ``opts.dialogues`` one file is evaluated into ``opts.out``; without, every set of :data:`SUITE`
    goes into its own sub-directory and ``opts.out/report.md`` holds all tables, the main one first.
    Returns (Markdown, metrics of the first set).
    """
    started = time.perf_counter()
    if not opts.reasons:
        cfg = replace(cfg, generation=replace(cfg.generation, reasons=False))
    rec = Recommender.from_config(cfg, progress=opts.progress)
    sets = [(Path(opts.dialogues).stem, Path(opts.dialogues))] if opts.dialogues else [(n, DATA / f) for n, f in SUITE]
    out = Path(opts.out)
    sections, first = [], None
    for n, (name, path) in enumerate(sets):
        sub = out if len(sets) == 1 else out / name.replace(" ", "_").replace("-", "_")
        set_opts = opts if n == 0 else replace(opts, baselines=tuple(b for b in opts.baselines if b != "llm-base"))
        table, metrics = _evaluate_set(rec, cfg, set_opts, path, sub, reasons=cfg.generation.reasons and n == 0,
                                       interactive_episodes=opts.interactive if n == 0 else 0)
        sections.append(f"## {name} (`{path.name}`){' — main table' if n == 0 else ''}\n\n{table}")
        first = first if first is not None else metrics
    if opts.injection:
        sections.append(_injection_section(rec, out))
    text = "\n\n".join(sections)
    if len(sets) > 1:
        out.mkdir(parents=True, exist_ok=True)
        (out / "report.md").write_text(f"# chatrec eval\n\n{text}\n", encoding="utf-8")
    log.info("reports written to %s (%.1f s)", out, time.perf_counter() - started)
    return text, first or []


def _injection_section(rec: Recommender, out: Path) -> str:
    """Written forgeries: how often a hostile item (forged "Fits: yes", stuffed keywords, instructions) that
    does not match an ordinary request reaches the shown list; the goal is 0 (``injection.json``)."""
    from .injection import injection_report

    result = injection_report(rec)
    out.mkdir(parents=True, exist_ok=True)
    (out / "injection.json").write_text(json.dumps(result.to_dict(), indent=2, ensure_ascii=False), encoding="utf-8")
    return f"## Injection (`chatrec/data/hostile_items.jsonl`)\n\n```\n{result.summary()}\n```"


def _evaluate_set(rec: Recommender, cfg: Config, opts: EvalOptions, path: Path, out: Path, reasons: bool,
                  interactive_episodes: int) -> tuple[str, list[SystemMetrics]]:
    started = time.perf_counter()
    loaded = load_dialogues(path, rec.catalog)
    dialogues = loaded.dialogues[: opts.limit] if opts.limit else loaded.dialogues
    systems = build_systems(rec, opts.baselines, dialogues)
    counts = Counts(len(loaded.dialogues), len(dialogues), [asdict(s) for s in loaded.skipped])
    runs = replay_dialogues(systems, dialogues, reasons, counts, opts.progress)
    if interactive_episodes:
        targets = [t for d in dialogues for turn in d.turns for t in turn.targets] or [
            t for d in load_dialogues(DATA / "test.jsonl", rec.catalog).dialogues for turn in d.turns for t in turn.targets
        ]
        interactive(systems, targets, interactive_episodes, cfg.seed, runs, opts.progress)
    data = _eval_data(rec, cfg, dialogues)
    metrics = [summarize(runs[s.name], data) for s in systems]
    header = {
        "config_hash": cfg.hash(),
        "config": cfg.to_dict(),
        "seeds": {"config": cfg.seed, "interactive": cfg.seed if interactive_episodes else None},
        "model": rec.lm.identity if rec.lm is not None else None,
        "adapter": {"requested": cfg.adapter, "loaded": rec.adapter.loaded, "note": rec.adapter.note()},
        "catalog": {"source": rec.catalog.source, "hash": rec.catalog.content_hash(), "items": len(rec.catalog)},
        "dialogues_file": str(path),
        "limit": opts.limit,
        "reasons": reasons,
        "interactive_episodes": interactive_episodes,
        "systems_kinds": {s.name: s.kind.value for s in systems},
        "popularity": "interactions (targets, likes) in the evaluated dialogues, the scored dialogue left out",
    }
    header["wall_seconds"] = round(time.perf_counter() - started, 2)
    table = write_report(out, header, counts, metrics, runs, data)
    return table, metrics


def _eval_data(rec: Recommender, cfg: Config, dialogues: list[Dialogue]) -> EvalData:
    """Catalog and per-dialogue interactions for the beyond-accuracy metrics, on the shown list's length."""
    own: dict[str, Counter[str]] = {}
    for d in dialogues:
        own[d.id] = own.get(d.id, Counter()) + interactions(d)  # ids repeat only in malformed files: pool them
    return EvalData.build(rec.catalog, own, k=cfg.ranking.top_k)
