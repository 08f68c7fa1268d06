"""The public conformance suite for responsestore backends: subclass :class:`StoreContract` in a test module.

.. code-block:: python

    from responsestore.testing.contract import StoreContract

    class TestMyStore(StoreContract):
        def make_store(self, **options):
            return MyStore(**options)

pytest then collects every contract test (lifecycle, versions, owner scoping, paging, cursors of removed responses,
chains, item lookup, retention, capacity in bytes, events and event batches, leases, recency, close, concurrency
stress, bad input, the asyncio API and the hypothesis state machines) as methods of ``TestMyStore``. Importing this
module needs pytest and hypothesis (the ``testing`` extra).
"""

from __future__ import annotations

from ._suite.aio import AsyncTests
from ._suite.bad_input import BadInputTests
from ._suite.base import ContractBase, StoreFactory
from ._suite.byte_capacity import ByteCapacityTests
from ._suite.chain import ChainTests
from ._suite.close import CloseTests
from ._suite.concurrency import ConcurrencyTests
from ._suite.conversations import ConversationTests
from ._suite.create_get_delete import CreateGetDeleteTests
from ._suite.cursors import CursorMemoryTests
from ._suite.event_batches import EventBatchTests
from ._suite.events import EventTests
from ._suite.items import ItemLookupTests
from ._suite.leases import LeaseTests
from ._suite.lifecycle import LifecycleTests
from ._suite.ordering import OrderingTests
from ._suite.owner import OwnerTests
from ._suite.paging import PagingTests
from ._suite.recency import RecencyTests
from ._suite.retention import RetentionTests
from ._suite.retention_concurrency import RetentionConcurrencyTests
from ._suite.stateful import StatefulTests
from ._suite.stateful_events import StatefulEventTests

__all__ = ["ContractBase", "StoreContract", "StoreFactory"]


class StoreContract(
    CreateGetDeleteTests,
    LifecycleTests,
    OwnerTests,
    PagingTests,
    CursorMemoryTests,
    OrderingTests,
    ChainTests,
    ItemLookupTests,
    RetentionTests,
    EventTests,
    EventBatchTests,
    LeaseTests,
    ByteCapacityTests,
    ConversationTests,
    AsyncTests,
    BadInputTests,
    RecencyTests,
    CloseTests,
    ConcurrencyTests,
    RetentionConcurrencyTests,
    StatefulTests,
    StatefulEventTests,
):
    """The whole conformance suite; a backend's test class subclasses it and defines :meth:`make_store`.

    ``make_store(self, **options)`` returns a fresh, empty, independent store each call, passing ``options``
    (``clock``, ``ttl``, ``max_records``, ``max_bytes``, ``max_chain_depth``, ...) to the constructor. A backend
    keeping files can put them in :meth:`~ContractBase.scratch_directory`.

    Class attributes tune the run (see :class:`ContractBase` for each): :attr:`~ContractBase.fast_options`
    (constructor options for the property and stress tests, such as a relaxed fsync), :attr:`~ContractBase.weight`
    (how many times fewer examples and operations those tests run), :attr:`~ContractBase.max_examples` (an exact
    example count for every property test and state machine), :attr:`~ContractBase.deadline` (hypothesis'
    per-example deadline, ``None`` by default), :attr:`~ContractBase.hypothesis_settings` (further
    ``hypothesis.settings``, winning over the suite's) and :attr:`~ContractBase.time_limit` (how long one test may
    wait on threads, waits and streams before it fails naming what it waited for).

    Every store a test opens through the fixtures is checked with ``_check()`` and closed afterwards; every store a
    hypothesis example opens is checked and closed at the end of that example.
    """
