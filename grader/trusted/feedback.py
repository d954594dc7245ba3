"""Feedback HTML (``nbgrader generate_feedback``) in which nothing a student wrote can run.

:class:`SafeFeedbackExporter` (selected by grader/nbgrader_config.py) keeps nbgrader's template and scores;
the ``<body>``, the only part holding student content, goes through nh3 with the allow-list below; the
``<head>`` is the template's (MathJax 2.7 with its ``Safe`` extension, which refuses ``\\href{javascript:...}``
in formulas). What is kept and the offline MathJax note: grader/README.md, "Autograde a class".
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nbconvert.exporters import HTMLExporter
from traitlets import Unicode

__all__ = ["SafeFeedbackExporter", "sanitize_body", "generate_feedback", "OFFLINE_NOTE"]

_CDN = "https://cdnjs.cloudflare.com/ajax/libs/mathjax/2.7.7/latest.js?config=TeX-AMS_CHTML-full,Safe"
_TAGS = {"a", "abbr", "b", "blockquote", "br", "caption", "code", "col", "colgroup", "dd", "del", "details", "div",
         "dl", "dt", "em", "figcaption", "figure", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "ins",
         "kbd", "li", "mark", "ol", "p", "pre", "q", "s", "samp", "small", "span", "strong", "sub", "summary",
         "sup", "table", "tbody", "td", "tfoot", "th", "thead", "tr", "tt", "u", "ul", "var"}
_ATTRIBUTES = {"*": {"class", "id", "title", "align", "style"}, "a": {"href", "name"},
               "img": {"src", "alt", "width", "height"}, "td": {"colspan", "rowspan"}, "th": {"colspan", "rowspan"},
               "ol": {"start", "type"}, "col": {"span"}, "colgroup": {"span"}}
_STYLES = {"color", "background-color", "text-align", "font-weight", "font-style", "width", "height", "max-width",
           "margin", "margin-left", "margin-right", "padding", "border", "vertical-align", "white-space"}
_DROP_WITH_CONTENT = {"script", "style", "iframe", "object", "embed", "noscript", "template", "textarea", "select"}
_IMAGE_DATA = re.compile(r"data:image/(png|jpeg|gif|webp|svg\+xml);base64,[A-Za-z0-9+/=\s]*", re.IGNORECASE)
_BODY = re.compile(r"<body\b[^>]*>", re.IGNORECASE)
_NOTE_ID = "dlcourse-mathjax-offline"
OFFLINE_NOTE = ("Formulas on this page are shown as LaTeX source ($...$) because MathJax, which typesets them, "
                "could not be loaded: it comes from the internet. Open this file again with an internet "
                "connection (or ask your instructor for a copy that loads MathJax from the course's server).")


def _keep_url(element: str, attribute: str, value: str) -> str | None:
    if attribute in ("href", "src") and value.strip().lower().startswith("data:"):
        return value if element == "img" and attribute == "src" and _IMAGE_DATA.fullmatch(value.strip()) else None
    return value


def sanitize_body(html: str) -> str:
    """An HTML fragment with everything that could run removed (see the module docstring)."""
    import nh3  # the course extra's dependency; imported here so that grading without --feedback needs nothing more

    return nh3.clean(html, tags=_TAGS, clean_content_tags=_DROP_WITH_CONTENT, attributes=_ATTRIBUTES,
                     attribute_filter=_keep_url, url_schemes={"http", "https", "mailto", "data"},
                     filter_style_properties=_STYLES, strip_comments=True)


class SafeFeedbackExporter(HTMLExporter):
    """nbgrader's feedback HTML with a sanitized body and the offline MathJax note (see the module docstring)."""

    dlcourse_mathjax_url = Unicode("", help="Load MathJax from this URL instead of the CDN ('' : the CDN).").tag(
        config=True)

    def from_notebook_node(self, nb: Any, resources: dict | None = None, **kw: Any) -> tuple[str, dict]:
        output, resources = super().from_notebook_node(nb, resources, **kw)
        match = _BODY.search(output)
        if match is None:                       # not the feedback template: everything is untrusted
            return sanitize_body(output), resources
        head, body = output[:match.start()], output[match.end():]
        if self.dlcourse_mathjax_url:
            head = head.replace(_CDN, self.dlcourse_mathjax_url.replace('"', "%22"))
        hide = ('<script type="text/x-mathjax-config">MathJax.Hub.Register.StartupHook("End", function () {'
                f'var n = document.getElementById("{_NOTE_ID}"); if (n) {{ n.style.display = "none"; }}}});</script>\n')
        head = head.replace("</head>", hide + "</head>", 1) if "</head>" in head else head + hide
        note = (f'<div id="{_NOTE_ID}" style="border:1px solid #c90;background:#fff8e0;padding:0.5em;margin:0.5em">'
                f"{OFFLINE_NOTE}</div>\n")
        body = body.rsplit("</body>", 1)[0]
        return f"{head}<body>\n{note}{sanitize_body(body)}\n</body>\n</html>\n", resources


def generate_feedback(ws: Path, chapter: str, *, show_hidden: bool = False, mathjax_url: str = "",
                      echo: Callable[[str], None] = print) -> None:
    """``nbgrader generate_feedback CHAPTER --force`` on the work directory ``ws``, through the safe exporter
    (grader/nbgrader_config.py, which every nbgrader command of the grader loads, selects it)."""
    from grader.course.release import NbgraderError, nbgrader

    preprocessors = ["nbgrader.preprocessors.GetGrades", "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor"]
    if not show_hidden:
        preprocessors.insert(1, "grader.trusted.execute.ClearHiddenTestsForFeedback")
    args = ["generate_feedback", chapter, "--force", f"--GenerateFeedback.preprocessors={json.dumps(preprocessors)}"]
    if mathjax_url:
        args.append(f"--SafeFeedbackExporter.dlcourse_mathjax_url={mathjax_url}")
    try:
        nbgrader(*args, root=ws, timeout=900)
    except (NbgraderError, subprocess.TimeoutExpired) as exc:
        echo(f"generating feedback failed: {exc}")
