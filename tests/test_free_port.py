"""free_tcp_port: the helper every loopback test and the bench use to pick endpoints."""

from __future__ import annotations

import socket

from streamer.bench import free_tcp_port


def test_never_hands_out_a_port_twice() -> None:
    # CI once got the same port for publish and control from two calls in a row.
    ports = [free_tcp_port() for _ in range(300)]
    assert len(set(ports)) == len(ports)


def test_port_is_bindable() -> None:
    port = free_tcp_port()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", port))
