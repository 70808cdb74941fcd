"""Final-answer extraction: the content of the last \\boxed{...} (or \\fbox{...}) in a completion.

Braces are matched by depth, so nested LaTeX such as \\boxed{\\frac{1}{2}} comes back whole; an
unterminated box counts as no answer.  `\\boxed 5` (no braces) is accepted as in the MATH grader.
"""
from __future__ import annotations

import re

_BOX_RE = re.compile(r"\\(?:boxed|fbox)\s*(\{|\s)")


def extract_boxed(text: str) -> str | None:
    """Content of the last complete \\boxed{} in `text`, or None."""
    if not isinstance(text, str):
        return None
    for match in reversed(list(_BOX_RE.finditer(text))):
        if match.group(1) != "{":
            token = text[match.end():].split(None, 1)
            value = token[0].rstrip(".$") if token else ""
            if value:
                return value
            continue
        content = _balanced(text, match.end())
        if content is not None:
            content = content.strip()
            if content:
                return content
    return None


def _balanced(text: str, start: int) -> str | None:
    depth = 1
    for i in range(start, len(text)):
        ch = text[i]
        if ch == "{" and text[i - 1] != "\\":
            depth += 1
        elif ch == "}" and text[i - 1] != "\\":
            depth -= 1
            if depth == 0:
                return text[start:i]
    return None
