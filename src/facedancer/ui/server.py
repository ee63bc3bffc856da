"""Serve the app with uvicorn on a socket bound first: ``--port 0`` picks a free port, the printed address
is the real one, and a port in use is one line before anything else is set up."""

from __future__ import annotations

import socket

import uvicorn
from starlette.applications import Starlette

from facedancer.errors import ConfigError
from facedancer.io.failures import reason


def listen(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (IPv4 or IPv6); ConfigError when it cannot be had."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as e:
        raise ConfigError(f"cannot listen on {host}:{port}: {reason(e)}") from None
    return sock


def url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}/" if sock.family == socket.AF_INET6 else f"http://{host}:{port}/"


def serve(app: Starlette, sock: socket.socket) -> None:
    """Run ``app`` on a socket from :func:`listen` until interrupted."""
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=5))
    server.run(sockets=[sock])
