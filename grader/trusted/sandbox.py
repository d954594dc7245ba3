"""The sandbox each submission's kernel runs in: what this machine allows (:func:`probe`, :func:`describe`),
and how a kernel is started: through grader/trusted/_launch.py, as a leased unprivileged uid (processes
left behind are found and killed by uid), in a scratch directory holding only the chapter's data files,
with a clean environment. See grader/README.md, "Threat model and design" (1. The sandbox).
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import zmq
from jupyter_client.manager import AsyncKernelManager

from grader.course.release import REPO_ROOT
from grader.trusted import _launch

__all__ = ["Limits", "Capabilities", "probe", "describe", "Sandbox", "SandboxKernelManager", "build_library",
           "chapter_references", "base_dir", "kill_uid", "sweep_all", "remove_paths", "LAUNCHER"]

LAUNCHER = Path(_launch.__file__).resolve()
UID_BASE = int(os.environ.get("DLCOURSE_SANDBOX_UID_BASE", "61000"))
UID_COUNT = 64
#: What the interpreter needs of the system besides its own installation (shared libraries, the loader's cache).
SYSTEM_PATHS = ["/usr/lib", "/usr/lib64", "/usr/lib32", "/etc/ld.so.cache", "/etc/localtime"]
#: The kernel's configuration directories (environment variable -> folder of the scratch directory).
HOME_DIRS = {"MPLCONFIGDIR": ".config/matplotlib", "IPYTHONDIR": ".ipython", "JUPYTER_CONFIG_DIR": ".jupyter",
             "JUPYTER_DATA_DIR": ".local", "JUPYTER_RUNTIME_DIR": ".runtime"}


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

    drop_uid: bool = False          # run the kernel as an unprivileged uid (the grader is root)
    userns: bool = False            # not root: a user namespace gives mount/net namespaces instead
    netns: bool = False
    mountns: bool = False           # the allow-list root (and, as root, a tmpfs scratch directory)
    cgroup: dict = field(default_factory=dict)   # {"memory": dir, "pids": dir, "version": 1|2 (memory's)}
    notes: list = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def base_dir() -> Path:
    """Where scratch, records, library copies and uid locks live (``DLCOURSE_SANDBOX_DIR`` to choose)."""
    root = os.geteuid() == 0
    default = "/tmp/dlcourse-sandbox" if root else f"{tempfile.gettempdir()}/dlcourse-sandbox-{os.geteuid()}"
    base = Path(os.environ.get("DLCOURSE_SANDBOX_DIR") or default)
    base.mkdir(mode=0o711, parents=True, exist_ok=True)
    if root:
        os.chown(base, 0, 0)
        os.chmod(base, 0o711)
    (base / "uids").mkdir(mode=0o700, exist_ok=True)
    return base


# --------------------------------------------------------------------------- probing


def _own_cgroup(controller: str) -> tuple[Path, int] | None:
    """The directory of this process's cgroup for ``controller`` and its version (1, or 2: the unified one)."""
    try:
        groups = [line.split(":", 2) for line in Path("/proc/self/cgroup").read_text().splitlines()]
        mounts = [line.split() for line in Path("/proc/self/mounts").read_text().splitlines()]
    except OSError:
        return None
    v1 = {c: path for _, ctrls, path in groups for c in ctrls.split(",")}
    unified = next((path for hid, _, path in groups if hid == "0"), None)
    for _, mnt, fstype, opts, *_ in mounts:  # a controller is bound to one hierarchy at most
        if fstype == "cgroup" and controller in opts.split(",") and controller in v1:
            return Path(mnt) / v1[controller].lstrip("/"), 1
        if fstype == "cgroup2" and unified is not None:
            d = Path(mnt) / unified.lstrip("/")
            with contextlib.suppress(OSError):
                if controller in (d / "cgroup.subtree_control").read_text().split():
                    return d, 2
    return None


def _make_cgroup(d: Path, controller: str, version: int, limits: Limits) -> bool:
    """Create cgroup ``d`` bounding the processes, or the memory (+256 MB for the kernel itself), of its
    members; False (and nothing left) when this machine refuses."""
    try:
        d.mkdir()
        if controller == "pids":
            (d / "pids.max").write_text(str(limits.processes))
            return True
        memory = str((limits.memory_mb + 256) * 2**20)
        v1 = version == 1
        (d / ("memory.limit_in_bytes" if v1 else "memory.max")).write_text(memory)
        with contextlib.suppress(OSError):  # no swap (v1 bounds memory + swap, v2 swap alone) where it is accounted
            (d / ("memory.memsw.limit_in_bytes" if v1 else "memory.swap.max")).write_text(memory if v1 else "0")
        return True
    except OSError:
        with contextlib.suppress(OSError):
            d.rmdir()
        return False


