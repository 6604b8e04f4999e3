"""chatrec installs like a library: a wheel carries the templates, the demo data and the shipped adapter as
package resources, runs from any directory, and the shipped bundle names no path of the machine it was
trained on."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import time
import zipfile
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DEFAULT = ROOT / "adapters" / "default"
_ABSOLUTE = re.compile(r"""(?:^|[\s"'(=])(?:/|[A-Za-z]:[\\/])\w""")


def _checkout_files() -> list[str]:
    """The files a clean clone would have (tracked, plus new files not ignored): no local caches or runs."""
    try:
        out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                             capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("git is needed to list the checkout's files")
    return [f for f in out.decode().split("\0") if f and (ROOT / f).is_file()]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """A wheel built from a copy of the checkout (the build writes build/ and *.egg-info next to its sources)."""
    src = tmp_path_factory.mktemp("src")
    for f in _checkout_files():
        (src / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / f, src / f)
    dist = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist),
                    str(src)], check=True, capture_output=True)
    (whl,) = dist.glob("chatrec-*.whl")
    return whl


def test_wheel_carries_templates_demo_data_and_the_default_adapter(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for need in ("chatrec/prompts/rank.txt", "chatrec/prompts/reason.txt",
                 "chatrec/adapters/default/adapter_model.safetensors", "chatrec/adapters/default/adapter_config.json",
                 "chatrec/adapters/default/manifest.json", "chatrec/adapters/default/README.md",
                 "chatrec/data/demo_films.jsonl", "chatrec/data/demo_books.jsonl", "chatrec/data/demo_books.schema.json",
                 "chatrec/data/dialogues/human_test.jsonl", "chatrec/data/reasons/train.jsonl", "chatrec/ui/uploads.pyi"):
        assert need in names
    assert not [n for n in names if "checkpoints/" in n or n.endswith((".pt", ".bin", ".npy"))]
    assert not [n for n in names if n.startswith(("adapters/", "prompts/", "tests/"))]  # nothing at the top level
    # every module of the checkout is in the wheel (pyproject lists chatrec's subpackages by name)
    modules = {f for f in _checkout_files() if f.startswith("chatrec/") and f.endswith(".py")}
    assert modules - names == set()


def _strings(value):
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, list):
        for v in value:
            yield from _strings(v)
    elif isinstance(value, str):
        yield value


def test_shipped_adapter_names_no_machine_path():
    home = str(Path.home())
    for f in sorted(DEFAULT.glob("*.json")):
        text = f.read_text(encoding="utf-8")
        json.loads(text)
        strings = list(_strings(json.loads(text)))
        bad = [s for s in strings if _ABSOLUTE.search(s) or (home not in ("", "/") and home in s) or s.startswith("~")]
        assert bad == [], f"{f.name}: machine paths {bad}"
    config = json.loads((DEFAULT / "adapter_config.json").read_text())
    manifest = json.loads((DEFAULT / "manifest.json").read_text())
    assert config["base_model_name_or_path"] == manifest["base_model"]


def test_model_card_starts_with_hugging_face_metadata():
    card = (DEFAULT / "README.md").read_text(encoding="utf-8")
    assert card.startswith("---\n")
    head, sep, body = card[4:].partition("\n---\n")
    assert sep and "# chatrec adapter" in body
    meta = yaml.safe_load(head)
    assert meta["library_name"] == "peft" and meta["base_model"]
    assert {"lora", "peft"} <= set(meta["tags"]) and meta["datasets"] and meta["metrics"]


def test_training_records_portable_paths(tmp_path):
    from chatrec.training.card import portable

    inside = tmp_path / "runs" / "stage3"
    record = {"init": str(inside), "note": f"copied unchanged from {inside}", "win": "C:\\Users\\me\\train.jsonl",
              "home": str(Path.home() / "data" / "x.jsonl"), "plain": "runs/stage4", "n": 3, "text": "and/or 1/2"}
    out = portable(record, root=tmp_path)
    assert out == {"init": "runs/stage3", "note": "copied unchanged from runs/stage3", "win": "train.jsonl",
                   "home": "x.jsonl", "plain": "runs/stage4", "n": 3, "text": "and/or 1/2"}


_PROBE = r"""
import json, sys
from importlib import resources
import chatrec
from chatrec.adapter import ADAPTERS_DIR, read_manifest, resolve
from chatrec.catalog import load_catalog
from chatrec.prompting import PROMPTS_DIR, templates_hash
pkg = resources.files("chatrec")
print(json.dumps({
    "file": chatrec.__file__, "prompts": str(PROMPTS_DIR), "adapters": str(ADAPTERS_DIR),
    "rank": (pkg / "prompts" / "rank.txt").read_text(encoding="utf-8"),
    "reason_ns": (resources.files("chatrec.prompts") / "reason.txt").is_file(),
    "manifest": json.loads((pkg / "adapters" / "default" / "manifest.json").read_text()),
    "films": len(load_catalog("films")), "books": len(load_catalog("books")),
    "default": str(resolve("default")), "hash": templates_hash(),
}))
"""


@pytest.mark.slow
def test_wheel_installs_and_recommends_from_any_directory(wheel, tmp_path):
    """Install the wheel into a fresh venv outside the checkout; the checkout's venv lends only the
    dependencies (a .pth entry: its editable finder is not run), so the package comes from the wheel."""
    t0 = time.perf_counter()
    venv = tmp_path / "venv"
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", "--system-site-packages", str(venv)], check=True, capture_output=True)
    py = venv / "bin" / "python"
    site = Path(subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    (site / "_chatrec_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", "--ignore-installed", str(wheel)],
                   check=True, capture_output=True)
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["CHATREC_HOME"] = str(tmp_path / "home")  # sessions of this run; the model cache stays ~/.cache/chatrec
    probe = subprocess.run([str(py), "-c", _PROBE], cwd=cwd, env=env, check=True, capture_output=True, text=True)
    got = json.loads(probe.stdout.strip().splitlines()[-1])
    assert Path(got["file"]).is_relative_to(venv) and not Path(got["file"]).is_relative_to(ROOT)
    for key in ("prompts", "adapters", "default"):
        assert Path(got[key]).is_relative_to(site / "chatrec"), got[key]
    assert got["rank"] and got["reason_ns"] and got["films"] > 1000 and got["books"] > 0

    from chatrec.prompting import templates_hash

    assert got["hash"] == templates_hash() == got["manifest"]["prompts_sha256"]

    run = subprocess.run([str(venv / "bin" / "chatrec"), "recommend", "a tense sci-fi thriller set in space", "--json",
                          "--set", "generation.reasons=false"], cwd=cwd, env=env, capture_output=True, text=True,
                         timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    answer = json.loads(run.stdout)
    print(f"wheel install + recommend: {time.perf_counter() - t0:.0f} s")
    assert len(answer["recommendations"]) == 5
    # The shipped adapter loaded: a bundle that fails its checks stops the command, a missing one leaves a note.
    assert not [n for n in answer["notes"] if "adapter" in n.lower() or "untuned" in n.lower()], answer["notes"]
