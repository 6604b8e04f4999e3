"""Evaluation results: per-system metrics from the replayed runs, a Markdown table, JSON and plots."""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .beyond import COLD_K, BeyondMetrics, EvalData, beyond_metrics, shown_lists, shown_popularity
from .metrics import (
    bootstrap_ci,
    f1_from_list_ranks,
    hit_rate_from_list_ranks,
    list_recall_from_list_ranks,
    mrr_from_ranks,
    ndcg_from_ranks,
    paired_bootstrap,
    precision_from_list_ranks,
    recall_from_ranks,
    success_at_turn,
    target_ranks,
)
from .replay import INTERACTIVE_TURNS, MAX_K, Counts, SystemRun


@dataclass(frozen=True)
class ReasonMetrics:
    n: int  # reasons checked (shown top-k over all turns)
    false_claims: float  # share of shown reasons with any false claim (goal 0)
    about_user: float  # share of shown reasons referring to something this user said or liked (goal >= 0.8)
    unique: float  # distinct shown sentences / shown sentences over the run (goal >= 0.9)
    broken: float  # share of shown reasons cut off or looping (goal 0)
    mean_words: float  # mean length of a shown reason
    model_written: float  # share written by the model (the rest are catalog-fact fallbacks)
    raw_passes: float  # share of the model's raw reasons that passed every check (goal >= 0.8)
    tokens_per_turn: float  # generated tokens per turn (tokenizer count of the raw reasons)
    raw_failures: dict[str, int]  # kind of the first failed check -> count, over the model's rejected reasons


def unique_sentence_ratio(texts: Sequence[str]) -> float:
    """Distinct sentences over all sentences of ``texts`` (a template repeated everywhere scores low)."""
    from ..claims import sentences

    sents = [s.strip().lower() for t in texts for s in sentences(t)]
    return len(set(sents)) / len(sents) if sents else float("nan")


# The metrics that get bootstrap intervals, and how each is computed from per-target ranks.
CI_METRICS = {
    "R@1": lambda r: recall_from_ranks(r, 1),
    "R@10": lambda r: recall_from_ranks(r, 10),
    "NDCG@10": lambda r: ndcg_from_ranks(r, 10),
}
N_BOOT = 1000  # bootstrap resamples (dialogues drawn with replacement)
LIST_KS = (1, 5, 10, 20, 50)  # cut-offs of the per-list metrics in report.json (precision: every K to MAX_K)
TABLE_KS = (1, 5, 10)  # the cut-offs shown in the per-list table


@dataclass(frozen=True)
class Difference:
    """The main system minus one other system on one metric, with a paired-bootstrap 95% interval."""

    other: str
    metric: str
    diff: float
    low: float
    high: float

    @property
    def significant(self) -> bool:
        return self.low > 0 or self.high < 0


@dataclass(frozen=True)
class ListMetrics:
    """Metrics of each scored turn's list against its fresh targets (one sample per turn, see metrics.py)."""

    n_lists: int  # scored turns
    precision: dict[int, float]  # K -> Precision@K, K = 1..MAX_K
    recall: dict[int, float]  # K -> Recall@K averaged per list (the recall F1 combines), LIST_KS
    f1: dict[int, float]  # K -> F1@K, LIST_KS
    hit_rate: dict[int, float]  # K -> share of turns with a target in the top K, LIST_KS
    ndcg: dict[int, float]  # K -> NDCG@K per ground-truth item, as NDCG@10 of the main table, LIST_KS


@dataclass(frozen=True)
class SystemMetrics:
    name: str
    n_targets: int  # ground-truth items scored
    recall: dict[int, float]  # K -> Recall@K, K = 1..50
    ndcg10: float
    mrr: float
    latency_p50: float  # seconds per turn (ranking, plus reasons for the main system)
    latency_p95: float
    reasons: ReasonMetrics | None = None
    success_at_turn: dict[int, float] | None = None  # interactive: t -> share of episodes hit by turn t
    ci: dict[str, tuple[float, float]] | None = None  # CI_METRICS name -> bootstrap 95% interval (by dialogue)
    lists: ListMetrics | None = None  # precision, F1, hit rate per scored turn (None without scored turns)
    beyond: BeyondMetrics | None = None  # coverage, popularity bias, diversity, novelty, cold start


