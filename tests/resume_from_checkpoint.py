"""Run in a fresh process by `test_checkpoint.py`: restore a checkpoint, train on, write the results.

    python -m tests.resume_from_checkpoint CHECKPOINT_DIR OUT.npz [ENTRY ...]

Nothing is shared with the process that saved the checkpoint but the files and the code: the restore
target is built from `jax.eval_shape(tx.init, params)`, as a user restoring a run would.
"""

from __future__ import annotations

import sys

import jax
import numpy as np
import orbax.checkpoint as ocp

from tests import checkpoint_cases as cc


def main(checkpoint_dir: str, out_path: str, *entries: str) -> None:
    target = cc.abstract_checkpoint(entries or None)
    restored = ocp.StandardCheckpointer().restore(checkpoint_dir, target)
    cc.check_restored_shardings(restored)
    finished = cc.continue_training(restored)
    flat = {jax.tree_util.keystr(path): np.asarray(leaf) for path, leaf in cc.leaves(finished)}
    np.savez(out_path, **flat)


if __name__ == "__main__":
    main(*sys.argv[1:])
