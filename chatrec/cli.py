"""Command line: ``chatrec chat | recommend | index | eval | train | ui``."""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys

from .config import Config, ConfigError, load_config

log = logging.getLogger("chatrec")

HELP = """commands: /like N  /dislike N  /reset  /save  /sessions  /quit
attach media with: /image PATH \\[text]   /audio PATH \\[text]"""


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="TOML or YAML config file")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override, e.g. ranking.top_k=3")
    p.add_argument("--catalog", help="catalog .jsonl/.csv (default: packaged demo films)")
    p.add_argument("--llm", help="HF causal-LM id or local directory (default: packaged Gemma 3 270M)")
    p.add_argument("--embedder", help="sentence-transformers id or path (default: packaged MiniLM)")
    p.add_argument("--adapter", help="adapter name under adapters/ or a directory")
    p.add_argument("--no-adapter", action="store_true", help="use the base LLM without any adapter")
    p.add_argument("--clip-pretrained", help="open_clip pretrained tag or local checkpoint for image input")
    p.add_argument("--data-dir", help="where sessions are stored (default ~/.local/share/chatrec)")
    p.add_argument("-v", "--verbose", action="store_true")


def build_config(args: argparse.Namespace) -> Config:
    overrides = list(args.set)
    for flag, key in (("catalog", "catalog"), ("llm", "model.llm"), ("embedder", "model.embedder"),
                      ("adapter", "adapter"), ("clip_pretrained", "media.clip_pretrained"), ("data_dir", "data_dir")):
        value = getattr(args, flag, None)
        if value:
            overrides.append(f"{key}={value}")
    if getattr(args, "no_adapter", False):
        overrides.append("adapter=none")
    return load_config(args.config, overrides)


def _recommender(cfg: Config, **kw):
    from .recommender import Recommender

    return Recommender.from_config(cfg, **kw)


def _print_answer(console, answer) -> None:
    for r in answer.recommendations:
        console.print(f"[bold]{r.rank}. {r.title}[/bold]" + (f" ({r.year})" if r.year else "") + f"  [dim]{r.score:.2f}[/dim]")
        console.print(f"   {r.reason}", highlight=False)
    for n in answer.notes:
        console.print(f"[yellow]note:[/yellow] {n}")


def cmd_chat(args: argparse.Namespace) -> int:
    from rich.console import Console

    from .media import MediaError
    from .recommender import InputError

    console = Console()
    cfg = build_config(args)
    rec = _recommender(cfg)
    if args.session:
        session = rec.store.load(args.session)
    elif args.new:
        session = rec.new_session()
    else:
        session = rec.store.latest() or rec.new_session()
    console.print(f"[dim]session {session.id} ({len(session.turns)} turns). {HELP}[/dim]")
    if rec.adapter_note:
        console.print(f"[dim]{rec.adapter_note}[/dim]")
    for t in session.turns[-4:]:
        console.print(f"[dim]{t.role}: {t.text}[/dim]")
    while True:
        try:
            line = console.input("[bold cyan]you>[/bold cyan] ").strip()
        except (EOFError, KeyboardInterrupt):
            console.print()
            return 0
        if not line:
            continue
        image = audio = None
        try:
            if line.startswith("/"):
                cmd, *rest = shlex.split(line)
                if cmd in ("/quit", "/exit"):
                    return 0
                if cmd in ("/like", "/dislike"):
                    if not rest or not rest[0].isdigit():
                        console.print(f"usage: {cmd} N (a rank from the last list)")
                        continue
                    session = rec.feedback(session, int(rest[0]), liked=cmd == "/like")
                    console.print(f"[dim]noted. liked: {session.liked}; rejected: {session.rejected}[/dim]")
                    continue
                if cmd == "/reset":
                    session = rec.new_session()
                    console.print(f"[dim]new session {session.id}[/dim]")
                    continue
                if cmd == "/save":
                    rec.store.save(session)
                    console.print(f"[dim]saved session {session.id}; resume with: chatrec chat --session {session.id}[/dim]")
                    continue
                if cmd == "/sessions":
                    for sid, ts in rec.store.list():
                        console.print(f"{sid}  {ts:.0f}")
                    continue
                if cmd in ("/image", "/audio") and rest:
                    image, audio = (rest[0], None) if cmd == "/image" else (None, rest[0])
                    line = " ".join(rest[1:])
                else:
                    console.print(HELP)
                    continue
            answer = rec.respond(session, line, image=image, audio=audio)
        except (InputError, MediaError) as e:
            console.print(f"[red]{e}[/red] (nothing changed)")
            continue
        except IndexError as e:
            console.print(f"[red]{e}[/red]")
            continue
        session = answer.session
        if answer.understood.get("transcript"):
            console.print(f"[dim]heard: {answer.understood['transcript']}[/dim]")
        _print_answer(console, answer)


