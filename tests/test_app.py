"""``cmet app``: the page's edit through Gradio's own client (a real HTTP client against the app on 127.0.0.1, stand-in
weights), the page in a real headless Chromium (Selenium driving the system's ``chromium``; a screenshot of the
finished page goes to ``test-artifacts/app.png``), the workbench's checks without a page, and the command itself.

Needs the extra (``pip install 'cmet-cli[app]'``, which ``make test`` installs); skipped without gradio."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from cmet_cli import media
from cmet_cli.app.workbench import Workbench, output_name, parse_keyframes, readable_video
from cmet_cli.errors import CmetError, UsageError
from cmet_cli.options import EditOptions

from .cli_support import BANK, BOX, ROOT, cmet
from .clips import synthetic, two_faces_clip
from .media_checks import frames

FACE = (slice(0, 96), slice(0, 96))  # x, y of BOX in the clip


# ---------------------------------------------------------------- the workbench, no page

def test_keyframes_parse_like_at():
    cues = parse_keyframes("0 happy\n\n0:04 sad\n")
    assert [(c.time, c.label) for c in cues] == [(0.0, "happy"), (4.0, "sad")]
    with pytest.raises(UsageError, match="keyframe line 1: write TIME EMOTION"):
        parse_keyframes("happy")


def test_a_typed_path_is_checked_never_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    planted = tmp_path / "planted"
    for text, needle in [(f"$(touch {planted})", "no such file"), (f"; touch {planted}", "no such file"),
                         (str(tmp_path), "not a regular file"), ("", "give a video")]:
        with pytest.raises(CmetError, match=needle.replace("(", r"\(")):
            readable_video(text)
    (tmp_path / "notes.mp4").write_text("not a video\n")
    with pytest.raises(CmetError, match="not a readable video"):
        readable_video(str(tmp_path / "notes.mp4"))
    assert not planted.exists()


def test_output_names_separate_edits_and_find_the_same_one(tmp_path):
    video = tmp_path / "my talk;rm -rf.mp4"
    video.write_bytes(b"x")
    name = output_name(video, "happy", "s1")
    assert name == output_name(video, "happy", "s1") and name.startswith("my_talk_rm_-rf-happy-")
    assert output_name(video, "happy", "s2") != name  # other settings: another file, never a clash


# ---------------------------------------------------------------- the page through gradio_client

@pytest.fixture(scope="module")
def served(tmp_path_factory, small_weights):
    """The app on 127.0.0.1 (a free port) with stand-in weights, its workbench and where it writes."""
    pytest.importorskip("gradio", reason="the app's extra is not installed: pip install 'cmet-cli[app]'")
    from cmet_cli.app.page import serve

    root = tmp_path_factory.mktemp("app")
    scratch = root / "scratch"
    scratch.mkdir()
    before = {k: os.environ.get(k) for k in ("GRADIO_TEMP_DIR", "GRADIO_ANALYTICS_ENABLED")}
    os.environ.update(GRADIO_TEMP_DIR=str(scratch), GRADIO_ANALYTICS_ENABLED="False")
    base = EditOptions(preset="neutral", weights_dir=small_weights, bank_dir=BANK, device="cpu",
                       box=tuple(int(v) for v in BOX[1].split(","))).validate()
    workbench = Workbench(base, root / "edits", scratch)
    workbench.output_dir.mkdir()
    page = serve(workbench, host="127.0.0.1", port=None, share=False, block=False)
    try:
        yield page, workbench
    finally:
        page.close()
        for key, value in before.items():
            os.environ.pop(key, None) if value is None else os.environ.__setitem__(key, value)


@pytest.fixture(scope="module")
def client(served, tmp_path_factory):
    from gradio_client import Client

    page, _ = served
    assert page.local_url.startswith("http://127.0.0.1:")
    return Client(page.local_url, verbose=False, download_files=str(tmp_path_factory.mktemp("downloads")))


def edit_args(video: Path, preset: str = "happy", **changes) -> dict:
    from gradio_client import handle_file

    args = {"upload": handle_file(str(video)), "typed": "", "preset": preset, "speech": None,
            "intensity": 1.0, "keyframes": "", "face": "1"}
    args.update(changes)
    return args


def call(client, **args):
    return client.predict(*args.values(), api_name="/edit")


def test_upload_and_preset_edit_writes_a_verified_video(client, served, clip):
    _, workbench = served
    original, result, download, row, status = call(client, **edit_args(clip))
    assert row["status"] == "done", row
    out = Path(row["output"])
    assert out.parent == workbench.output_dir and status.startswith("done: 3 frames")
    assert out.name.startswith("talk-happy-") and original and result and download
    assert [p.name for p in workbench.output_dir.iterdir()] == [out.name]  # nothing else written, no .part left
    before, after = frames(clip), frames(out)
    assert after.shape == before.shape  # every frame, same size
    x, y = FACE
    face = float(np.abs(after[:, y, x] - before[:, y, x]).mean())
    rest = float(np.abs(after[:, 150:, 200:] - before[:, 150:, 200:]).mean())
    # measured: face 48.5, rest 0.75 (re-encode only): an edit that never reached the face, or one pasted over
    # the whole frame, fails one bound or the other
    assert face > 10.0 and rest < 2.0, (face, rest)
    assert media.container_tags(out).get("comment", "").startswith("cmet-edit settings=")  # the CLI's settings record
    # the same edit of the same file (typed path: an upload is a new file each time): the earlier output is found
    # and kept (resume), nothing written twice
    typed = dict(upload=None, typed=str(clip))
    first = call(client, **edit_args(clip, **typed))[3]
    again = call(client, **edit_args(clip, **typed))[3]
    assert first["status"] == "done" and again["status"] == "skipped" and again["output"] == first["output"]
    assert len(list(workbench.output_dir.iterdir())) == 2


def test_bad_input_shows_the_clis_message_and_the_app_keeps_running(client, served, clip, tmp_path):
    _, workbench = served
    text = tmp_path / "holiday.mp4"
    text.write_text("this is not a video\n")
    row, status = call(client, **edit_args(text))[3:]
    assert row["status"] == "failed" and status.startswith("error: ") and "not a readable video" in status
    assert "\n" not in status
    short = tmp_path / "short.wav"
    import soundfile as sf

    sf.write(short, np.zeros(1600, np.float32), 16000)  # 0.1 s
    from gradio_client import handle_file

    row, status = call(client, **edit_args(clip, preset=None, speech=handle_file(str(short))))[3:]
    assert row["status"] == "failed" and status.startswith("error: ") and "too short" in status, status
    typed = call(client, **edit_args(clip, upload=None, typed="/etc/passwd"))[3:]
    assert typed[0]["status"] == "failed" and "not a readable video" in typed[1]
    assert call(client, **edit_args(clip, preset="sad"))[3]["status"] == "done"  # still serving
    assert not any(p.name.endswith(".part") for p in workbench.output_dir.iterdir())


def test_two_edits_at_once_are_queued_not_interleaved(client, served, clip, monkeypatch):
    _, workbench = served
    spans: list[tuple[float, float]] = []
    real = Workbench.edit

    def timed(self, *args, **kwargs):  # outside the workbench's own lock: this sees what gradio's queue lets through
        started = time.monotonic()
        try:
            return real(self, *args, **kwargs)
        finally:
            spans.append((started, time.monotonic()))

    monkeypatch.setattr(Workbench, "edit", timed)
    jobs = [client.submit(*edit_args(clip, preset=p, intensity=0.5).values(), api_name="/edit")
            for p in ("angry", "surprised")]
    rows = [job.result(timeout=120)[3] for job in jobs]
    assert [r["status"] for r in rows] == ["done", "done"], rows
    assert len(spans) == 2
    (a0, a1), (b0, b1) = sorted(spans)
    assert a1 <= b0, spans  # the second began after the first ended


def test_preview_shows_the_contact_sheet(client, clip):
    import cv2

    sheet, status = client.predict(*edit_args(clip, preset="happy").values(), api_name="/preview")
    image = cv2.imread(sheet)
    assert image is not None and image.shape[0] == 2 * 256, status  # original above edited, 256-px rows


# ---------------------------------------------------------------- the face picker (Find faces), through gradio_client

@pytest.fixture(scope="module")
def two(tmp_path_factory) -> Path:
    return two_faces_clip(tmp_path_factory.mktemp("two") / "two.mp4")


@pytest.fixture
def detecting(served, monkeypatch) -> Workbench:
    """The served app as ``cmet app --detector cascade`` (no ``--box``): faces are found, not given."""
    _, workbench = served
    monkeypatch.setattr(workbench, "base", replace(workbench.base, box=None, detector="cascade").validate())
    return workbench


def find_faces(client, video: Path) -> tuple:
    from gradio_client import handle_file

    return client.predict(handle_file(str(video)), "", api_name="/faces")


def region(face: dict) -> tuple[slice, slice]:
    """Rows and columns of a listed face's box (its mean centre and size), as ``test_multiface.box_of``."""
    (cx, cy), half = face["centre"], face["size"] / 2
    return slice(int(cy - half), int(cy + half)), slice(int(cx - half), int(cx + half))


