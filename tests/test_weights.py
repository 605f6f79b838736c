"""The weights manager: local installs, downloads (atomic: verified before they are named), hash checks, and the
CLI around them."""
from __future__ import annotations

import hashlib
import http.server
import io
import json
import os
import socket
import subprocess
import sys
import tarfile
import threading
import types
from pathlib import Path

import pytest

from cmet_cli import atomic, weights
from cmet_cli.checkpoint import read_checkpoint
from cmet_cli.errors import WeightsError
from cmet_cli.stages import Stage

PAYLOAD = os.urandom(300_000)
SHA = hashlib.sha256(PAYLOAD).hexdigest()


def entry(name="blob", sha=SHA, url="http://127.0.0.1:9/blob.bin", kind="url", path="blob.bin", filename="blob.bin"):
    return weights.LockEntry(name=name, kind=kind, url=url, filename=filename, sha256=sha, path=path)


@pytest.fixture()
def home(tmp_path, monkeypatch):
    root = tmp_path / "home"
    monkeypatch.setenv("CMET_HOME", str(root))
    return root


def test_install_from_verifies_and_records(tmp_path, home):
    src = tmp_path / "src"
    src.mkdir()
    (src / "blob.bin").write_bytes(PAYLOAD)
    path = weights.install_from(entry(), src)
    assert path == home / "blob.bin" and path.read_bytes() == PAYLOAD
    assert weights.check(entry()).state == "verified"
    assert weights.read_records(home)["blob"]["sha256"] == SHA
    assert weights.install_from(entry(), tmp_path / "empty") is None


def test_install_from_bad_hash_installs_nothing(tmp_path, home):
    src = tmp_path / "src"
    src.mkdir()
    (src / "blob.bin").write_bytes(PAYLOAD[:-1] + b"x")
    with pytest.raises(WeightsError, match="sha256"):
        weights.install_from(entry(), src)
    assert not (home / "blob.bin").exists()
    assert not list(home.glob("*.part"))
    assert weights.check(entry()).state == "missing"


def test_trust_on_first_use_then_detects_change(tmp_path, home):
    src = tmp_path / "src"
    src.mkdir()
    (src / "blob.bin").write_bytes(PAYLOAD)
    unpinned = entry(sha="")
    weights.install_from(unpinned, src)
    assert weights.check(unpinned).state == "recorded"
    assert weights.require(unpinned) == home / "blob.bin"
    (home / "blob.bin").write_bytes(b"tampered" + PAYLOAD[8:])
    status = weights.check(unpinned)
    assert status.state == "mismatch"
    with pytest.raises(WeightsError, match=r"failed its hash check.*download-weights --only blob"):
        weights.require(unpinned)


class FileHandler(http.server.BaseHTTPRequestHandler):
    """Serves PAYLOAD at /blob.bin; ``cut_at``: the connection closes after that many bytes (a lost connection);
    ``stall``: after the first 100,000 bytes the rest waits until the event is set (a stalled download)."""

    cut_at: int | None = None
    stall: threading.Event | None = None

    def do_GET(self):  # noqa: N802
        if self.path != "/blob.bin":
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(PAYLOAD)))
        self.end_headers()
        if self.stall is not None:
            self.wfile.write(PAYLOAD[:100_000])
            self.wfile.flush()
            self.stall.wait(60)
        self.wfile.write(PAYLOAD[:self.cut_at] if self.stall is None else PAYLOAD[100_000:])
        self.close_connection = True

    def log_message(self, *args):
        pass


@pytest.fixture()
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FileHandler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    FileHandler.cut_at, FileHandler.stall = None, None
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    if FileHandler.stall is not None:
        FileHandler.stall.set()
    httpd.shutdown()
    httpd.server_close()


def test_download_lands_verified_and_reports_progress(home, server):
    seen = []
    path = weights.download(entry(url=f"{server}/blob.bin"), progress=lambda stage, done, total: seen.append((stage, done, total)))
    assert path == home / "blob.bin" and path.read_bytes() == PAYLOAD
    assert seen[-1] == (Stage.DOWNLOAD, len(PAYLOAD), len(PAYLOAD))  # the one progress type: (stage, done, total)
    assert weights.check(entry()).state == "verified"
    assert not [p for p in home.iterdir() if atomic.is_temp_name(p.name) or p.suffix == ".part"]


