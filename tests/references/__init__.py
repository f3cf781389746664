"""The outside references the tests check sharpax against, and the goldens they wrote.

One import root: `from tests.references import sam_references`, `from tests.references.torch_reference
import load_golden`. Each `make_*_goldens.py` regenerates its committed goldens (`.npz`) in this folder
(the torch.optim ones in `optimizers/`), run as a module from the repository root, e.g.
`python -m tests.references.make_torch_goldens` (see CONTRIBUTING.md). The other modules are the
problems and float64 transcriptions of the authors' rules that the generators and the live checks share;
none imports torch at module level, so the goldens are checked without it.
"""

from __future__ import annotations

from pathlib import Path

GOLDEN_DIR = Path(__file__).resolve().parent
"""The folder of the committed goldens."""
