"""grader.trusted.sandbox + grader/trusted/_launch.py without Jupyter: each limit and wall, on a plain Python process.

Every test starts ``python -c CODE`` the way a kernel is started (same launcher, same spec) and checks one
thing: the user it runs as, what it can see and reach, and each resource limit. Checks that need a
mechanism this machine does not have (root, namespaces, cgroups) are skipped, and `describe` says so.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from grader.course.release import REPO_ROOT
from grader.trusted import sandbox

CAPS = sandbox.probe()
needs_uid = pytest.mark.skipif(not CAPS.drop_uid, reason="the kernel cannot run as another user here")
needs_mounts = pytest.mark.skipif(not CAPS.mountns, reason="no mount namespaces here")
needs_net = pytest.mark.skipif(not CAPS.netns, reason="no network namespaces here")


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    lib = sandbox.build_library(sandbox.base_dir() / f"lib-test-{os.getpid()}")
    yield lib
    import shutil
    shutil.rmtree(lib, ignore_errors=True)


def run(code: str, library: Path | None, limits: sandbox.Limits | None = None, timeout: float = 60):
    with sandbox.Sandbox(limits or sandbox.Limits(), CAPS, library=library) as sb:
        proc = subprocess.run(sb.command(None, [sys.executable, "-c", textwrap.dedent(code)]), capture_output=True,
                              text=True, timeout=timeout)
    return proc, sb.scratch, sb.uid


def test_describe_names_every_limit_and_what_is_missing():
    text = sandbox.describe(CAPS, sandbox.Limits(cell_timeout=7, memory_mb=512))
    assert "7 s/cell" in text and "512 MB memory" in text and "processes" in text and "kB output/cell" in text
    assert ("; no network;" in text) == CAPS.netns  # (a note may say "no network namespaces")
    assert all(note in text for note in CAPS.notes)


def test_runs_as_an_unprivileged_user_with_a_clean_environment(library, monkeypatch):
    monkeypatch.setenv("DLCOURSE_SECRET_TEST", "must not leak")
    proc, scratch, uid = run("""
        import os, sys, dlcore, grader.checks
        print(os.getuid(), os.getgid(), os.getgroups(), os.getcwd())
        print(sorted(os.environ))
        print(dlcore.__file__)
    """, library)
    assert proc.returncode == 0, proc.stderr
    ids, env, dl = proc.stdout.splitlines()
    if CAPS.drop_uid:
        assert ids.split()[:2] == [str(uid), str(uid)] and "[]" in ids and uid >= 1000
    assert str(scratch) in ids
    assert "DLCOURSE_SECRET_TEST" not in env and "PYTHONPATH" in env
    assert dl.startswith(str(library))
    assert not scratch.exists()  # removed with the sandbox


@needs_mounts
def test_course_solutions_and_workdir_are_hidden(library, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    (work / "gradebook.db").write_text("secret")
    proc, _, _ = run(f"""
        import os
        for p in [{str(REPO_ROOT / 'solutions')!r}, {str(REPO_ROOT / 'tests')!r}, {str(REPO_ROOT)!r}, {str(work)!r},
                  "/root", "/home", "/tmp"]:
            try:
                print(p, sorted(os.listdir(p)))
            except OSError as exc:
                print(p, type(exc).__name__)
        import numpy  # the Python installation itself stays usable
    """, library)
    assert proc.returncode == 0, proc.stderr
    seen = dict(line.split(" ", 1) for line in proc.stdout.splitlines())

    def mount_points(folder: str) -> set[str]:
        """Where the checkout, its .venv or the base Python lives below ``folder`` (CI clones may be under /tmp
        or /root), the sandbox keeps the (empty, covered) mount point that leads to the bound-back Python."""
        return {Path(p).relative_to(folder).parts[0] for p in (REPO_ROOT, sys.prefix, sys.base_prefix)
                if Path(p).is_relative_to(folder) and Path(p) != Path(folder)}

    for path, listing in seen.items():
        if listing in ("FileNotFoundError", "PermissionError"):
            continue
        allowed = mount_points(path) | ({"dlcourse-sandbox"} if path == "/tmp" else set())
        assert set(eval(listing)) <= allowed, (path, listing)  # noqa: S307


@needs_uid
def test_files_of_the_grader_are_protected_by_permissions_too(library, tmp_path):
    secret = tmp_path / "private" / "gradebook.db"
    secret.parent.mkdir()
    secret.write_text("secret")
    os.chmod(secret.parent, 0o700)
    proc, _, _ = run(f"""
        try:
            open({str(secret)!r}).read()
            print("READ")
        except OSError as exc:
            print("refused", type(exc).__name__)
    """, library)
    assert "refused" in proc.stdout, proc.stdout + proc.stderr


@needs_net
def test_no_network(library):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    try:
        proc, _, _ = run(f"""
            import socket
            try:
                socket.create_connection(("127.0.0.1", {port}), timeout=2)
                print("connected")
            except OSError as exc:
                print("blocked", exc.errno)
        """, library)
    finally:
        server.close()
    assert "blocked" in proc.stdout, proc.stdout + proc.stderr


def test_file_size_limit(library):
    proc, _, _ = run("""
        try:
            with open("big.bin", "wb") as fh:
                fh.write(b"\\0" * (3 * 2**20))
            print("wrote")
        except OSError as exc:
            print("stopped", exc.errno)
    """, library, sandbox.Limits(file_mb=1))
    assert "stopped 27" in proc.stdout, proc.stdout + proc.stderr  # EFBIG, the process survives


def test_memory_limit(library):
    proc, _, _ = run("""
        import numpy as np
        try:
            np.ones((40_000, 40_000))
            print("allocated")
        except MemoryError:
            print("MemoryError")
    """, library, sandbox.Limits(memory_mb=1024))
    assert "MemoryError" in proc.stdout, proc.stdout + proc.stderr


def test_cpu_limit(library):
    # CPU time, not wall time: the limit binds after one second of CPU however loaded the machine is
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc, _, _ = run("while True:\n    pass\n", library, sandbox.Limits(cpu_seconds=1), timeout=600)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    assert proc.returncode == -signal.SIGXCPU
    used = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    assert 0.9 <= used < 10, f"the looping process used {used:.1f} s of CPU before SIGXCPU"


@needs_uid
def test_process_limit_binds_and_nothing_survives(library):
    proc, _, uid = run("""
        import os
        n = 0
        try:
            for _ in range(200):
                if os.fork() == 0:
                    os.setsid()
                    null = os.open(os.devnull, os.O_WRONLY)
                    os.dup2(null, 1)
                    os.dup2(null, 2)
                    os.execv("/bin/sleep", ["sleep", "2468.5"])
                n += 1
        except OSError as exc:
            print("refused after", n, exc.errno)
    """, library, sandbox.Limits(processes=20))
    assert "refused after" in proc.stdout, proc.stdout + proc.stderr
    assert int(proc.stdout.split()[2]) < 20
    left = subprocess.run(["pgrep", "-f", "sleep 2468.5"], capture_output=True, text=True).stdout.split()
    assert left == []


@pytest.mark.skipif(not CAPS.cgroup.get("memory"), reason="no writable memory cgroup here")
def test_memory_of_the_whole_process_tree(library):
    with sandbox.Sandbox(sandbox.Limits(memory_mb=200), CAPS, library=library) as sb:
        code = textwrap.dedent("""
            import os
            # each child touches 150 MB, says so on `ready` and holds it until `release` closes; the parent
            # opens `release` only when every child has said so or died (the OOM killer): so at least two
            # children hold 300 MB at once against the 200 MB limit, however the machine schedules them
            ready_r, ready_w = os.pipe()
            release_r, release_w = os.pipe()
            for _ in range(4):
                if os.fork() == 0:
                    os.close(ready_r)
                    os.close(release_w)
                    block = bytearray(150 * 2**20)
                    for i in range(0, len(block), 4096):
                        block[i] = 1
                    os.write(ready_w, b"x")
                    os.close(ready_w)
                    os.read(release_r, 1)
                    os._exit(0)
            os.close(ready_w)
            got = b""
            while len(got) < 4:
                chunk = os.read(ready_r, 4)
                if not chunk:   # every child has written or died
                    break
                got += chunk
            os.close(release_w)
            for _ in range(4):
                os.wait()
            print("done")
        """)
        subprocess.run(sb.command(None, [sys.executable, "-c", code]), capture_output=True, text=True, timeout=60)
        assert sb.out_of_memory()


@pytest.mark.parametrize("spec", [{"mountns": True, "root": "/proc/no-such-root", "cwd": "/", "env": {}},  # a mount
                                  {"cwd": "/nonexistent-cwd", "env": {}}])  # the last step before exec
def test_a_failing_setup_starts_nothing(tmp_path, spec):
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))
    proc = subprocess.run([sys.executable, "-I", "-S", str(sandbox.LAUNCHER), str(path), "--", sys.executable, "-c",
                           "print('started')"], capture_output=True, text=True)
    assert proc.returncode == 70 and "started" not in proc.stdout and "sandbox setup failed" in proc.stderr


@needs_mounts
def test_only_the_allow_list_exists_inside(library, tmp_path):
    """Nothing is covered by name: a readable copy of solutions/ that nobody listed is simply not there."""
    other = tmp_path / "another_checkout" / "solutions"
    other.mkdir(parents=True)
    (other / "answers.ipynb").write_text("the hidden tests")
    os.chmod(tmp_path, 0o755)
    proc, _, _ = run(f"""
        import os
        for p in [{str(other / 'answers.ipynb')!r}, "/etc/passwd", "/home", "/srv", "/opt", "/var/lib"]:
            try:
                print(p, open(p).read()[:20] if os.path.isfile(p) else sorted(os.listdir(p)))
            except OSError as exc:
                print(p, type(exc).__name__)
        print("ROOT", sorted(os.listdir("/")))
    """, library)
    assert proc.returncode == 0, proc.stderr
    seen = dict(line.split(" ", 1) for line in proc.stdout.splitlines())
    assert seen.pop("ROOT") and all(v in ("FileNotFoundError", "PermissionError") for v in seen.values()), seen
