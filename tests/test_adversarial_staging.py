"""Hostile folders and hostile text: staging never follows a link, odd ids are graded or refused one by one,
student text reaches the instructor's terminal and spreadsheet inert and the feedback HTML cannot run code.

One batch of the mini course (tests/fixtures/mini_course: double_test 1, relu_test 2, square_test 3 points)
through ``python -m grader autograde`` (the command an instructor types), two workers, with the CSV and the
feedback. Every case has its exact score and reason.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import grading_helpers as H  # tests/fixtures, on pytest's pythonpath
import nbformat
import pytest

from grader.course.release import REPO_ROOT
from grader.trusted import feedback as fb
from grader.trusted.report import safe_text

MINI = Path(__file__).parent / "fixtures" / "mini_course"
SOURCE_NB = MINI / "solutions" / "mini" / "mini.ipynb"
EXERCISES = ("double_test", "relu_test", "square_test")
pytestmark = pytest.mark.slow

#: window title, OSC 52 clipboard write, full terminal reset, an 8-bit CSI and a right-to-left override
ESC = "\x1b]0;owned\x07\x1b]52;c;cm0gLXJmIH4=\x07\x1bc\x9b31m\u202eevil"
LONG_ID = "x" * 255
ESC_ID = "esc\x1b]0;title\x07"
#: a 1x1 PNG
PNG = base64.b64encode(bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
    "0000000d4944415478da63f8cfc0f01f0005000201a1e5e9a10000000049454e44ae426082")).decode()
HOSTILE_MARKDOWN = ("# Notes\n\n<script>alert('md-script')</script>\n\n<img src=x onerror=\"alert('md-onerror')\">\n\n"
                    "[a link](javascript:alert('md-link')) and <a href=\"JaVaScRiPt:alert('md-a')\">another</a>\n\n"
                    "<iframe src=\"javascript:alert('md-iframe')\"></iframe>\n\n"
                    "The chain rule: $\\frac{\\partial L}{\\partial x} = \\sum_j W_{ij}$\n")
HOSTILE_CODE = (
    "import base64\n"
    "from IPython.display import HTML, Image, Javascript, display\n"
    "display(HTML('<b onmouseover=\"alert(1)\">bold text</b><script>alert(2)</script>'"
    " '<a href=\"javascript:alert(3)\">x</a><svg onload=\"alert(4)\"></svg>'))\n"
    "display(Javascript('alert(5)'))\n"
    f"display(Image(data=base64.b64decode('{PNG}')))\n"
    "display({'image/png': 'x\" onerror=\"alert(6)'}, raw=True)\n"
    "display({'text/html': '<img src=\"data:text/html;base64,PHNjcmlwdD4=\">', 'text/plain': ''}, raw=True)\n"
    "print('plain <script>alert(7)</script> text')\n"
)


def _add_cells(nb, markdown: str, code: str):
    nb.cells.append(nbformat.v4.new_markdown_cell(markdown))
    nb.cells.append(nbformat.v4.new_code_cell(code))
    return nb


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("staging")
    root = tmp / "course_root"
    shutil.copytree(MINI, root)
    subprocess.run([sys.executable, "-m", "grader", "release", "--course-root", str(root)], check=True,
                   capture_output=True, cwd=REPO_ROOT)
    release = root / "course" / "mini" / "mini.ipynb"
    answers = H.student_answers(SOURCE_NB)
    subs = tmp / "submissions"
    good = H.fill(release, answers)
    for name in ("good", "a b", "学生", LONG_ID, "...", "..x", ESC_ID):
        H.write(good, subs / name, "mini.ipynb")
    H.write(good, subs / "nested" / "mini", "mini.ipynb")                    # nbgrader's collected layout
    (subs / "linked_student").symlink_to("good")                              # the whole folder is a link
    (subs / "linked_chapter").mkdir()
    (subs / "linked_chapter" / "mini").symlink_to(subs / "nested" / "mini")  # <student>/<chapter> -> another's
    (subs / "linked_notebook").mkdir()
    (subs / "linked_notebook" / "mini.ipynb").symlink_to(subs / "good" / "mini.ipynb")
    (subs / "dangling").symlink_to(tmp / "does-not-exist")
    (subs / "notes.txt").write_text("a file beside the folders is not a submission\n")
    os.mkdir(os.fsencode(subs) + b"/bad\xff")                                 # not UTF-8: cannot even be printed
    raising = f"def double(x):\n    raise ValueError({ESC!r})\n"
    H.write(H.fill(release, answers, {"double_impl": raising}), subs / "escapes", "mini.ipynb")
    H.write(_add_cells(H.fill(release, answers), HOSTILE_MARKDOWN, HOSTILE_CODE), subs / "html", "mini.ipynb")

    work, csv_path = tmp / "work", tmp / "grades.csv"
    proc = subprocess.run([sys.executable, "-m", "grader", "autograde", "mini", str(subs), "--course-root", str(root),
                           "--workers", "2", "--timeout", "60", "--csv", str(csv_path), "--feedback",
                           "--workdir", str(work)], capture_output=True, text=True, cwd=REPO_ROOT, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc, csv_path, work


def _row_reasons(grades: dict, student: str) -> set[str]:
    return {grades[student][e][2] for e in EXERCISES}


LINK = "links are never followed, submit the files themselves"


@pytest.mark.parametrize("student, reason", [
    ("linked_student", "the student folder is a symbolic link (to good); " + LINK),
    ("linked_chapter", "the chapter folder linked_chapter/mini is a symbolic link (to {subs}/nested/mini); " + LINK),
    ("linked_notebook", "mini.ipynb is a symbolic link (to {subs}/good/mini.ipynb); " + LINK),
    ("dangling", "the student folder is a symbolic link (to {tmp}/does-not-exist); " + LINK),
    ("...", "the folder name starts with '.' (nbgrader skips hidden folders: no feedback, no Formgrader row); "
            "rename it to the student's id"),
    ("..x", "the folder name starts with '.' (nbgrader skips hidden folders: no feedback, no Formgrader row); "
            "rename it to the student's id"),
    (LONG_ID, "the folder name is longer than 128 bytes (it becomes part of file names in the work directory); "
              "rename it to the student's id"),
])
def test_links_and_unusable_ids_are_refused_one_by_one(batch, student, reason):
    proc, csv_path, work = batch
    grades = H.read_grades(csv_path)
    subs = work.parent / "submissions"
    reason = reason.format(subs=subs, tmp=work.parent)
    assert {e: grades[student][e][:2] for e in EXERCISES} == {"double_test": (0, 1), "relu_test": (0, 2),
                                                              "square_test": (0, 3)}
    assert _row_reasons(grades, student) == {f"not graded: {reason}"}
    assert grades[student]["TOTAL"] == (0, 6, f"refused: {reason}")
    assert f"{student}: refused: {reason}" in proc.stdout                 # the console says why, too
    assert not (work / "submitted" / student).exists()                    # nothing of it was staged
    assert not (work / "feedback" / student).exists()


def test_odd_but_usable_ids_are_graded_and_links_never_grade_the_target(batch):
    proc, csv_path, work = batch
    grades = H.read_grades(csv_path)
    for student in ("good", "a b", "学生", "nested"):
        assert grades[student]["TOTAL"] == (6, 6, ""), student
        assert (work / "feedback" / student / "mini" / "mini.html").is_file()
    # every folder has its row: nothing skipped silently, the plain file beside them is not a student
    escaped_esc_id = safe_text(ESC_ID)
    assert sorted(grades) == sorted(["good", "a b", "学生", "nested", LONG_ID, "...", "..x", escaped_esc_id,
                                     "bad\\udcff", "linked_student", "linked_chapter", "linked_notebook", "dangling",
                                     "escapes", "html"])
    assert "Autograding mini: 15 submission(s) (6 to grade, 9 refused)" in proc.stdout


def test_control_characters_never_reach_the_console_or_the_csv(batch):
    proc, csv_path, _ = batch
    raw_csv = csv_path.read_text(encoding="utf-8")
    for text in (proc.stdout, proc.stderr, raw_csv):
        assert not re.search("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]", text.replace("\r\n", "\n"))
    grades = H.read_grades(csv_path)
    # the student's exception text is kept, made visible instead of executed
    shown = "\\x1b]0;owned\\x07\\x1b]52;c;cm0gLXJmIH4=\\x07\\x1bc\\x9b31m\\u202eevil"
    assert grades["escapes"]["double_test"][0] == 0 and shown in grades["escapes"]["double_test"][2]
    assert grades["escapes"]["TOTAL"][:2] == (5, 6)
    assert shown in proc.stdout
    # an id with an ESC sequence is refused, and shown escaped
    esc_id = safe_text(ESC_ID)
    assert esc_id == "esc\\x1b]0;title\\x07"
    assert grades[esc_id]["TOTAL"] == (0, 6, "refused: the folder name contains control characters; rename it to "
                                             "the student's id")
    assert grades["bad\\udcff"]["TOTAL"] == grades[esc_id]["TOTAL"]          # undecodable bytes: escaped, refused


class _Tags(HTMLParser):
    """Every start tag and its attributes, as a browser's parser sees them (text, escaped source code, is text)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.tags.append((tag, {k: v or "" for k, v in attrs}))


