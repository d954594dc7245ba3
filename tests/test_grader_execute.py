"""grader.trusted.execute on its own: RobustExecute's per-notebook time limit, and scoring from a journal (replay)."""

from __future__ import annotations

import json
import os

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from grader.trusted.execute import NOT_RUN, RobustExecute, journal_path, replay


def _nb(*sources: str):
    nb = new_notebook(cells=[new_code_cell(s) for s in sources])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    for i, c in enumerate(nb.cells):
        c.metadata["nbgrader"] = {"grade_id": f"c{i}", "grade": False, "solution": False, "locked": False,
                                  "schema_version": 3}
    return nb


def _resources(tmp_path):
    return {"metadata": {"path": str(tmp_path)},
            "nbgrader": {"student": "s1", "assignment": "a1", "notebook": "nb", "db_url": ""}}


@pytest.mark.slow
def test_notebook_time_limit_stops_the_rest_and_keeps_what_ran(tmp_path):
    # the notebook limit (20 s, counted from the kernel's start) is far above what the first cell needs and
    # far below the second cell's sleep, so a loaded machine moves neither side of it
    nb = _nb("x = 1\nprint('first')", "import time\ntime.sleep(3600)", "print('never')")
    ep = RobustExecute(timeout=7200, notebook_timeout=20, journal_dir=str(tmp_path / "journal"))
    nb, _ = ep.preprocess(nb, _resources(tmp_path))
    first, slow, last = nb.cells
    assert first.outputs[0]["text"] == "first\n"
    assert any(o.get("ename") == "CellTimeoutError" for o in slow.outputs)
    assert last.outputs[0]["ename"] == NOT_RUN and "time limit of 20 s" in last.outputs[0]["evalue"]
    events = [json.loads(line) for line in open(journal_path(str(tmp_path / "journal"), "s1", "a1", "nb"))]
    assert [e["event"] for e in events][:3] == ["start", "run", "cell"] and events[-1]["event"] == "end"


def test_replay_rebuilds_the_notebook_from_the_journal(tmp_path):
    path = journal_path(str(tmp_path), "s1", "a1", "nb")
    os.makedirs(os.path.dirname(path))
    ok = {"output_type": "stream", "name": "stdout", "text": "✔ fine\n"}
    with open(path, "w") as fh:
        for event in ({"event": "start", "kernel_pid": 1}, {"event": "run", "index": 0},
                      {"event": "cell", "index": 0, "execution_count": 1, "outputs": [ok]},
                      {"event": "run", "index": 1}):
            fh.write(json.dumps(event) + "\n")
        fh.write('{"event": "cell", "index": 1, "outp')  # the writer was killed mid-line
    nb = replay(_nb("a = 1", "while True: pass", "b = 2", ""), path, "stopped at the wall-clock limit (9 s)")
    assert nb.cells[0].outputs == [nbformat.from_dict(ok)] and nb.cells[0].execution_count == 1
    assert nb.cells[1].outputs[0]["ename"] == "GraderStopped"
    assert "while this cell was running" in nb.cells[1].outputs[0]["evalue"]
    assert nb.cells[2].outputs[0]["ename"] == NOT_RUN
    assert "earlier cell (cell 1 ('c1'))" in nb.cells[2].outputs[0]["evalue"]
    assert nb.cells[3].outputs == []  # empty cells are left alone
