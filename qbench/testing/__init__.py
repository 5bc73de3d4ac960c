"""Conformance checks for plugin authors.

Run them in your own test suite::

    from qbench.testing import check_quantizer
    def test_my_quantizer():
        check_quantizer("myq", dim=8)
    def test_my_logger(tmp_path):
        check_logger("mytracker", tmp_path)
    def test_my_search_space():
        check_search_space("myq", rates=(8, 10))

qbench's own tests run them over every registered plugin.
"""

from __future__ import annotations

import warnings

from qbench.testing._space import check_search_space


def __getattr__(name):
    # imported lazily: the checks need torch, ``import qbench.testing`` does not
    if name in ("check_quantizer",):
        # deferred: loads torch only when this runs
        from qbench.testing import _quantizer

        return getattr(_quantizer, name)
    if name in ("check_logger",):
        # deferred: loads numpy only when this runs
        from qbench.testing import _logger

        return getattr(_logger, name)
    if name in ("check_metric",):
        # deferred: loads torch only when this runs
        from qbench.testing import _metric

        return getattr(_metric, name)
    raise AttributeError(name)


def _renamed_keyword(regs, options: dict):
    """``registries=`` was renamed ``regs=`` (it shadowed ``qbench.registries``); the old keyword works for one release."""
    if "registries" not in options:
        return regs
    warnings.warn("the keyword registries= of qbench.testing's checks is now regs=", FutureWarning, stacklevel=3)
    return options.pop("registries")


__all__ = ["check_quantizer", "check_metric", "check_logger", "check_search_space"]
