"""Docstring text shared between public functions: written once, filled into each `{slot}` line."""

from __future__ import annotations

import re
import textwrap
from collections.abc import Callable


def doc_filler(slots: dict[str, str]) -> Callable[[Callable], Callable]:
    """A decorator replacing each `{slot}` line of a docstring with `slots[slot]`, indented like it."""

    def fill(fn: Callable) -> Callable:
        doc = fn.__doc__ or ""
        for slot, text in slots.items():
            doc = re.sub(
                r"^([ ]*)\{" + slot + r"\}$",
                lambda match, text=text: textwrap.indent(text, match.group(1)),
                doc,
                flags=re.MULTILINE,
            )
        fn.__doc__ = doc
        return fn

    return fill
