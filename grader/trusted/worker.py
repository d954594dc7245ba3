"""Grade ONE submission (run by the batch grader as ``python -m grader.trusted.worker --serve``, one process each).

For each notebook of the chapter:

1. The notebook to execute is built from the SOURCE notebook (solutions/, hidden tests included): every
   locked cell, test cell and markdown cell is the instructor's, only the solution cells (matched by
   nbgrader's grade_id) and the cells the student added come from the submission. Editing, deleting or
   re-labelling a locked cell therefore changes nothing.
2. Each test cell's check calls are read from the source (grader.trusted.cells: declarative calls only)
   and planned HERE (grader.kinds: seeded inputs, dlcore's reference); the kernel gets a requests file
   with, per test cell, only (kind, the student object's name, the plan's inputs), and the executed test
   cell is ``__dlc_tests__("<grade_id>")``: no test source, hidden or not, enters the kernel. The kernel
   runs in the submission's sandbox (grader.trusted.sandbox) through RobustExecute (time limits per cell and
   notebook, output limits, survival of dead or wedged kernels, a journal of finished cells).
3. The records are judged here against the plans; the test cells' outputs in the autograded notebook
   are these verdicts. Limits hit in a test cell cost that cell.
4. nbgrader's own ``determine_grade`` scores the cells; the autograded notebook goes to
   ``autograded/<student>/<chapter>/`` and a summary to ``results/<student>.json`` (written atomically).
   The gradebook is NOT touched here: the batch grader is its only writer.

With ``salvage`` the notebook is not executed again: it is rebuilt from the journal of a worker that was
killed (grader.execute.RobustExecute.replay) and the tests are judged on the records that were written.
"""

from __future__ import annotations

import ast
import copy
import json
import os
import shutil
import signal
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
from nbformat import NotebookNode

from grader import kinds
from grader.execute import NOT_RUN
from grader.kernel import wire
from grader.trusted import cells as tc
from grader.trusted import source as src

__all__ = ["Job", "grade_submission", "build_notebook", "INCIDENTS"]

#: Error names that mean "a limit or the grader stopped this cell", not "the student's code raised".
INCIDENTS = {"CellTimeoutError", "KernelDied", NOT_RUN, "GraderStopped", "NotebookTimeout", "OutputLimit",
             "GraderError"}
MAX_NOTEBOOK_BYTES = 32 * 2**20
SETUP = ("import grader.kernel.runner as __dlc_r\n__dlc_r.install(get_ipython().user_ns, {requests!r}, {records!r})\n"
         "del __dlc_r\n")


@dataclass
class Job:
    student: str
    chapter: str
    workdir: str
    notebooks: list
    limits: dict
    caps: dict
    library: str | None
    cover: list = field(default_factory=list)
    salvage: str = ""            # non-empty: rebuild from the journal, with this reason
    submission_hash: str = ""

    @classmethod
    def load(cls, path: str) -> Job:
        return cls(**json.loads(Path(path).read_text(encoding="utf-8")))


def _meta(cell: NotebookNode) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {}) or {}


def _gid(cell: NotebookNode) -> str | None:
    return _meta(cell).get("grade_id")


def _is_test(cell: NotebookNode) -> bool:
    m = _meta(cell)
    return cell.cell_type == "code" and bool(m.get("grade")) and not m.get("solution")


def _is_solution(cell: NotebookNode) -> bool:
    m = _meta(cell)
    return bool(m.get("solution")) and not m.get("locked")


def _read_notebook(path: Path) -> NotebookNode:
    if path.stat().st_size > MAX_NOTEBOOK_BYTES:
        raise ValueError(f"the notebook file is larger than {MAX_NOTEBOOK_BYTES // 2**20} MB")
    return nbformat.read(str(path), as_version=4)


