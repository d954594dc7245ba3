"""Grade ONE submission (``python -m grader.trusted.worker``: one long-lived process per slot, jobs on stdin).

Per notebook: the notebook to execute is built from the source (only solution cells and added cells are
the student's); the test cells are planned here, the kernel runs in its sandbox with the plans' inputs
only, its records are judged here and nbgrader's ``determine_grade`` scores the cells. The autograded
notebook and ``results/<student>.json`` are written atomically; the gradebook is NOT touched here (the
batch grader is its only writer). With ``salvage`` a killed worker's notebook is rebuilt from its journal
instead. See grader/README.md, "Threat model and design" (2. Trusted verdicts).
"""

from __future__ import annotations

import ast
import contextlib
import copy
import json
import os
import re
import signal
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
from nbformat import NotebookNode

from grader import kinds
from grader.kernel import wire
from grader.trusted import cells as tc
from grader.trusted import source as src
from grader.trusted.execute import NOT_RUN, RobustExecute, error_output, read_journal, replay

__all__ = ["Job", "grade_submission", "build_notebook", "keep_records", "INCIDENTS"]

#: Error names that mean "a limit or the grader stopped this cell", not "the student's code raised".
INCIDENTS = {"CellTimeoutError", "KernelDied", NOT_RUN, "GraderStopped", "NotebookTimeout", "OutputLimit",
             "GraderError"}
MAX_NOTEBOOK_BYTES = 32 * 2**20
SETUP = ("import grader.kernel.runner as __dlc_r\n__dlc_r.install(get_ipython().user_ns, {requests!r}, {records!r})\n"
         "del __dlc_r\n")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


@dataclass
class Job:
    """One submission to grade, as the batch grader sends it (grader.trusted.autograde's ``job``)."""

    student: str
    chapter: str
    workdir: str
    notebooks: list
    limits: dict
    caps: dict
    library: str | None
    salvage: str                 # non-empty: rebuild from the journal, with this reason
    submission_hash: str


def _gid(cell: NotebookNode) -> str | None:
    return tc.nbgrader_meta(cell).get("grade_id")


def build_notebook(source: NotebookNode, release: NotebookNode | None,
                   submitted: NotebookNode | None) -> tuple[NotebookNode, list[tuple[str, str]]]:
    """The notebook to execute: the source's cells, the student's solution cells and added cells.

    Returns the notebook and the student's code: (label, source) of solution cells and added code cells.
    """
    released = {_gid(c): c for c in (release.cells if release is not None else []) if _gid(c)}
    known = {_gid(c) for c in source.cells if _gid(c)}
    student: dict[str, NotebookNode] = {}
    extras: dict[str | None, list[NotebookNode]] = {}
    anchor: str | None = None
    for c in (submitted.cells if submitted is not None else []):
        gid = _gid(c)
        if gid in known and gid not in student:
            student[gid], anchor = c, gid
            continue
        if c.cell_type == "code":
            extras.setdefault(anchor, []).append(nbformat.v4.new_code_cell(c.source))
        elif c.cell_type == "markdown":
            extras.setdefault(anchor, []).append(nbformat.v4.new_markdown_cell(c.source))
    cells = list(extras.get(None, []))
    student_code = [("a cell added at the top", c.source) for c in cells if c.cell_type == "code"]
    for c in source.cells:
        gid = _gid(c)
        new = copy.deepcopy(c)
        if c.cell_type == "code":
            new.outputs, new.execution_count = [], None
        if gid in released:
            new.metadata = copy.deepcopy(released[gid].metadata)
        meta = tc.nbgrader_meta(c)
        if meta.get("solution") and not meta.get("locked"):  # a solution cell: the student's
            mine = student.get(gid)
            new.source = mine.source if mine is not None and mine.cell_type == c.cell_type else \
                released[gid].source if gid in released else ""
            if c.cell_type == "code":
                student_code.append((f"cell '{gid}'", new.source))
        cells.append(new)
        cells += extras.get(gid, [])
        student_code += [(f"a cell added after '{gid}'", x.source) for x in extras.get(gid, [])
                         if x.cell_type == "code"]
    nb = nbformat.v4.new_notebook(cells=cells, metadata=copy.deepcopy(source.metadata))
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb, student_code


def _reference(name: str) -> Any:
    try:
        from grader.trusted.messages import resolve_reference
        return resolve_reference(name) if name else None
    except (ValueError, ImportError, AttributeError):
        return None


