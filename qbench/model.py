"""Deprecated path, kept for one release: ``qbench.model`` moved to ``qbench.engine.model``.

Use the public API (``qbench.run``, ``qbench.load_tokenizer``, docs/python-api.md) or the new path.
"""

import warnings

from qbench.engine.model import *  # noqa: F403
from qbench.engine.model import build_tokenizer, load_tokenizer  # noqa: F401

warnings.warn("Importing from qbench.model is deprecated, please import via qbench.engine.model or the public API (qbench.run, "
              "qbench.load_tokenizer)", FutureWarning, stacklevel=2)
