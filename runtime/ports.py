"""Checking that the ports the stack binds are free, before anything starts."""

from __future__ import annotations

import errno
import socket


class PortUnavailable(RuntimeError):
    """A port the stack must bind cannot be bound; the message is one line."""

    def __init__(self, host: str, port: int, variable_name: str | None, reason: str) -> None:
        hint = f"; set {variable_name} to use another port" if variable_name else ""
        super().__init__(f"port {port} on {host} {reason}{hint}")
        self.host = host
        self.port = port
        self.variable_name = variable_name


class PortInUse(PortUnavailable):
    """Another process already listens on the port."""

    def __init__(self, host: str, port: int, variable_name: str | None) -> None:
        super().__init__(host, port, variable_name, "is already in use")


def ensure_port_free(host: str, port: int, variable_name: str | None = None) -> None:
    """Raise PortInUse (or PortUnavailable) unless `host:port` can be bound now.

    `variable_name` is the SAGALINE_* setting that moves the port; the message names it.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # Servers set SO_REUSEADDR too, so a port held only by TIME_WAIT counts as free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise PortInUse(host, port, variable_name) from None
            reason = f"cannot be bound ({error.strerror or error})"
            raise PortUnavailable(host, port, variable_name, reason) from None


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on right now (for tests picking their own ports)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port
