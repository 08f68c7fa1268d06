"""The Responses API server's framework-free core: runs, models and (later) routes; the transports import it.

Nothing here is public API: :mod:`responsestore.wsgi` re-exports what users need (``make_app``, ``echo``,
``Generate`` and what a model yields: ``Usage``, ``FunctionCall``, ``ArgumentsDelta``, ``Incomplete``).
"""