@pytest.mark.parametrize("how", ["connection lost", "ctrl-c"])
def test_an_interrupted_download_leaves_no_partial_file(home, server, how):
    """Half a file is never left under the cache, under its final name or any other: the next run starts over.
    Unpinned, so that only the length check stops a cut file from being trusted on first use."""
    listings = []

    def progress(stage, done, total):
        listings.append(sorted(p.name for p in home.iterdir()))
        if how == "ctrl-c":
            raise KeyboardInterrupt

    FileHandler.cut_at = 100_000 if how == "connection lost" else None
    with pytest.raises(WeightsError if how == "connection lost" else KeyboardInterrupt) as caught:
        weights.download(entry(sha="", url=f"{server}/blob.bin"), progress=progress)
    if how == "connection lost":
        assert "closed after 100000 of 300000 bytes" in str(caught.value)
    assert any(atomic.is_temp_name(name) for name in listings[0])  # there was a partial file, under a temporary name
    assert list(home.iterdir()) == []  # and it is gone: no final file, no temporary one, no record
    FileHandler.cut_at = None
    assert weights.download(entry(sha="", url=f"{server}/blob.bin")).read_bytes() == PAYLOAD


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_killed_downloads_partial_file_is_removed_by_the_next(home, server):
    """SIGKILL runs no handler: the temporary file stays until the next download of that file removes it."""
    home.mkdir(parents=True)
    left = home / f"{atomic.temp_prefix(home / 'blob.bin', pid=_dead_pid())}{'0' * 16}{atomic.SUFFIX}"
    left.write_bytes(PAYLOAD[:1000])
    weights.download(entry(url=f"{server}/blob.bin"))
    assert not left.exists() and not [p for p in home.iterdir() if atomic.is_temp_name(p.name)]


def test_download_hash_mismatch_and_http_errors(home, server):
    with pytest.raises(WeightsError, match="models.lock pins"):
        weights.download(entry(url=f"{server}/blob.bin", sha="0" * 64))
    assert not (home / "blob.bin").exists() and not list(home.glob("*.part"))
    with pytest.raises(WeightsError, match="HTTP 404"):
        weights.download(entry(url=f"{server}/missing"))


def test_unreachable_host_says_how_to_install_offline(home):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(WeightsError, match=r"cannot reach 127.0.0.1.*--from DIR"):
        weights.download(entry(url=f"http://127.0.0.1:{port}/blob.bin"))


def test_archive_entry_extracts_the_bank(tmp_path, home, server):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name in ["C-MET-x/audios/MEAD/happy/emotion2vec+large_features/a.npy",
                     "C-MET-x/audios/MELD/sarcastic/emotion2vec+large_features/b.npy",
                     "C-MET-x/audios/MEAD/happy/a.wav"]:
            info = tarfile.TarInfo(name)
            info.size = 3
            tar.addfile(info, io.BytesIO(b"abc"))
    archive = tmp_path / "repo.tar.gz"
    archive.write_bytes(buf.getvalue())
    e = entry(name="bank", kind="archive", sha=hashlib.sha256(buf.getvalue()).hexdigest(), url=archive.as_uri(),
              path="audios/*/*/emotion2vec+large_features/*.npy", filename="bank")
    path = weights.download(e)
    assert sorted(p.relative_to(path).as_posix() for p in path.rglob("*.npy")) == ["happy/MEAD_a.npy", "sarcastic/MELD_b.npy"]
    assert weights.check(e).state == "verified"  # the archive matched its pin; the tree is checked against its record
    assert sorted(p.name for p in home.iterdir()) == [".hashes.lock", "bank", "hashes.json"]  # no archive, no staging