def _share(values: Sequence[bool | None]) -> float:
    v = [x for x in values if x is not None]
    return float(np.mean(v)) if v else float("nan")


def list_metrics(run: SystemRun) -> ListMetrics | None:
    """Per-list metrics from the scored turns' rankings (top MAX_K after exclusions: exact up to K = MAX_K)."""
    if not run.rankings:
        return None
    per_list = [target_ranks(row["ids"], row["targets"]) for row in run.rankings]
    pooled = np.concatenate(per_list)
    return ListMetrics(
        len(per_list),
        {k: precision_from_list_ranks(per_list, k) for k in range(1, MAX_K + 1)},
        {k: list_recall_from_list_ranks(per_list, k) for k in LIST_KS},
        {k: f1_from_list_ranks(per_list, k) for k in LIST_KS},
        {k: hit_rate_from_list_ranks(per_list, k) for k in LIST_KS},
        {k: ndcg_from_ranks(pooled, k) for k in LIST_KS},
    )


def summarize(run: SystemRun, data: EvalData | None = None) -> SystemMetrics:
    """All metrics of one system's run; ``data`` (catalog and dialogue counts) adds the beyond-accuracy ones."""
    ranks = np.asarray(run.ranks, dtype=float)
    lat = np.asarray(run.latencies, dtype=float)
    reasons = None
    if run.reasons:
        r = run.reasons
        reasons = ReasonMetrics(
            len(r),
            _share([c.false_claim for c in r]),
            _share([c.about_user for c in r]),
            unique_sentence_ratio([c.shown for c in r]),
            _share([c.broken for c in r]),
            float(np.mean([len(c.shown.split()) for c in r])),
            _share([c.source == "model" for c in r]),
            _share([c.raw_passes for c in r]),
            float(np.mean(run.tokens)),
            dict(Counter(c.raw_problem for c in r if c.raw_problem).most_common()),
        )
    success = None
    if run.success_turns:
        success = {t: success_at_turn(run.success_turns, t) for t in range(1, INTERACTIVE_TURNS + 1)}
    ci = {name: bootstrap_ci(ranks, run.groups, fn, N_BOOT) for name, fn in CI_METRICS.items()} if run.groups else None
    return SystemMetrics(
        run.name,
        int(ranks.size),
        {k: recall_from_ranks(ranks, k) for k in range(1, MAX_K + 1)},
        ndcg_from_ranks(ranks, 10),
        mrr_from_ranks(ranks),
        float(np.percentile(lat, 50)) if lat.size else float("nan"),
        float(np.percentile(lat, 95)) if lat.size else float("nan"),
        reasons,
        success,
        ci,
        list_metrics(run),
        beyond_metrics(run.rankings, data) if data is not None and run.rankings else None,
    )


def differences(main: SystemRun, others: Sequence[SystemRun]) -> list[Difference]:
    """Main minus each other system on every CI metric, paired by target, resampled by dialogue."""
    a = np.asarray(main.ranks, dtype=float)
    out = []
    for o in others:
        b = np.asarray(o.ranks, dtype=float)
        if b.shape != a.shape or not main.groups:
            continue
        for name, fn in CI_METRICS.items():
            low, high = paired_bootstrap(a, b, main.groups, fn, N_BOOT)
            out.append(Difference(o.name, name, fn(a) - fn(b), low, high))
    return out


