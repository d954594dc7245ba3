"""RobustExecute: nbgrader's Execute preprocessor, made to survive misbehaving submissions.

nbgrader 0.9.6 loses a notebook's grades when its kernel dies or a cell ignores the interrupt (nbclient
raises ``DeadKernelError`` / ``CellTimeoutError``; nbgrader's converter deletes the autograded copy and
skips ``SaveAutoGrades``). RobustExecute runs the cells itself with a per-cell and a per-notebook time
limit; when the kernel dies, hangs or runs out of time it kills the kernel's process tree, gives that cell
an error saying what happened and every later code cell "not run", so the cells that ran keep their
points. It journals each executed cell; :func:`replay` rebuilds a killed run's notebook from the journal.
See grader/README.md, "What happens when a submission misbehaves".
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from typing import Any

from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbformat import NotebookNode
from nbgrader.preprocessors import ClearHiddenTests, Execute
from traitlets import Integer, Unicode

__all__ = ["RobustExecute", "NOT_RUN", "error_output", "journal_path", "read_journal", "replay",
           "ClearHiddenTestsForFeedback"]

#: ``ename`` of the error output given to cells that were not run.
NOT_RUN = "NotRun"


def journal_path(journal_dir: str, student: str, assignment: str, notebook: str) -> str:
    return os.path.join(journal_dir, student, assignment, f"{notebook}.jsonl")


def read_journal(path: str) -> list[dict[str, Any]]:
    """The journal's events (a truncated last line, from a killed writer, is ignored)."""
    events = []
    with contextlib.suppress(OSError), open(path, encoding="utf-8") as fh:
        for line in fh:
            try:
                events.append(json.loads(line))
            except ValueError:
                break
    return events


def error_output(ename: str, message: str) -> NotebookNode:
    """An error output as a kernel gives one (the name in red in the traceback)."""
    return NotebookNode(output_type="error", ename=ename, evalue=message,
                        traceback=[f"\x1b[0;31m{ename}\x1b[0m: {message}"])


def _label(cell: NotebookNode, index: int) -> str:
    grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
    return f"cell {index}" + (f" ('{grade_id}')" if grade_id else "")


def kill_process_tree(pid: int) -> None:
    """SIGKILL ``pid`` and all its descendants (collected first, so reparenting cannot hide them)."""
    import psutil  # a dependency of ipykernel

    try:
        parent = psutil.Process(pid)
        victims = parent.children(recursive=True) + [parent]
    except psutil.Error:
        return
    for proc in victims:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(victims, timeout=5)


def replay(nb: NotebookNode, journal: str, reason: str) -> NotebookNode:
    """``nb`` with the outputs the journal at ``journal`` holds (a killed run's); the cell that was running
    gets ``GraderStopped`` and every later code cell "not run", both with ``reason``."""
    events = read_journal(journal)
    done = {e["index"]: e for e in events if e.get("event") == "cell"}
    running = [e["index"] for e in events if e.get("event") == "run" and e["index"] not in done]
    stop: str | None = None
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or not cell.source.strip():
            continue
        if stop is None and index in done:
            cell.outputs = [NotebookNode(o) for o in done[index]["outputs"]]
            cell.execution_count = done[index].get("execution_count")
            continue
        cell.execution_count = None
        if stop is None and running and index == running[-1]:
            cell.outputs = [error_output("GraderStopped", f"{reason} while this cell was running")]
            stop = f"not run: {reason} in an earlier cell ({_label(cell, index)})"
            continue
        stop = stop or f"not run: {reason}"
        cell.outputs = [error_output(NOT_RUN, stop)]
    return nb


