"""Final-answer extraction: the content of the last \\boxed{...} (or \\fbox{...}) in a completion.

Braces are matched by depth, so nested LaTeX such as \\boxed{\\frac{1}{2}} comes back whole; an
unterminated box counts as no answer.  `\\boxed 5` (no braces) is accepted as in the MATH grader.
Extraction is linear in the text length: every brace is paired once, in one left-to-right pass with a
stack, before any box is looked at (rescanning from each box was quadratic: a 240 KB row of nested
`\\boxed{` took minutes, in the main process, outside the verifier's time limit).
"""
from __future__ import annotations

import re

_BOX_RE = re.compile(r"\\(?:boxed|fbox)\s*(\{|\s)")
_BRACE_RE = re.compile(r"(?<!\\)[{}]")  # an escaped brace (\{ or \}) is text, not a group
_TOKEN_RE = re.compile(r"\s*(\S+)")


def extract_boxed(text: str) -> str | None:
    """Content of the last complete \\boxed{} in `text`, or None."""
    if not isinstance(text, str):
        return None
    boxes = list(_BOX_RE.finditer(text))
    if not boxes:
        return None
    closing = _pair_braces(text)
    for match in reversed(boxes):
        if match.group(1) != "{":
            token = _TOKEN_RE.match(text, match.end())
            value = token.group(1).rstrip(".$") if token else ""
            if value:
                return value
            continue
        end = closing.get(match.end() - 1)
        if end is not None:
            content = text[match.end():end].strip()
            if content:
                return content
    return None


def _pair_braces(text: str) -> dict[int, int]:
    """Index of each unescaped '{' -> index of its matching '}' (unterminated ones are absent)."""
    closing: dict[int, int] = {}
    stack: list[int] = []
    for m in _BRACE_RE.finditer(text):
        if m.group() == "{":
            stack.append(m.start())
        elif stack:
            closing[stack.pop()] = m.start()
    return closing
