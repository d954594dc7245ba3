"""Start a program (the student's kernel) inside the sandbox.  Standard library only; run as a script:

    python -I -S grader/trusted/_launch.py SPEC.json -- PROGRAM ARGS...

SPEC (written by grader.trusted.sandbox) says which of these steps to take; every step that is asked for
must succeed, otherwise nothing is started (exit status 70 and the reason on stderr):

1. new network namespace (no network: only a loopback interface that is down);
2. new mount namespace, mounts made private, then a NEW ROOT built from an allow-list: an empty tmpfs
   holding only the "keep" paths bound in at their own place (the Python installation, the system's
   shared libraries, the sandbox's library copy, the scratch and records directories), read-only
   except the scratch directory, a minimal /dev (null, zero, full, random, urandom), /proc, fresh
   size-limited /tmp and /dev/shm; pivot_root into it and detach the old root. Nothing else of the
   machine's file system (repository, other checkouts, homes, the host's /tmp) exists in the sandbox;
3. join the cgroups given (memory and process limits for the whole process tree);
4. resource limits (CPU time, address space, file size, processes, open files, no core files),
   SIGXFSZ ignored so that writing past the file size limit fails with an error instead of killing;
5. drop to an unprivileged user and group (no supplementary groups), no new privileges, die with
   the parent;
6. change to the scratch directory, umask 077, replace the environment, exec PROGRAM.
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import signal
import sys

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 1, 2, 4, 32, 4096, 16384, 1 << 18
PR_SET_PDEATHSIG, PR_SET_NO_NEW_PRIVS = 1, 38

_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None) -> None:
    def enc(s: str | None) -> bytes | None:
        return s.encode() if s is not None else None

    _check(_libc.mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)), f"mount {target}")


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def _makedirs(path: str) -> None:
    """Create missing directories with mode 0711: traversable, not listable."""
    current = ""
    for part in path.strip("/").split("/"):
        current += "/" + part
        if not os.path.isdir(current):
            os.mkdir(current)
            os.chmod(current, 0o711)


_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "ppc64le": 203, "s390x": 217, "riscv64": 41}
DEVICES = ("null", "zero", "full", "random", "urandom")


def new_root(root: str, keeps: list[str], writable: list[str], tmpfs: dict[str, str]) -> None:
    """Make ``root`` (an empty directory) the root of this mount namespace, with only ``keeps`` in it."""
    _mount(None, "/", None, MS_REC | MS_PRIVATE, None)
    os.makedirs(root, mode=0o700, exist_ok=True)
    _mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=16m")
    for entry in os.listdir("/"):  # /lib -> usr/lib and the like: the dynamic loader's paths
        if os.path.islink("/" + entry):
            os.symlink(os.readlink("/" + entry), f"{root}/{entry}")
    _makedirs(root + "/dev")
    _mount("tmpfs", root + "/dev", "tmpfs", MS_NOSUID, "mode=0755,size=64k")
    for dev in DEVICES:
        open(f"{root}/dev/{dev}", "a").close()
        _mount(f"/dev/{dev}", f"{root}/dev/{dev}", None, MS_BIND, None)
    _makedirs(root + "/proc")
    _mount("/proc", root + "/proc", None, MS_BIND | MS_REC, None)
    for target, options in tmpfs.items():
        _makedirs(root + target)
        _mount("tmpfs", root + target, "tmpfs", MS_NOSUID | MS_NODEV, options)
    keeps = sorted({os.path.realpath(k) for k in keeps if os.path.exists(k)}, key=len)
    writable = {os.path.realpath(w) for w in writable}
    for k in keeps:
        if any(_inside(k, o) for o in keeps if o != k and o not in writable) and k not in writable:
            continue  # already inside a read-only keep
        target = root + k
        if os.path.isdir(k):
            _makedirs(target)
        else:
            _makedirs(os.path.dirname(target))
            open(target, "a").close()
        _mount(k, target, None, MS_BIND | MS_REC, None)
        if k not in writable:
            _mount(None, target, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_REC, None)
    os.chmod(root, 0o755)
    _mount(None, root, None, MS_BIND | MS_REMOUNT | MS_RDONLY, None)
    os.chdir(root)
    number = _PIVOT_ROOT.get(os.uname().machine)
    if number is None:
        raise OSError(f"pivot_root: unknown system call number on {os.uname().machine}")
    _check(_libc.syscall(number, b".", b"."), "pivot_root")
    _check(_libc.umount2(b".", 2), "umount the old root")
    os.chdir("/")


def _limits(spec: dict) -> None:
    names = {"cpu": resource.RLIMIT_CPU, "as": resource.RLIMIT_AS, "fsize": resource.RLIMIT_FSIZE,
             "nproc": resource.RLIMIT_NPROC, "nofile": resource.RLIMIT_NOFILE, "core": resource.RLIMIT_CORE}
    for key, (soft, hard) in spec.items():
        resource.setrlimit(names[key], (int(soft), int(hard)))


def _user_namespace() -> None:
    uid, gid = os.getuid(), os.getgid()
    _check(_libc.unshare(CLONE_NEWUSER), "unshare(user)")
    with open("/proc/self/setgroups", "w") as fh:
        fh.write("deny")
    with open("/proc/self/uid_map", "w") as fh:
        fh.write(f"0 {uid} 1")
    with open("/proc/self/gid_map", "w") as fh:
        fh.write(f"0 {gid} 1")


def launch(spec: dict, argv: list[str]) -> None:
    for procs in spec.get("cgroup_procs", []):  # before the new root: /sys is not in it
        with open(procs, "w") as fh:
            fh.write(str(os.getpid()))
    if spec.get("userns"):
        _user_namespace()
    flags = (CLONE_NEWNET if spec.get("netns") else 0) | (CLONE_NEWNS if spec.get("mountns") else 0)
    if flags:
        _check(_libc.unshare(flags), "unshare")
    if spec.get("mountns"):
        new_root(spec["root"], spec.get("keep", []), spec.get("writable", []), spec.get("tmpfs", {}))
    for path in spec.get("chown", []):
        if spec.get("uid") is not None:
            os.chown(path, spec["uid"], spec["gid"])
    _limits(spec.get("rlimits", {}))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    if spec.get("uid") is not None:
        os.setgroups([])
        os.setresgid(spec["gid"], spec["gid"], spec["gid"])
        os.setresuid(spec["uid"], spec["uid"], spec["uid"])
        if os.getuid() != spec["uid"] or os.geteuid() != spec["uid"]:
            raise OSError("could not drop privileges")
    _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(no_new_privs)")
    _check(_libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "prctl(pdeathsig)")
    if os.getppid() != spec.get("parent", os.getppid()):  # the parent died before the line above
        os._exit(70)
    os.chdir(spec["cwd"])
    os.umask(0o077)
    os.closerange(3, 65536)
    os.execve(argv[0], argv, spec["env"])


def main() -> None:
    try:
        sep = sys.argv.index("--")
        with open(sys.argv[1], encoding="utf-8") as fh:
            spec = json.load(fh)
        launch(spec, sys.argv[sep + 1:])
    except BaseException as exc:  # noqa: BLE001 - report why the sandbox could not be set up, start nothing
        print(f"sandbox setup failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        sys.stderr.flush()
        os._exit(70)


if __name__ == "__main__":
    main()