def test_install_from_a_bank_folder(tmp_path, home):
    src = tmp_path / "src"
    (src / "features" / "happy").mkdir(parents=True)
    (src / "features" / "happy" / "MEAD_a.npy").write_bytes(b"abc")
    bank = weights.load_lock()["bank"]
    path = weights.install_from(bank, src)
    assert path == home / "bank" and (path / "happy" / "MEAD_a.npy").read_bytes() == b"abc"
    assert sorted(p.name for p in home.iterdir()) == [".hashes.lock", "bank", "hashes.json"]
    assert weights.check(bank).state == "recorded" and weights.read_records(home)["bank"]["via"] == "from"


def _lock(tmp_path: Path, sha: str) -> Path:
    lock = tmp_path / "models.lock"
    lock.write_text(f'version = 1\n[files.blob]\nkind = "url"\nurl = "http://127.0.0.1:9/blob.bin"\n'
                    f'filename = "blob.bin"\nsha256 = "{sha}"\n')
    return lock


def cmet(*args, env):
    return subprocess.run([sys.executable, "-m", "cmet_cli", *args], capture_output=True, text=True,
                          env={**os.environ, **env})


def test_cli_download_from_folder_and_check(tmp_path, home):
    src = tmp_path / "src"
    src.mkdir()
    (src / "blob.bin").write_bytes(PAYLOAD)
    env = {"CMET_MODELS_LOCK": str(_lock(tmp_path, SHA)), "CMET_HOME": str(home)}
    done = cmet("download-weights", "--from", str(src), env=env)
    assert done.returncode == 0, done.stderr
    assert (home / "blob.bin").read_bytes() == PAYLOAD
    assert cmet("download-weights", "--check", env=env).returncode == 0
    (home / "blob.bin").write_bytes(b"corrupt")
    bad = cmet("download-weights", "--check", env=env)
    assert bad.returncode == 1 and "mismatch" in bad.stderr
    unknown = cmet("download-weights", "--only", "nope", env=env)
    assert unknown.returncode == 2 and "unknown entry" in unknown.stderr


def test_cli_unreachable_hub_is_one_clear_line(tmp_path, home):
    env = {"CMET_MODELS_LOCK": str(_lock(tmp_path, SHA)), "CMET_HOME": str(home)}
    out = cmet("download-weights", env=env)
    assert out.returncode == 1
    assert "Traceback" not in out.stderr
    assert "cannot reach 127.0.0.1" in out.stderr and "--from DIR" in out.stderr


def test_checkpoints_load_tensors_only(tmp_path):
    import torch

    good = tmp_path / "good.pt"
    torch.save({"gen": {"w": torch.ones(2)}}, good)
    assert read_checkpoint(good, "gen")["w"].sum() == 2
    evil = tmp_path / "evil.pt"
    torch.save({"gen": {"w": torch.ones(2)}, "obj": Path("/etc/passwd")}, evil)
    with pytest.raises(WeightsError, match="pickled objects other than tensors"):
        read_checkpoint(evil, "gen")
    with pytest.raises(WeightsError, match="no entry 'state_dict'"):
        read_checkpoint(good, "state_dict")
    with pytest.raises(WeightsError, match="download-weights"):
        read_checkpoint(tmp_path / "absent.pt")


def test_resolve_weights_dir_and_missing(tmp_path, home):
    with pytest.raises(WeightsError, match="download-weights"):
        weights.resolve(None, need_bank=False)
    d = tmp_path / "w"
    d.mkdir()
    (d / "EDTalk.pt").write_bytes(b"x")
    with pytest.raises(WeightsError, match="_epoch_2105"):
        weights.resolve(d, need_bank=False)
    (d / "_epoch_2105_checkpoint_step000200000.pth").write_bytes(b"x")
    (d / "model.pt").write_bytes(b"x")  # the official emotion2vec name works too
    paths = weights.resolve(d, need_speech=True, need_bank=False)
    assert paths.edtalk == d / "EDTalk.pt" and paths.emotion2vec == d / "model.pt"


