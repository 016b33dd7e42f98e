"""secrets-agent: resolve AWS secrets into the environment, then exec or supervise a command."""

#: The one place the version is written: pyproject.toml reads it (setuptools' dynamic version),
#: and ``--version``, the resolution's summary line, the error line and the EMF documents say it.
__version__ = "0.2.0"