def _stdout(lines: list[str]) -> list[NotebookNode]:
    return [NotebookNode(output_type="stream", name="stdout", text="\n".join(lines) + "\n")] if lines else []


def _errors(cell: NotebookNode) -> list[NotebookNode]:
    return [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]


def _aliases(cells: list[NotebookNode]) -> dict[str, str]:
    """Local name -> dotted path for every import in the locked (instructor's) code cells."""
    trees = [src.parse_cell(c.source) for c in cells if c.cell_type == "code" and tc.nbgrader_meta(c).get("locked")]
    return {name: module for tree in trees if tree is not None for name, module in src.imports_of(tree).items()}


def keep_records(ws: Path, student: str, chapter: str, name: str) -> Path | None:
    """Copy what a notebook's kernel recorded (the file its journal's ``.records`` names) into records/, once.

    Returns the kernel's records file when it was copied now (up to 256 MB; a file that cannot be read is not).
    """
    state = ws / "journal" / student / chapter / f"{name}.records"
    dest = ws / "records" / student / chapter / f"{name}.jsonl"
    if not state.exists() or dest.exists():
        return None
    records = Path(state.read_text(encoding="utf-8").strip())
    with contextlib.suppress(OSError):
        dest.parent.mkdir(parents=True, exist_ok=True)
        with open(records, "rb") as kernel_file, open(dest, "wb") as out:
            out.write(kernel_file.read(256 * 2**20))
    return records