def test_lock_lists_every_model_with_its_pin():
    lock = weights.load_lock()
    assert {"edtalk", "connector", "emotion2vec", "fan-landmarks", "fan-detector", "bank", "sample-video"} <= set(lock)
    for e in lock.values():
        assert e.url.startswith("https://") and e.filename and e.license and e.needed_by and e.revision
        assert e.sha256 == "" or len(e.sha256) == 64 and int(e.sha256, 16) >= 0
    assert lock["sample-video"].sha256 == "c4e1d3c414189864f7981e453e7a596ebc6d3573d5787fbe57047174cf48302e"
    # no public page we could read states these hashes: they are trusted on first use (README "Weights");
    # an entry joins this list only deliberately
    assert {n for n, e in lock.items() if not e.sha256} == {"edtalk", "connector", "emotion2vec", "fan-landmarks",
                                                             "fan-detector", "yunet-dynamic", "bank"}
    # the zoo's git-LFS pointer states these (opencv/opencv_zoo, face_detection_yunet_2023mar.onnx)
    assert (lock["yunet"].sha256, lock["yunet"].size) == (
        "8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4", 232589)
    assert lock["fan-landmarks"].sha256_prefix and lock["fan-detector"].sha256_prefix


def test_unrecorded_file_is_recorded_on_first_use_then_guarded(home):
    home.mkdir(parents=True)
    (home / "blob.bin").write_bytes(PAYLOAD)  # placed by hand: no record yet
    unpinned = entry(sha="")
    assert weights.check(unpinned).state == "recorded"
    assert weights.read_records(home)["blob"]["sha256"] == SHA
    (home / "blob.bin").write_bytes(PAYLOAD[::-1])
    assert weights.check(unpinned).state == "mismatch"


def test_corrupt_records_are_an_error(home):
    home.mkdir(parents=True)
    (home / "hashes.json").write_text("{not json")
    with pytest.raises(WeightsError, match="hashes.json is corrupt"):
        weights.read_records(home)


# ---------------------------------------------------------------- the hub client, against a loopback mirror

COMMIT = "0123456789abcdef0123456789abcdef01234567"


class HubHandler(http.server.BaseHTTPRequestHandler):
    """A minimal Hugging Face Hub mirror: HEAD/GET /<repo>/resolve/<revision>/<path> serving PAYLOAD, with Range."""

    files = {"/org/model/resolve/v1/sub/blob.bin": PAYLOAD}

    def _answer(self, body: bool) -> None:
        data = self.files.get(self.path)
        if data is None:
            self.send_response(404)
            self.send_header("X-Error-Code", "EntryNotFound")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        start = int(self.headers["Range"].split("=")[1].split("-")[0]) if "Range" in self.headers else 0
        self.send_response(206 if start else 200)
        self.send_header("X-Repo-Commit", COMMIT)
        self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        if body:
            self.wfile.write(data[start:])

    def do_HEAD(self):  # noqa: N802
        self._answer(body=False)

    def do_GET(self):  # noqa: N802
        self._answer(body=True)

    def log_message(self, *args):
        pass


