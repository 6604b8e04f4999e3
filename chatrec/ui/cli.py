"""Command line: ``chatrec chat | recommend | profile | index | eval | tune | train | ui | serve``."""

from __future__ import annotations

import argparse
import functools
import json
import logging
import re
import shlex
import sys
import time
import warnings
from pathlib import Path

from ..config import ConfigError
from .args import add_common_args, build_config

log = logging.getLogger("chatrec")

HELP = """commands: /like N  /dislike N  /reset  /save  /sessions  /profile \\[remove N | off | on]  /quit
attach media with: /image PATH \\[text]   /audio PATH \\[text]"""


_CONTROL = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def shown(text: object) -> str:
    """User or catalog text made safe for the terminal: escape sequences and control characters
    removed (a title cannot move the cursor or recolour the screen), rich markup escaped (a title
    like "[/bold]" is text, not a tag)."""
    from rich.markup import escape

    return escape(_CONTROL.sub("", str(text)))


def print_events(console, events, verbose: bool = False) -> object:
    """Render a turn's events as they arrive: a spinner until the list is ranked, the titles at once,
    then a spinner line showing each reason as it is written and the checked reason when it is final.
    Scores are shown only with ``verbose``."""
    from ..events import Done, Ranked, ReasonDone, ReasonToken, Understood

    answer = None
    writing: dict[int, str] = {}
    with console.status("finding candidates and ranking…", spinner="dots") as status:
        for event in events:
            if isinstance(event, Understood) and event.understood.get("transcript"):
                console.print(f"[dim]heard: {shown(event.understood['transcript'])}[/dim]")
            elif isinstance(event, Ranked):
                console.print("[dim]" + "  ".join(
                    f"{r.rank}. {shown(r.title)}" + (f" ({r.score:.2f})" if verbose else "")
                    for r in event.recommendations) + "[/dim]")
                status.update("writing reasons…")
            elif isinstance(event, ReasonToken):
                writing[event.row] = writing.get(event.row, "") + event.text
                status.update(f"writing reason {event.row + 1}: {shown(' '.join(writing[event.row].split())[-70:])}")
            elif isinstance(event, ReasonDone):
                r = event.recommendation
                console.print(f"[bold]{r.rank}. {shown(r.title)}[/bold]" + (f" ({r.year})" if r.year else ""))
                console.print(f"   {shown(r.reason)}", highlight=False)
                if verbose and r.reason_rejected:
                    console.print(f"   [dim]model's reason not shown: {shown(r.reason_rejected)}[/dim]")
            elif isinstance(event, Done):
                answer = event.answer
                if not answer.recommendations:
                    console.print("Nothing in the catalog fits all of that.")
                for n in answer.notes:
                    console.print(f"[yellow]note:[/yellow] {shown(n)}")
    return answer


