from __future__ import annotations

import socket
from pathlib import Path

import pytest

from runtime import ports
from runtime.ports import PortInUse, ensure_port_free, free_port, free_ports


def test_a_port_someone_listens_on_is_reported_in_one_line_naming_the_variable() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]

        with pytest.raises(PortInUse) as raised:
            ensure_port_free("127.0.0.1", port, "SAGALINE_API_PORT")

    assert str(raised.value) == (
        f"port {port} on 127.0.0.1 is already in use; set SAGALINE_API_PORT to use another port"
    )
    assert raised.value.port == port
    assert raised.value.variable_name == "SAGALINE_API_PORT"


def test_a_port_nobody_listens_on_passes_the_check() -> None:
    ensure_port_free("127.0.0.1", free_port(), "SAGALINE_API_PORT")


def test_picked_ports_are_distinct_bindable_and_outside_the_ephemeral_range() -> None:
    low, high = ports._ephemeral_range()

    picked = free_ports(30)

    assert len(set(picked)) == 30
    for port in picked:
        assert not low <= port <= high
        assert port >= ports.LOWEST_PICKED
        ensure_port_free("127.0.0.1", port)


def test_a_port_someone_listens_on_is_never_picked(monkeypatch: pytest.MonkeyPatch) -> None:
    taken = free_port()
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", taken))
        listener.listen()
        monkeypatch.setattr(ports, "_outside_ephemeral", lambda: [taken])

        with pytest.raises(ports.PortUnavailable):
            free_port()


def test_an_ephemeral_range_of_nearly_every_port_falls_back_to_the_kernels_choice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wide = tmp_path / "ip_local_port_range"
    wide.write_text("1024\t65000\n")
    monkeypatch.setattr(ports, "EPHEMERAL_RANGE", wide)

    port = free_port()

    assert 1024 <= port <= 65000
    ensure_port_free("127.0.0.1", port)