def _probe_child(fn: Callable[[], Any]) -> bool:
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


def _enabled(feature: str) -> bool:
    """False for a feature ``DLCOURSE_SANDBOX_DISABLE=netns,mountns,drop_uid,cgroup`` lists (to rehearse a
    machine without it)."""
    return feature not in os.environ.get("DLCOURSE_SANDBOX_DISABLE", "").replace(" ", "").split(",")


def _unshare(flags: int) -> None:
    _launch.check(_launch.libc.unshare(flags), "unshare")


@functools.cache
def probe() -> Capabilities:
    """Which isolation mechanisms work here (found once, each by trying it)."""
    caps = Capabilities()
    if sys.platform != "linux":
        caps.notes.append("not Linux: only rlimits and the scratch directory are used")
        return caps
    if os.geteuid() == 0:
        def mount_test() -> None:  # a tmpfs over the sandbox's directory, seen by this child only
            _unshare(_launch.CLONE_NEWNS)
            _launch.mount(None, "/", None, _launch.MS_REC | _launch.MS_PRIVATE, None)
            _launch.mount("tmpfs", str(base_dir()), "tmpfs", _launch.MS_NOSUID | _launch.MS_NODEV, "size=1m")

        caps.netns = _enabled("netns") and _probe_child(lambda: _unshare(_launch.CLONE_NEWNET))
        caps.mountns = _enabled("mountns") and _probe_child(mount_test)
        caps.drop_uid = _enabled("drop_uid") and _probe_uid(caps)
        if not caps.drop_uid:
            caps.notes.append("the kernel cannot run as an unprivileged user here (the Python installation is not "
                              "readable by other users and there is no mount namespace to fix that): it runs as "
                              "root, so RLIMIT_NPROC does not bind and file permissions are no wall")
    else:
        def userns_test() -> None:
            _launch.user_namespace()
            _unshare(_launch.CLONE_NEWNS | _launch.CLONE_NEWNET)

        caps.userns = _probe_child(userns_test)
        caps.netns, caps.mountns = caps.userns and _enabled("netns"), caps.userns and _enabled("mountns")
        caps.notes.append("the grader does not run as root: the kernel runs as the grader's own user (file "
                          "permissions are no wall between them)"
                          + ("; hidden directories and no network come from a user namespace" if caps.userns else
                             "; no user namespaces either, so nothing is hidden from the kernel and it has network"))
    if not caps.netns:
        caps.notes.append("network: not switched off (no network namespaces here)")
    if not caps.mountns:
        caps.notes.append("directories are not hidden by mounts (no mount namespaces here); only file permissions "
                          "(the work directory is 0700) keep the kernel out")
    if os.geteuid() == 0:
        caps.cgroup = _probe_cgroups() if _enabled("cgroup") else {}
        if not caps.cgroup:
            caps.notes.append("no writable cgroups: memory is limited per process (RLIMIT_AS) and processes per "
                              "sandbox user (RLIMIT_NPROC), not for the process tree as a whole")
    return caps


def _probe_uid(caps: Capabilities) -> bool:
    """Can a kernel start as an unprivileged uid (in the sandbox it would have)?"""
    with Sandbox(Limits(), replace(caps, drop_uid=True), library=None) as sb:
        proc = subprocess.run(sb.command(None, [sys.executable, "-c", "import os, numpy; print(os.getuid())"]),
                              capture_output=True, text=True, timeout=60)
        return proc.returncode == 0 and proc.stdout.strip() == str(sb.uid)


def _probe_cgroups() -> dict:
    found: dict[str, Any] = {}
    for controller in ("memory", "pids"):
        where = _own_cgroup(controller)
        if where is None:
            continue
        test = where[0] / f"dlcourse-probe-{os.getpid()}"
        if _make_cgroup(test, controller, where[1], Limits()):
            _kill_cgroup(test, remove=True)
            found[controller] = str(where[0])
            found.setdefault("version", where[1])
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


# --------------------------------------------------------------------------- uids and processes