def cmd_chat(args: argparse.Namespace) -> int:
    from rich.console import Console

    from ..media.files import MediaError
    from ..recommender import Recommender, UserInput
    from ..session import InputError
    from ..store import StoreError

    console = Console()
    cfg = build_config(args)
    session = _stored_session(cfg, args.session, latest=not args.new)  # before minutes of model loading
    rec = Recommender.from_config(cfg)
    session = session or rec.new_session()
    console.print(f"[dim]session {shown(session.id)} ({len(session.turns)} turns). {HELP}[/dim]")
    console.print(f"[dim]{shown(rec.adapter.note())}[/dim]")
    for t in session.turns[-4:]:
        console.print(f"[dim]{t.role}: {shown(t.text)}[/dim]", highlight=False)
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
                try:
                    cmd, *rest = shlex.split(line)
                except ValueError as e:  # /image "my file.png  (no closing quote)
                    console.print(f"[red]could not read that command ({shown(e)}); quote paths with spaces: "
                                  '/image "my file.png" text[/red]')
                    continue
                if cmd in ("/quit", "/exit"):
                    return 0
                if cmd in ("/like", "/dislike"):
                    if not rest or not rest[0].isdigit():
                        console.print(f"usage: {cmd} N (a rank from the last list)")
                        continue
                    session = rec.feedback(session, int(rest[0]), liked=cmd == "/like")
                    titles = {k: [rec.catalog.get(i).title for i in getattr(session, k) if i in rec.catalog]
                              for k in ("liked", "rejected")}
                    console.print(f"[dim]noted. liked: {shown('; '.join(titles['liked']))}; "
                                  f"rejected: {shown('; '.join(titles['rejected']))}[/dim]")
                    continue
                if cmd == "/reset":
                    session = rec.new_session()
                    console.print(f"[dim]new session {session.id}[/dim]")
                    continue
                if cmd == "/save":
                    session = rec.store.save(session)
                    console.print(f"[dim]saved session {session.id}; resume with: chatrec chat --session {session.id}[/dim]")
                    continue
                if cmd == "/profile":
                    session = profile_command(console, rec, session, rest)
                    continue
                if cmd == "/sessions":
                    for sid, ts in rec.store.list():
                        console.print(f"{shown(sid)}  {time.strftime('%Y-%m-%d %H:%M', time.localtime(ts))}")
                    continue
                if cmd in ("/image", "/audio") and rest:
                    image, audio = (rest[0], None) if cmd == "/image" else (None, rest[0])
                    line = " ".join(rest[1:])
                else:
                    console.print(HELP)
                    continue
            answer = print_events(console, rec.stream(session, UserInput(line, image, audio)), args.verbose)
        except (InputError, MediaError) as e:
            console.print(f"[red]{shown(e)}[/red] (nothing changed)")
            continue
        except StoreError as e:  # e.g. /save of a session another process changed meanwhile: the chat goes on
            console.print(f"[red]{shown(e)}[/red]")
            continue
        session = answer.session


def profile_command(console, rec, session, args: list[str]):
    """``/profile`` in the chat: show the numbered lines, ``remove N``, or ``off`` / ``on`` for this session.
    Returns the session (saved again when its switch changed)."""
    from ..profiles import owner_key

    if args[:1] in (["off"], ["on"]) and len(args) == 1:
        new = session.copy()
        new.use_profile = args[0] == "on"
        session = rec.store.save(new, base=session)
        rec.update_profile(session)  # off: this session's evidence leaves the profile; on: it comes back
        console.print("[dim]profile on for this session: earlier sessions shape the lists, and this one adds to "
                      "them[/dim]" if session.use_profile else
                      "[dim]profile off for this session: it neither uses nor adds to your profile[/dim]")
        return session
    if args[:1] == ["remove"] and len(args) == 2 and args[1].isdigit():
        def remove(profile):
            profile.remove(int(args[1]))
            return profile

        try:
            rec.store.update_profile(session.owner, remove)
        except IndexError as e:
            console.print(f"[red]{shown(e)}[/red]")
            return session
        console.print(f"[dim]removed line {args[1]}; it stays out until a later session says it again[/dim]")
        args = []
    if args:
        console.print("usage: /profile  |  /profile remove N  |  /profile off  |  /profile on")
        return session
    profile = rec.store.load_profile(session.owner)
    lines = profile.lines() if profile else []
    state = "on" if session.use_profile else "off (/profile on to use it)"
    console.print(f"[dim]what chatrec knows about you ({shown(owner_key(session.owner))}), "
                  f"{'in use' if session.use_profile else 'not used'} in this session: {state}[/dim]")
    for n, line in enumerate(lines, 1):
        console.print(f"{n}. {shown(line)}", highlight=False)
    if not lines:
        console.print("nothing yet: likes, rejections, genres, people and years you ask for are kept here")
    return session


