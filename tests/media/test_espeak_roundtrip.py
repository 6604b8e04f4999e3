"""Speak recommendation requests with espeak-ng, transcribe them with packaged Whisper base, score WER.

Measured (2 threads): 19/142 word errors with the default voice, 16/142 with ``-v en-us -s 150``,
aggregate WER 0.123. Most errors are espeak's flat prosody ("something scary" -> "some things carry").
"""

import re
import shutil
import subprocess

import pytest

SENTENCES = [
    "Recommend me a tense science fiction thriller set in space, something like Alien.",
    "I want a funny animated movie about toys for my kids.",
    "Can you suggest a romantic comedy set in Paris?",
    "I loved the book about the lonely lighthouse keeper, what should I read next?",
    "Play me some relaxing jazz for a rainy evening.",
    "Find me a cheap pair of running shoes for long distance training.",
    "Show me a documentary about the ocean and the animals that live there.",
    "I am looking for a board game that six friends can play together.",
    "Something scary but not too violent, please, for a night with my friends.",
    "Which podcast about history would you recommend for a long drive?",
    "My daughter likes dragons and magic, recommend a fantasy novel for her.",
    "I need a quiet restaurant with vegetarian food near the city center.",
]
VOICES = [(), ("-v", "en-us", "-s", "150")]  # default voice, and a slower US voice
MAX_WER = 0.15


def normalise(text: str) -> list[str]:
    """Lower case, hyphens split words, punctuation and apostrophes dropped."""
    return re.sub(r"[^a-z0-9 ]+", " ", text.lower().replace("-", " ").replace("'", "")).split()


def word_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """(Levenshtein distance over normalised words, reference length)."""
    ref, hyp = normalise(reference), normalise(hypothesis)
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        diag, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            diag, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, diag + (r != h))
    return row[-1], len(ref)


@pytest.mark.parametrize(
    "ref, hyp, errors",
    [("A b, c.", "a B C", 0), ("one two three", "one three", 1), ("a b", "a b c d", 2), ("sci-fi", "sci fi", 0)],
)
def test_word_errors(ref, hyp, errors):
    assert word_errors(ref, hyp)[0] == errors


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed (apt-get install -y espeak-ng)")
def test_espeak_roundtrip_wer(tmp_path):
    from chatrec.media.audio import load_audio
    from chatrec.media.encoders import AudioEncoder

    encoder = AudioEncoder("base")
    total_err = total_words = 0
    for v, voice in enumerate(VOICES):
        for i, text in enumerate(SENTENCES):
            wav = tmp_path / f"{v}_{i}.wav"
            subprocess.run(["espeak-ng", *voice, "-w", str(wav), text], check=True)
            hyp = encoder.encode(load_audio(wav)).transcript
            err, n = word_errors(text, hyp)
            total_err, total_words = total_err + err, total_words + n
            print(f"{' '.join(voice) or 'default':>16} {err}/{n} | {text} | {hyp}")
    wer = total_err / total_words
    print(f"aggregate WER {wer:.3f} ({total_err}/{total_words} words, {len(VOICES) * len(SENTENCES)} utterances)")
    assert wer <= MAX_WER