def cmd_recommend(args: argparse.Namespace) -> int:
    from .dialogue import Session

    cfg = build_config(args)
    rec = _recommender(cfg, progress=not args.json)
    session = rec.store.load(args.session) if args.session else Session()
    answer = rec.respond(session, args.text, image=args.image, audio=args.audio)
    if args.json:
        print(json.dumps(answer.to_dict(), indent=2, ensure_ascii=False))
    else:
        from rich.console import Console

        _print_answer(Console(), answer)
    return 0


def cmd_index(args: argparse.Namespace) -> int:
    from .catalog import load_catalog, load_demo_catalog
    from .packaged import load_embedder
    from .retrieval import embed_catalog

    cfg = build_config(args)
    catalog = load_catalog(cfg.catalog) if cfg.catalog else load_demo_catalog()
    embedder = load_embedder(cfg.model.embedder)
    vecs = embed_catalog(catalog, embedder, cfg.model.embedder, cfg.cache(), progress=True)
    print(f"indexed {len(catalog)} items from {catalog.source}: {vecs.shape[1]}-d vectors, hash {catalog.content_hash()[:16]}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from .evaluate import main as eval_main

    return eval_main(args, build_config(args))


def cmd_train(args: argparse.Namespace) -> int:
    from .train import main as train_main

    return train_main(args)


def cmd_ui(argv: list[str]) -> int:
    import app_gradio  # top-level module next to the package; takes its own flags

    return app_gradio.main(argv)


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="chatrec", description=__doc__)
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("chat", help="interactive terminal chat")
    _common(p)
    p.add_argument("--session", help="resume this session id (default: the latest)")
    p.add_argument("--new", action="store_true", help="start a new session")
    p.set_defaults(func=cmd_chat)
    p = sub.add_parser("recommend", help="one-shot recommendation")
    _common(p)
    p.add_argument("text")
    p.add_argument("--image")
    p.add_argument("--audio")
    p.add_argument("--session")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_recommend)
    p = sub.add_parser("index", help="embed a catalog (cached by content hash)")
    _common(p)
    p.set_defaults(func=cmd_index)
    p = sub.add_parser("eval", help="replay scripted dialogues and score the lists")
    _common(p)
    p.add_argument("--dialogues", required=False, help="dialogue JSONL (default: packaged test split)")
    p.add_argument("--baselines", default="none", help="'all', 'none' or a comma list")
    p.add_argument("--limit", type=int, default=0, help="evaluate only the first N dialogues")
    p.add_argument("--out", default="eval_out", help="report directory")
    p.add_argument("--interactive", type=int, default=0, help="also run N simulated-user episodes")
    p.add_argument("--no-reasons", action="store_true", help="skip reason generation")
    p.set_defaults(func=cmd_eval)
    p = sub.add_parser("train", help="LoRA + projector fine-tuning")
    p.add_argument("--config", required=False)
    p.add_argument("--set", action="extend", nargs="+", default=[], metavar="KEY=VALUE",
                   help="override config keys: --set a=1 b=2 (or --set repeated)")
    p.add_argument("--out")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--load-in-4bit", action="store_true")
    p.add_argument("-v", "--verbose", action="store_true")
    p.set_defaults(func=cmd_train)
    sub.add_parser("ui", help="start the Gradio UI (flags: see python app_gradio.py --help)", add_help=False)
    return ap


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["ui"]:
        return cmd_ui(argv[1:])
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("bm25s", "bitsandbytes", "httpx"):  # library chatter that a user cannot act on
        logging.getLogger(noisy).setLevel(logging.ERROR)
    from .catalog import CatalogError
    from .packaged import ModelUnavailableError

    try:
        return args.func(args) or 0
    except (ConfigError, CatalogError, ModelUnavailableError, KeyError, FileNotFoundError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"chatrec: error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