def cmd_profile(args: argparse.Namespace) -> int:
    """``chatrec profile show | export | forget``: what is kept about a person, without loading any model."""
    from ..profiles import LOCAL_OWNER, Profile, owner_key

    cfg = build_config(args)
    store = _open_store(cfg)
    owner = None if args.owner in (None, "", LOCAL_OWNER) else args.owner  # None: the terminal's sessions
    if args.action in ("forget", "delete"):
        n = len(store.sessions_of(owner))
        if not args.yes:
            try:
                answer = input(f"Delete the profile of {owner_key(owner)} and its {n} sessions from {store.path}? "
                               "This cannot be undone. [y/N] ")
            except EOFError:
                answer = ""
            if answer.strip().lower() not in ("y", "yes"):
                print("nothing deleted", file=sys.stderr)
                return 1
        had, removed = store.forget(owner)
        print(f"forgot {owner_key(owner)}: {'the profile and ' if had else ''}{removed} session{'' if removed == 1 else 's'}; "
              f"nothing of them is left in {store.path}")
        return 0
    profile = store.load_profile(owner)
    profile = Profile(owner_key(owner)) if profile is None else profile
    if args.action == "export":
        print(profile.to_json(indent=2))
    else:
        for n, line in enumerate(profile.lines(), 1):
            print(f"{n}. {line}")
        if not profile:
            print(f"no profile kept for {owner_key(owner)}")
    return 0


def _open_store(cfg):
    """The session store of ``cfg``, opened before any model loads; store notes go to stderr."""
    from ..store import open_store

    store = open_store(cfg)
    for note in store.notes:
        print(f"chatrec: note: {note}", file=sys.stderr)
    return store


def _stored_session(cfg, session_id: str | None, latest: bool = False):
    """The session to continue (by id, or the latest), read before any model loads; store notes to stderr."""
    store = _open_store(cfg)
    if session_id:
        return store.load(session_id)
    return store.latest() if latest else None


def cmd_recommend(args: argparse.Namespace) -> int:
    from ..recommender import Recommender
    from ..session import Session

    cfg = build_config(args)
    session = _stored_session(cfg, args.session) or Session()  # a bad id or store fails before the models load
    rec = Recommender.from_config(cfg, progress=not args.json)
    if args.json:
        answer = rec.respond(session, args.text, image=args.image, audio=args.audio)
        print(json.dumps(answer.to_dict(), indent=2, ensure_ascii=False))
    else:
        from rich.console import Console

        from ..recommender import UserInput

        print_events(Console(), rec.stream(session, UserInput(args.text, args.image, args.audio)), args.verbose)
    return 0


def cmd_index(args: argparse.Namespace) -> int:
    """Embed the catalog and build its dense (exact or approximate) and BM25 indexes, so that servers start
    from files (a deployment builds them once and shares them read-only)."""
    from ..retrieval import Retriever, embed_catalog, vectors_file
    from ..weights.packaged import load_embedder

    cfg = build_config(args)
    catalog = cfg.load_catalog()
    embedder = load_embedder(cfg.model.embedder)
    vecs = embed_catalog(catalog, embedder, cfg.model.embedder, cfg.cache(), progress=True)
    path = vectors_file(catalog, cfg.model.embedder, cfg.cache())
    retriever = Retriever(catalog, embedder, vecs, cfg.retrieval, vectors_path=path, progress=True)
    print(f"indexed {len(catalog)} items from {catalog.source}: {vecs.shape[1]}-d vectors, {retriever.dense.kind} "
          f"dense index, hash {catalog.content_hash()[:16]}" + (f", files in {path.parent}" if path else ""))
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from ..evaluation.run import EvalOptions, evaluate, parse_baselines

    if args.multisession:
        from ..evaluation.multisession import MultiSessionOptions
        from ..evaluation.multisession import evaluate as evaluate_multisession

        table, _ = evaluate_multisession(build_config(args), MultiSessionOptions(args.multisession, out=args.out))
        print(table)
        return 0
    opts = EvalOptions(args.dialogues or "", parse_baselines(args.baselines), args.limit, args.out, args.interactive,
                       not args.no_reasons, injection=not args.no_injection)
    table, _ = evaluate(build_config(args), opts)
    print(table)
    return 0


