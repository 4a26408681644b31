from __future__ import annotations

import socket

import pytest

from runtime.ports import PortInUse, ensure_port_free, free_port


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
