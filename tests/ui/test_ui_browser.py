"""The real app (packaged models) driven in headless Chromium, plus two simulated users in threads."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # app_gradio.py sits at the repo root
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
FIXTURES = Path(__file__).parents[1] / "fixtures"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def rec(tmp_path_factory):
    from chatrec.config import load_config
    from chatrec.recommender import Recommender

    return Recommender.from_config(load_config(None, [f"data_dir={tmp_path_factory.mktemp('ui-real')}"]), progress=False)


@pytest.fixture(scope="module")
def app_url(rec):
    import app_gradio

    demo = app_gradio.build_app(rec)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, max_file_size="20mb", quiet=True)
    yield f"http://127.0.0.1:{port}/"
    demo.close()


@pytest.fixture
def driver(tmp_path):
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.skip("needs /usr/bin/chromium and /usr/bin/chromedriver (apt-get install -y chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={tmp_path / 'chrome'}", "--window-size=1440,1200"):
        opts.add_argument(flag)
    d = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=opts)
    yield d
    d.quit()


def _speech_wav(tmp_path: Path) -> tuple[Path, str]:
    """A spoken request: the checked-in espeak fixture, else one made with espeak-ng."""
    for wav in sorted(FIXTURES.glob("*.wav")):
        txt = wav.with_suffix(".txt")
        if txt.exists() and "romantic" in txt.read_text().lower():
            return wav, txt.read_text().strip()
    text = "Can you suggest a romantic comedy set in Paris?"
    if not shutil.which("espeak-ng"):
        pytest.skip("no WAV fixture in tests/fixtures and no espeak-ng to make one")
    wav = tmp_path / "speech.wav"
    subprocess.run(["espeak-ng", "-w", str(wav), text], check=True)
    return wav, text


def screenshot(driver, tmp_path: Path) -> None:
    driver.save_screenshot(str(tmp_path / "ui.png"))
    (ROOT / "docs").mkdir(exist_ok=True)
    shutil.copy(tmp_path / "ui.png", ROOT / "docs" / "ui.png")


@pytest.mark.browser
def test_chat_dislike_audio_and_screenshot(app_url, driver, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(driver, 180, poll_frequency=0.5)
    css = lambda sel: driver.find_elements(By.CSS_SELECTOR, sel)  # noqa: E731

    def answered(n_user: int) -> bool:
        """The n-th user turn has its final answer: status done and every card has a checked reason."""
        users = css("#chat .user-row, #chat [data-testid='user']")
        status = css("#status")
        reasons = [e.text for e in css(".card .reason:not(.pending)")]
        return (len(users) >= n_user and bool(status) and "✅" in status[0].text
                and len(reasons) >= 3 and all(reasons) and not css(".card .pending"))

    def titles() -> list[str]:
        return [e.text for e in css(".card .title")]

    driver.get(app_url)
    box = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#msg textarea"))
    wait.until(lambda d: "New conversation" in d.find_element(By.ID, "status").text)  # the page has its secret
    box.send_keys("a funny space adventure with a great soundtrack")
    driver.find_element(By.ID, "send").click()
    wait.until(lambda d: answered(1))
    first = titles()
    assert len(first) >= 3

    driver.find_element(By.ID, "dislike-1").click()
    wait.until(lambda d: "Not #1" in d.find_element(By.ID, "chat").text)
    wait.until(lambda d: answered(2) and titles() != first)
    assert first[0] not in titles()
    screenshot(driver, tmp_path)

    wav, said = _speech_wav(tmp_path)
    driver.find_element(By.CSS_SELECTOR, "#audio input[type=file]").send_keys(str(wav))
    wait.until(lambda d: css("#audio audio, #audio [data-testid='waveform-controls']"))
    driver.find_element(By.ID, "send").click()
    wait.until(lambda d: "Heard:" in d.find_element(By.ID, "chat").text)
    heard = driver.find_element(By.ID, "chat").text.split("Heard:")[-1].lower()
    assert "paris" in heard or "romantic" in heard, f"transcript of {said!r} not shown: {heard[:200]!r}"
    wait.until(lambda d: answered(3))
    screenshot(driver, tmp_path)  # the picture for the docs shows the transcript too


def test_two_users_at_once_with_the_real_models(rec):
    from chatrec.ui.gradio_app import ChatUI

    ui = ChatUI(rec)
    results: dict[str, tuple] = {}

    def user(name: str, message: str) -> None:
        v = list(ui.send(None, [], message))
        results[name] = (v[-1].sid, v[-1].history, len(v))

    threads = [threading.Thread(target=user, args=(n, m)) for n, m in (("a", "a heist thriller"), ("b", "a sad drama"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    (sa, ha, na), (sb, hb, nb) = results["a"], results["b"]
    assert sa != sb and ha[0]["content"] == "a heist thriller" and hb[0]["content"] == "a sad drama"
    assert ha[-1]["content"] != hb[-1]["content"] and min(na, nb) > 2  # streamed, not one final update
    assert [t.text for t in rec.store.load(sa).turns if t.role == "user"] == ["a heist thriller"]
