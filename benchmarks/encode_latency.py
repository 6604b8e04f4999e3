"""Latency of the media encoders on this CPU: p50/p95 over repeated runs, plus peak RSS.

Run: /work/venv/bin/python benchmarks/encode_latency.py [--runs 10]
Sections are functions returning result rows; main() runs them in order, so more can be appended.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

SPOKEN = (
    "Recommend me a tense science fiction thriller set in space, something like Alien, "
    "but please nothing too violent, because I will watch it with my younger brother tonight after dinner at home."
)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def timed(fn: Callable[[], object], runs: int, warmup: int = 1) -> dict[str, float]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return {"p50_s": float(np.percentile(times, 50)), "p95_s": float(np.percentile(times, 95)), "runs": runs}


def report(name: str, row: dict[str, float]) -> None:
    print(
        f"{name:<44} p50 {row['p50_s'] * 1000:8.1f} ms   p95 {row['p95_s'] * 1000:8.1f} ms   "
        f"peak RSS {peak_rss_mb():7.0f} MB"
    )


def bench_clip(runs: int) -> None:
    from chatrec.media.encoders import TINY_CLIP, ImageEncoder

    image = [Image.fromarray(np.random.default_rng(0).integers(0, 255, (480, 640, 3), dtype=np.uint8))]
    for name in (TINY_CLIP, "ViT-B-32"):  # ViT-B-32 with random weights costs the same as trained ones
        enc = ImageEncoder(name, allow_random=True)
        report(f"CLIP {name} encode 1 image", timed(lambda e=enc: e.encode_images(image), runs))
        report(f"CLIP {name} encode 1 text", timed(lambda e=enc: e.encode_texts(["a tense space thriller"]), runs))


def bench_whisper(runs: int) -> None:
    from chatrec.media.audio import load_audio
    from chatrec.media.encoders import AudioEncoder
    from chatrec.weights.whisper_ct2 import load_packaged_whisper

    t0 = time.perf_counter()
    load_packaged_whisper("base")
    print(f"{'Whisper base load (cache or convert)':<44} {time.perf_counter() - t0:8.2f} s")
    if shutil.which("espeak-ng") is None:
        print("espeak-ng missing: skipping Whisper transcription")
        return
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "ten.wav"
        subprocess.run(["espeak-ng", "-w", str(wav), SPOKEN], check=True)
        clip = load_audio(wav)
    enc = AudioEncoder("base")
    print(f"clip {clip.duration_s:.1f} s -> {enc.encode(clip).transcript!r}")
    report(f"Whisper base encode+transcribe {clip.duration_s:.0f}-s clip", timed(lambda: enc.encode(clip), runs))


def bench_prefill(runs: int) -> None:
    """Added prefill cost of soft tokens: the rank prompt with and without K image + M audio tokens.

    The projectors here are random: this measures cost only; nothing random reaches a user.
    """
    from chatrec.catalog import load_demo_catalog
    from chatrec.config import PACKAGED_LLM, Config, MediaConfig
    from chatrec.model import ChatLM, SoftInputs
    from chatrec.projector import build_projector
    from chatrec.prompting import PromptTurn, rank_prompt
    from chatrec.weights.packaged import load_llm

    tok, model, identity = load_llm(PACKAGED_LLM, Config.cache())
    lm = ChatLM(tok, model, identity)
    m = MediaConfig()
    lm.projectors["image"] = build_projector("mlp2x_gelu", 512, lm.hidden_size, m.image_tokens)
    lm.projectors["audio"] = build_projector("mlp2x_gelu", 512, lm.hidden_size, 1)
    items = list(load_demo_catalog())[:10]
    plain = rank_prompt([PromptTurn("user", "something with this mood, and what I said")], items)
    soft = rank_prompt([PromptTurn("user", "something with this mood, and what I said", True, True)], items)
    media = SoftInputs(image=[torch.randn(1, 512)], audio=[torch.randn(m.audio_tokens, 512)])
    report("LLM rank prompt, text only", timed(lambda: lm.rank(plain, 10), runs))
    report(f"LLM rank prompt + {m.image_tokens} image + {m.audio_tokens} audio tokens",
           timed(lambda: lm.rank(soft, 10, media), runs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads, {args.runs} runs per row")
    for section in (bench_clip, bench_whisper, bench_prefill):
        section(args.runs)


if __name__ == "__main__":
    main()
