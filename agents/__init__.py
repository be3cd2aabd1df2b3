"""The lightweight push agent (``opsctl-agent``). It must not import the server, the store or the reports."""