class RobustExecute(Execute):
    """nbgrader's Execute with a notebook wall limit, kernel-death survival and a journal."""

    notebook_timeout = Integer(0, help="Wall-clock limit in seconds for the whole notebook (0: no limit).").tag(
        config=True)
    journal_dir = Unicode("", help="Directory for the journal of executed cells ('' : no journal).").tag(config=True)
    output_cell_bytes = Integer(0, help="Output kept per cell (characters of streams, rich outputs and tracebacks; "
                                "0: no limit).").tag(config=True)
    output_notebook_bytes = Integer(0, help="Output kept per notebook (0: no limit).").tag(config=True)
    setup_code = Unicode("", help="Code run silently in the kernel before the first cell (the grader's recorder)."
                         ).tag(config=True)

    _journal: Any = None
    _deadline: float | None = None
    _cell_used = 0
    _nb_used = 0
    _overflow: str | None = None
    death_reason: Any = None  # callable(returncode) -> str | None, set by the grader's worker

    def _journal_file(self, resources: dict[str, Any]) -> str | None:
        info = (resources or {}).get("nbgrader", {})
        if not self.journal_dir or not info:
            return None
        return journal_path(self.journal_dir, info["student"], info["assignment"], info["notebook"])

    def _write(self, event: dict[str, Any]) -> None:
        if self._journal is not None:
            self._journal.write(json.dumps(event) + "\n")
            self._journal.flush()

    def _kernel_process(self) -> subprocess.Popen | None:
        return getattr(getattr(self.km, "provisioner", None), "process", None)

    def _kill_kernel(self) -> None:
        process = self._kernel_process()
        if process is not None:
            kill_process_tree(process.pid)

    def _cell_timeout(self, cell: NotebookNode) -> int | None:
        limit = self.timeout if self.timeout and self.timeout > 0 else None
        if self._deadline is not None:
            left = max(1, int(self._deadline - time.monotonic() + 0.999))
            limit = left if limit is None else min(limit, left)
        return limit

    def _incident(self, index: int, cell: NotebookNode, kind: str, message: str) -> None:
        cell.outputs.append(error_output(kind, message))
        self._write({"event": "incident", "index": index, "cell": _label(cell, index), "kind": kind,
                     "message": message})
        self.log.warning("%s: %s", _label(cell, index), message)

    # -- output limits ----------------------------------------------------------------------
    @staticmethod
    def _size(msg: dict[str, Any]) -> int:
        content = msg.get("content", {})
        kind = msg.get("msg_type")
        if kind == "stream":
            return len(content.get("text", ""))
        if kind == "error":
            return len(str(content.get("evalue", ""))) + sum(len(str(t)) for t in content.get("traceback", []))
        data = content.get("data", {})
        return sum(len(v) if isinstance(v, str) else len(json.dumps(v, default=str)) for v in data.values()) + \
            len(json.dumps(content.get("metadata", {}), default=str))

    def _room(self) -> tuple[int, str] | None:
        """The output that may still be kept and the limit that decides it (None: no limit)."""
        rooms = [(limit - used, f"{limit // 1024} kB, the limit per {what}")
                 for limit, used, what in ((self.output_cell_bytes, self._cell_used, "cell"),
                                           (self.output_notebook_bytes, self._nb_used, "notebook")) if limit > 0]
        return min(rooms, key=lambda room: room[0]) if rooms else None

    def output(self, outs: list, msg: dict[str, Any], display_id: str | None, cell_index: int) -> Any:
        room = self._room()
        if room is not None and self._size(msg) > room[0]:
            self._overflow = self._overflow or room[1]
            kind, content, keep = msg.get("msg_type"), msg["content"], max(room[0], 0)
            if kind == "stream" and keep > 0:
                msg = {**msg, "content": {**content, "text": content.get("text", "")[:keep]}}
            elif kind == "error":  # an error must stay visible (it decides the cell), shortened
                msg = {**msg, "content": {**content, "evalue": str(content.get("evalue", ""))[:2000],
                                          "traceback": [str(t)[:2000] for t in content.get("traceback", [])][-3:]}}
            else:
                return None
        size = self._size(msg)
        self._cell_used += size
        self._nb_used += size
        return super().output(outs, msg, display_id, cell_index)

    def _update_display_id(self, display_id: str, msg: dict[str, Any]) -> None:
        room = self._room()
        if room is not None and self._size(msg) > room[0]:
            self._overflow = self._overflow or room[1]
            return
        super()._update_display_id(display_id, msg)

    def handle_comm_msg(self, outs: list, msg: dict[str, Any], cell_index: int) -> None:
        return None  # widgets are not graded; their state could be arbitrarily large

    def _died(self) -> str:
        rc = None
        with contextlib.suppress(AttributeError, subprocess.TimeoutExpired):
            rc = self._kernel_process().wait(timeout=1)
        reason = self.death_reason(rc) if callable(self.death_reason) else None
        if reason:
            return reason
        if rc is not None and rc < 0:
            try:
                name = signal.Signals(-rc).name
            except ValueError:
                name = str(-rc)
            return f"the kernel was killed by {name} while running this cell"
        return ("the kernel died while running this cell (os._exit, sys.exit in a thread, a crash, or running out "
                "of memory)")

    # -- execution -------------------------------------------------------------------------
    def preprocess(self, nb: NotebookNode, resources: Any = None, km: Any = None) -> tuple[NotebookNode, Any]:
        path = self._journal_file(resources)
        if path:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            self._journal = open(path, "w", encoding="utf-8")  # noqa: SIM115 - closed in finally
        try:
            return self._execute(nb, resources, km)
        finally:
            if self._journal is not None:
                self._journal.close()
                self._journal = None

    def _execute(self, nb: NotebookNode, resources: Any, km: Any) -> tuple[NotebookNode, Any]:
        from nbclient.client import NotebookClient

        NotebookClient.__init__(self, nb, km)
        self.reset_execution_trackers()
        self._check_assign_resources(resources)
        self._deadline = time.monotonic() + self.notebook_timeout if self.notebook_timeout > 0 else None
        self.timeout_func = self._cell_timeout
        stop: str | None = None
        with self.setup_kernel():
            assert self.kc is not None
            info_msg = self.wait_for_reply(self.kc.kernel_info())
            if info_msg:
                self.nb.metadata["language_info"] = info_msg["content"]["language_info"]
            process = self._kernel_process()
            self._write({"event": "start", "kernel_pid": process.pid if process else None, "time": time.time()})
            if self.setup_code:
                reply = self.wait_for_reply(self.kc.execute(self.setup_code, silent=True, store_history=False))
                if not reply or reply.get("content", {}).get("status") != "ok":
                    detail = (reply or {}).get("content", {}).get("evalue", "no reply")
                    stop = f"not run: the grader could not set up the kernel ({str(detail)[:200]})"
                    self._write({"event": "incident", "index": -1, "cell": "setup", "kind": "GraderError",
                                 "message": stop})
            self._nb_used = 0
            for index, cell in enumerate(self.nb.cells):
                if cell.cell_type != "code" or not cell.source.strip():
                    continue
                if stop is None and self._deadline is not None and time.monotonic() >= self._deadline:
                    stop = f"not run: the notebook reached its time limit of {self.notebook_timeout} s before this cell"
                    self._kill_kernel()
                if stop is not None:
                    cell.outputs, cell.execution_count = [error_output(NOT_RUN, stop)], None
                    continue
                self._write({"event": "run", "index": index})
                self._cell_used, self._overflow = 0, None
                limit = self._cell_timeout(cell)
                self.error_on_timeout = {
                    "ename": "CellTimeoutError", "evalue": "",
                    "traceback": [f"\x1b[0;31mCellTimeoutError\x1b[0m: this cell ran longer than its time limit "
                                  f"({limit} s) and was interrupted"]}
                try:
                    self.preprocess_cell(cell, resources, index)
                except DeadKernelError:
                    self._incident(index, cell, "KernelDied", self._died() + "; later cells were not run")
                    self._kill_kernel()
                    stop = f"not run: the kernel died in an earlier cell ({_label(cell, index)})"
                except CellTimeoutError:
                    self._kill_kernel()
                    self._incident(index, cell, "CellTimeoutError",
                                   f"this cell ran longer than its time limit ({limit} s) and did not stop when "
                                   "interrupted, so the kernel was stopped; later cells were not run")
                    stop = f"not run: an earlier cell ({_label(cell, index)}) hung and the kernel was stopped"
                except Exception as exc:  # anything else from the kernel machinery: keep what ran
                    self._kill_kernel()
                    self._incident(index, cell, "GraderError",
                                   f"executing this cell failed in the grader ({type(exc).__name__}: {exc}); "
                                   "later cells were not run")
                    stop = f"not run: executing an earlier cell ({_label(cell, index)}) failed"
                if self._overflow is not None:
                    self._incident(index, cell, "OutputLimit",
                                   f"this cell's output exceeded {self._overflow}; the rest of it was dropped")
                if stop is None and self._deadline is not None and time.monotonic() >= self._deadline and any(
                        o.get("ename") == "CellTimeoutError" for o in cell.outputs):
                    self._incident(index, cell, "NotebookTimeout", f"the notebook reached its time limit of "
                                   f"{self.notebook_timeout} s while this cell was running")
                self._write({"event": "cell", "index": index, "execution_count": cell.get("execution_count"),
                             "outputs": cell.outputs})
            self._write({"event": "end", "stopped": stop})
        self.set_widgets_metadata()
        return self.nb, self.resources

class ClearHiddenTestsForFeedback(ClearHiddenTests):
    """Feedback without the hidden tests' source: removes the hidden regions of the locked test cells only.

    (The student's own cells are left as they are, whatever markers they contain.)
    """

    def preprocess_cell(self, cell: NotebookNode, resources: Any, cell_index: int) -> tuple[NotebookNode, Any]:
        meta = cell.get("metadata", {}).get("nbgrader", {}) or {}
        if cell.cell_type == "code" and meta.get("grade") and meta.get("locked") and not meta.get("solution"):
            try:
                self._remove_hidden_test_region(cell)
            except RuntimeError:
                cell.source = "# (the source of this test is not shown)"
        return cell, resources