def cmd_tune(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from ..evaluation.dialogues import load_dialogues
    from ..evaluation.replay import DATA
    from ..evaluation.tune import tune_combination, tune_retrieval
    from ..recommender import Recommender

    ranking = args.stage == "ranking"
    cfg = build_config(args, ["generation.reasons=false"] + ([] if ranking else ["ranking.use_llm=false"]))
    rec = Recommender.from_config(cfg, load_llm_model=ranking)
    path = Path(args.dialogues) if args.dialogues else DATA / "human_val.jsonl"
    dialogues = load_dialogues(path, rec.catalog).dialogues
    dialogues = dialogues[: args.limit] if args.limit else dialogues
    if ranking:
        if not rec.uses_llm:
            raise ConfigError("--stage ranking needs the LLM (ranking.use_llm=true)")
        comb = tune_combination(rec, dialogues)
        print(f"{path.name}: {comb.turns} turns; adapter: {rec.adapter.note()}")
        print("| ranking.retrieval_weight | R@1 | R@10 | NDCG@10 |\n|---|---|---|---|")
        for w, r1, r10, ndcg in comb.table:
            print(f"| {w:g} | {r1:.3f} | {r10:.3f} | {ndcg:.3f} |")
        print(f"[ranking]\nretrieval_weight = {comb.best}")
        return 0
    result = tune_retrieval(rec, dialogues, sweeps=args.sweeps)
    k = cfg.retrieval.n_candidates
    print(f"| setting (changed from the best so far) | Recall@{k} | NDCG@10 |\n|---|---|---|")
    for changed, recall, ndcg in result.trials:
        print(f"| {', '.join(f'{n}={v:g}' for n, v in changed.items()) or 'start'} | {recall:.3f} | {ndcg:.3f} |")
    print(f"{path.name}: {result.turns} turns; Recall@{k} / NDCG@10 {result.start[0]:.3f} / {result.start[1]:.3f} "
          f"-> {result.score[0]:.3f} / {result.score[1]:.3f}")
    print("[retrieval]")
    for key, value in asdict(result.best).items():
        if value != getattr(cfg.retrieval, key):
            print(f"{key} = {value}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from ..training.loop import train

    extra = [f"train.out={args.out}"] if args.out else []
    if args.load_in_4bit:
        extra.append("train.load_in_4bit=true")
    result = train(build_config(args, extra), args.resume)
    m, t = result.manifest.training["metrics"], result.manifest.training
    print(f"trained {t['steps']} steps in {t['seconds']:.0f} s; validation recall@1 {m['recall@1']:.3f}, "
          f"recall@5 {m['recall@5']:.3f} on {m['n']} turns; adapter in {t['out']}")
    return 0


def cmd_ui(argv: list[str]) -> int:
    from .gradio_app import main as ui_main  # takes its own flags

    return ui_main(argv)


def cmd_serve(argv: list[str]) -> int:
    from .server import main as serve_main  # takes its own flags

    return serve_main(argv)


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="chatrec", description=__doc__)
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("chat", help="interactive terminal chat")
    add_common_args(p)
    p.add_argument("--session", help="resume this session id (default: the latest)")
    p.add_argument("--new", action="store_true", help="start a new session")
    p.set_defaults(func=cmd_chat)
    p = sub.add_parser("recommend", help="one-shot recommendation")
    add_common_args(p)
    p.add_argument("text")
    p.add_argument("--image")
    p.add_argument("--audio")
    p.add_argument("--session")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_recommend)
    p = sub.add_parser("profile", help="what chatrec keeps about you across sessions: show, export (JSON), forget")
    add_common_args(p)
    p.add_argument("action", choices=["show", "export", "forget", "delete"],
                   help="show: the lines; export: JSON to stdout; forget (or delete): delete the profile and all its sessions")
    p.add_argument("--owner", help="a UI or API owner (the hash its sessions store; default: this terminal's user)")
    p.add_argument("--yes", action="store_true", help="forget without asking")
    p.set_defaults(func=cmd_profile)
    p = sub.add_parser("index", help="embed a catalog and build its dense and BM25 indexes (kept by content hash)")
    add_common_args(p)
    p.set_defaults(func=cmd_index)
    p = sub.add_parser("eval", help="replay scripted dialogues and score the lists")
    add_common_args(p)
    p.add_argument("--dialogues", required=False, help="one dialogue JSONL (default: the human test split as the main table, then the template test split and the hand-written set)")
    p.add_argument("--baselines", default="none", help="'all', 'none' or a comma list")
    p.add_argument("--limit", type=int, default=0, help="evaluate only the first N dialogues")
    p.add_argument("--out", default="eval_out", help="report directory")
    p.add_argument("--interactive", type=int, default=0, help="also run N simulated-user episodes")
    p.add_argument("--multisession", type=int, default=0, metavar="N",
                   help="instead of replaying dialogues: N returning simulated users, 3 sessions each, with and "
                        "without profiles and the collaborative channel (python -m chatrec.evaluation.multisession "
                        "for more options)")
    p.add_argument("--no-reasons", action="store_true", help="skip reason generation")
    p.add_argument("--no-injection", action="store_true",
                   help="skip the injection check (ordinary requests over the catalog plus 25 hostile items)")
    p.set_defaults(func=cmd_eval)
    p = sub.add_parser("tune", help="choose retrieval weights, or the LLM/retrieval mix, on validation dialogues")
    add_common_args(p)
    p.add_argument("--stage", choices=["retrieval", "ranking"], default="retrieval",
                   help="retrieval: fusion weights and boosts (no LLM); ranking: ranking.retrieval_weight")
    p.add_argument("--dialogues", help="dialogue JSONL (default: the human validation split)")
    p.add_argument("--sweeps", type=int, default=2, help="coordinate-ascent passes over the parameters")
    p.add_argument("--limit", type=int, default=0, help="only the first N dialogues")
    p.set_defaults(func=cmd_tune)
    p = sub.add_parser("train", help="LoRA + projector fine-tuning (settings: the [train] section of the config)")
    add_common_args(p)
    p.add_argument("--out", help="output bundle directory (train.out; default runs/adapter)")
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint under the output")
    p.add_argument("--load-in-4bit", action="store_true", help="QLoRA with bitsandbytes (CUDA only)")
    p.set_defaults(func=cmd_train)
    sub.add_parser("ui", help="start the Gradio UI (flags: see chatrec ui --help)", add_help=False)
    sub.add_parser("serve", help="start the HTTP API (FastAPI; flags: see chatrec serve --help)", add_help=False)
    return ap


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    verbose = "-v" in argv or "--verbose" in argv
    if argv[:1] in (["ui"], ["serve"]):  # they parse their own flags
        run = functools.partial(cmd_ui if argv[0] == "ui" else cmd_serve, argv[1:])
    else:
        args = parser().parse_args(argv)
        logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                            format="%(levelname)s %(name)s: %(message)s")
        run = functools.partial(args.func, args)
    for noisy in ("bm25s", "bitsandbytes", "httpx"):  # library chatter that a user cannot act on
        logging.getLogger(noisy).setLevel(logging.ERROR)
    if not verbose:  # deprecation notices from inside transformers / peft: nothing a user can change
        warnings.filterwarnings("ignore", category=FutureWarning)
    user_errors = _user_errors()
    try:
        return run() or 0
    except user_errors as e:
        if verbose:
            log.exception("details")
        print(f"chatrec: error: {one_line(e)}", file=sys.stderr)
        return 2


def _user_errors() -> tuple[type[BaseException], ...]:
    """Errors whose message is meant for the user: one line and exit code 2, a traceback only with -v."""
    import sqlite3

    from ..adapter import AdapterError
    from ..catalog import CatalogError
    from ..media.files import MediaError
    from ..session import InputError
    from ..store import StoreError
    from ..weights.packaged import ModelUnavailableError

    return (ConfigError, CatalogError, ModelUnavailableError, InputError, MediaError, AdapterError, StoreError,
            KeyError, OSError, sqlite3.Error, UnicodeError)


def one_line(e: BaseException) -> str:
    """The message of ``e`` on one line; OS errors name the file, unknown ones say what they are."""
    if isinstance(e, KeyError) and e.args:
        text = str(e.args[0])
    elif isinstance(e, OSError) and e.strerror:
        text = f"{e.strerror}: {e.filename}" if e.filename else e.strerror
    else:
        text = str(e) or type(e).__name__
    if type(e).__module__ == "sqlite3":
        text = f"session database: {text}"
    return " ".join(_CONTROL.sub(" ", text).split())


if __name__ == "__main__":
    sys.exit(main())
