"""Griffe extension: sharpax's docstring conventions, rendered by the docs site.

Docstrings follow optax's template, which reads well in the source and in `help()`: math in
reStructuredText (`.. math::` blocks, :math:`x` roles) and a doctested `Example:` section. For mkdocs,
a math block becomes `$$ ... $$` display math (inside `gathered` when its lines are joined by `\\`), a
role becomes `\\( ... \\)`, both typeset by pymdownx.arithmatex and MathJax, and `Example:` is read as
the Google style's `Examples:` (so its doctests render as code). Any other reStructuredText directive is
reported as a warning, which fails the strict build rather than showing up literally on the page.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

logger = griffe.get_logger("griffe.sharpax_docstrings")

_BLOCK = re.compile(r"^(?P<indent>\s*)\.\. math::\s*(?P<rest>.*)$")
_DIRECTIVE = re.compile(r"^\s*\.\. [\w-]+::")
_ROLE = re.compile(r":math:`([^`]+)`")
_EXAMPLE = re.compile(r"^(\s*)Example:\s*$")


def _indent_of(line: str) -> int:
    return len(line) - len(line.lstrip())


def convert(text: str, where: str = "") -> str:
    """`text` with its math rewritten for pymdownx.arithmatex and `Example:` read as `Examples:`."""
    lines = text.splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        block = _BLOCK.match(lines[i])
        if block is None:
            if _DIRECTIVE.match(lines[i]):
                logger.warning(
                    "%s: unsupported reStructuredText directive %r", where, lines[i].strip()
                )
            line = _EXAMPLE.sub(r"\1Examples:", lines[i])
            out.append(_ROLE.sub(lambda m: rf"\({m.group(1)}\)", line))
            i += 1
            continue
        indent = block["indent"]
        body = [block["rest"]] if block["rest"] else []
        i += 1
        while i < len(lines) and (not lines[i].strip() or _indent_of(lines[i]) > len(indent)):
            body.append(lines[i].strip())
            i += 1
        trailing_blanks = 0
        while body and not body[-1]:
            body.pop()
            trailing_blanks += 1
        tex = [line for line in body if line]
        if any(line.rstrip().endswith("\\\\") for line in tex):
            tex = [r"\begin{gathered}", *tex, r"\end{gathered}"]
        if out and out[-1].strip():
            out.append("")
        out += [indent + "$$", *(indent + line for line in tex), indent + "$$", ""]
        out += [""] * max(trailing_blanks - 1, 0)
    return "\n".join(out)


class DocstringConventions(griffe.Extension):
    """Rewrite every docstring when griffe loads it, before mkdocstrings parses it."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = convert(obj.docstring.value, obj.path)
