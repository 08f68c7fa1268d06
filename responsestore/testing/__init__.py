"""Tools for testing code built on responsestore: a fake clock, assertion helpers, strategies and fixtures.

- :class:`FakeClock`, a settable, advanceable clock for any store's ``clock=``;
- assertion helpers: :func:`assert_legal_path`, :func:`assert_walked_once`, :func:`assert_valid_response`;
- :mod:`responsestore.testing.strategies`, hypothesis strategies for valid and invalid inputs and records
  (needs the ``testing`` extra);
- :mod:`responsestore.testing.plugin`, the pytest fixtures ``fake_clock``, ``response_store``,
  ``response_store_factory`` and ``sqlite_response_store`` (loaded automatically by pytest);
- :class:`responsestore.testing.contract.StoreContract`, the conformance suite for a backend.

Importing this package needs neither pytest nor hypothesis.
"""

from __future__ import annotations

from ._assertions import assert_legal_path, assert_valid_response, assert_walked_once
from ._clock import FakeClock

__all__ = ["FakeClock", "assert_legal_path", "assert_valid_response", "assert_walked_once"]
