"""The lightweight push agent, ``opsctl-agent``.

It runs on a monitored host, collects the host's load, memory, filesystems, disks and
network counters with psutil (and optionally runs local Nagios plugins), writes every batch
to an SQLite spool first and pushes it from there to the opsctl server's
``/api/v1/agent/push``. It must stay small: it imports nothing from ``opsctl`` (not the
server, the store or the reports) and none of pydantic, SQLAlchemy, Typer or Rich.

Modules: ``config`` (YAML file, flags, environment), ``collect`` (psutil samples and host
facts), ``local_checks`` (plugins), ``spool`` (the write-ahead SQLite queue), ``push`` (HTTP
and backoff), ``loop`` (the collect/deliver loop) and ``cli`` (the ``opsctl-agent`` command).
"""

#: The agent's version, sent in every push's facts (kept equal to the project's by a test).
__version__ = "0.1.0"