@pytest.fixture()
def hub(monkeypatch):
    """HF_ENDPOINT pointing at a loopback hub mirror for the test's duration (nothing leaves the machine)."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), HubHandler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    endpoint = f"http://127.0.0.1:{httpd.server_address[1]}"
    monkeypatch.setenv("HF_ENDPOINT", endpoint)
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    yield endpoint
    httpd.shutdown()
    httpd.server_close()


def hub_entry(sha=SHA, path="sub/blob.bin"):
    return weights.LockEntry(name="blob", kind="hub", url="https://huggingface.co/org/model/resolve/v1/sub/blob.bin",
                             repo="org/model", revision="v1", path=path, filename="blob.bin", sha256=sha)


def test_hub_entry_downloads_through_hf_hub_download(home, hub, monkeypatch):
    import huggingface_hub

    calls = []
    real = huggingface_hub.hf_hub_download
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", lambda *a, **k: calls.append((a, k)) or real(*a, **k))
    seen = []
    path = weights.download(hub_entry(), progress=lambda stage, done, total: seen.append((stage, done, total)))
    assert path == home / "blob.bin" and path.read_bytes() == PAYLOAD
    (args, kwargs), = calls
    assert args == ("org/model", "sub/blob.bin") and kwargs["revision"] == "v1"
    assert Path(kwargs["local_dir"]).parent == home / ".hub"  # the hub client's files live under CMET_HOME
    assert seen[-1] == (Stage.DOWNLOAD, len(PAYLOAD), len(PAYLOAD))
    assert weights.check(hub_entry()).state == "verified"
    record = weights.read_records(home)["blob"]
    assert record["via"] == "download" and record["source"] == f"{hub}/org/model/resolve/v1/sub/blob.bin"
    assert not (home / ".hub").exists() or not any((home / ".hub").rglob("blob.bin"))


def test_hub_entry_is_verified_against_the_lock(home, hub):
    with pytest.raises(WeightsError, match="models.lock pins"):
        weights.download(hub_entry(sha="0" * 64))
    assert not (home / "blob.bin").exists() and not list(home.rglob("blob.bin"))
    with pytest.raises(WeightsError, match=r"HTTP 404.*--from DIR --only blob"):
        weights.download(hub_entry(path="sub/absent.bin"))


def test_an_interrupted_hub_install_leaves_no_partial_file(home, hub, monkeypatch):
    """Interrupted while the verified copy is written to its final name: neither it nor the hub client's copy
    stays under the cache."""
    from cmet_cli.weights import install

    real = install.HashedOutput.write

    def write_then_interrupt(self, data):
        real(self, data)
        raise KeyboardInterrupt

    monkeypatch.setattr(install.HashedOutput, "write", write_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        weights.download(hub_entry())
    assert list(home.rglob("*")) == [home / ".hub"]  # an empty folder for the hub client's working files


@pytest.mark.parametrize("source", ["url", "hub"])
def test_a_link_planted_at_the_temporary_name_is_not_written_through(tmp_path, home, source, request, monkeypatch):
    """The name a download would write first is a symbolic link to a file outside the cache: another name is
    taken, the file outside stays as it was, the link is left alone, and the download still lands."""
    url = f"{request.getfixturevalue('server')}/blob.bin" if source == "url" else request.getfixturevalue("hub")
    e = entry(url=url) if source == "url" else hub_entry()
    home.mkdir(parents=True)
    outside = tmp_path / "precious.bin"
    outside.write_bytes(b"keep me")
    trap = home / f"{atomic.temp_prefix(home / 'blob.bin')}{'0' * 16}{atomic.SUFFIX}"
    trap.symlink_to(outside)
    planted, real = iter(["0" * 16]), atomic.secrets.token_hex
    # only the atomic helper's draws are planned: the hub client may draw random tokens of its own
    monkeypatch.setattr(atomic, "secrets", types.SimpleNamespace(token_hex=lambda n: next(planted, None) or real(n)))
    path = weights.download(e)
    assert next(planted, None) is None  # the trap's name was the first one tried
    assert outside.read_bytes() == b"keep me" and trap.is_symlink() and os.readlink(trap) == str(outside)
    assert path == home / "blob.bin" and not path.is_symlink() and path.read_bytes() == PAYLOAD
    assert weights.check(e).state == "verified"


def test_unreachable_hub_fails_fast_with_the_entrys_advice(home, monkeypatch):
    import time

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    started = time.monotonic()
    with pytest.raises(WeightsError, match=r"cannot reach 127.0.0.1 for blob .*--from DIR --only blob.*--weights-dir"):
        weights.download(hub_entry())
    assert time.monotonic() - started < 5  # not the hub client's ~25 s of retries


# ---------------------------------------------------------------- installing from a folder, optional files

def test_install_from_is_recorded_as_from_the_folder(tmp_path, home):
    src = tmp_path / "src"
    src.mkdir()
    (src / "blob.bin").write_bytes(PAYLOAD)
    weights.install_from(entry(), src)
    record = weights.read_records(home)["blob"]
    assert record["via"] == "from" and record["source"] == str((src / "blob.bin").resolve())
    assert "127.0.0.1" not in json.dumps(record)  # not the official URL it was never downloaded from


def _lock_with_optional(tmp_path: Path) -> Path:
    lock = tmp_path / "models.lock"
    lock.write_text(f'version = 1\n[files.blob]\nkind = "url"\nurl = "http://127.0.0.1:9/blob.bin"\n'
                    f'filename = "blob.bin"\nsha256 = "{SHA}"\n'
                    '[files.extra]\nkind = "url"\nurl = "http://127.0.0.1:9/extra.bin"\nfilename = "extra.bin"\n'
                    'optional = true\nneeded_by = ["edit --detector fan"]\n')
    return lock


def test_cli_from_and_check_pass_without_optional_files(tmp_path, home):
    src = tmp_path / "src"
    src.mkdir()
    (src / "blob.bin").write_bytes(PAYLOAD)
    env = {"CMET_MODELS_LOCK": str(_lock_with_optional(tmp_path)), "CMET_HOME": str(home)}
    done = cmet("download-weights", "--from", str(src), env=env)
    assert done.returncode == 0, done.stderr
    assert "extra: not in" in done.stderr and "optional, needed only by edit --detector fan" in done.stderr
    check = cmet("download-weights", "--check", env=env)
    assert check.returncode == 0, check.stderr
    assert "missing (optional" in check.stderr
    asked = cmet("download-weights", "--check", "--only", "extra", env=env)  # asked for by name: not optional
    assert asked.returncode == 1
    (home / "blob.bin").unlink()  # a required file missing still fails
    assert cmet("download-weights", "--check", env=env).returncode == 1


def test_demo_download_gives_the_sample_clip_its_own_advice(tmp_path, home):
    """`make demo` after `--from DIR` without the clip: the advice is about the clip, not the weights."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    lock = tmp_path / "models.lock"
    lock.write_text(f'version = 1\n[files.blob]\nkind = "url"\nurl = "http://127.0.0.1:{port}/blob.bin"\n'
                    f'filename = "blob.bin"\nsha256 = "{SHA}"\n'
                    f'[files.sample-video]\nkind = "url"\nurl = "http://127.0.0.1:{port}/W009_038.mp4"\n'
                    'filename = "W009_038.mp4"\noptional = true\n')
    src = tmp_path / "src"
    src.mkdir()
    (src / "blob.bin").write_bytes(PAYLOAD)
    env = {"CMET_MODELS_LOCK": str(lock), "CMET_HOME": str(home)}
    assert cmet("download-weights", "--from", str(src), env=env).returncode == 0
    demo = cmet("download-weights", "--only", "blob", "--only", "sample-video", env=env)
    assert demo.returncode == 1
    assert "blob: already installed" in demo.stderr
    sample = [line for line in demo.stderr.splitlines() if "W009_038" in line and "error" in line]
    assert len(sample) == 1, demo.stderr
    assert "--from DIR --only sample-video" in sample[0] and "--weights-dir" not in sample[0]


