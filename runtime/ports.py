"""Checking that the ports the stack binds are free, before anything starts, and picking free
ones for stacks started on ports of their own (tests, benchmarks, the chaos suite)."""

from __future__ import annotations

import errno
import random
import socket
from pathlib import Path

EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
"""Where Linux keeps the range it hands out for outgoing connections and for binds to port 0."""
DEFAULT_EPHEMERAL = (32768, 60999)
"""Linux's default range, assumed where the file cannot be read."""
LOWEST_PICKED = 20000
"""Picked ports start here, above the well-known and registered ports services default to."""
PICK_ATTEMPTS = 200
MIN_CANDIDATES = 1000
"""Fewer ports than this outside the ephemeral range, and ports are picked inside it."""


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
    """A port nobody listens on right now, outside the ephemeral range where possible.

    A port picked now is bound later, after other processes have started. Had it come from
    the ephemeral range (a bind to port 0), any of them could take it meanwhile: an outgoing
    connection, or a server choosing its own internal ports the same way (Temporal's dev
    server does). Outside that range only a process naming the port can.
    """
    return free_ports(1, host)[0]


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """`count` different ports nobody listens on right now (see `free_port`)."""
    candidates = _outside_ephemeral()
    chosen: list[int] = []
    for _ in range(PICK_ATTEMPTS * count):
        if len(chosen) == count:
            return chosen
        port = random.choice(candidates) if candidates else _any_free(host)
        if port not in chosen and _bindable(host, port):
            chosen.append(port)
    if len(chosen) == count:
        return chosen
    raise PortUnavailable(host, 0, None, f"found {len(chosen)} of {count} free ports")


def _outside_ephemeral() -> list[int]:
    """Ports from LOWEST_PICKED up that the kernel never hands out by itself; none when that
    leaves too few to pick from."""
    low, high = _ephemeral_range()
    ports = [*range(LOWEST_PICKED, low), *range(max(LOWEST_PICKED, high + 1), 65536)]
    return ports if len(ports) >= MIN_CANDIDATES else []


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = EPHEMERAL_RANGE.read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return DEFAULT_EPHEMERAL


def _bindable(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
        return True


def _any_free(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port
