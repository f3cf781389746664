"""mkdocs hook: fail the build when a public name of sharpax is rendered by no API page.

A public name is one in the `__all__` of `sharpax` or of one of its subpackages. It counts as rendered
when a page under docs/api/ has `::: sharpax.name`, `::: sharpax.sub.name`, or `::: sharpax.sub` (the
whole subpackage). Names that sharpax re-exports from other libraries (`chain` is `optax.chain`) and
the subpackages themselves are exempt. The sources are read with `ast`, so the docs build needs no jax.
"""

from __future__ import annotations

import ast
import logging
import re
from pathlib import Path
from typing import Any

log = logging.getLogger("mkdocs.hooks.api_coverage")

_DIRECTIVE = re.compile(r"^:::\s+([\w.]+)", re.MULTILINE)


def _public_names(init: Path) -> tuple[list[str], dict[str, str]]:
    """`__all__` of a package's `__init__.py`, and the module each name is imported from."""
    tree = ast.parse(init.read_text())
    names: list[str] = []
    origin: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                origin[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
        ):
            names = list(ast.literal_eval(node.value))
    return names, origin


def on_post_build(config: Any, **kwargs: Any) -> None:
    root = Path(config["config_file_path"]).parent
    api = Path(config["docs_dir"]) / "api"
    rendered = {m for page in api.glob("*.md") for m in _DIRECTIVE.findall(page.read_text())}
    package = root / "sharpax"
    subpackages = sorted(p.parent.name for p in package.glob("*/__init__.py"))
    missing: dict[tuple[str, str], str] = {}
    for prefix, init in [("sharpax", package / "__init__.py")] + [
        (f"sharpax.{sub}", package / sub / "__init__.py") for sub in subpackages
    ]:
        names, origin = _public_names(init)
        for name in names:
            source = origin.get(name, "")
            if name in subpackages or not source.startswith("sharpax"):
                continue
            # The subpackage a name belongs to: its own, or the one the top level imports it from.
            sub = prefix if prefix != "sharpax" else ".".join(source.split(".")[:2])
            candidates = {f"sharpax.{name}", f"{sub}.{name}", sub}
            if not candidates & rendered:
                missing.setdefault((sub, name), f"{prefix}.{name}")  # the top level first
    for path in sorted(missing.values()):
        log.warning(
            "%s is public but no page under docs/api/ renders it (add `::: %s`)", path, path
        )