def _threads_by_uid() -> dict[int, int]:
    """Real uid -> the threads of its processes that are not zombies (what RLIMIT_NPROC counts)."""
    import psutil  # a dependency of ipykernel

    found: dict[int, int] = {}
    for proc in psutil.process_iter(["uids", "num_threads", "status"]):  # skips processes that vanish meanwhile
        uids, threads, status = proc.info["uids"], proc.info["num_threads"], proc.info["status"]
        if uids is not None and threads is not None and status != psutil.STATUS_ZOMBIE:
            found[uids.real] = found.get(uids.real, 0) + threads
    return found


def kill_uid(uid: int) -> None:
    """SIGKILL every process of ``uid`` (a child that setuid()s and kill(-1)s: it cannot hit anyone else)."""
    if os.geteuid() != 0 or uid < 1000:
        return
    for _ in range(5):
        if uid not in _threads_by_uid():
            return
        pid = os.fork()
        if pid == 0:
            with contextlib.suppress(OSError):
                os.setresgid(uid, uid, uid)
                os.setresuid(uid, uid, uid)
                os.kill(-1, signal.SIGKILL)
            os._exit(0)
        os.waitpid(pid, 0)
        time.sleep(0.05)


def _kill_cgroup(d: Path, remove: bool = False) -> None:
    """SIGKILL the members of cgroup ``d`` until it is empty (and removed, with ``remove``)."""
    for _ in range(40):
        try:
            pids = [int(p) for p in (d / "cgroup.procs").read_text().split()]
        except OSError:
            return
        for pid in pids:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        if not pids:
            if not remove:
                return
            with contextlib.suppress(OSError):  # busy until its last member is really gone
                d.rmdir()
                return
        time.sleep(0.05)


