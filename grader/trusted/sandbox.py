"""The sandbox each submission's kernel runs in: what this machine allows, and how a kernel is started.

One submission = one kernel process tree, started through grader/trusted/_launch.py with:

- an unprivileged user of its own (a uid leased from a pool, ``DLCOURSE_SANDBOX_UID_BASE``, default
  61000, while the grader runs as root): file permissions are a second wall, RLIMIT_NPROC binds, and
  every process left behind is found and killed by uid;
- a scratch directory (owned by that uid, mode 0700, a size-limited tmpfs when possible) holding only the
  submission's copy of the chapter's data files; the kernel's working directory and home;
- a private mount namespace (when possible) in which the course, the solutions, the gradebook, the
  submissions, home and temporary directories are hidden under empty tmpfs mounts, only the Python
  installation and a copy of dlcore and the grader's kernel-side modules bound back read-only;
- no network (a new network namespace) when possible; the kernel talks to the grader over Unix sockets;
- rlimits: CPU seconds, address space, file size, processes, open files, no core dumps; cgroups for the
  memory and number of processes of the whole tree when the machine has them;
- a clean environment (no grader variables), one BLAS thread.

:func:`probe` finds out once which of these the machine allows (root? namespaces? cgroups?), and
:func:`describe` says in words what is enforced and what is not.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from grader.course.release import REPO_ROOT

__all__ = ["Limits", "Capabilities", "probe", "describe", "Sandbox", "SandboxKernelManager", "build_library",
           "kill_uid", "sweep_all", "LAUNCHER"]

LAUNCHER = Path(__file__).resolve().parent / "_launch.py"
UID_BASE = int(os.environ.get("DLCOURSE_SANDBOX_UID_BASE", "61000"))
UID_COUNT = 64
MS_NOSUID, MS_NODEV = 2, 4
MNT_DETACH = 2
#: What the interpreter needs of the system besides its own installation (shared libraries, the loader's cache).
SYSTEM_PATHS = ["/usr/lib", "/usr/lib64", "/usr/lib32", "/etc/ld.so.cache", "/etc/localtime"]


@dataclass
class Limits:
    """Per-submission limits (the CLI's --timeout, --notebook-timeout, --memory-mb, ...)."""

    cell_timeout: int = 60            # s of wall time per cell (interrupt, then the kernel is stopped)
    notebook_timeout: int = 600       # s of wall time per notebook
    cpu_seconds: int = 0              # CPU s per process (0: notebook_timeout + 30)
    memory_mb: int = 2048             # address space per process; memory of the whole tree (cgroup)
    file_mb: int = 64                 # largest file the kernel may write
    disk_mb: int = 256                # scratch directory and /tmp (tmpfs size) when available
    processes: int = 64               # processes and threads of the sandbox user
    open_files: int = 256
    output_cell_kb: int = 256         # output kept per cell (streams, rich outputs, tracebacks)
    output_notebook_kb: int = 2048    # output kept per notebook

    @property
    def cpu(self) -> int:
        return self.cpu_seconds or self.notebook_timeout + 30


@dataclass
class Capabilities:
    """What this machine lets the grader enforce (found by :func:`probe`)."""

    root: bool = False
    drop_uid: bool = False          # run the kernel as an unprivileged uid
    userns: bool = False            # not root: a user namespace gives mount/net namespaces instead
    netns: bool = False
    mountns: bool = False
    scratch_tmpfs: bool = False
    cgroup: dict = field(default_factory=dict)   # {"memory": dir, "pids": dir, "version": 1|2}
    notes: list = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


# --------------------------------------------------------------------------- probing


def _libc() -> Any:
    return ctypes.CDLL(None, use_errno=True)


def _base_dir() -> Path:
    env = os.environ.get("DLCOURSE_SANDBOX_DIR")
    if env:
        return Path(env)
    if os.geteuid() == 0:
        return Path("/tmp/dlcourse-sandbox")
    return Path(tempfile.gettempdir()) / f"dlcourse-sandbox-{os.geteuid()}"


def base_dir() -> Path:
    base = _base_dir()
    base.mkdir(mode=0o711, parents=True, exist_ok=True)
    if os.geteuid() == 0:
        os.chown(base, 0, 0)
        os.chmod(base, 0o711)
    (base / "uids").mkdir(mode=0o700, exist_ok=True)
    return base


def _own_cgroup(controller: str) -> tuple[Path, int] | None:
    """The directory of this process's cgroup for ``controller`` (v1), or of its unified cgroup (v2)."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
        mounts = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return None
    v1 = {}
    unified = None
    for line in lines:
        hid, ctrls, path = line.split(":", 2)
        if hid == "0":
            unified = path
        for c in ctrls.split(","):
            v1[c] = path
    for m in mounts:
        parts = m.split()
        if len(parts) < 4:
            continue
        mnt, fstype, opts = parts[1], parts[2], parts[3].split(",")
        if fstype == "cgroup" and controller in opts and controller in v1:
            return Path(mnt) / v1[controller].lstrip("/"), 1
    for m in mounts:
        parts = m.split()
        if len(parts) >= 3 and parts[2] == "cgroup2" and unified is not None:
            d = Path(parts[1]) / unified.lstrip("/")
            try:
                if controller in (d / "cgroup.subtree_control").read_text().split():
                    return d, 2
            except OSError:
                continue
    return None


def _probe_child(fn: Any) -> bool:
    """Run ``fn`` in a forked child; True when it returns without raising."""
    pid = os.fork()
    if pid == 0:
        try:
            fn()
            os._exit(0)
        except BaseException:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    return os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


_PROBED: Capabilities | None = None


def probe(refresh: bool = False) -> Capabilities:
    """Which isolation mechanisms work here (cached).

    ``DLCOURSE_SANDBOX=off`` uses none of them; ``DLCOURSE_SANDBOX_DISABLE=netns,mountns,cgroup,...`` leaves
    out some (to rehearse a machine that lacks them).
    """
    global _PROBED
    if _PROBED is not None and not refresh:
        return _PROBED
    caps = Capabilities(root=os.geteuid() == 0)
    if os.environ.get("DLCOURSE_SANDBOX", "").lower() in ("off", "0", "no"):
        caps.notes.append("sandboxing switched off (DLCOURSE_SANDBOX=off): limits and the scratch directory only")
        _PROBED = caps
        return caps
    if sys.platform != "linux":
        caps.notes.append("not Linux: only rlimits and the scratch directory are used")
        _PROBED = caps
        return caps
    libc = _libc()
    base = base_dir()
    if caps.root:
        caps.netns = _probe_child(lambda: _ok(libc.unshare(0x40000000)))
        probe_dir = Path(tempfile.mkdtemp(dir=base))
        try:
            def mount_test() -> None:
                _ok(libc.unshare(0x00020000))
                _ok(libc.mount(None, b"/", None, ctypes.c_ulong(16384 | (1 << 18)), None))
                _ok(libc.mount(b"tmpfs", str(probe_dir).encode(), b"tmpfs", ctypes.c_ulong(MS_NOSUID | MS_NODEV),
                               b"mode=0755,size=1m"))
            caps.mountns = _probe_child(mount_test)
            caps.scratch_tmpfs = caps.mountns and _probe_child(lambda: _scratch_tmpfs_test(libc, probe_dir))
        finally:
            shutil.rmtree(probe_dir, ignore_errors=True)
        disabled = os.environ.get("DLCOURSE_SANDBOX_DISABLE", "").replace(" ", "").split(",")
        for feature in ("netns", "mountns", "scratch_tmpfs"):
            if feature in disabled:
                setattr(caps, feature, False)
        caps.drop_uid = "drop_uid" not in disabled and _probe_uid(caps)
        if not caps.drop_uid:
            caps.notes.append("the kernel cannot run as an unprivileged user here (the Python installation is not "
                              "readable by other users and there is no mount namespace to fix that): it runs as "
                              "root, so RLIMIT_NPROC does not bind and file permissions are no wall")
    else:
        def userns_test() -> None:
            uid, gid = os.getuid(), os.getgid()
            _ok(libc.unshare(0x10000000 | 0x00020000 | 0x40000000))
            Path("/proc/self/setgroups").write_text("deny")
            Path("/proc/self/uid_map").write_text(f"0 {uid} 1")
            Path("/proc/self/gid_map").write_text(f"0 {gid} 1")
        caps.userns = _probe_child(userns_test)
        caps.netns = caps.mountns = caps.userns
        caps.notes.append("the grader does not run as root: the kernel runs as the grader's own user (file "
                          "permissions are no wall between them)"
                          + ("; hidden directories and no network come from a user namespace" if caps.userns else
                             "; no user namespaces either, so nothing is hidden from the kernel and it has network"))
    if not caps.netns:
        caps.notes.append("network: not switched off (no network namespaces here)")
    if not caps.mountns:
        caps.notes.append("directories are not hidden by mounts (no mount namespaces here); only file permissions "
                          "(the work directory is 0700) keep the kernel out")
    if caps.root:
        caps.cgroup = _probe_cgroups() if "cgroup" not in os.environ.get("DLCOURSE_SANDBOX_DISABLE", "") else {}
        if not caps.cgroup:
            caps.notes.append("no writable cgroups: memory is limited per process (RLIMIT_AS) and processes per "
                              "sandbox user (RLIMIT_NPROC), not for the process tree as a whole")
    _PROBED = caps
    return caps


def _ok(result: int) -> None:
    if result != 0:
        raise OSError(ctypes.get_errno(), "failed")


def _scratch_tmpfs_test(libc: Any, d: Path) -> None:
    target = d / "t"
    target.mkdir()
    _ok(libc.mount(b"tmpfs", str(target).encode(), b"tmpfs", ctypes.c_ulong(MS_NOSUID | MS_NODEV), b"size=1m"))
    _ok(libc.umount2(str(target).encode(), MNT_DETACH))


def _probe_uid(caps: Capabilities) -> bool:
    """Can a kernel start as an unprivileged uid (with the mounts the sandbox would use)?"""
    with UidLease() as uid:
        if uid is None:
            return False
        scratch = Path(tempfile.mkdtemp(dir=base_dir()))
        try:
            os.chown(scratch, uid, uid)
            os.chmod(scratch, 0o700)
            spec = _spec(caps, Limits(), uid=uid, scratch=scratch, library=None, cover=[], conn=None, cgroups=[])
            spec_path = scratch.parent / f"{scratch.name}.json"
            spec_path.write_text(json.dumps(spec))
            try:
                proc = subprocess.run([sys.executable, "-I", "-S", str(LAUNCHER), str(spec_path), "--",
                                       sys.executable, "-c", "import os, numpy; print(os.getuid())"],
                                      capture_output=True, text=True, timeout=60)
            finally:
                spec_path.unlink()
            return proc.returncode == 0 and proc.stdout.strip() == str(uid)
        finally:
            kill_uid(uid)
            shutil.rmtree(scratch, ignore_errors=True)
            with contextlib.suppress(OSError):
                (scratch.parent / f"{scratch.name}.root").rmdir()


def _probe_cgroups() -> dict:
    found: dict[str, Any] = {}
    for controller in ("memory", "pids"):
        where = _own_cgroup(controller)
        if where is None:
            continue
        d, version = where
        test = d / f"dlcourse-probe-{os.getpid()}"
        try:
            test.mkdir()
            limit = "memory.limit_in_bytes" if (controller == "memory" and version == 1) else (
                "memory.max" if controller == "memory" else "pids.max")
            (test / limit).write_text("1073741824" if controller == "memory" else "10")
            found[controller] = str(d)
            found["version"] = version
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                test.rmdir()
    return found


def describe(caps: Capabilities, limits: Limits) -> str:
    """One paragraph for the batch's header: what is enforced, and what this machine does not allow."""
    who = ("an unprivileged user per submission" if caps.drop_uid else
           "the grader's own user" + (" in a user namespace" if caps.userns else ""))
    parts = [f"kernels run as {who}",
             "no network" if caps.netns else "WITH network",
             "course/solutions/gradebook hidden" if caps.mountns else "directories protected by permissions only",
             f"limits: {limits.cell_timeout} s/cell, {limits.notebook_timeout} s/notebook, {limits.cpu} CPU s, "
             f"{limits.memory_mb} MB memory, {limits.file_mb} MB per file, {limits.processes} processes, "
             f"{limits.output_cell_kb} kB output/cell"]
    if caps.cgroup:
        parts.append("cgroup (memory and processes of the whole tree)")
    return "sandbox: " + "; ".join(parts) + ("" if not caps.notes else ". Not possible here: " + "; ".join(caps.notes))


# --------------------------------------------------------------------------- uids


class UidLease:
    """An unprivileged uid for one submission, held through a lock file (free again when the holder dies)."""

    def __init__(self) -> None:
        self.uid: int | None = None
        self.fd: int | None = None

    def __enter__(self) -> int | None:
        if os.geteuid() != 0:
            return None
        import pwd
        locks = base_dir() / "uids"
        for uid in range(UID_BASE, UID_BASE + UID_COUNT):
            try:
                pwd.getpwuid(uid)
                continue  # a real account: never borrow it
            except KeyError:
                pass
            fd = os.open(locks / f"{uid}.lock", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                continue
            self.uid, self.fd = uid, fd
            kill_uid(uid)  # whatever a previous holder left behind
            sweep_stale(uid)
            return uid
        raise RuntimeError(f"no free sandbox uid in {UID_BASE}..{UID_BASE + UID_COUNT - 1}")

    def __exit__(self, *exc: Any) -> None:
        if self.uid is not None:
            kill_uid(self.uid)
        if self.fd is not None:
            os.close(self.fd)
        self.uid = self.fd = None


def sweep_stale(uid: int) -> None:
    """Remove what a killed holder of ``uid`` left behind: scratch mounts and directories, records, cgroups.

    Called with the uid's lock held, so nobody is using these.
    """
    base = _base_dir()
    libc = _libc()
    for p in base.glob(f"{uid}-*"):
        with contextlib.suppress(OSError):
            if p.name.endswith(".spec.json"):
                p.unlink()
            elif p.name.endswith(".rec"):
                shutil.rmtree(p, ignore_errors=True)
            else:
                libc.umount2(str(p).encode(), MNT_DETACH)
                shutil.rmtree(p, ignore_errors=True)
    caps = _PROBED
    for controller in ("memory", "pids"):
        where = (caps.cgroup if caps is not None else {}).get(controller)
        if not where:
            continue
        for d in Path(where).glob(f"dlcourse-{uid}-*"):
            _remove_cgroup(d)


def sweep_all() -> None:
    """Sweep every sandbox uid nobody holds (at the start and end of a batch), and stale library copies."""
    if os.geteuid() != 0:
        return
    base = _base_dir()
    if not base.is_dir():
        return
    busy = _uids_with_processes()
    for uid in range(UID_BASE, UID_BASE + UID_COUNT):
        lock = base / "uids" / f"{uid}.lock"
        if not lock.exists() and uid not in busy and not any(base.glob(f"{uid}-*")):
            continue
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue
        try:
            if uid in busy:
                kill_uid(uid)
            sweep_stale(uid)
        finally:
            os.close(fd)
    for lib in base.glob("lib-*-*"):
        pid = lib.name.split("-")[1]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(lib, ignore_errors=True)


def _remove_cgroup(d: Path) -> None:
    for _ in range(40):
        try:
            pids = [int(p) for p in (d / "cgroup.procs").read_text().split()]
        except OSError:
            return
        for pid in pids:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        try:
            d.rmdir()
            return
        except OSError as e:
            if e.errno not in (errno.EBUSY, errno.ENOTEMPTY):
                return
            time.sleep(0.05)


def _uids_with_processes() -> set[int]:
    found = set()
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                found.add(entry.stat().st_uid)
    return found


def kill_uid(uid: int) -> None:
    """SIGKILL every process of ``uid`` (a child that setuid()s and kill(-1)s: it cannot hit anyone else)."""
    if os.geteuid() != 0 or uid < 1000:
        return
    for _ in range(5):
        pid = os.fork()
        if pid == 0:
            try:
                os.setresgid(uid, uid, uid)
                os.setresuid(uid, uid, uid)
                os.kill(-1, signal.SIGKILL)
            except OSError:
                pass
            os._exit(0)
        os.waitpid(pid, 0)
        if not _uid_has_processes(uid):
            return
        time.sleep(0.05)


def _uid_has_processes(uid: int) -> bool:
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    status = Path(f"/proc/{entry.name}/status").read_text()
                    if "\nState:\tZ" not in status:
                        return True
            except OSError:
                continue
    return False


# --------------------------------------------------------------------------- the library copy


def chapter_references(folder: Path) -> set[str]:
    """The references the kernel's dlcore must not offer: those named by the chapter's test cells, except
    the ones the chapter's own code (its locked and answer cells) uses from dlcore, e.g. a library
    Embedding in one notebook while the other notebook grades Embedding (the source scan covers those)."""
    import nbformat

    from grader.trusted.cells import is_test, references
    from grader.trusted.messages import resolve_reference
    from grader.trusted.source import instructor_uses
    found: set[str] = set()
    code: list[str] = []
    for path in sorted(Path(folder).glob("*.ipynb")):
        nb = nbformat.read(str(path), as_version=4)
        found |= references(nb)
        code += [c.source for c in nb.cells if c.cell_type == "code" and not is_test(c)]
    used = instructor_uses(code)

    def needed(ref: str) -> bool:
        try:
            return any(obj is resolve_reference(ref) for obj in used)
        except (ValueError, ImportError, AttributeError):
            return False

    return {ref for ref in found if not needed(ref)}


def build_library(dest: Path, strip: set[str] | frozenset[str] = frozenset()) -> Path:
    """A world-readable copy of dlcore and the grader's kernel side (the kernel's PYTHONPATH).

    ``strip``: the references the chapter's test cells name ("Affine", "classic.step"); in the copy each
    of them raises "not available while grading", so the kernel cannot delegate to them.
    """
    dest = Path(dest)
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(REPO_ROOT / "dlcore", dest / "dlcore", ignore=ignore)
    shutil.copytree(REPO_ROOT / "grader" / "kernel", dest / "grader" / "kernel", ignore=ignore)
    for name in ("__init__.py", "checks.py"):
        shutil.copy2(REPO_ROOT / "grader" / name, dest / "grader" / name)
    from grader.trusted.strip import strip_references
    strip_references(dest, strip)
    for root, _dirs, files in os.walk(dest):
        os.chmod(root, 0o755)
        for f in files:
            os.chmod(os.path.join(root, f), 0o644)
    os.chmod(dest, 0o755)
    return dest


# --------------------------------------------------------------------------- one submission's sandbox


def _python_paths() -> list[str]:
    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,
             os.path.dirname(os.path.realpath(sys.executable))}
    return sorted(p for p in paths if p)


def _spec(caps: Capabilities, limits: Limits, *, uid: int | None, scratch: Path, library: Path | None,
          cover: list[str], conn: str | None, cgroups: list[str], records: Path | None = None) -> dict:
    mb = 2**20
    venv_bin = os.path.dirname(sys.executable)
    env = {"PATH": os.pathsep.join([venv_bin, "/usr/local/bin", "/usr/bin", "/bin"]), "HOME": str(scratch),
           "USER": "student", "LOGNAME": "student", "LANG": "C.UTF-8",
           "TMPDIR": "/tmp" if caps.mountns else str(scratch),
           "PYTHONDONTWRITEBYTECODE": "1", "PYTHONNOUSERSITE": "1", "MPLBACKEND": "Agg",
           "MPLCONFIGDIR": str(scratch / ".config" / "matplotlib"), "IPYTHONDIR": str(scratch / ".ipython"),
           "JUPYTER_CONFIG_DIR": str(scratch / ".jupyter"), "JUPYTER_DATA_DIR": str(scratch / ".local"),
           "JUPYTER_RUNTIME_DIR": str(scratch / ".runtime"), "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
           "MKL_NUM_THREADS": "1", "TQDM_DISABLE": "1", "PYDEVD_DISABLE_FILE_VALIDATION": "1"}
    if library is not None:
        env["PYTHONPATH"] = str(library)
    spec: dict[str, Any] = {
        "netns": caps.netns, "mountns": caps.mountns, "userns": caps.userns and not caps.root,
        "cwd": str(scratch), "env": env, "parent": os.getpid(),
        "rlimits": {"cpu": [limits.cpu, limits.cpu + 5], "as": [limits.memory_mb * mb] * 2,
                    "fsize": [limits.file_mb * mb] * 2, "nofile": [limits.open_files] * 2, "core": [0, 0]},
        "cgroup_procs": cgroups, "chown": [conn] if conn else [],
    }
    if uid is not None:
        spec["uid"], spec["gid"] = uid, uid
        spec["rlimits"]["nproc"] = [limits.processes] * 2
    elif not caps.root:
        spec["rlimits"]["nproc"] = [max(limits.processes, _current_processes() + limits.processes)] * 2
    if caps.mountns:
        # the allow-list: the interpreter and its packages, the system's shared libraries, the library copy,
        # the scratch and records directories; nothing else of the machine exists inside the sandbox
        spec["root"] = str(scratch.parent / f"{scratch.name}.root")
        spec["keep"] = _python_paths() + SYSTEM_PATHS + [str(scratch)] + ([str(library)] if library else []) + \
            ([str(records)] if records else [])
        spec["writable"] = [str(scratch)] + ([str(records)] if records else [])
        disk = f"size={limits.disk_mb}m,mode=1777"
        spec["tmpfs"] = {"/tmp": disk, "/var/tmp": disk, "/dev/shm": "size=64m,mode=1777"}
    return spec


def _current_processes() -> int:
    uid = os.getuid()
    n = 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if entry.stat().st_uid == uid:
                    n += len(os.listdir(f"/proc/{entry.name}/task"))
    return n


class Sandbox:
    """The sandbox of one submission: uid, scratch directory, cgroups, the launch spec; a context manager."""

    def __init__(self, limits: Limits, caps: Capabilities, *, library: Path | None, cover: list[str],
                 data_files: list[Path] = ()) -> None:
        self.limits, self.caps, self.library, self.cover = limits, caps, library, list(cover)
        self.data_files = list(data_files)
        self.lease = UidLease()
        self.uid: int | None = None
        self.scratch: Path | None = None
        self.cgroups: list[Path] = []
        self.mounted = False
        self.records_dir: Path | None = None

    def __enter__(self) -> Sandbox:
        self.uid = self.lease.__enter__() if self.caps.drop_uid else None
        base = base_dir()
        self.scratch = Path(tempfile.mkdtemp(prefix=f"{self.uid or 'u'}-", dir=base))
        if self.caps.scratch_tmpfs:
            opts = f"size={self.limits.disk_mb}m,mode=0700" + (f",uid={self.uid},gid={self.uid}" if self.uid else "")
            libc = _libc()
            if libc.mount(b"tmpfs", str(self.scratch).encode(), b"tmpfs", ctypes.c_ulong(MS_NOSUID | MS_NODEV),
                          opts.encode()) == 0:
                self.mounted = True
        for f in self.data_files:
            dest = self.scratch / f.name
            if f.is_dir():
                shutil.copytree(f, dest)
            else:
                shutil.copy2(f, dest)
        for sub in (".config/matplotlib", ".ipython", ".jupyter", ".local", ".runtime", ".dlc"):
            (self.scratch / sub).mkdir(parents=True, exist_ok=True)
        if self.uid is not None:
            for root, _dirs, files in os.walk(self.scratch):
                os.chown(root, self.uid, self.uid)
                for f in files:
                    os.chown(os.path.join(root, f), self.uid, self.uid)
        os.chmod(self.scratch, 0o700)
        # The records live next to the scratch directory, in a directory the kernel cannot write to, so
        # it cannot create other files there; it owns its records file and could rewrite it, which is why
        # records are never trusted: they are judged against plans rebuilt from the source notebook, and
        # the source checks refuse code that could write them from elsewhere (other processes, shell).
        self.records_dir = base / f"{self.scratch.name}.rec"
        self.records_dir.mkdir(mode=0o711)
        self._make_cgroups()
        return self

    def records_file(self, name: str) -> Path:
        assert self.records_dir is not None
        path = self.records_dir / f"records-{name}.jsonl"
        path.touch(mode=0o600)
        if self.uid is not None:
            os.chown(path, self.uid, self.uid)
        return path

    def requests_file(self, name: str, text: str) -> Path:
        """The kernel's requests (plain data, written by the worker): readable, not writable by the kernel."""
        assert self.records_dir is not None
        path = self.records_dir / f"requests-{name}.json"
        path.write_text(text, encoding="utf-8")
        os.chmod(path, 0o644)
        return path

    def _make_cgroups(self) -> None:
        cg = self.caps.cgroup
        if not cg:
            return
        name = f"dlcourse-{self.scratch.name}"
        mb = 2**20
        for controller in ("memory", "pids"):
            if controller not in cg:
                continue
            d = Path(cg[controller]) / name
            try:
                d.mkdir()
                if controller == "memory":
                    limit = str((self.limits.memory_mb + 256) * mb)
                    if cg.get("version") == 1:
                        (d / "memory.limit_in_bytes").write_text(limit)
                        with contextlib.suppress(OSError):
                            (d / "memory.memsw.limit_in_bytes").write_text(limit)
                    else:
                        (d / "memory.max").write_text(limit)
                        with contextlib.suppress(OSError):
                            (d / "memory.swap.max").write_text("0")
                else:
                    (d / "pids.max").write_text(str(self.limits.processes))
                self.cgroups.append(d)
            except OSError:
                with contextlib.suppress(OSError):
                    d.rmdir()

    def spec(self, connection_file: str | None) -> dict:
        assert self.scratch is not None
        return _spec(self.caps, self.limits, uid=self.uid, scratch=self.scratch, library=self.library,
                     cover=self.cover, conn=connection_file, cgroups=[str(d / "cgroup.procs") for d in self.cgroups],
                     records=self.records_dir)

    def out_of_memory(self) -> bool:
        """Did the memory cgroup hit its limit (the kernel was OOM-killed)?"""
        for d in self.cgroups:
            for name, key in (("memory.oom_control", "oom_kill "), ("memory.events", "oom_kill ")):
                with contextlib.suppress(OSError, ValueError):
                    for line in (d / name).read_text().splitlines():
                        if line.startswith(key) and int(line.split()[1]) > 0:
                            return True
            with contextlib.suppress(OSError, ValueError):
                if int((d / "memory.failcnt").read_text()) > 0 and not (d / "memory.oom_control").exists():
                    return True
        return False

    def kill_all(self) -> None:
        if self.uid is not None:
            kill_uid(self.uid)
        for d in self.cgroups:
            for _ in range(20):
                try:
                    pids = [int(p) for p in (d / "cgroup.procs").read_text().split()]
                except OSError:
                    break
                if not pids:
                    break
                for pid in pids:
                    with contextlib.suppress(OSError):
                        os.kill(pid, signal.SIGKILL)
                time.sleep(0.05)

    def __exit__(self, *exc: Any) -> None:
        self.kill_all()
        for d in self.cgroups:
            _remove_cgroup(d)
        if self.scratch is not None:
            with contextlib.suppress(OSError):
                (self.scratch.parent / f"{self.scratch.name}.spec.json").unlink()
            if self.records_dir is not None:
                shutil.rmtree(self.records_dir, ignore_errors=True)
            with contextlib.suppress(OSError):
                (self.scratch.parent / f"{self.scratch.name}.root").rmdir()
            if self.mounted:
                _libc().umount2(str(self.scratch).encode(), MNT_DETACH)
            shutil.rmtree(self.scratch, ignore_errors=True)
        self.lease.__exit__(*exc)


# --------------------------------------------------------------------------- the kernel manager

try:
    from jupyter_client.asynchronous import AsyncKernelClient
    from jupyter_client.manager import AsyncKernelManager
except ImportError:  # pragma: no cover - jupyter_client comes with nbclient
    AsyncKernelClient = AsyncKernelManager = object  # type: ignore[misc,assignment]

#: Messages larger than this are dropped by the sockets (the per-cell output limit handles the rest).
MAX_MESSAGE_BYTES = 128 * 2**20


class SandboxKernelClient(AsyncKernelClient):  # type: ignore[misc,valid-type]
    """A kernel client whose sockets refuse huge messages (the grader's memory is not the student's to fill)."""

    def _create_connected_socket(self, channel: str, identity: bytes | None = None) -> Any:
        import zmq
        url = self._make_url(channel)
        sock = self.context.socket(__import__("jupyter_client.connect", fromlist=["x"]).channel_socket_types[channel])
        sock.linger = 1000
        if identity:
            sock.identity = identity
        if getattr(self, "curve_publickey", None) is not None:
            sock.curve_secretkey = self.curve_secretkey
            sock.curve_publickey = self.curve_publickey
            sock.curve_serverkey = self.curve_publickey
        sock.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_BYTES)
        sock.connect(url)
        return sock


