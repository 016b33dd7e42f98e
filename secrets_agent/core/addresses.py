"""SECRETS_AGENT_LISTEN's grammar: ``tcp://HOST:PORT`` (``tcp://[::1]:PORT``) and
``unix:///PATH``, comma-separated. Pure: the settings read it; ``process.listen`` binds."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass

#: At most this many addresses.
MAX_ADDRESSES = 16


@dataclass(frozen=True)
class Address:
    """One parsed address: ``family`` is ``tcp`` or ``unix``; ``host``/``port`` or ``path``."""

    text: str
    family: str
    host: str = ""
    port: int = 0
    path: str = ""

    @property
    def fd_name(self) -> str:
        """Its LISTEN_FDNAMES entry (no ``:``, which separates them)."""
        if self.family == "unix":
            return "unix-" + os.path.basename(self.path)
        return f"tcp-{self.host}-{self.port}".replace(":", ".")


def _one(text: str) -> Address:
    if text.startswith("unix://"):
        path = text[len("unix://") :]
        if not path.startswith("/") or "\0" in path or len(os.fsencode(path)) > 107:
            raise ValueError(
                f"{text!r}: a unix socket is unix:///absolute/path (107 bytes at most)"
            )
        return Address(text, "unix", path=path)
    if not text.startswith("tcp://"):
        raise ValueError(f"{text!r}: use tcp://HOST:PORT (tcp://0.0.0.0:3000) or unix:///PATH")
    rest = text[len("tcp://") :]
    host, sep, port_text = rest.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        version = 6
    else:
        version = 4
    try:
        parsed = ipaddress.ip_address(host)
    except ValueError:
        parsed = None
    if not sep or parsed is None or parsed.version != version:
        raise ValueError(
            f"{text!r}: the host is an IP address (0.0.0.0, 127.0.0.1, [::]), as puma's bind has it"
        )
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"{text!r}: the port is a number from 1 to 65535")
    return Address(text, "tcp", host=host, port=int(port_text))


def parse_addresses(value: str) -> tuple[Address, ...]:
    """The comma-separated addresses; ``ValueError`` says, in words, what is wrong."""
    entries = [part.strip() for part in value.split(",")]
    if any(not entry for entry in entries):
        raise ValueError("an entry is empty; separate the addresses with single commas")
    if len(entries) > MAX_ADDRESSES:
        raise ValueError(f"at most {MAX_ADDRESSES} addresses")
    addresses = tuple(_one(entry) for entry in entries)
    keys = [(a.family, a.host, a.port, a.path) for a in addresses]
    if len(set(keys)) != len(keys):
        raise ValueError("an address is listed twice")
    return addresses
