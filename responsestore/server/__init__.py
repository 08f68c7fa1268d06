"""The Responses API server's framework-free core, which every transport (``responsestore.wsgi``) drives.

- ``_requests``: request bodies in, checked requests out (one validator per body); ``_routes``: the route table;
  ``_errors``: OpenAI's error shape; ``_http``: request ids and CORS;
- ``_models``: ``generate``, ``echo`` and the model registry; ``_compaction`` and ``_tokens``: compaction and
  input token counts with their defaults; ``_context``: the chain a request continues;
- ``_runs`` and ``_reply``: runs, which own a response from queued to terminal, in the threads of ``_pool``;
  ``_streams``: the bound on open streams; ``_logs``: logging with the request id.

Nothing here is public API: :mod:`responsestore.wsgi` re-exports what users need (``make_app``, ``echo``,
``Generate``, ``Compact``, ``CountTokens``, and what a model yields: ``Usage``, ``FunctionCall``, ``ArgumentsDelta``,
``Incomplete``).
"""