def write_atomically(dest: Path, text: str) -> Path:
    """Write ``dest`` atomically (a temporary file, then a rename)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f"{dest.name}.tmp{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, dest)
    return dest


class _Notebook:
    """One notebook of the submission on its way through execution and the trusted replay."""

    def __init__(self, job: Job, name: str) -> None:
        ws = Path(job.workdir)
        self.job, self.name, self.ws = job, name, ws
        self.source = nbformat.read(str(ws / "solutions" / job.chapter / f"{name}.ipynb"), as_version=4)
        rel_path = ws / "course" / job.chapter / f"{name}.ipynb"
        release = nbformat.read(str(rel_path), as_version=4) if rel_path.exists() else None
        sub_path = ws / "submitted" / job.student / job.chapter / f"{name}.ipynb"
        self.submitted: NotebookNode | None = None
        self.unreadable = None
        if sub_path.exists():
            try:
                if sub_path.stat().st_size > MAX_NOTEBOOK_BYTES:
                    raise ValueError(f"the notebook file is larger than {MAX_NOTEBOOK_BYTES // 2**20} MB")
                self.submitted = nbformat.read(str(sub_path), as_version=4)
            except Exception as exc:  # a broken or hostile file: every exercise scores 0, with the reason
                self.unreadable = f"{name}.ipynb could not be read ({type(exc).__name__}: {str(exc)[:200]})"
        self.nb, self.student_code = build_notebook(self.source, release, self.submitted)
        self.original = [c.source for c in self.nb.cells]
        self.plans: dict[str, list | str] = {}
        for c in self.nb.cells:
            if tc.is_test(c):
                self.plans[_gid(c)] = self._plan(c.source)
                c.source = f"__dlc_tests__({_gid(c)!r})"
        self.index = src.SourceIndex([s for _, s in self.student_code],
                                     [s for s, c in zip(self.original, self.nb.cells, strict=True)
                                      if c.cell_type == "code"])
        self.tampering = src.tampering(self.student_code, _aliases(self.nb.cells))

    @staticmethod
    def _plan(source: str) -> list | str:
        """[(call, plan)] for a test cell of the source notebook, or why it cannot be graded."""
        try:
            calls = tc.parse_cell(source)
            return [(call, kinds.find(call.kind).plan(*([call.reference] if call.reference else []), **call.options))
                    for call in calls]
        except tc.NotDeclarative as exc:
            return f"the test cell is not declarative ({exc}); please tell the instructor"
        except Exception as exc:  # a plan failed: the instructor's test is broken, not the student's code
            return f"planning this test failed ({type(exc).__name__}: {str(exc)[:200]}); please tell the instructor"

    def requests(self) -> dict:
        """What the kernel gets: per test cell, the kind, the student's names and the plan's inputs (data)."""
        return {gid: [{"kind": call.kind, "student": call.student, "names": call.names,
                       "inputs": wire.encode(plan.inputs)} for call, plan in planned]
                for gid, planned in self.plans.items() if isinstance(planned, list)}

    def _path(self, folder: str, suffix: str) -> Path:
        return self.ws / folder / self.job.student / self.job.chapter / f"{self.name}{suffix}"

    # -- execution ----------------------------------------------------------------------------
    def execute(self, limits: Any, caps: Any) -> None:
        """Run the notebook in its sandbox; the chapter's data files (the instructor's, from the release)
        go into the scratch directory, never files the student submitted next to the notebook (code in
        them, a module the notebook imports, would escape the checks on the notebook's source)."""
        from grader.trusted.sandbox import Sandbox, SandboxKernelManager

        release = self.ws / "course" / self.job.chapter
        data = [p for p in release.iterdir() if not p.name.endswith(".ipynb") and not p.name.startswith(".")] \
            if release.is_dir() else []
        with Sandbox(limits, caps, library=Path(self.job.library) if self.job.library else None,
                     data_files=data) as sb:
            assert sb.scratch is not None
            records = sb.records_file(self.name)
            requests = sb.requests_file(self.name, json.dumps(self.requests()))
            write_atomically(self._path("journal", ".records"), str(records))
            km = SandboxKernelManager(sb)
            km.kernel_log = str(self.ws / "logs" / f"{self.job.student}.{self.name}.kernel.log")

            def death_reason(rc: int | None) -> str | None:
                if sb.out_of_memory():
                    return f"the kernel ran out of memory (limit {limits.memory_mb} MB) while running this cell"
                if rc == -signal.SIGXCPU:
                    return f"the kernel used more than {limits.cpu} s of CPU time (the limit) and was stopped"
                return None

            ep = RobustExecute(timeout=limits.cell_timeout, notebook_timeout=limits.notebook_timeout,
                               journal_dir=str(self.ws / "journal"), output_cell_bytes=limits.output_cell_kb * 1024,
                               output_notebook_bytes=limits.output_notebook_kb * 1024,
                               setup_code=SETUP.format(requests=str(requests), records=str(records)),
                               startup_timeout=120)
            ep.death_reason = death_reason
            try:
                self.nb, _ = ep.preprocess(self.nb, {"metadata": {"path": str(sb.scratch)}, "nbgrader": {
                    "student": self.job.student, "assignment": self.job.chapter, "notebook": self.name}}, km=km)
            finally:
                with contextlib.suppress(Exception):
                    ep.km = km
                    ep._kill_kernel()
                sb.kill_all()
                keep_records(self.ws, self.job.student, self.job.chapter, self.name)

    def salvage(self, reason: str) -> None:
        self.nb = replay(self.nb, str(self._path("journal", ".jsonl")), reason)
        records = keep_records(self.ws, self.job.student, self.job.chapter, self.name)
        if records is not None:
            _cleanup_scratch(records.parent)

    # -- the trusted verdicts ------------------------------------------------------------------
    def _records(self) -> dict[tuple[str, int], Any]:
        """(grade_id, call) -> the decoded record; the last one written counts; malformed lines are skipped."""
        found: dict[tuple[str, int], Any] = {}
        with contextlib.suppress(OSError), open(self._path("records", ".jsonl"), encoding="utf-8",
                                                errors="replace") as fh:
            for line in fh:
                try:
                    entry = json.loads(line)
                    found[(str(entry["cell"]), int(entry["call"]))] = wire.decode(entry["record"])
                except (ValueError, KeyError, TypeError, RecursionError):
                    continue
        return found

    def _verdicts(self, gid: str, planned: list, records: dict) -> list[NotebookNode]:
        lines = []
        for i, (call, plan) in enumerate(planned):
            record = records.get((gid, i))
            if isinstance(record, dict) and "__missing__" in record:
                name = str(record["__missing__"])
                record = {"__missing__": f"{name} is not defined: define {name} in "
                                         f"{tc.exercise_of(self.source, name)} first (and run its cell)"}
            elif record is not None:
                why = src.delegation(self.index, ast.Name(id=call.student), _reference(call.reference))
                record = record if why is None else {"__missing__": why}
            verdict = kinds.judge(call.kind, plan, record)
            if record is None:
                verdict.message = (f"checks.check_{call.kind}({call.student}, ...) did not run in your notebook "
                                   "(the cell stopped before it)")
            if not verdict.ok:
                return _stdout(lines) + [error_output("AssertionError", verdict.message)]
            lines.append(verdict.text())
        return _stdout(lines)

    def judge(self) -> None:
        records = self._records()
        for i, cell in enumerate(self.nb.cells):
            if not tc.is_test(cell):
                continue
            incidents = [o for o in _errors(cell) if o.get("ename") in INCIDENTS]
            planned = self.plans.get(_gid(cell))
            stopped = _errors(cell)
            if incidents:
                cell.outputs = incidents
            elif cell.get("execution_count") is None:
                cell.outputs = [error_output(NOT_RUN, "not run: this cell was not executed")]
            elif isinstance(planned, str) or planned is None:
                cell.outputs = [error_output("GraderError", planned or "the grader could not read this test cell")]
            else:
                cell.outputs = self._verdicts(_gid(cell), planned, records)
                errors = _errors(cell)
                if stopped and errors and "did not run in your notebook" in errors[-1]["evalue"]:
                    k_name, k_value = stopped[-1].get("ename", ""), str(stopped[-1].get("evalue", ""))[:300]
                    why = f" (in your notebook this cell stopped with {k_name}: {k_value})"
                    cell.outputs[-1] = error_output("AssertionError", errors[-1]["evalue"] + why)
            cell.source = self.original[i]

    def zero(self, ename: str, why: str) -> None:
        """Not executed: every test cell gets the error ``ename: why``, no other cell keeps an output."""
        for cell, original in zip(self.nb.cells, self.original, strict=True):
            if cell.cell_type == "code":
                cell.outputs = [error_output(ename, why)] if tc.is_test(cell) else []
            cell.source = original

    # -- results ----------------------------------------------------------------------------------
    def scores(self) -> list[dict]:
        from nbgrader import utils

        rows = []
        for cell in self.nb.cells:
            m = tc.nbgrader_meta(cell)
            if not m.get("grade"):
                continue
            try:
                score, max_score = utils.determine_grade(cell)
            except Exception:
                score, max_score = 0.0, float(m.get("points", 0))
            reason = _reason(cell) if (score is None or score < max_score) else ""
            rows.append({"grade_id": m["grade_id"], "score": score, "max_score": float(max_score), "reason": reason,
                         "manual": score is None})
        return rows


def _tampered(name: str, found: list[str]) -> str:
    shown = "; ".join(found[:4]) + (f"; … ({len(found)} in all)" if len(found) > 4 else "")
    return (f"{name}.ipynb was not graded: its code reaches into the grader or the interpreter ({shown}). "
            "Solutions may not change the grader, imported modules or IPython, nor run code the grader cannot "
            "see; every exercise of this notebook scores zero. Ask the instructor if this is a mistake.")


def _reason(cell: NotebookNode) -> str:
    """Why ``cell`` lost points: its last error, on one line ('' without one: a manually graded cell)."""
    errors = _errors(cell)
    out = errors[-1] if errors else {}
    ename, evalue = out.get("ename", ""), str(out.get("evalue", ""))
    if not evalue.strip() and ename == "CellTimeoutError":
        evalue = " ".join(_ANSI.sub("", t) for t in out.get("traceback", [])).split(": ", 1)[-1]
    text = evalue if ename == NOT_RUN else f"{ename}: {evalue}" if evalue.strip() else ename
    if ename == "NotImplementedError":
        text += " (not implemented yet)"
    text = " | ".join(line.strip() for line in _ANSI.sub("", text).splitlines() if line.strip())
    return text if len(text) <= 600 else text[:600] + " …"


def _cleanup_scratch(records_dir: Path) -> None:
    """Remove what the sandbox of a killed worker left behind in the sandbox directory (only there): the
    scratch directory (unmounted first if it is a tmpfs), its spec and root folder, the records directory."""
    from grader.trusted.sandbox import base_dir, remove_paths

    with contextlib.suppress(OSError):
        base, records_dir = base_dir().resolve(), records_dir.resolve()
        if records_dir.parent == base and records_dir.name.endswith(".rec"):
            scratch = base / records_dir.name.removesuffix(".rec")
            remove_paths(scratch, base / f"{scratch.name}.spec.json", base / f"{scratch.name}.root", records_dir)


def grade_submission(job: Job) -> dict:
    """Grade every notebook of one submission; returns the result (also written to results/<student>.json)."""
    from grader.trusted.sandbox import Capabilities, Limits

    limits = Limits(**job.limits)
    caps = Capabilities(**job.caps)
    result: dict[str, Any] = {"student": job.student, "chapter": job.chapter, "hash": job.submission_hash,
                              "status": "ok", "notes": [], "notebooks": {}}
    for name in job.notebooks:
        nbr = _Notebook(job, name)
        entry: dict[str, Any] = {"submitted": nbr.submitted is not None or nbr.unreadable is not None}
        if nbr.unreadable:
            nbr.zero(NOT_RUN, nbr.unreadable)
            result["notes"].append(nbr.unreadable)
        elif nbr.submitted is None:
            nbr.zero(NOT_RUN, f"{name}.ipynb was not submitted")
        elif nbr.tampering:
            result["notes"].append(_tampered(name, nbr.tampering))
            nbr.zero("Tampering", result["notes"][-1])
        else:
            if job.salvage:
                nbr.salvage(job.salvage)
            else:
                nbr.execute(limits, caps)
            nbr.judge()
            result["notes"] += _notes(nbr)
        entry["cells"] = nbr.scores()
        entry["autograded"] = str(write_atomically(nbr._path("autograded", ".ipynb"), nbformat.writes(nbr.nb) + "\n"))
        result["notebooks"][name] = entry
    if job.salvage:
        result["notes"].insert(0, job.salvage)
    write_atomically(Path(job.workdir) / "results" / f"{job.student}.json", json.dumps(result, indent=1))
    return result


def _notes(nbr: _Notebook, limit: int = 3) -> list[str]:
    """The journal's incidents, then errors in cells that are not graded themselves (often why a later test
    failed) and not in the journal, at most ``limit`` of them."""
    incidents = [e for e in read_journal(str(nbr._path("journal", ".jsonl"))) if e.get("event") == "incident"]
    notes = [f"{nbr.name}, {e.get('cell') or 'cell ' + str(e.get('index'))}: {e.get('kind')}: {e.get('message')}"
             for e in incidents]
    reported = {e.get("index") for e in incidents}
    found = []
    for index, cell in enumerate(nbr.nb.cells):
        errors = [o for o in _errors(cell) if o.get("ename") not in (NOT_RUN, "GraderStopped")]
        if cell.cell_type != "code" or tc.nbgrader_meta(cell).get("grade") or index in reported or not errors:
            continue
        where = f"cell {index} ('{_gid(cell)}')" if _gid(cell) else f"cell {index} (added by you)"
        found.append(f"{nbr.name}, {where}: {_reason(NotebookNode(outputs=[errors[-1]]))}"
                     + _hint(errors[-1].get("ename", ""), nbr.job.limits))
    more = [f"… and {len(found) - limit} more cells with errors"] if len(found) > limit else []
    return notes + found[:limit] + more


def _hint(ename: str, limits: dict) -> str:
    files = (" (files outside the notebook's folder are not reachable, and files are limited to "
             f"{limits.get('file_mb')} MB)")
    return {"MemoryError": f" (the memory limit of a submission is {limits.get('memory_mb')} MB)",
            "BlockingIOError": f" (a submission may run at most {limits.get('processes')} processes and threads)",
            "OSError": files, "PermissionError": files}.get(ename, "")


def run_job(job: Job) -> None:
    """Grade ``job``; a failure of the grader itself is written as an "error" result."""
    try:
        grade_submission(job)
    except Exception:
        err = traceback.format_exc()
        print(err, file=sys.stderr)
        write_atomically(Path(job.workdir) / "results" / f"{job.student}.json", json.dumps({
            "student": job.student, "chapter": job.chapter, "hash": job.submission_hash, "status": "error",
            "notes": [f"the grader failed on this submission: {err.strip().splitlines()[-1][:300]}"],
            "traceback": err[-4000:], "notebooks": {}}, indent=1))


def serve() -> None:
    """Grade the jobs given on stdin, one JSON line each; each ends with its result file, which the batch awaits.

    One long-lived worker process per parallel slot: the imports (nbformat, nbgrader, NumPy) are paid
    once, and no student code ever runs in this process (only plain data comes back from the kernels).
    """
    for line in sys.stdin:
        if line.strip():
            run_job(Job(**json.loads(line)))


if __name__ == "__main__":
    serve()
