"""secrets-agent: resolve AWS secrets into the environment, then exec or supervise a command."""

__version__ = "0.1.0"
