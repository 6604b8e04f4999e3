"""Command-line options shared by every chatrec command and the web UI, and the Config they build."""

from __future__ import annotations

import argparse

from ..config import Config, load_config


def add_common_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="TOML or YAML config file")
    p.add_argument("--set", action="extend", nargs="+", default=[], metavar="KEY=VALUE",
                   help="overrides, e.g. --set ranking.top_k=3 model.threads=1 (or --set repeated)")
    p.add_argument("--catalog", help="catalog .jsonl/.csv, or a packaged one: films (the default), books")
    p.add_argument("--llm", help="HF causal-LM id or local directory (default: packaged Gemma 3 270M)")
    p.add_argument("--embedder", help="sentence-transformers id or path (default: packaged MiniLM)")
    p.add_argument("--adapter", help="adapter name under adapters/ or a directory")
    p.add_argument("--no-adapter", action="store_true", help="use the base LLM without any adapter")
    p.add_argument("--clip-pretrained", help="open_clip pretrained tag or local checkpoint for image input")
    p.add_argument("--data-dir", help="where sessions are stored (default ~/.local/share/chatrec)")
    p.add_argument("-v", "--verbose", action="store_true")


def add_server_args(p: argparse.ArgumentParser, port: int) -> None:
    """--host (localhost unless asked: nothing is exposed by default) and --port, for `ui` and `serve`."""
    p.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=port)


def build_config(args: argparse.Namespace, extra: list[str] | None = None) -> Config:
    """The Config from --config, then --set overrides, then the named flags, then ``extra`` (later wins)."""
    overrides = list(getattr(args, "set", []) or [])
    for flag, key in (("catalog", "catalog"), ("llm", "model.llm"), ("embedder", "model.embedder"),
                      ("adapter", "adapter"), ("clip_pretrained", "media.clip_pretrained"), ("data_dir", "data_dir")):
        value = getattr(args, flag, None)
        if value:
            overrides.append(f"{key}={value}")
    if getattr(args, "no_adapter", False):
        overrides.append("adapter=none")
    return load_config(getattr(args, "config", None), overrides + list(extra or []))