class SandboxKernelManager(AsyncKernelManager):  # type: ignore[misc,valid-type]
    """Starts ipykernel through grader/trusted/_launch.py with the sandbox's spec, over Unix sockets."""

    sandbox: Sandbox | None = None
    kernel_log: str | None = None

    def __init__(self, sandbox: Sandbox, **kwargs: Any) -> None:
        scratch = sandbox.scratch
        assert scratch is not None
        super().__init__(transport="ipc", ip=str(scratch / ".dlc" / "k"), cache_ports=False,
                         connection_file=str(scratch / ".dlc" / "kernel.json"),
                         client_class="grader.trusted.sandbox.SandboxKernelClient", **kwargs)
        self.sandbox = sandbox

    def format_kernel_cmd(self, extra_arguments: list[str] | None = None) -> list[str]:
        assert self.sandbox is not None and self.sandbox.scratch is not None
        spec = self.sandbox.spec(self.connection_file)
        spec_path = self.sandbox.scratch.parent / f"{self.sandbox.scratch.name}.spec.json"
        spec_path.write_text(json.dumps(spec), encoding="utf-8")
        os.chmod(spec_path, 0o600)
        kernel = [sys.executable, "-m", "ipykernel_launcher", "-f", self.connection_file,
                  "--HistoryManager.enabled=False"]
        return [sys.executable, "-I", "-S", str(LAUNCHER), str(spec_path), "--", *kernel]

    async def _async_launch_kernel(self, kernel_cmd: list[str], **kw: Any) -> None:
        kw.pop("env", None)
        kw["env"] = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        kw["stdout"] = subprocess.DEVNULL
        log = self.kernel_log
        if log:
            kw["stderr"] = open(log, "ab")  # noqa: SIM115 - the child inherits it; closed below
        try:
            await super()._async_launch_kernel(kernel_cmd, **kw)
        finally:
            if log:
                kw["stderr"].close()

    _launch_kernel = _async_launch_kernel