def build_notebook(source: NotebookNode, release: NotebookNode | None,
                   submitted: NotebookNode | None) -> tuple[NotebookNode, list[tuple[str, str]]]:
    """The notebook to execute: the source's cells, the student's solution cells and added cells.

    Returns the notebook and the student's code: (label, source) of solution cells and added code cells.
    """
    rel_meta = {}
    rel_src = {}
    if release is not None:
        for c in release.cells:
            if _gid(c):
                rel_meta[_gid(c)] = c.metadata
                rel_src[_gid(c)] = c.source
    known = {_gid(c) for c in source.cells if _gid(c)}
    student: dict[str, NotebookNode] = {}
    extras: dict[str | None, list[NotebookNode]] = {}
    anchor: str | None = None
    for c in (submitted.cells if submitted is not None else []):
        gid = _gid(c)
        if gid in known and gid not in student:
            student[gid] = c
            anchor = gid
            continue
        if c.cell_type not in ("code", "markdown"):
            continue
        extra = nbformat.v4.new_code_cell(c.source) if c.cell_type == "code" else nbformat.v4.new_markdown_cell(
            c.source)
        extras.setdefault(anchor, []).append(extra)
    cells = list(extras.get(None, []))
    student_code = [("a cell added at the top", c.source) for c in cells if c.cell_type == "code"]
    for c in source.cells:
        gid = _gid(c)
        new = copy.deepcopy(c)
        if c.cell_type == "code":
            new.outputs, new.execution_count = [], None
        if gid in rel_meta:
            new.metadata = copy.deepcopy(rel_meta[gid])
        if _is_solution(c):
            mine = student.get(gid)
            if mine is not None and mine.cell_type == c.cell_type:
                new.source = mine.source
            else:
                new.source = rel_src.get(gid, "")
            if c.cell_type == "code":
                student_code.append((f"cell '{gid}'", new.source))
        cells.append(new)
        for extra in extras.get(gid, []):
            cells.append(extra)
            if extra.cell_type == "code":
                student_code.append((f"a cell added after '{gid}'", extra.source))
    nb = nbformat.v4.new_notebook(cells=cells, metadata=copy.deepcopy(source.metadata))
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb, student_code


def _reference(name: str) -> Any:
    try:
        from grader.trusted.messages import resolve_reference
        return resolve_reference(name) if name else None
    except (ValueError, ImportError, AttributeError):
        return None


def _error(ename: str, message: str) -> NotebookNode:
    return NotebookNode(output_type="error", ename=ename, evalue=message, traceback=[f"{ename}: {message}"])


def _incidents(cell: NotebookNode) -> list[NotebookNode]:
    return [o for o in cell.get("outputs", []) if o.get("output_type") == "error" and o.get("ename") in INCIDENTS]


def _aliases(cells: list[NotebookNode]) -> dict[str, str]:
    found: dict[str, str] = {}
    for c in cells:
        if c.cell_type == "code" and _meta(c).get("locked"):
            tree = src.parse_cell(c.source)
            if tree is not None:
                found.update(src.imports_of(tree))
    return found