# ---------------------------------------------------------------- one folder rule; the bank

def test_weights_dir_accepts_the_bank_under_features_like_from(tmp_path, home):
    d = tmp_path / "w"
    (d / "features" / "neutral").mkdir(parents=True)
    for name in ("EDTalk.pt", "_epoch_2105_checkpoint_step000200000.pth"):
        (d / name).write_bytes(b"x")
    assert weights.bank_folder(None, d) == d / "features"
    assert weights.resolve(d).bank == d / "features"
    assert weights.find_in_folder(weights.load_lock()["bank"], d) == d / "features"  # what --from DIR installs
    (d / "bank" / "neutral").mkdir(parents=True)
    assert weights.bank_folder(None, d) == d / "bank"  # the official name first, as for --from


def test_missing_bank_names_the_bank_option(home):
    with pytest.raises(WeightsError, match=r"preset bank is not installed.*--bank DIR"):
        weights.bank_folder()


def test_emotions_lists_the_presets_without_a_bank(home):
    from cmet_cli import presets
    from cmet_cli.presets import PRESETS

    rows = presets.describe()
    assert [r.name for r in rows] == list(PRESETS)
    assert all(not r.installed and "not installed" in r.note for r in rows)
    out = cmet("emotions", env={"CMET_HOME": str(home)})
    assert out.returncode == 0, out.stderr
    assert "sarcastic" in out.stdout and "not installed" in out.stdout and "--bank DIR" in out.stderr
    as_json = cmet("emotions", "--json", env={"CMET_HOME": str(home)})
    assert as_json.returncode == 0 and json.loads(as_json.stdout)[0]["installed"] is False


