"""The solution notebooks: well-formed nbgrader sources, and each one runs top to bottom without an error.

Execution uses nbclient with the ``python3`` kernel of the interpreter running the tests (the
project's .venv), in the notebook's own folder, with the repository root on PYTHONPATH so that
``dlcore`` and ``grader`` import as they do for a student. Every autograded test cell must
print its "✔" line and write nothing to stderr (nbgrader fails a test cell that does).
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = ROOT / "solutions"
NOTEBOOKS = sorted(SOLUTIONS.glob("*/*.ipynb"))
#: Minimum number of autograded cells per chapter (what each chapter promises its students).
MIN_GRADED = {"01_perceptron": 6, "02_backprop": 8, "03_optimizers": 19, "04_cnn": 12, "05_rbm_dbn": 13, "06_rnn": 17}
#: Per-cell limit that only stops a hung cell: the notebooks take well under a minute on a laptop CPU
#: (the measured times are in the README); their speed is never asserted, the machine may be loaded.
CELL_TIMEOUT_S = 900


def _id(path: Path) -> str:
    return f"{path.parent.name}/{path.name}"


def _nbgrader(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def test_solution_notebooks_exist():
    chapters = {p.parent.name for p in NOTEBOOKS}
    assert set(MIN_GRADED) <= chapters, f"missing chapters: {set(MIN_GRADED) - chapters}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_id)
def test_source_notebook_is_well_formed(path: Path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3"
    grade_ids, graded = set(), 0
    for index, cell in enumerate(nb.cells):
        where = f"{_id(path)} cell {index}"
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, f"{where}: committed with outputs"
        meta = _nbgrader(cell)
        if not meta:
            continue
        assert meta.get("schema_version") == 3, where
        gid = meta.get("grade_id")
        assert gid and re.fullmatch(r"[A-Za-z0-9_-]+", gid), f"{where}: bad grade_id {gid!r}"
        assert gid not in grade_ids, f"{where}: duplicate grade_id {gid!r}"
        grade_ids.add(gid)
        src = cell.source
        if meta.get("solution"):
            assert cell.cell_type == "code" and not meta.get("grade") and not meta.get("locked"), where
            assert src.count("### BEGIN SOLUTION") == src.count("### END SOLUTION") >= 1, where
        if meta.get("grade"):
            graded += 1
            assert cell.cell_type == "code" and meta.get("locked") and meta.get("points", 0) > 0, where
            assert "### BEGIN HIDDEN TESTS" in src and "### END HIDDEN TESTS" in src, f"{where}: no hidden tests"
            assert "tqdm" not in src, f"{where}: keep progress bars (stderr) out of test cells"
            assert "BEGIN SOLUTION" not in src, where
        if cell.cell_type == "markdown":
            assert meta.get("locked"), f"{where}: markdown cells are read-only"
    chapter = path.parent.name
    assert graded >= 1, f"{_id(path)}: no graded cell"
    if chapter in MIN_GRADED:
        text = "\n".join(c.source for c in nb.cells)
        assert "%matplotlib inline" in nb.cells[1].source or "%matplotlib inline" in nb.cells[0].source
        assert "Glossary" in nb.cells[-1].source and "日本語" in nb.cells[-1].source, "ends with a glossary cell"
        assert "learning goals" in text.lower()


@pytest.mark.parametrize("chapter", sorted(MIN_GRADED))
def test_chapter_has_its_graded_cells(chapter: str):
    graded = sum(1 for path in SOLUTIONS.glob(f"{chapter}/*.ipynb")
                 for cell in nbformat.read(path, as_version=4).cells if _nbgrader(cell).get("grade"))
    assert graded >= MIN_GRADED[chapter], f"{chapter}: only {graded} graded cells in all its notebooks"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=_id)
def test_solution_notebook_executes(path: Path, monkeypatch: pytest.MonkeyPatch):
    from nbclient import NotebookClient

    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    monkeypatch.delenv("DLCOURSE_MNIST", raising=False)  # never download in the test suite
    monkeypatch.setenv("MPLBACKEND", "agg")
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    start = time.perf_counter()
    client.execute()  # raises CellExecutionError naming the cell on the first error
    elapsed = time.perf_counter() - start
    print(f"{_id(path)} ran in {elapsed:.1f} s")
    for cell in nb.cells:
        if cell.cell_type != "code" or not _nbgrader(cell).get("grade"):
            continue
        gid = _nbgrader(cell)["grade_id"]
        streams = [o for o in cell.outputs if o.get("output_type") == "stream"]
        stderr = "".join(o.get("text", "") for o in streams if o.get("name") == "stderr")
        stdout = "".join(o.get("text", "") for o in streams if o.get("name") == "stdout")
        assert not stderr, f"{_id(path)} test cell {gid!r} wrote to stderr (nbgrader fails it): {stderr[:300]}"
        assert "✔" in stdout, f"{_id(path)} test cell {gid!r} printed no success line: {stdout[:300]!r}"