class _Notebook:
    """One notebook of the submission on its way through execution and the trusted replay."""

    def __init__(self, job: Job, name: str) -> None:
        ws = Path(job.workdir)
        self.job, self.name, self.ws = job, name, ws
        self.source = nbformat.read(str(ws / "solutions" / job.chapter / f"{name}.ipynb"), as_version=4)
        rel_path = ws / "course" / job.chapter / f"{name}.ipynb"
        self.release = nbformat.read(str(rel_path), as_version=4) if rel_path.exists() else None
        self.sub_path = ws / "submitted" / job.student / job.chapter / f"{name}.ipynb"
        self.submitted: NotebookNode | None = None
        self.unreadable = None
        if self.sub_path.exists():
            try:
                self.submitted = _read_notebook(self.sub_path)
            except Exception as exc:  # a broken or hostile file: every exercise scores 0, with the reason
                self.unreadable = f"{name}.ipynb could not be read ({type(exc).__name__}: {str(exc)[:200]})"
        self.nb, self.student_code = build_notebook(self.source, self.release, self.submitted)
        self.original = {i: c.source for i, c in enumerate(self.nb.cells)}
        self.plans: dict[str, list | str] = {}
        for c in self.nb.cells:
            if _is_test(c):
                self.plans[_gid(c)] = self._plan(c.source)
                c.source = f"__dlc_tests__({_gid(c)!r})"
        self.index = src.SourceIndex([s for _, s in self.student_code],
                                     [self.original[i] for i, c in enumerate(self.nb.cells) if c.cell_type == "code"])
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

    # -- paths ----------------------------------------------------------------------------------
    def journal_state(self) -> Path:
        return self.ws / "journal" / self.job.student / self.job.chapter / f"{self.name}.records"

    def records_copy(self) -> Path:
        return self.ws / "records" / self.job.student / self.job.chapter / f"{self.name}.jsonl"

    def resources(self, path: str) -> dict:
        return {"metadata": {"path": path},
                "nbgrader": {"student": self.job.student, "assignment": self.job.chapter, "notebook": self.name}}

    # -- execution ----------------------------------------------------------------------------
    def execute(self, limits: Any, caps: Any) -> None:
        from grader.execute import RobustExecute
        from grader.trusted.sandbox import Sandbox, SandboxKernelManager

        data = [p for p in (self.ws / "course" / self.job.chapter).iterdir()
                if not p.name.endswith(".ipynb") and not p.name.startswith(".")] \
            if (self.ws / "course" / self.job.chapter).is_dir() else []
        with Sandbox(limits, caps, library=Path(self.job.library) if self.job.library else None,
                     cover=self.job.cover, data_files=[]) as sb:
            assert sb.scratch is not None
            self._copy_files(sb, data)
            records = sb.records_file(self.name)
            requests = sb.requests_file(self.name, json.dumps(self.requests()))
            self.journal_state().parent.mkdir(parents=True, exist_ok=True)
            self.journal_state().write_text(str(records), encoding="utf-8")
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
                self.nb, _ = ep.preprocess(self.nb, self.resources(str(sb.scratch)), km=km)
            finally:
                try:
                    ep.km = km
                    ep._kill_kernel()
                except Exception:
                    pass
                sb.kill_all()
                self._save_records(records)

    def _copy_files(self, sb: Any, data: list[Path]) -> None:
        """The chapter's data files (the instructor's, from the release) into the scratch directory.

        Files the student submitted next to the notebook are NOT copied: code in them (a module the
        notebook imports) would escape the checks on the notebook's source.
        """
        scratch = sb.scratch
        for p in data:
            dest = scratch / p.name
            if p.is_dir():
                shutil.copytree(p, dest, dirs_exist_ok=True)
            else:
                shutil.copy2(p, dest)
        if sb.uid is not None:
            for root, _dirs, files in os.walk(scratch):
                os.chown(root, sb.uid, sb.uid)
                for f in files:
                    os.chown(os.path.join(root, f), sb.uid, sb.uid)

    def _save_records(self, records: Path) -> None:
        dest = self.records_copy()
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            with open(records, "rb") as src, open(dest, "wb") as out:
                out.write(src.read(256 * 2**20))
        except OSError:
            dest.write_bytes(b"")

    def salvage(self, reason: str) -> None:
        from grader.execute import RobustExecute

        ep = RobustExecute(journal_dir=str(self.ws / "journal"), replay=True, replay_reason=reason)
        self.nb, _ = ep.preprocess(self.nb, self.resources(str(self.ws)))
        state = self.journal_state()
        if state.exists() and not self.records_copy().exists():
            records = Path(state.read_text(encoding="utf-8").strip())
            self._save_records(records)
            if records.parent.name.endswith(".rec"):
                _cleanup_scratch(records.parent.parent / records.parent.name[:-4])
                shutil.rmtree(records.parent, ignore_errors=True)

    # -- the trusted verdicts ------------------------------------------------------------------
    def _records(self) -> dict[tuple[str, int], Any]:
        """(grade_id, call) -> the decoded record; the last one written counts; malformed lines are skipped."""
        found: dict[tuple[str, int], Any] = {}
        try:
            with open(self.records_copy(), encoding="utf-8", errors="replace") as fh:
                for line in fh:
                    try:
                        entry = json.loads(line)
                        found[(str(entry["cell"]), int(entry["call"]))] = wire.decode(entry["record"])
                    except (ValueError, KeyError, TypeError, RecursionError):
                        continue
        except OSError:
            pass
        return found

    def _verdicts(self, gid: str, planned: list, records: dict) -> list[NotebookNode]:
        outs, lines = [], []
        for i, (call, plan) in enumerate(planned):
            record = records.get((gid, i))
            if record is None:
                verdict = kinds.judge(call.kind, plan, None)
                verdict.message = (f"checks.check_{call.kind}({call.student}, ...) did not run in your notebook "
                                   "(the cell stopped before it)")
            elif isinstance(record, dict) and "__missing__" in record:
                name = str(record["__missing__"])
                verdict = kinds.judge(call.kind, plan, {"__missing__": (
                    f"{name} is not defined: define {name} in {tc.exercise_of(self.source, name)} first "
                    "(and run its cell)")})
            else:
                why = src.delegation(self.index, ast.Name(id=call.student), _reference(call.reference))
                verdict = kinds.judge(call.kind, plan, record) if why is None else kinds.judge(
                    call.kind, plan, {"__missing__": why})
            if not verdict.ok:
                if lines:
                    outs.append(NotebookNode(output_type="stream", name="stdout", text="\n".join(lines) + "\n"))
                outs.append(_error("AssertionError", verdict.message))
                return outs
            lines.append(verdict.text())
        if lines:
            outs.append(NotebookNode(output_type="stream", name="stdout", text="\n".join(lines) + "\n"))
        return outs

    def judge(self) -> None:
        records = self._records()
        for i, cell in enumerate(self.nb.cells):
            if not _is_test(cell):
                continue
            incidents = _incidents(cell)
            planned = self.plans.get(_gid(cell))
            stopped = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
            ran = cell.get("execution_count") is not None
            if incidents:
                cell.outputs = incidents
            elif not ran:
                cell.outputs = [_error(NOT_RUN, "not run: this cell was not executed")]
            elif isinstance(planned, str) or planned is None:
                cell.outputs = [_error("GraderError", planned or "the grader could not read this test cell")]
            else:
                cell.outputs = self._verdicts(_gid(cell), planned, records)
                errors = [o for o in cell.outputs if o.get("output_type") == "error"]
                if stopped and errors and "did not run in your notebook" in errors[-1]["evalue"]:
                    k_name, k_value = stopped[-1].get("ename", ""), str(stopped[-1].get("evalue", ""))[:300]
                    errors[-1]["evalue"] += f" (in your notebook this cell stopped with {k_name}: {k_value})"
                    errors[-1]["traceback"] = [f"AssertionError: {errors[-1]['evalue']}"]
            cell.source = self.original[i]

    def restore_sources(self) -> None:
        for i, cell in enumerate(self.nb.cells):
            cell.source = self.original[i]

    def tampered(self) -> str:
        more = f"; … ({len(self.tampering)} in all)" if len(self.tampering) > 4 else ""
        shown = "; ".join(self.tampering[:4]) + more
        why = (f"{self.name}.ipynb was not graded: its code reaches into the grader or the interpreter ({shown}). "
               "Solutions may not change the grader, imported modules or IPython, nor run code the grader cannot "
               "see; every exercise of this notebook scores zero. Ask the instructor if this is a mistake.")
        for cell in self.nb.cells:
            if cell.cell_type == "code":
                cell.outputs = [_error("Tampering", why)] if _is_test(cell) else []
        self.restore_sources()
        return why

    def not_submitted(self, why: str) -> None:
        for cell in self.nb.cells:
            if cell.cell_type == "code":
                cell.outputs = [_error(NOT_RUN, why)] if _is_test(cell) else []
        self.restore_sources()

    # -- results ----------------------------------------------------------------------------------
    def scores(self) -> list[dict]:
        from nbgrader import utils

        rows = []
        for cell in self.nb.cells:
            m = _meta(cell)
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

    def write(self) -> Path:
        dest = self.ws / "autograded" / self.job.student / self.job.chapter / f"{self.name}.ipynb"
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_suffix(".ipynb.tmp")
        nbformat.write(self.nb, str(tmp))
        os.replace(tmp, dest)
        return dest


