"""The built-in check kinds, one module each, registered under the ``opsctl.checks`` entry-point group."""