def test_feedback_html_runs_nothing_but_keeps_latex_and_images(batch):
    _, csv_path, work = batch
    assert H.read_grades(csv_path)["html"]["TOTAL"] == (6, 6, "")
    html = (work / "feedback" / "html" / "mini" / "mini.html").read_text(encoding="utf-8")
    head, body = html.split("<body>", 1)
    parser = _Tags()
    parser.feed(body)
    names = {tag for tag, _ in parser.tags}
    assert not names & {"script", "iframe", "svg", "object", "embed", "form", "style", "base", "meta"}, names
    for tag, attrs in parser.tags:
        assert not [a for a in attrs if a.startswith("on")], (tag, attrs)                   # no event handler
        for name in ("href", "src", "action", "formaction", "xlink:href"):
            url = re.sub(r"[\s\x00-\x1f]", "", attrs.get(name, "")).lower()
            assert not url.startswith(("javascript:", "vbscript:")), (tag, attrs)
            assert not url.startswith("data:") or (tag == "img" and url.startswith("data:image/png")), (tag, attrs)
    # the head's scripts are the template's: MathJax (with its Safe extension) and the offline note's hook
    scripts = re.findall(r"<script\b[^>]*>", head)
    assert scripts == ['<script src="https://cdnjs.cloudflare.com/ajax/libs/mathjax/2.7.7/latest.js?config='
                       'TeX-AMS_CHTML-full,Safe">', '<script type="text/x-mathjax-config">',
                       '<script type="text/x-mathjax-config">']
    assert "alert(" not in head
    # what a student legitimately shows survives: LaTeX for MathJax, a PNG, formatting, printed text
    assert "$\\frac{\\partial L}{\\partial x} = \\sum_j W_{ij}$" in body
    assert f'src="data:image/png;base64,{PNG}"' in body
    assert "<b>bold text</b>" in body and "plain &lt;script&gt;alert(7)&lt;/script&gt; text" in body
    assert fb.OFFLINE_NOTE in body


def test_sanitizer_allow_list():
    dirty = ('<p style="color:red;position:fixed">x</p><a href="http://example.org" onclick="f()">l</a>'
             '<img src="data:image/svg+xml;base64,PHN2Zz4=" onerror="f()"><a href="data:text/html,x">d</a>'
             '<form action="http://e"><input></form><table><tr><td colspan="2">t</td></tr></table>')
    clean = fb.sanitize_body(dirty)
    assert clean == ('<p style="color:red">x</p><a href="http://example.org" rel="noopener noreferrer">l</a>'
                     '<img src="data:image/svg+xml;base64,PHN2Zz4="><a rel="noopener noreferrer">d</a>'
                     '<table><tbody><tr><td colspan="2">t</td></tr></tbody></table>')