def _reason(cell: NotebookNode) -> str:
    import re
    ansi = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
    errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
    if errors:
        out = errors[-1]
        ename, evalue = out.get("ename", ""), str(out.get("evalue", ""))
        if not evalue.strip() and ename == "CellTimeoutError":
            evalue = " ".join(ansi.sub("", t) for t in out.get("traceback", [])).split(": ", 1)[-1]
        if ename in (NOT_RUN, "NotGraded"):
            text = evalue
        else:
            text = f"{ename}: {evalue}" if evalue.strip() else ename
            if ename == "NotImplementedError":
                text += " (not implemented yet)"
    else:
        streams = [o for o in cell.get("outputs", []) if o.get("output_type") == "stream" and o.get("name") == "stderr"]
        text = f"the cell wrote to stderr: {streams[0].get('text', '')}" if streams else ""
    text = " | ".join(line.strip() for line in ansi.sub("", text).splitlines() if line.strip())
    return text if len(text) <= 600 else text[:600] + " …"


def _cleanup_scratch(scratch: Path) -> None:
    """Remove a scratch directory a killed worker left behind (unmount it first if it is a tmpfs)."""
    import ctypes

    from grader.trusted.sandbox import base_dir
    try:
        scratch = scratch.resolve()
        if scratch.parent != base_dir().resolve():
            return
        ctypes.CDLL(None, use_errno=True).umount2(str(scratch).encode(), 2)
        shutil.rmtree(scratch, ignore_errors=True)
        spec = scratch.parent / f"{scratch.name}.spec.json"
        spec.unlink(missing_ok=True)
    except OSError:
        pass


