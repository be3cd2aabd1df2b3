"""``opsctl server``: the HTTP API that agents and dispenser vendors push to, the Prometheus
``/metrics`` endpoint, and the scheduler that runs the inventory's checks and cron jobs.

Import lazily: FastAPI and uvicorn are only needed when serving.
"""
