"""Deprecated path, kept for one release: ``qbench.runner`` moved to ``qbench.comparison.runner``.

Use the public API (``qbench.run``, ``qbench.load_tokenizer``, docs/python-api.md) or the new path.
"""

import warnings

from qbench.comparison.runner import *  # noqa: F403
from qbench.comparison.runner import resume_run, run_comparison  # noqa: F401

warnings.warn("Importing from qbench.runner is deprecated, please import via qbench.comparison.runner or the public API (qbench.run, "
              "qbench.load_tokenizer)", FutureWarning, stacklevel=2)
