"""The README's lab command, as a student uses it, in a temporary clone of this checkout.

`python3 tasks.py lab` serves work/, the student's own copy of course/: a notebook saved through
Jupyter's REST API (what JupyterLab does on save) leaves every tracked file alone, a release does
not touch it, a new chapter is added beside it, `tasks.py fresh` keeps it. Without an nbgrader
exchange the lab offers Validate only (instructor and exchange panels off, in the page config and
on the server) and its log has no traceback and no nbgrader warning; with an exchange the panels
are back. The clone reuses the environment running the tests (DLCOURSE_VENV), so nothing is installed.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NBGRADER_PANELS = ["@jupyter/nbgrader:assignment-list", "@jupyter/nbgrader:course-list",
                   "@jupyter/nbgrader:create-assignment", "@jupyter/nbgrader:formgrader", "@jupyter/nbgrader:menu"]
LOG_PROBLEMS = re.compile(r"Traceback|ExchangeError|No nbgrader_config\.py|exchange directory does not exist")
START_LIMIT = 300  # seconds for the server to answer; only an upper bound, the test goes on as soon as it does

pytestmark = pytest.mark.slow


def _git(clone: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=test", "-c", "user.email=test@example.org", *args], cwd=clone,
                          check=True, capture_output=True, text=True).stdout


def _clone(tmp_path: Path) -> Path:
    """A clone of this repository with the working tree's current files, committed (as CI's fresh clone)."""
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", "--no-hardlinks", str(ROOT), str(clone)], check=True)
    changed = subprocess.run(["git", "ls-files", "--modified", "--others", "--exclude-standard", "-z"], cwd=ROOT,
                             check=True, capture_output=True, text=True).stdout.split("\0")
    for rel in filter(None, changed):
        src, dst = ROOT / rel, clone / rel
        if src.is_file():
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)
        elif dst.exists():
            dst.unlink()  # deleted in the working tree
    _git(clone, "add", "-A")
    _git(clone, "commit", "--quiet", "--allow-empty", "-m", "working tree")
    assert _git(clone, "status", "--porcelain") == ""
    return clone


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Lab:
    """`python3 tasks.py lab` in ``clone``, its output in a log file, its REST API with a token."""

    def __init__(self, clone: Path, tmp: Path, name: str, config_dir: Path):
        self.port, self.token = _free_port(), secrets.token_hex(8)
        self.log_path = tmp / f"{name}.log"
        env = dict(os.environ, DLCOURSE_VENV=sys.prefix, JUPYTER_RUNTIME_DIR=str(tmp / f"{name}-runtime"),
                   JUPYTER_CONFIG_DIR=str(config_dir), JUPYTER_DATA_DIR=str(tmp / f"{name}-data"))
        for var in ("JUPYTER_CONFIG_PATH", "PYTHONPATH", "DLCOURSE_COURSE_ROOT"):
            env.pop(var, None)
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "tasks.py", "lab", "--no-browser", f"--port={self.port}", "--ip=127.0.0.1",
                 f"--IdentityProvider.token={self.token}"],
                cwd=clone, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.base = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + START_LIMIT
        while True:
            try:
                self.request("/api/status")
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    pytest.fail(f"the lab did not answer (exit code {self.proc.returncode}):\n{self.log()[-4000:]}")
                time.sleep(0.5)

    def request(self, path: str, method: str = "GET", body: dict | None = None) -> tuple[int, bytes]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, method=method, data=data,
                                     headers={"Authorization": f"token {self.token}",
                                              "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=600) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def json(self, path: str, method: str = "GET", body: dict | None = None) -> dict:
        status, data = self.request(path, method, body)
        assert 200 <= status < 300, f"{method} {path}: HTTP {status}: {data[:500]!r}"
        return json.loads(data)

    def page_config(self) -> dict:
        status, html = self.request("/lab")
        assert status == 200 and b"JupyterLab" in html
        found = re.search(rb'<script id="jupyter-config-data" type="application/json">(.*?)</script>', html, re.S)
        assert found, "no page config in /lab"
        return json.loads(found.group(1))

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def _edit_first_answer(nb: dict, marker: str) -> None:
    for cell in nb["cells"]:
        if cell["cell_type"] == "code" and "NotImplementedError" in "".join(cell["source"]):
            cell["source"] = "".join(cell["source"]).replace("raise NotImplementedError()", marker)
            return
    raise AssertionError("no answer cell with `raise NotImplementedError()` in the released notebook")


def test_student_lab_keeps_the_work_and_shows_only_what_a_student_can_use(tmp_path):
    if os.name == "nt":
        pytest.skip("stops the lab by its process group (POSIX)")
    if not (ROOT / ".git").exists():
        pytest.skip("needs a git checkout to clone")
    if not (Path(sys.prefix) / "bin" / "jupyter").exists():
        pytest.skip("JupyterLab is not installed in the environment running the tests")
    clone = _clone(tmp_path)
    notebook = "01_perceptron/perceptron.ipynb"
    student_file = clone / "work" / notebook
    marker = "pass  # the student's own answer"

    # 1. No exchange: the student opens the lab, edits, saves, validates.
    lab = Lab(clone, tmp_path, "lab-1", tmp_path / "user-config")
    try:
        listing = {item["name"] for item in lab.json("/api/contents/")["content"]}
        assert {"01_perceptron", "02_backprop"} <= listing
        model = lab.json(f"/api/contents/{notebook}?content=1&type=notebook")
        _edit_first_answer(model["content"], marker)
        lab.json(f"/api/contents/{notebook}", "PUT", {"type": "notebook", "format": "json",
                                                     "content": model["content"]})
        validated = lab.json("/assignments/validate", "POST", {"path": notebook})
        assert validated["success"] is True, validated  # the student's Validate button works
        disabled = lab.page_config()["disabledExtensions"]
        assert sorted(set(NBGRADER_PANELS) & set(disabled)) == sorted(NBGRADER_PANELS), disabled
        assert "@jupyter/nbgrader:validate-assignment" not in disabled
        for handler in ("/assignments?course_id=dlcourse", "/courses", "/formgrader"):
            assert lab.request(handler)[0] == 404, f"{handler} is served although no exchange is configured"
        assert lab.json("/api/kernelspecs")["kernelspecs"].get("python3")
    finally:
        lab.stop()
    first_log = lab.log()
    saved = student_file.read_bytes()
    assert marker.encode() in saved
    assert _git(clone, "status", "--porcelain") == "", "the student's save changed a tracked file"
    assert "Your notebooks are in work/" in first_log
    assert not LOG_PROBLEMS.findall(first_log), first_log[-6000:]

    # 2. The instructor's release regenerates course/; the student's copy is untouched.
    env = dict(os.environ, PYTHONPATH=str(clone))
    env.pop("DLCOURSE_COURSE_ROOT", None)
    release = subprocess.run([sys.executable, "-m", "grader", "release", "01_perceptron", "--course-root", str(clone)],
                             cwd=clone, env=env, capture_output=True, text=True)
    assert release.returncode == 0, release.stderr
    assert "released" in release.stdout
    assert student_file.read_bytes() == saved
    assert _git(clone, "status", "--porcelain") == ""

    # 3. `git pull` brings a new chapter and a fix to chapter 1; an exchange is configured this time.
    new_chapter = clone / "course" / "99_new" / "new.ipynb"
    new_chapter.parent.mkdir(parents=True)
    shutil.copy(clone / "course" / "02_backprop" / "backprop.ipynb", new_chapter)
    fixed = clone / "course" / notebook
    fixed.write_text(fixed.read_text(encoding="utf-8").replace("Perceptron", "Perceptron (fixed)", 1),
                     encoding="utf-8")
    _git(clone, "add", "course")
    _git(clone, "commit", "--quiet", "-m", "a new chapter and a fix")
    exchange, config = tmp_path / "exchange", tmp_path / "user-config-with-exchange"
    exchange.mkdir()
    config.mkdir()
    (config / "nbgrader_config.py").write_text(f"c = get_config()\nc.Exchange.root = {str(exchange)!r}\n")
    lab = Lab(clone, tmp_path, "lab-2", config)
    try:
        assert not set(NBGRADER_PANELS) & set(lab.page_config()["disabledExtensions"])
        assert lab.json("/assignments?course_id=dlcourse")["success"] is True
        assert lab.request("/formgrader")[0] != 404
    finally:
        lab.stop()
    second_log = lab.log()
    assert f"nbgrader exchange: {exchange}" in second_log
    assert "copied course/99_new/new.ipynb -> work/99_new/new.ipynb" in second_log
    assert f"course/{notebook} is newer than your copy" in second_log and "python3 tasks.py fresh 01_perceptron" \
        in second_log
    assert student_file.read_bytes() == saved
    assert (clone / "work" / "99_new" / "new.ipynb").read_bytes() == new_chapter.read_bytes()
    assert not LOG_PROBLEMS.findall(second_log), second_log[-6000:]

    # 4. A fresh copy of chapter 1 keeps the old one under another name.
    fresh = subprocess.run([sys.executable, "tasks.py", "fresh", "01_perceptron"], cwd=clone, capture_output=True,
                           text=True, env=dict(os.environ, DLCOURSE_VENV=sys.prefix))
    assert fresh.returncode == 0, fresh.stdout + fresh.stderr
    kept = [p for p in (clone / "work").iterdir() if p.name.startswith("01_perceptron.old-")]
    assert len(kept) == 1 and (kept[0] / "perceptron.ipynb").read_bytes() == saved, fresh.stdout
    assert student_file.read_bytes() == fixed.read_bytes()
    assert _git(clone, "status", "--porcelain") == ""
