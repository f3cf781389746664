"""Print pip constraints pinning every floor of pyproject.toml: `name>=X` becomes `name==X`.

The floors are those of the runtime dependencies and of the `test` extra; `.ci/run` installs the
package with them (`pip install -c <these> -e ".[test]"`) and runs the fast tests, so a declared
floor is one that passes.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

FLOOR = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?\s*>=\s*([^,;\s]+)\s*(;.*)?$")


def floor_pins(pyproject: Path) -> list[str]:
    project = tomllib.loads(pyproject.read_text())["project"]
    requirements = project["dependencies"] + project["optional-dependencies"]["test"]
    pins = []
    for requirement in requirements:
        match = FLOOR.match(requirement)
        if match is None:
            sys.exit(f"floor_constraints: {requirement!r} has no `>=` floor to test")
        name, _, version, marker = match.groups()
        pins.append(f"{name}=={version}{marker or ''}")
    return pins


if __name__ == "__main__":
    print("\n".join(floor_pins(Path(__file__).resolve().parent.parent / "pyproject.toml")))
