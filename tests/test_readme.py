"""The README's Python example runs as written (real packaged models)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def python_examples() -> list[str]:
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(encoding="utf-8"), re.S)
    return [b for b in blocks if "import chatrec" in b]


def test_the_readme_has_a_python_example():
    assert python_examples(), "README lost its Python API example"


@pytest.mark.slow
def test_the_readme_python_example_runs(tmp_path):
    code = python_examples()[0]
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=600,
                          env={**__import__("os").environ, "CHATREC_HOME": str(tmp_path / "home")})
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert len(lines) >= 3 + 1 and lines[0].startswith("1 "), done.stdout  # three ranked lines, then the stream
    assert list((tmp_path / "home").glob("sessions.sqlite")), "the example's session was stored in CHATREC_HOME"
