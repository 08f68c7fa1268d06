"""The conformance suite's parts, one mixin class per subject; :class:`responsestore.testing.contract.StoreContract`
combines them. Needs pytest and hypothesis.
"""
