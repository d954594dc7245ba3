"""Start a program (the student's kernel) inside the sandbox.  Standard library only; run as a script:

    python -I -S grader/trusted/_launch.py SPEC.json -- PROGRAM ARGS...

SPEC (written by grader.trusted.sandbox) says which steps to take, in this order: a network namespace; a
mount namespace with a new root built from an allow-list (pivot_root, the old root detached); cgroups;
rlimits (SIGXFSZ ignored); an unprivileged user and group (no new privileges, die with the parent); then
the scratch directory, umask 077, a clean environment, exec PROGRAM. Every step asked for must succeed,
otherwise nothing is started (exit status 70 and the reason on stderr). What each wall covers:
grader/README.md, "Threat model and design". grader.trusted.sandbox imports it to probe these steps.
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
MNT_DETACH = 2
PR_SET_PDEATHSIG, PR_SET_NO_NEW_PRIVS = 1, 38

libc = ctypes.CDLL(None, use_errno=True)


def check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None) -> None:
    source_b, target_b, fstype_b, data_b = (s if s is None else s.encode() for s in (source, target, fstype, data))
    check(libc.mount(source_b, target_b, fstype_b, ctypes.c_ulong(flags), data_b), f"mount {target}")


_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "ppc64le": 203, "s390x": 217, "riscv64": 41}
DEVICES = ("null", "zero", "full", "random", "urandom")


def new_root(root: str, keeps: list[str], writable: list[str], tmpfs: dict[str, str]) -> None:
    """Make ``root`` (an empty directory) the root of this mount namespace, with only ``keeps`` in it."""
    os.umask(0o066)  # every directory made below (and its missing parents) is 0711: traversable, not listable
    mount(None, "/", None, MS_REC | MS_PRIVATE, None)
    os.makedirs(root, mode=0o700, exist_ok=True)
    mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=16m")
    for entry in os.listdir("/"):  # /lib -> usr/lib and the like: the dynamic loader's paths
        if os.path.islink("/" + entry):
            os.symlink(os.readlink("/" + entry), f"{root}/{entry}")
    os.makedirs(root + "/dev", mode=0o711, exist_ok=True)
    mount("tmpfs", root + "/dev", "tmpfs", MS_NOSUID, "mode=0755,size=64k")
    for dev in DEVICES:
        open(f"{root}/dev/{dev}", "a").close()
        mount(f"/dev/{dev}", f"{root}/dev/{dev}", None, MS_BIND, None)
    os.makedirs(root + "/proc", mode=0o711, exist_ok=True)
    mount("/proc", root + "/proc", None, MS_BIND | MS_REC, None)
    for target, options in tmpfs.items():
        os.makedirs(root + target, mode=0o711, exist_ok=True)
        mount("tmpfs", root + target, "tmpfs", MS_NOSUID | MS_NODEV, options)
    keeps = sorted({os.path.realpath(k) for k in keeps if os.path.exists(k)}, key=len)
    writable = {os.path.realpath(w) for w in writable}
    for k in keeps:
        if k not in writable and any(k.startswith(o + "/") for o in keeps if o not in writable):
            continue  # already inside a read-only keep
        target = root + k
        os.makedirs(target if os.path.isdir(k) else os.path.dirname(target), mode=0o711, exist_ok=True)
        if not os.path.isdir(k):
            open(target, "a").close()
        mount(k, target, None, MS_BIND | MS_REC, None)
        if k not in writable:
            mount(None, target, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_REC, None)
    mount(None, root, None, MS_BIND | MS_REMOUNT | MS_RDONLY, None)
    os.chdir(root)
    number = _PIVOT_ROOT.get(os.uname().machine)
    if number is None:
        raise OSError(f"pivot_root: unknown system call number on {os.uname().machine}")
    check(libc.syscall(number, b".", b"."), "pivot_root")
    check(libc.umount2(b".", MNT_DETACH), "umount the old root")
    os.chdir("/")


def user_namespace() -> None:
    """A new user namespace in which this process is root (mapped to its own uid and gid outside)."""
    uid, gid = os.getuid(), os.getgid()
    check(libc.unshare(CLONE_NEWUSER), "unshare(user)")
    for name, text in (("setgroups", "deny"), ("uid_map", f"0 {uid} 1"), ("gid_map", f"0 {gid} 1")):
        with open(f"/proc/self/{name}", "w") as fh:
            fh.write(text)


def launch(spec: dict, argv: list[str]) -> None:
    for procs in spec.get("cgroup_procs", []):  # before the new root: /sys is not in it
        with open(procs, "w") as fh:
            fh.write(str(os.getpid()))
    if spec.get("userns"):
        user_namespace()
    flags = (CLONE_NEWNET if spec.get("netns") else 0) | (CLONE_NEWNS if spec.get("mountns") else 0)
    if flags:
        check(libc.unshare(flags), "unshare")
    if spec.get("mountns"):
        new_root(spec["root"], spec.get("keep", []), spec.get("writable", []), spec.get("tmpfs", {}))
    uid = spec.get("uid")
    if uid is not None:
        for path in spec.get("chown", []):  # the connection file (0600): the kernel must read it
            os.chown(path, uid, spec["gid"])
    for name, (soft, hard) in spec.get("rlimits", {}).items():  # "cpu" -> RLIMIT_CPU, ...
        resource.setrlimit(getattr(resource, f"RLIMIT_{name.upper()}"), (int(soft), int(hard)))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    if uid is not None:
        os.setgroups([])
        os.setresgid(spec["gid"], spec["gid"], spec["gid"])
        os.setresuid(uid, uid, uid)
        if os.getuid() != uid or os.geteuid() != uid:
            raise OSError("could not drop privileges")
    check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(no_new_privs)")
    check(libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "prctl(pdeathsig)")
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
