"""Batch autograding throughput: generated submissions of chapter 2, our autograder vs plain nbgrader.

    python -m benchmarks.bench_grading [--n 200] [--modes ours-1,ours-2,nbgrader] [--timeout 30]
                                       [--workdir DIR] [--out results.json]

1. Releases ``solutions/02_backprop`` into a temporary directory the way ``python -m grader release``
   does (``grader.course.release.release``), and generates ``--n`` submissions from it, in a fixed,
   interleaved mix (per block of 20: 8 correct, 6 partly wrong, 3 blank, 3 misbehaving):

   - correct: every answer cell holds the solution code;
   - partly wrong (rotating): transposed dW in Affine, inverted ReLU mask in backward, SoftmaxWithLoss
     without the 1/N, Sigmoid backward with the wrong sign;
   - blank: the release as is (``raise NotImplementedError()`` everywhere);
   - misbehaving (rotating): a cell that sleeps 5 s (within the cell limit), a cell that raises
     instead of defining Tanh, a cell that prints 50,000 lines (~2.7 MB).

2. Grades the same set with each mode, one after the other:

   - ``ours-N``: ``python -m grader autograde 02_backprop SUBMISSIONS --workers N`` (``--workers`` is
     left out, and ``ours-N`` for N > 1 skipped, when the checkout's autograder has no such option);
   - ``nbgrader``: plain nbgrader 0.9.6 on its own course root (its default configuration, the same
     cell time limit), ``nbgrader generate_assignment`` then one sequential ``nbgrader autograde``.

   Reported per mode: wall time, submissions per minute, peak memory of the whole process tree
   (the sum of the RSS of the grader and every process below it, kernels included, sampled every
   0.2 s with psutil; shared pages count once per process, so this overstates the true footprint),
   the peak RSS of the largest single process, and the mean score per kind of submission (a
   consistency check: every mode should give the same scores except where a limit differs).

This is a benchmark, not a test: a full run of 200 submissions × 3 modes takes about 40 minutes on a
quiet two-core machine; ``--n 40`` keeps the proportions and takes about 7 minutes.
Results: benchmarks/README.md, section "Grading".
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from grader.course.release import REPO_ROOT, nbgrader_env, release  # noqa: E402

CHAPTER = "02_backprop"
NOTEBOOK = "backprop.ipynb"
_MARKER_LINE = re.compile(r"^[ \t]*### (BEGIN|END) SOLUTION[ \t]*\n?", re.MULTILINE)

#: One block of 20 submissions; the mix repeats every 20, so any multiple of 20 has exact proportions.
BLOCK = ["correct", "wrong", "correct", "blank", "correct", "wrong", "misbehaving", "correct", "wrong", "correct",
         "blank", "wrong", "correct", "misbehaving", "wrong", "correct", "blank", "wrong", "correct", "misbehaving"]


#: variant -> (answer cell, text in the solution, replacement)
WRONG = {
    "transposed_dW": ("affine", 'self.grads["W"] = self.x.T @ dout', 'self.grads["W"] = (self.x.T @ dout).T'),
    "relu_mask": ("relu_layer", "return np.where(self.mask, dout, 0.0)", "return np.where(self.mask, 0.0, dout)"),
    "softmax_no_1_over_N": ("softmax_with_loss", "return dout * dx / n", "return dout * dx"),
    "sigmoid_sign": ("sigmoid_layer", "return dout * self.out * (1.0 - self.out)",
                     "return -dout * self.out * (1.0 - self.out)"),
}
MISBEHAVING = ["sleepy", "raises", "chatty"]


def solution_answers(source_nb: Path) -> dict[str, str]:
    """grade_id -> the solution cell with the BEGIN/END SOLUTION lines removed (what a perfect student writes)."""
    nb = nbformat.read(str(source_nb), as_version=4)
    return {c.metadata.nbgrader["grade_id"]: _MARKER_LINE.sub("", c.source) for c in nb.cells
            if c.cell_type == "code" and c.get("metadata", {}).get("nbgrader", {}).get("solution")}


def plan(n: int) -> list[tuple[str, str, str]]:
    """[(student, kind, variant)] for ``n`` submissions."""
    out, counts = [], defaultdict(int)
    for i in range(n):
        kind = BLOCK[i % len(BLOCK)]
        k = counts[kind]
        counts[kind] += 1
        variant = {"wrong": list(WRONG)[k % len(WRONG)], "misbehaving": MISBEHAVING[k % len(MISBEHAVING)]}.get(kind,
                                                                                                             kind)
        out.append((f"s{i:03d}", kind, variant))
    return out


def make_submission(release_nb: Path, answers: dict[str, str], kind: str, variant: str):
    nb = nbformat.read(str(release_nb), as_version=4)
    if kind == "blank":
        return nb
    chosen = dict(answers)
    if kind == "wrong":
        cell, old, new = WRONG[variant]
        assert old in chosen[cell], f"{variant}: {old!r} not in the solution of {cell}"
        chosen[cell] = chosen[cell].replace(old, new)
    elif variant == "sleepy":
        chosen["mul_layer"] += "\nimport time\ntime.sleep(5)  # thinking hard, within the cell time limit\n"
    elif variant == "raises":
        chosen["tanh_layer"] = 'raise RuntimeError("I broke my Tanh")\n'
    elif variant == "chatty":
        chosen["relu_layer"] += "\nfor _i in range(50000):\n    print('debug', _i, 'x' * 40)\n"
    for c in nb.cells:
        gid = c.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if c.get("metadata", {}).get("nbgrader", {}).get("solution") and gid in chosen:
            c.source = chosen[gid]
    return nb


def generate(n: int, root: Path) -> tuple[Path, dict[str, tuple[str, str]]]:
    """Release chapter 2 into root/release and write n submissions to root/submissions/<student>/backprop.ipynb."""
    release([CHAPTER], release_dir=root / "release")
    release_nb = root / "release" / CHAPTER / NOTEBOOK
    answers = solution_answers(REPO_ROOT / "solutions" / CHAPTER / NOTEBOOK)
    subs = root / "submissions"
    manifest = {}
    for student, kind, variant in plan(n):
        (subs / student).mkdir(parents=True, exist_ok=True)
        nbformat.write(make_submission(release_nb, answers, kind, variant), str(subs / student / NOTEBOOK))
        manifest[student] = (kind, variant)
    (root / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return subs, manifest


# --------------------------------------------------------------------------- measuring


class TreeSampler(threading.Thread):
    """Peak summed RSS of a process and all its descendants, and the peak RSS of one process."""

    def __init__(self, pid: int, interval: float = 0.2):
        super().__init__(daemon=True)
        import psutil

        self.root = psutil.Process(pid)
        self.interval = interval
        self.peak_tree = self.peak_single = self.peak_procs = 0
        self._halt = threading.Event()

    def run(self) -> None:
        import psutil

        while not self._halt.is_set():
            try:
                procs = [self.root] + self.root.children(recursive=True)
            except psutil.Error:
                break
            total = 0
            for p in procs:
                try:
                    rss = p.memory_info().rss
                except psutil.Error:
                    continue
                total += rss
                self.peak_single = max(self.peak_single, rss)
            self.peak_tree = max(self.peak_tree, total)
            self.peak_procs = max(self.peak_procs, len(procs))
            self._halt.wait(self.interval)

    def stop(self) -> None:
        self._halt.set()
        self.join()


def run_measured(cmd: list[str], *, cwd: Path, env: dict[str, str], log: Path) -> dict:
    start = time.monotonic()
    with open(log, "w", encoding="utf-8") as fh:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        sampler = TreeSampler(proc.pid)
        sampler.start()
        rc = proc.wait()
        sampler.stop()
    return {"rc": rc, "seconds": time.monotonic() - start, "peak_tree_mb": sampler.peak_tree / 2**20,
            "peak_single_mb": sampler.peak_single / 2**20, "peak_procs": sampler.peak_procs}


def autograde_has_workers() -> bool:
    out = subprocess.run([sys.executable, "-m", "grader", "autograde", "--help"], cwd=REPO_ROOT,
                         capture_output=True, text=True).stdout
    return "--workers" in out


def run_ours(subs: Path, root: Path, workers: int, timeout: int, has_workers: bool) -> tuple[dict, dict[str, float]]:
    work, csv_path = root / f"ours-{workers}", root / f"ours-{workers}.csv"
    shutil.rmtree(work, ignore_errors=True)
    cmd = [sys.executable, "-m", "grader", "autograde", CHAPTER, str(subs), "--workdir", str(work),
           "--csv", str(csv_path), "--timeout", str(timeout)]
    if has_workers:
        cmd += ["--workers", str(workers)]
    result = run_measured(cmd, cwd=REPO_ROOT, env=dict(os.environ), log=root / f"ours-{workers}.log")
    scores = {}
    if csv_path.is_file():
        with open(csv_path, newline="", encoding="utf-8") as fh:
            scores = {r["student"]: float(r["score"]) for r in csv.DictReader(fh) if r["exercise"] == "TOTAL"}
    result["command"] = " ".join(cmd[1:]).replace(str(root), "$BENCH")
    return result, scores


def run_nbgrader(subs: Path, root: Path, timeout: int) -> tuple[dict, dict[str, float]]:
    """Plain nbgrader: its default configuration and layout, one sequential `nbgrader autograde`."""
    course = root / "nbgrader-plain"
    shutil.rmtree(course, ignore_errors=True)
    shutil.copytree(REPO_ROOT / "solutions" / CHAPTER, course / "source" / CHAPTER)
    for student_dir in sorted(subs.iterdir()):
        dest = course / "submitted" / student_dir.name / CHAPTER
        dest.mkdir(parents=True)
        shutil.copy2(student_dir / NOTEBOOK, dest / NOTEBOOK)
    (course / "nbgrader_config.py").write_text(
        "c = get_config()  # noqa: F821\n"
        f"c.CourseDirectory.root = {str(course)!r}\n"
        "c.CourseDirectory.course_id = 'bench'\n"
        f"c.Execute.timeout = {timeout}\n")
    env = nbgrader_env(course, TQDM_DISABLE="1")     # kernels import dlcore/grader; same env as our autograder
    env.pop("DLCOURSE_COURSE_ROOT", None)
    nbg = [sys.executable, "-m", "nbgrader"]
    start = time.monotonic()
    gen = subprocess.run(nbg + ["generate_assignment", CHAPTER, "--force"], cwd=course, env=env,
                         capture_output=True, text=True)
    if gen.returncode != 0:
        raise RuntimeError(f"nbgrader generate_assignment failed:\n{gen.stdout}\n{gen.stderr}")
    prep = time.monotonic() - start
    result = run_measured(nbg + ["autograde", CHAPTER, "--force"], cwd=course, env=env,
                          log=root / "nbgrader-plain.log")
    result["seconds"] += prep
    result["command"] = "nbgrader generate_assignment + nbgrader autograde 02_backprop (default config)"
    from nbgrader.api import Gradebook, MissingEntry

    scores = {}
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}", "bench") as gb:
        for student_dir in sorted(subs.iterdir()):
            try:
                scores[student_dir.name] = float(gb.find_submission(CHAPTER, student_dir.name).score)
            except MissingEntry:
                pass
    return result, scores


def summarise(name: str, result: dict, scores: dict[str, float], manifest: dict[str, tuple[str, str]]) -> dict:
    n = len(manifest)
    by_kind: dict[str, list[float]] = defaultdict(list)
    for student, (kind, variant) in manifest.items():
        by_kind[kind].append(scores.get(student, float("nan")))
        by_kind[f"{kind}:{variant}"].append(scores.get(student, float("nan")))
    result.update(mode=name, n=n, graded=len(scores), per_minute=60.0 * n / result["seconds"],
                  mean_score={k: sum(v) / len(v) for k, v in sorted(by_kind.items())})
    return result


def table(results: list[dict], n_target: int = 200) -> str:
    lines = [f"{'mode':<10} {'n':>4} {'wall':>9} {'subs/min':>9} {'200 subs':>10} {'tree RSS':>10} "
             f"{'largest':>9} {'procs':>5}  mean score: correct / wrong / blank / misbehaving"]
    kinds = ("correct", "wrong", "blank", "misbehaving")
    for r in results:
        ms = r["mean_score"]
        extra = f"{n_target / r['per_minute']:.0f} min" if r["per_minute"] else "-"
        lines.append(f"{r['mode']:<10} {r['n']:>4} {r['seconds']:>8.0f}s {r['per_minute']:>9.2f} {extra:>10} "
                     f"{r['peak_tree_mb']:>8.0f}MB {r['peak_single_mb']:>7.0f}MB {r['peak_procs']:>5}  "
                     + " / ".join(f"{ms.get(k, float('nan')):.1f}" for k in kinds))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_grading", description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=200, help="number of submissions (default 200)")
    parser.add_argument("--modes", default="ours-1,ours-2,nbgrader", help="comma-separated: ours-N, nbgrader")
    parser.add_argument("--timeout", type=int, default=30, help="per-cell time limit in seconds (default 30)")
    parser.add_argument("--workdir", help="keep everything here (default: a temporary directory, removed)")
    parser.add_argument("--out", help="write the results as JSON to this file")
    args = parser.parse_args(argv if argv is not None else [])
    tmp = None
    if args.workdir:
        root = Path(args.workdir).resolve()
        root.mkdir(parents=True, exist_ok=True)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="dlcourse-bench-grading-")
        root = Path(tmp.name)
    try:
        subs, manifest = generate(args.n, root)
        kinds = defaultdict(int)
        for kind, _ in manifest.values():
            kinds[kind] += 1
        print(f"{args.n} submissions of {CHAPTER} in {subs}: " + ", ".join(f"{v} {k}" for k, v in kinds.items()))
        has_workers = autograde_has_workers()
        if not has_workers:
            print("note: `python -m grader autograde` has no --workers option in this checkout: "
                  "ours-1 is its sequential run, ours-N for N > 1 is skipped")
        results = []
        for mode in [m.strip() for m in args.modes.split(",") if m.strip()]:
            if mode == "nbgrader":
                result, scores = run_nbgrader(subs, root, args.timeout)
            elif mode.startswith("ours-"):
                workers = int(mode.split("-", 1)[1])
                if workers > 1 and not has_workers:
                    continue
                result, scores = run_ours(subs, root, workers, args.timeout, has_workers)
            else:
                raise SystemExit(f"unknown mode {mode!r}")
            results.append(summarise(mode, result, scores, manifest))
            print(f"  {mode}: {result['seconds']:.0f} s, {results[-1]['per_minute']:.2f} submissions/min, "
                  f"peak tree RSS {result['peak_tree_mb']:.0f} MB (exit {result['rc']}, "
                  f"{len(scores)}/{args.n} graded)", flush=True)
        print()
        print(table(results))
        print(f"\nmachine: {os.cpu_count()} CPUs; mean scores by variant:")
        for r in results:
            print(f"  {r['mode']}: " + ", ".join(f"{k} {v:.1f}" for k, v in r["mean_score"].items() if ":" in k))
        if args.out:
            Path(args.out).write_text(json.dumps(results, indent=1))
        return results
    finally:
        if tmp is not None:
            tmp.cleanup()


if __name__ == "__main__":
    main(sys.argv[1:])
