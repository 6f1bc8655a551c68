"""Binding the socket and running uvicorn; loopback checks for the command's security rule."""

from __future__ import annotations

import ipaddress
import socket
from typing import Callable

import uvicorn

from r2r_local.errors import ConfigError


def is_loopback(host: str) -> bool:
    """Whether `host` only accepts connections from this machine: a loopback address, or
    "localhost". Any other name counts as reachable from outside."""
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int) -> socket.socket:
    """A listening-ready TCP socket on host:port (port 0: a free port the system picks)."""
    try:
        family, kind, proto, _, addr = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM,
                                                          flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as e:
        raise ConfigError(f"--host {host}: cannot resolve it ({e.strerror})") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
    except OSError as e:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port} ({e.strerror or e})") from None
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class _Server(uvicorn.Server):
    """uvicorn's server, which also stops running generations as soon as a shutdown begins
    (Ctrl-C, SIGTERM), instead of waiting for them to run out. A stop asked for by a signal is
    the normal end of a server: it is not raised again once the shutdown is done (exit status 0)."""

    def __init__(self, config: uvicorn.Config, on_exit: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_exit = on_exit

    def handle_exit(self, sig: int, frame: object) -> None:
        self._on_exit()
        super().handle_exit(sig, frame)
        captured = getattr(self, "_captured_signals", None)  # uvicorn >= 0.29 raises them again after shutdown
        if isinstance(captured, list):
            captured.clear()


def run(app: object, sock: socket.socket, on_exit: Callable[[], None], verbose: bool) -> None:
    """Serve `app` on `sock` until interrupted; access lines only with `verbose`."""
    config = uvicorn.Config(app, log_level="info" if verbose else "warning", access_log=verbose,  # type: ignore[arg-type]
                            lifespan="on", timeout_graceful_shutdown=5, server_header=False)
    _Server(config, on_exit).run(sockets=[sock])