def test_a_reinstall_from_a_folder_replaces_the_download_record(tmp_path, home):
    src = tmp_path / "src"
    src.mkdir()
    (src / "blob.bin").write_bytes(PAYLOAD)
    home.mkdir(parents=True)
    (home / "hashes.json").write_text(json.dumps({"blob": {"sha256": SHA, "via": "download", "source": "http://x",
                                                           "archive_sha256": "0" * 64}}))
    weights.install_from(entry(), src)
    record = weights.read_records(home)["blob"]
    assert record["via"] == "from" and "archive_sha256" not in record
    (home / "blob.bin").touch()  # same content, new stamp: the record keeps where the file came from
    os.utime(home / "blob.bin", ns=(1, 1))
    assert weights.check(entry()).state == "verified"
    assert weights.read_records(home)["blob"]["via"] == "from"


# ---------------------------------------------------------------- a hostile review of the cache (2026-12-07)

def test_a_changed_bank_file_is_caught_without_a_rehash(tmp_path, home):
    """The bank's stamp covers every file in it: a file changed in place (same size) or one added is caught
    by the everyday check, not only by ``--check`` (the folder's own size and time did not change)."""
    src = tmp_path / "src"
    (src / "features" / "happy").mkdir(parents=True)
    (src / "features" / "happy" / "MEAD_a.npy").write_bytes(b"abc")
    bank = weights.load_lock()["bank"]
    path = weights.install_from(bank, src)
    assert weights.check(bank).state == "recorded"
    (path / "happy" / "MEAD_a.npy").write_bytes(b"abd")
    assert weights.check(bank).state == "mismatch"
    (path / "happy" / "MEAD_a.npy").write_bytes(b"abc")
    (path / "happy" / "MEAD_b.npy").write_bytes(b"planted")
    assert weights.check(bank).state == "mismatch"


@pytest.mark.parametrize("content", ["[]", '{"edtalk": "abc"}', "folder"])
def test_records_of_another_shape_are_an_error(home, content):
    home.mkdir(parents=True)
    if content == "folder":
        (home / "hashes.json").mkdir()
    else:
        (home / "hashes.json").write_text(content)
    with pytest.raises(WeightsError, match="hashes.json is corrupt"):
        weights.read_records(home)


def test_cmet_home_under_a_file_is_an_error(tmp_path, monkeypatch):
    (tmp_path / "afile").write_text("x")
    monkeypatch.setenv("CMET_HOME", str(tmp_path / "afile" / "sub"))
    with pytest.raises(WeightsError, match="lies under .*afile, which is a file"):
        weights.home()


def test_a_killed_bank_installs_staging_folder_is_removed_by_the_next(tmp_path, home):
    src = tmp_path / "src"
    (src / "features" / "happy").mkdir(parents=True)
    (src / "features" / "happy" / "MEAD_a.npy").write_bytes(b"abc")
    home.mkdir(parents=True)
    left = home / f".bank.cmet-{atomic.host_tag()}-{_dead_pid()}-abcd1234"
    (left / "bank" / "happy").mkdir(parents=True)
    (left / "bank" / "happy" / "MEAD_a.npy").write_bytes(b"abc")
    alive = home / f".bank.cmet-{atomic.host_tag()}-{os.getppid()}-abcd1234"  # a running install's: kept
    alive.mkdir()
    weights.install_from(weights.load_lock()["bank"], src)
    assert not left.exists() and alive.exists()