@pytest.mark.cascade
def test_find_faces_lists_the_ids_and_shows_the_sheet(client, detecting, two):
    import cv2

    sheet, chosen, listed, status = find_faces(client, two)
    assert [f["id"] for f in listed["faces"]] == [1, 2] and listed["detector"] == "cascade", listed
    # the picker: each id, and all; face 1 chosen (gradio_client sees the Dropdown's update)
    assert chosen["choices"] == [["face 1", "1"], ["face 2", "2"], ["all", "all"]] and chosen["value"] == "1"
    assert status.startswith("2 face tracks in 3 frames"), status
    image = cv2.imread(sheet)
    assert image is not None and image.shape == (188, 2 * 160, 3)  # face_list's 160-px thumbnails + 28-px label
    assert (detecting.scratch / "faces" / Path(sheet).name).is_file()  # written into the private scratch folder


@pytest.mark.cascade
def test_an_edit_of_face_2_leaves_face_1(client, detecting, two):
    listed = find_faces(client, two)[2]
    one, other = (region(f) for f in listed["faces"])
    row = call(client, **edit_args(two, preset="sad", face="2"))[3]
    assert row["status"] == "done" and [f["id"] for f in row["faces"]] == [2], row
    before, after = frames(two), frames(Path(row["output"]))
    change = [float(np.abs(after[:, y, x] - before[:, y, x]).mean()) for y, x in (one, other)]
    # measured (mean |RGB difference|): face 1 1.47 (the output's re-encode only), face 2 85.9; with face "all",
    # face 1 changes by 85.6, and with face "1" face 2 by 1.84: an edit that reached face 1 (the picker's id
    # ignored, or taken as "all"), or one that missed face 2, fails a bound
    assert change[0] < 5.0 and change[1] > 20.0, change


