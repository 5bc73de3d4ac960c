"""Deprecated path, kept for one release: ``qbench.identity`` moved to ``qbench.recipe.identity``.

Use the public API (``qbench.run``, ``qbench.load_tokenizer``, docs/python-api.md) or the new path.
"""

import warnings

from qbench.recipe.identity import *  # noqa: F403
from qbench.recipe.identity import RunIdentity, resolve  # noqa: F401

warnings.warn("Importing from qbench.identity is deprecated, please import via qbench.recipe.identity or the public API (qbench.run, "
              "qbench.load_tokenizer)", FutureWarning, stacklevel=2)