def differences_table(main: str, diffs: Sequence[Difference]) -> str:
    if not diffs:
        return ""
    names = list(CI_METRICS)
    lines = [f"| {main} minus | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for other in dict.fromkeys(d.other for d in diffs):
        cells = []
        for n in names:
            d = next(x for x in diffs if x.other == other and x.metric == n)
            cells.append(f"{d.diff:+.3f} [{d.low:+.3f}, {d.high:+.3f}]" + (" *" if d.significant else ""))
        lines.append(f"| {other} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _fmt(x: float | None, digits: int = 3) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def _with_ci(m: SystemMetrics, value: float, name: str) -> str:
    lo_hi = (m.ci or {}).get(name)
    return _fmt(value) + (f" ({_fmt(lo_hi[0], 2)}–{_fmt(lo_hi[1], 2)})" if lo_hi else "")


def markdown_table(metrics: Sequence[SystemMetrics]) -> str:
    cols = ["R@1 (95% CI)", "R@5", "R@10 (95% CI)", "R@50", "NDCG@10 (95% CI)", "MRR", "p50 s", "p95 s"]
    has_reasons = any(m.reasons for m in metrics)
    has_sr = any(m.success_at_turn for m in metrics)
    if has_reasons:
        cols += ["false claims", "about user", "unique", "broken", "words", "model-written", "raw passes", "tok/turn"]
    if has_sr:
        cols += [f"SR@{t}" for t in range(1, INTERACTIVE_TURNS + 1)]
    lines = ["| system | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for m in metrics:
        row = [_with_ci(m, m.recall[1], "R@1"), _fmt(m.recall[5]), _with_ci(m, m.recall[10], "R@10"),
               _fmt(m.recall[50])] + [
            _with_ci(m, m.ndcg10, "NDCG@10"),
            _fmt(m.mrr),
            _fmt(m.latency_p50, 2),
            _fmt(m.latency_p95, 2),
        ]
        if has_reasons:
            r = m.reasons
            row += (
                [
                    _fmt(r.false_claims),
                    _fmt(r.about_user),
                    _fmt(r.unique),
                    _fmt(r.broken),
                    _fmt(r.mean_words, 1),
                    _fmt(r.model_written),
                    _fmt(r.raw_passes),
                    _fmt(r.tokens_per_turn, 1),
                ]
                if r
                else ["–"] * 8
            )
        if has_sr:
            row += [_fmt(m.success_at_turn[t]) if m.success_at_turn else "–" for t in range(1, INTERACTIVE_TURNS + 1)]
        lines.append(f"| {m.name} | " + " | ".join(row) + " |")
    return "\n".join(lines)


def lists_table(metrics: Sequence[SystemMetrics]) -> str:
    """Precision, F1 and hit rate per scored turn, and NDCG at more cut-offs; "" when nothing was scored."""
    rows = [m for m in metrics if m.lists]
    if not rows:
        return ""
    cols = [f"{name}@{k}" for name in ("P", "F1", "HR") for k in TABLE_KS] + [f"NDCG@{k}" for k in TABLE_KS[1:]]
    lines = ["| system | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for m in rows:
        li = m.lists
        cells = [_fmt(d[k]) for d in (li.precision, li.f1, li.hit_rate) for k in TABLE_KS]
        cells += [_fmt(li.ndcg[k]) for k in TABLE_KS[1:]]
        lines.append(f"| {m.name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def beyond_table(metrics: Sequence[SystemMetrics]) -> str:
    """Coverage, popularity bias, diversity, novelty and cold-start recall; "" without beyond metrics."""
    rows = [m for m in metrics if m.beyond]
    if not rows:
        return ""
    cols = ["coverage", "mean popularity", "Gini", "diversity (genres)", "novelty (bits)",
            f"cold-start R@{COLD_K} (n)", f"never-named items in top {COLD_K}"]
    lines = ["| system | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for m in rows:
        b = m.beyond
        cells = [_fmt(b.coverage), _fmt(b.mean_popularity, 2), _fmt(b.gini), _fmt(b.diversity), _fmt(b.novelty, 2),
                 f"{_fmt(b.cold_recall)} ({b.cold_targets})", _fmt(b.cold_in_top)]
        lines.append(f"| {m.name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _clean_json(x):
    if isinstance(x, float):
        return None if math.isnan(x) or math.isinf(x) else x
    if isinstance(x, dict):
        return {str(k): _clean_json(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean_json(v) for v in x]
    return x


PLOT_KS = 20  # deepest K of the precision/recall plot


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_precision_recall(out: Path, metrics: Sequence[SystemMetrics]) -> None:
    """Recall@K (per target) and Precision@K (per list), K = 1..PLOT_KS, one line per system."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    ks = list(range(1, min(PLOT_KS, MAX_K) + 1))
    for n, m in enumerate(metrics):
        style = {"label": m.name, "ls": ("-", "--", ":", "-.")[n % 4], "lw": 2.2 if n == 0 else 1.4, "marker": "."}
        axes[0].plot(ks, [m.recall[k] for k in ks], **style)
        if m.lists:
            axes[1].plot(ks, [m.lists.precision[k] for k in ks], **style)
    axes[0].set(xlabel="K", ylabel="Recall@K", title="Recall@K (per ground-truth item)", ylim=(0, 1))
    axes[1].set(xlabel="K", ylabel="Precision@K", title="Precision@K (per scored turn)", ylim=(0, None))
    for ax in axes:
        ax.set_xticks(ks[::2] if len(ks) > 10 else ks)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "precision_recall_at_k.png", dpi=120)
    plt.close(fig)


def _ecdf(ax, values: np.ndarray, **style) -> None:
    x = np.sort(values)
    ax.step(x, np.arange(1, x.size + 1) / x.size, where="post", **style)


def plot_popularity(out: Path, metrics: Sequence[SystemMetrics], runs: dict[str, SystemRun], data: EvalData) -> None:
    """Distribution of the shown items' popularity per system against the catalog's own (one point per item):
    a curve right of the catalog's recommends the head, one on it samples the catalog evenly."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    _ecdf(ax, np.array([data.popularity[i] for i in data.catalog_ids], dtype=float), color="black", lw=2.5,
          label="catalog items")
    for n, m in enumerate(metrics):
        pop = shown_popularity(shown_lists(runs[m.name].rankings, data.k), data.popularity)
        if pop.size:
            _ecdf(ax, pop, ls=("-", "--", ":", "-.")[n % 4], lw=1.6, label=f"{m.name} (top {data.k})")
    ax.set_xscale("symlog", linthresh=1)
    ax.set(xlabel="interactions in the evaluated dialogues", ylabel="share at or below",
           title="Popularity of shown items vs the catalog", ylim=(0, 1))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "popularity_bias.png", dpi=120)
    plt.close(fig)


def write_plots(
    out: Path, metrics: Sequence[SystemMetrics], runs: dict[str, SystemRun], data: EvalData | None = None
) -> None:
    plt = _pyplot()

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for n, m in enumerate(metrics):
        ks = sorted(m.recall)
        ax.step(
            ks,
            [m.recall[k] for k in ks],
            where="post",
            label=m.name,
            ls=("-", "--", ":", "-.")[n % 4],
            lw=2.2 if n == 0 else 1.4,
        )
    ax.set(xlabel="K", ylabel="Recall@K", title="Recall@K", xlim=(1, MAX_K), ylim=(0, 1))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "recall_at_k.png", dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 4.5))
    lat = [np.asarray(runs[m.name].latencies) * 1000 for m in metrics if runs[m.name].latencies]
    if lat:
        top = max(float(x.max()) for x in lat)
        bins = np.logspace(np.log10(max(min(float(x.min()) for x in lat), 1e-2)), np.log10(max(top, 1e-1)), 40)
        for m, x in zip([m for m in metrics if runs[m.name].latencies], lat, strict=True):
            ax.hist(np.maximum(x, bins[0]), bins=bins, alpha=0.5, label=m.name)
        ax.set_xscale("log")
        ax.legend(fontsize=8)
    ax.set(xlabel="latency per turn (ms)", ylabel="turns", title="Per-turn latency")
    fig.tight_layout()
    fig.savefig(out / "latency.png", dpi=120)
    plt.close(fig)

    if any(m.success_at_turn for m in metrics):
        fig, ax = plt.subplots(figsize=(6, 4))
        for m in metrics:
            if m.success_at_turn:
                ts = sorted(m.success_at_turn)
                ax.plot(ts, [m.success_at_turn[t] for t in ts], marker="o", label=m.name)
        ax.set(xlabel="turn", ylabel="success rate", title="Success@turn (simulated users)", ylim=(0, 1))
        ax.set_xticks(range(1, INTERACTIVE_TURNS + 1))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out / "success_at_turn.png", dpi=120)
        plt.close(fig)

    if any(m.lists for m in metrics):
        plot_precision_recall(out, metrics)
    if data is not None and any(m.beyond for m in metrics):
        plot_popularity(out, metrics, runs, data)


def write_rankings(path: Path, runs: Sequence[SystemRun]) -> None:
    """One JSON line per (system, scored turn): the ranked ids after the turn's exclusions, top 50.

    Two runs (or two systems of one run) can be compared turn by turn, and paired statistics
    recomputed, from these files alone.
    """
    with path.open("w", encoding="utf-8") as f:
        for run in runs:
            for row in run.rankings:
                f.write(json.dumps({"system": run.name, **row}, ensure_ascii=False) + "\n")


def write_reasons(path: Path, runs: Sequence[SystemRun]) -> None:
    """One JSON line per shown reason (the main system's): what was shown, from where, and the model's text,
    so a reader can audit a seeded sample of them."""
    with path.open("w", encoding="utf-8") as f:
        for run in runs:
            for c in run.reasons:
                f.write(json.dumps({"system": run.name, **asdict(c)}, ensure_ascii=False) + "\n")


def write_report(
    out: Path, header: dict, counts: Counts, metrics: Sequence[SystemMetrics], runs: dict[str, SystemRun],
    data: EvalData | None = None,
) -> str:
    """report.json, report.md and the plots in ``out``; returns the Markdown tables.

    ``data``: the catalog and dialogue counts the beyond-accuracy metrics were computed with (its
    definitions go into report.json, and it draws the popularity plot).
    """
    out.mkdir(parents=True, exist_ok=True)
    reasons = Counter(t["reason"] for t in counts.turns_skipped)
    report = {
        **header,
        "counts": {
            **asdict(counts),
            "dialogues_skipped_n": len(counts.dialogues_skipped),
            "turns_skipped_n": len(counts.turns_skipped),
            "turns_skipped_by_reason": dict(reasons),
        },
        "systems": {m.name: asdict(m) for m in metrics},
    }
    if data is not None:
        report["beyond_accuracy"] = data.describe()
    names = [m.name for m in metrics]
    diffs = differences(runs[names[0]], [runs[n] for n in names[1:]]) if names else []
    report["differences"] = [asdict(d) for d in diffs]
    write_rankings(out / "rankings.jsonl", [runs[n] for n in names])
    write_reasons(out / "reasons.jsonl", [runs[n] for n in names])
    (out / "report.json").write_text(json.dumps(_clean_json(report), indent=2, ensure_ascii=False), encoding="utf-8")
    table = markdown_table(metrics)
    diff_table = differences_table(names[0], diffs) if names else ""
    if diff_table:
        table += ("\n\nPaired bootstrap over dialogues (95% interval; * excludes 0):\n\n" + diff_table)
    table += _extra_tables(metrics, data)
    notes = [
        f"- dialogues: {counts.dialogues_evaluated} evaluated of {counts.dialogues_loaded} loaded, "
        f"{len(counts.dialogues_skipped)} rows skipped",
        f"- recommendation turns: {counts.turns_evaluated} scored, {len(counts.turns_skipped)} skipped, "
        f"{counts.turns_without_fresh_target} without a target not mentioned before",
        f"- model: {header['model']}; adapter: {header['adapter']['note']}",
        f"- config {header['config_hash']}, catalog {header['catalog']['hash'][:16]}, seed {header['seeds']['config']}",
    ]
    notes += [f"- {m.name}: model reasons not shown, by first failed check: {m.reasons.raw_failures}"
              for m in metrics if m.reasons and m.reasons.raw_failures]
    notes += [f"- skipped {s['where']}: {s['reason']}" for s in counts.dialogues_skipped + counts.turns_skipped]
    (out / "report.md").write_text(f"# chatrec eval\n\n{table}\n\n" + "\n".join(notes) + "\n", encoding="utf-8")
    write_plots(out, metrics, runs, data)
    return table


def _extra_tables(metrics: Sequence[SystemMetrics], data: EvalData | None) -> str:
    """The per-list and beyond-accuracy tables with the one-line definitions a reader needs."""
    text = ""
    lists = lists_table(metrics)
    if lists:
        text += ("\n\nTop-K lists, one sample per scored turn (P: targets in the top K / K; F1 of P and the turn's "
                 "recall; HR: any target in the top K; NDCG per target as above):\n\n" + lists)
    beyond = beyond_table(metrics)
    if beyond and data is not None:
        d = data.describe()
        text += (f"\n\nBeyond accuracy, the shown top {data.k} (popularity: interactions in the evaluated "
                 f"dialogues, catalog mean {_fmt(d['catalog_mean_popularity'], 2)}; cold start: targets with "
                 f"<= {data.cold_max} interactions outside their own dialogue):\n\n" + beyond)
    return text
