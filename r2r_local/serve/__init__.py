"""`r2r serve`: routed decoding behind an OpenAI-compatible HTTP server (docs/serve.md).

protocol.py   the wire: pydantic request models and the response/chunk builders (OpenAI's names)
prompts.py    requests -> prompt tokens, limits and sampling (checked against the loaded pair)
think.py      splitting streamed text into the think section and the answer
scheduler.py  owns the loaded pair: one FIFO queue, a cancel per request, one worker thread
streams.py    a job's events -> OpenAI responses and SSE chunks
routes.py     the Starlette app: thin endpoints, API key, body limit
metrics.py    Prometheus metrics (prometheus_client)
errors.py     OpenAI error objects, built in one place
server.py     binding the socket and running uvicorn

Needs the `serve` extra (starlette, uvicorn, pydantic, prometheus_client); nothing here is
imported by `import r2r_local`.
"""