@pytest.mark.parametrize("signame, code", [("SIGTERM", 143), ("SIGINT", 130)])
def test_a_signal_during_download_weights_leaves_nothing(tmp_path, home, server, signame, code):
    """``download-weights`` ends on SIGTERM (143) and Ctrl-C (130) as edit does, removing the file it was writing
    (SIGTERM once killed it outright, leaving the partial file, and Ctrl-C exited 1). The download is held
    mid-file by a server that stalls after 100,000 bytes."""
    import signal
    import time

    lock = tmp_path / "models.lock"
    lock.write_text(f'version = 1\n[files.blob]\nkind = "url"\nurl = "{server}/blob.bin"\nfilename = "blob.bin"\n'
                    f'sha256 = "{SHA}"\n')
    FileHandler.stall = threading.Event()
    proc = subprocess.Popen([sys.executable, "-m", "cmet_cli", "download-weights"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            env={**os.environ, "CMET_HOME": str(home), "CMET_MODELS_LOCK": str(lock)},
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 60
    while not [p for p in (home.iterdir() if home.exists() else []) if atomic.is_temp_name(p.name)] \
            and time.monotonic() < deadline:
        time.sleep(0.1)
    assert [p for p in home.iterdir() if atomic.is_temp_name(p.name)], "the download never started"
    time.sleep(0.3)
    proc.send_signal(getattr(signal, signame))
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == code, err
    assert "Traceback" not in err and not (home / "blob.bin").exists()
    assert not [p for p in home.iterdir() if atomic.is_temp_name(p.name)]


def test_a_bank_folder_with_a_fifo_is_refused(tmp_path, home):
    """A named pipe among a ``--from`` bank's files hung the install (it waited for a writer): only regular files
    (links followed) are copied; anything else fails the install, leaving nothing."""
    src = tmp_path / "src"
    (src / "features" / "happy").mkdir(parents=True)
    (src / "features" / "happy" / "MEAD_a.npy").write_bytes(b"abc")
    os.mkfifo(src / "features" / "happy" / "MEAD_z.npy")
    with pytest.raises(WeightsError, match="MEAD_z.npy: not a regular file"):
        weights.install_from(weights.load_lock()["bank"], src)
    assert not (home / "bank").exists() and not list(home.glob(".bank*"))


def test_a_folder_file_failing_its_pin_is_named_as_a_copy(tmp_path, home):
    src = tmp_path / "src"
    src.mkdir()
    (src / "blob.bin").write_bytes(b"not the file")
    with pytest.raises(WeightsError) as caught:
        weights.install_from(entry(), src)
    message = str(caught.value)
    assert str(src / "blob.bin") in message and "it is not that file" in message and "downloaded" not in message
    assert not (home / "blob.bin").exists()


@pytest.mark.parametrize("name", ["../escape.pt", "sub/x.pt", ".."])
def test_a_lock_file_name_with_a_folder_is_refused(tmp_path, name):
    """A file name in models.lock is a plain name: ``../escape.pt`` once read from outside ``--from DIR`` and
    wrote outside ``CMET_HOME``."""
    lock = tmp_path / "models.lock"
    lock.write_text(f'version = 1\n[files.evil]\nkind = "url"\nurl = "http://127.0.0.1:9/x"\nfilename = "{name}"\n'
                    'sha256 = ""\n')
    with pytest.raises(WeightsError, match="must be a plain name"):
        weights.load_lock(lock)


def test_concurrent_bank_installs_all_succeed(tmp_path, home):
    """Four ``download-weights --from DIR --only bank`` at once into one cache: each succeeds and the bank is whole
    (two at once removed each other's folder while it was put in place: "cannot copy ...: No such file")."""
    src = tmp_path / "src"
    for emotion in ("happy", "sad", "angry"):
        (src / "features" / emotion).mkdir(parents=True)
        for k in range(40):
            (src / "features" / emotion / f"MEAD_{k}.npy").write_bytes(os.urandom(2000))
    for _ in range(2):
        procs = [subprocess.Popen([sys.executable, "-m", "cmet_cli", "download-weights", "--from", str(src), "--only",
                                   "bank"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  env={**os.environ, "CMET_HOME": str(home)}) for _ in range(4)]
        results = [(p.wait(timeout=120), p.stderr.read()) for p in procs]
        assert all(code == 0 for code, _ in results), [err for code, err in results if code]
        assert sorted(p.name for p in home.iterdir()) == [".hashes.lock", "bank", "hashes.json"]
        assert weights.check(weights.load_lock()["bank"], rehash=True).state == "recorded"
