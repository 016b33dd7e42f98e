"""One HTTP GET bounded as a whole: connecting, the headers and the body within one deadline.

A socket timeout bounds each read, not the exchange: an endpoint that sends one byte a second
keeps every read under any timeout and the whole answer as long as it likes. The task metadata
reads (metrics' task family, the restart spread's task ARN, redeploy's service) run before the
command starts; each goes through :func:`get`, which gives up at its deadline and shuts the
connection down so that the reading thread ends too.
"""

from __future__ import annotations

import http.client
import signal
import socket
import threading
import urllib.parse


def get(url: str, *, timeout: float, max_bytes: int) -> bytes:
    """The body of ``GET url`` (never through a proxy), at most ``max_bytes + 1`` bytes read.

    Raises ``TimeoutError`` when the whole exchange is not over within ``timeout`` seconds,
    ``OSError`` for a failed connection, a broken answer or a status other than 200, and
    ``ValueError`` for a URL that is not http(s).
    """
    connection, target = _connection(url, timeout)
    outcome: list[bytes | BaseException] = []

    def fetch() -> None:
        try:
            connection.request("GET", target)
            response = connection.getresponse()
            if response.status != 200:
                raise OSError(f"HTTP {response.status}")
            outcome.append(response.read(max_bytes + 1))
        except http.client.HTTPException as exc:
            outcome.append(OSError(type(exc).__name__))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            outcome.append(exc)

    thread = threading.Thread(target=fetch, name="secrets-agent-metadata", daemon=True)
    _start_with_signals_blocked(thread)
    thread.join(timeout)
    if thread.is_alive():
        sock = connection.sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)  # the thread's read returns at once
            except OSError:
                pass
        raise TimeoutError(f"no whole answer within {timeout:g}s")
    connection.close()
    result = outcome[0]
    if isinstance(result, BaseException):
        raise result
    return result


def _connection(url: str, timeout: float) -> tuple[http.client.HTTPConnection, str]:
    """A connection (not yet open) to the URL's host, and the request target; ValueError."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("not an http(s) URL")
    connection_class = (
        http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    )
    connection = connection_class(parts.hostname, parts.port, timeout=max(timeout, 0.001))
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    return connection, target


def _start_with_signals_blocked(thread: threading.Thread) -> None:
    # Started with every signal blocked: the supervisor reads its signals with sigtimedwait.
    old = signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
    try:
        thread.start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