def _lock_uid(uid: int) -> int | None:
    """A file descriptor holding ``uid``'s lock (free again when its holder dies), or None when it is held."""
    fd = os.open(base_dir() / "uids" / f"{uid}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return fd
    except OSError:
        os.close(fd)
        return None


def _sweep(uid: int) -> None:
    """Kill and remove what a killed holder of ``uid`` left behind: processes, scratch mounts and directories,
    records, cgroups. Called with the uid's lock held, so nobody is using these."""
    kill_uid(uid)
    remove_paths(*base_dir().glob(f"{uid}-*"))
    for controller in ("memory", "pids"):
        where = _own_cgroup(controller)
        for d in where[0].glob(f"dlcourse-{uid}-*") if where else []:
            _kill_cgroup(d, remove=True)


@contextlib.contextmanager
def _uid_lease() -> Iterator[int]:
    """An unprivileged uid for one submission (the grader is root); its processes are killed at the end."""
    import pwd
    for uid in range(UID_BASE, UID_BASE + UID_COUNT):
        with contextlib.suppress(KeyError):
            pwd.getpwuid(uid)
            continue  # a real account: never borrow it
        fd = _lock_uid(uid)
        if fd is None:
            continue
        try:
            _sweep(uid)  # whatever a previous holder left behind
            yield uid
        finally:
            kill_uid(uid)
            os.close(fd)
        return
    raise RuntimeError(f"no free sandbox uid in {UID_BASE}..{UID_BASE + UID_COUNT - 1}")


def sweep_all() -> None:
    """Sweep every sandbox uid nobody holds (at the start and end of a batch), and stale library copies."""
    if os.geteuid() != 0:
        return
    base = base_dir()
    busy = _threads_by_uid()
    for uid in range(UID_BASE, UID_BASE + UID_COUNT):
        if not (base / "uids" / f"{uid}.lock").exists() and uid not in busy and not any(base.glob(f"{uid}-*")):
            continue
        fd = _lock_uid(uid)
        if fd is not None:
            try:
                _sweep(uid)
            finally:
                os.close(fd)
    for lib in base.glob("lib-*-*"):
        pid = lib.name.split("-")[1]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(lib, ignore_errors=True)


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
    from grader.trusted.strip import strip_references

    dest = Path(dest)
    if dest.exists():
        shutil.rmtree(dest)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(REPO_ROOT / "dlcore", dest / "dlcore", ignore=ignore)
    shutil.copytree(REPO_ROOT / "grader" / "kernel", dest / "grader" / "kernel", ignore=ignore)
    for name in ("__init__.py", "checks.py"):
        shutil.copy2(REPO_ROOT / "grader" / name, dest / "grader" / name)
    strip_references(dest, strip)
    for root, _dirs, files in os.walk(dest):
        os.chmod(root, 0o755)
        for f in files:
            os.chmod(os.path.join(root, f), 0o644)
    return dest


# --------------------------------------------------------------------------- one submission's sandbox


class Sandbox:
    """The sandbox of one submission: uid, scratch and records directories, cgroups; a context manager.

    ``data_files`` are copied into the scratch directory.
    """

    def __init__(self, limits: Limits, caps: Capabilities, *, library: Path | None,
                 data_files: list[Path] = ()) -> None:
        self.limits, self.caps, self.library, self.data_files = limits, caps, library, list(data_files)
        self.uid: int | None = None
        self.cgroups: list[Path] = []

    def __enter__(self) -> Sandbox:
        with contextlib.ExitStack() as cleanup:  # undone here if a step fails, else by __exit__
            if self.caps.drop_uid:
                self.uid = cleanup.enter_context(_uid_lease())
            base = base_dir()
            self.scratch = scratch = Path(tempfile.mkdtemp(prefix=f"{self.uid or 'u'}-", dir=base))
            cleanup.callback(remove_paths, scratch, base / f"{scratch.name}.spec.json", base / f"{scratch.name}.root")
            if self.caps.mountns and os.geteuid() == 0:  # a size-limited tmpfs; a plain directory where refused
                owner = f",uid={self.uid},gid={self.uid}" if self.uid else ""
                with contextlib.suppress(OSError):
                    _launch.mount("tmpfs", str(scratch), "tmpfs", _launch.MS_NOSUID | _launch.MS_NODEV,
                                  f"size={self.limits.disk_mb}m,mode=0700{owner}")
            for f in self.data_files:
                (shutil.copytree if f.is_dir() else shutil.copy2)(f, scratch / f.name)
            for sub in [*HOME_DIRS.values(), ".dlc"]:
                (scratch / sub).mkdir(parents=True, exist_ok=True)
            if self.uid is not None:
                for root, _dirs, files in os.walk(scratch):
                    os.chown(root, self.uid, self.uid)
                    for f in files:
                        os.chown(os.path.join(root, f), self.uid, self.uid)
            # The records live next to the scratch directory, in a directory the kernel cannot write to, so
            # it cannot create other files there; it owns its records file and could rewrite it, which is why
            # records are never trusted: they are judged against plans rebuilt from the source notebook, and
            # the source checks refuse code that could write them from elsewhere (other processes, shell).
            self.records_dir = base / f"{scratch.name}.rec"
            self.records_dir.mkdir(mode=0o711)
            cleanup.callback(remove_paths, self.records_dir)
            for controller in ("memory", "pids"):
                if controller in self.caps.cgroup:
                    d = Path(self.caps.cgroup[controller]) / f"dlcourse-{scratch.name}"
                    if _make_cgroup(d, controller, self.caps.cgroup["version"], self.limits):
                        self.cgroups.append(d)
                        cleanup.callback(_kill_cgroup, d, remove=True)
            self._cleanup = cleanup.pop_all()
        return self

    def records_file(self, name: str) -> Path:
        path = self.records_dir / f"records-{name}.jsonl"
        path.touch(mode=0o600)
        if self.uid is not None:
            os.chown(path, self.uid, self.uid)
        return path

    def requests_file(self, name: str, text: str) -> Path:
        """The kernel's requests (plain data, written by the worker): readable, not writable by the kernel."""
        path = self.records_dir / f"requests-{name}.json"
        path.write_text(text, encoding="utf-8")
        os.chmod(path, 0o644)
        return path

    def command(self, connection_file: str | None, argv: list[str]) -> list[str]:
        """The command that starts ``argv`` in this sandbox: _launch.py with its spec (what to do; see its
        docstring), written next to the scratch directory."""
        limits, scratch, mb = self.limits, self.scratch, 2**20
        env = {"PATH": os.pathsep.join([os.path.dirname(sys.executable), "/usr/local/bin", "/usr/bin", "/bin"]),
               "HOME": str(scratch), "USER": "student", "LOGNAME": "student", "LANG": "C.UTF-8",
               "TMPDIR": "/tmp" if self.caps.mountns else str(scratch),
               "PYTHONDONTWRITEBYTECODE": "1", "PYTHONNOUSERSITE": "1", "MPLBACKEND": "Agg",
               **{name: str(scratch / sub) for name, sub in HOME_DIRS.items()},
               "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TQDM_DISABLE": "1",
               "PYDEVD_DISABLE_FILE_VALIDATION": "1"}
        if self.library is not None:
            env["PYTHONPATH"] = str(self.library)
        rlimits = {"cpu": [limits.cpu, limits.cpu + 5], "as": [limits.memory_mb * mb] * 2,
                   "fsize": [limits.file_mb * mb] * 2, "nofile": [limits.open_files] * 2, "core": [0, 0]}
        if self.uid is not None:
            rlimits["nproc"] = [limits.processes] * 2
        elif os.geteuid() != 0:  # RLIMIT_NPROC counts every process of the grader's own user
            rlimits["nproc"] = [_threads_by_uid().get(os.getuid(), 0) + limits.processes] * 2
        spec: dict[str, Any] = {
            "netns": self.caps.netns, "mountns": self.caps.mountns, "userns": self.caps.userns, "cwd": str(scratch),
            "env": env, "parent": os.getpid(), "rlimits": rlimits,
            "cgroup_procs": [str(d / "cgroup.procs") for d in self.cgroups],
            "chown": [connection_file] if connection_file else []}
        if self.uid is not None:
            spec["uid"] = spec["gid"] = self.uid
        if self.caps.mountns:
            # the allow-list: the interpreter and its packages, the system's shared libraries, the library copy,
            # the scratch and records directories; nothing else of the machine exists inside the sandbox
            writable = [str(scratch), str(self.records_dir)]
            python = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,
                      os.path.dirname(os.path.realpath(sys.executable))}
            disk = f"size={limits.disk_mb}m,mode=1777"
            spec.update(root=str(scratch.parent / f"{scratch.name}.root"), writable=writable,
                        keep=sorted(python) + SYSTEM_PATHS + writable + ([str(self.library)] if self.library else []),
                        tmpfs={"/tmp": disk, "/var/tmp": disk, "/dev/shm": "size=64m,mode=1777"})
        path = scratch.parent / f"{scratch.name}.spec.json"
        path.write_text(json.dumps(spec), encoding="utf-8")
        os.chmod(path, 0o600)
        return [sys.executable, "-I", "-S", str(LAUNCHER), str(path), "--", *argv]

    def out_of_memory(self) -> bool:
        """Did the memory cgroup hit its limit (the kernel was OOM-killed)?"""
        for d in self.cgroups:
            for name in ("memory.oom_control", "memory.events"):  # cgroup v1, v2
                with contextlib.suppress(OSError, ValueError):
                    if any(line.startswith("oom_kill ") and int(line.split()[1]) > 0
                           for line in (d / name).read_text().splitlines()):
                        return True
        return False

    def kill_all(self) -> None:
        if self.uid is not None:
            kill_uid(self.uid)
        for d in self.cgroups:
            _kill_cgroup(d)

    def __exit__(self, *exc: Any) -> None:
        self.kill_all()
        self._cleanup.close()