@pytest.mark.cascade
def test_find_faces_on_a_video_with_none_shows_the_clis_message(client, detecting, tmp_path):
    sheet, chosen, listed, status = find_faces(client, synthetic(tmp_path / "pattern.mp4", audio=False,
                                                                seconds=0.3))
    assert sheet is None and listed is None and chosen["choices"] == [["face 1", "1"], ["all", "all"]]
    assert status == "error: no face was found in any frame; if there is one, give its position with --box X,Y,W,H"


# ---------------------------------------------------------------- the page in a real browser

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
ARTIFACTS = ROOT / "test-artifacts"


@pytest.fixture
def browser():
    """Headless Chromium through Selenium, with the system's browser and driver (nothing is downloaded)."""
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed: pip install 'cmet-cli[app-test]'")
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.skip("no chromium and chromium-driver: apt-get install chromium chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1400,1900"):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=str(CHROMEDRIVER)))
    try:
        yield driver
    finally:
        driver.quit()


def test_the_page_in_a_browser_edits_an_uploaded_clip(browser, served, clip):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as seen
    from selenium.webdriver.support.ui import WebDriverWait

    page, workbench = served
    wait = WebDriverWait(browser, 120)
    browser.get(page.local_url)
    wait.until(seen.presence_of_element_located((By.CSS_SELECTOR, "#video input[type=file]"))).send_keys(str(clip))
    wait.until(seen.presence_of_element_located((By.CSS_SELECTOR, "#video video")))  # the upload is shown
    choose = wait.until(seen.element_to_be_clickable((By.CSS_SELECTOR, "#preset input")))
    choose.click()
    choose.send_keys("disgusted")
    wait.until(seen.element_to_be_clickable((By.CSS_SELECTOR, "#preset [role=option]"))).click()
    assert choose.get_attribute("value") == "disgusted"
    browser.find_element(By.CSS_SELECTOR, "#edit-button").click()
    result = wait.until(seen.presence_of_element_located((By.CSS_SELECTOR, "#result video")))
    status = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#status textarea").get_attribute("value") or None)
    assert status.startswith("done: 3 frames") and "disgusted" in status, status
    assert result.get_attribute("src")
    written = [p for p in workbench.output_dir.iterdir() if "-disgusted-" in p.name]
    assert len(written) == 1 and media.probe(written[0]).frame_count == 3
    ARTIFACTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "app.png"))


# ---------------------------------------------------------------- the command

def test_app_without_gradio_says_how_to_install(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "gradio" else real(name, *a))
    run = cmet("app")
    assert run.code == 2 and run.errors() == ["error: the app needs gradio: pip install 'cmet-cli[app]'"]


def test_help_loads_neither_gradio_nor_torch():
    code = ("import sys; from cmet_cli.cli import main\ntry: main(['app', '--help'])\nexcept SystemExit: pass\n"
            "print(sorted(m for m in ('gradio', 'torch', 'numpy', 'av') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT / "src")}).stdout
    assert out.strip().endswith("[]"), out