def grade_submission(job: Job) -> dict:
    """Grade every notebook of one submission; returns the result (also written to results/<student>.json)."""
    from grader.trusted.sandbox import Capabilities, Limits

    start = time.monotonic()
    limits = Limits(**job.limits)
    caps = Capabilities(**job.caps)
    result: dict[str, Any] = {"student": job.student, "chapter": job.chapter, "hash": job.submission_hash,
                              "status": "ok", "notes": [], "notebooks": {}}
    for name in job.notebooks:
        nbr = _Notebook(job, name)
        entry: dict[str, Any] = {"submitted": nbr.submitted is not None or nbr.unreadable is not None}
        if nbr.unreadable:
            nbr.not_submitted(nbr.unreadable)
            result["notes"].append(nbr.unreadable)
        elif nbr.submitted is None:
            nbr.not_submitted(f"{name}.ipynb was not submitted")
        elif nbr.tampering:
            result["notes"].append(nbr.tampered())
        else:
            if job.salvage:
                nbr.salvage(job.salvage)
            else:
                nbr.execute(limits, caps)
            nbr.judge()
            result["notes"] += _journal_incidents(nbr) + _cell_errors(nbr)
        entry["cells"] = nbr.scores()
        entry["autograded"] = str(nbr.write())
        result["notebooks"][name] = entry
    if job.salvage:
        result["notes"].insert(0, job.salvage)
    result["seconds"] = time.monotonic() - start
    _write_result(Path(job.workdir), job.student, result)
    return result


def _cell_errors(nbr: _Notebook, limit: int = 3) -> list[str]:
    """Errors in cells that are not graded themselves (often why a later test failed), and not in the journal."""
    from grader.execute import journal_path, read_journal

    journal = journal_path(str(nbr.ws / "journal"), nbr.job.student, nbr.job.chapter, nbr.name)
    reported = {e.get("index") for e in read_journal(journal) if e.get("event") == "incident"}
    found = []
    for index, cell in enumerate(nbr.nb.cells):
        if cell.cell_type != "code" or _meta(cell).get("grade") or index in reported:
            continue
        errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"
                  and o.get("ename") not in (NOT_RUN, "GraderStopped")]
        if errors:
            where = f"cell {index} ('{_gid(cell)}')" if _gid(cell) else f"cell {index} (added by you)"
            ename = errors[-1].get("ename", "")
            evalue = _reason(NotebookNode(outputs=[errors[-1]]))
            hint = _hint(ename, nbr.job)
            found.append(f"{nbr.name}, {where}: {evalue}{hint}")
    return found[:limit] + ([f"… and {len(found) - limit} more cells with errors"] if len(found) > limit else [])


def _hint(ename: str, job: Job) -> str:
    limits = job.limits
    if ename == "MemoryError":
        return f" (the memory limit of a submission is {limits.get('memory_mb')} MB)"
    if ename in ("BlockingIOError",):
        return f" (a submission may run at most {limits.get('processes')} processes and threads)"
    if ename == "OSError" or ename == "PermissionError":
        return " (files outside the notebook's folder are not reachable, and files are limited to " \
               f"{limits.get('file_mb')} MB)"
    return ""


def _journal_incidents(nbr: _Notebook) -> list[str]:
    from grader.execute import journal_path, read_journal
    notes = []
    for event in read_journal(journal_path(str(nbr.ws / "journal"), nbr.job.student, nbr.job.chapter, nbr.name)):
        if event.get("event") == "incident":
            where = event.get("cell") or f"cell {event.get('index')}"
            notes.append(f"{nbr.name}, {where}: {event.get('kind')}: {event.get('message')}")
    return notes


def _write_result(ws: Path, student: str, result: dict) -> Path:
    dest = ws / "results" / f"{student}.json"
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(result, indent=1), encoding="utf-8")
    os.replace(tmp, dest)
    return dest


def run_job(path: str) -> int:
    """Grade the job in ``path``; a failure of the grader itself is written as an "error" result."""
    job = Job.load(path)
    try:
        grade_submission(job)
    except Exception:
        err = traceback.format_exc()
        print(err, file=sys.stderr)
        _write_result(Path(job.workdir), job.student, {
            "student": job.student, "chapter": job.chapter, "hash": job.submission_hash, "status": "error",
            "notes": [f"the grader failed on this submission: {err.strip().splitlines()[-1][:300]}"],
            "traceback": err[-4000:], "notebooks": {}})
        return 1
    return 0


def serve() -> int:
    """Grade jobs named on stdin, one per line; answer ``done <path> <status>`` on the real stdout.

    One long-lived worker process per parallel slot: the imports (nbformat, nbgrader, NumPy) are paid
    once, and no student code ever runs in this process (only plain data comes back from the kernels).
    """
    proto = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)  # anything else printed goes to the log
    sys.stdout = sys.stderr
    proto.write("ready\n")
    for line in sys.stdin:
        path = line.strip()
        if not path:
            continue
        rc = run_job(path)
        proto.write(f"done {path} {rc}\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--serve":
        return serve()
    return run_job(argv[0])


if __name__ == "__main__":
    sys.exit(main())