def remove_paths(*paths: Path) -> None:
    """Remove files and directory trees that may not exist (unmounting a scratch tmpfs first)."""
    for path in paths:
        if os.path.ismount(path):
            _launch.libc.umount2(str(path).encode(), _launch.MNT_DETACH)
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


# --------------------------------------------------------------------------- the kernel manager

#: Messages larger than this are dropped by the sockets (the per-cell output limit handles the rest).
MAX_MESSAGE_BYTES = 128 * 2**20


class SandboxKernelManager(AsyncKernelManager):
    """Starts ipykernel through grader/trusted/_launch.py with the sandbox's spec, over Unix sockets."""

    kernel_log: str | None = None  # where the kernel's stderr goes (the worker sets it)

    def __init__(self, sandbox: Sandbox, **kwargs: Any) -> None:
        dlc = sandbox.scratch / ".dlc"
        super().__init__(transport="ipc", ip=str(dlc / "k"), cache_ports=False,
                         connection_file=str(dlc / "kernel.json"), **kwargs)
        self.sandbox = sandbox

    def client(self, **kwargs: Any) -> Any:
        """A client whose sockets refuse huge messages (the grader's memory is not the student's to fill)."""
        kc = super().client(**kwargs)
        kc.context.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_BYTES)  # a default for every socket it creates
        return kc

    def format_kernel_cmd(self, extra_arguments: list[str] | None = None) -> list[str]:
        return self.sandbox.command(self.connection_file, [sys.executable, "-m", "ipykernel_launcher", "-f",
                                                           self.connection_file, "--HistoryManager.enabled=False"])

    async def _async_launch_kernel(self, kernel_cmd: list[str], **kw: Any) -> None:
        with open(self.kernel_log or os.devnull, "ab") as log:  # the child inherits it
            kw.update(env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")}, stdout=subprocess.DEVNULL, stderr=log)
            await super()._async_launch_kernel(kernel_cmd, **kw)
