"""The HTTP viewer, exercised by a client no one here wrote: OpenCV's FFmpeg MJPEG reader."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
import urllib.request
from dataclasses import replace
from pathlib import Path

import cv2
import pytest

from streamer.bench import free_tcp_port
from streamer.config import ServeConfig
from streamer.daemon import build_pipeline
from streamer.http_view import serve_http


def _get(url: str | urllib.request.Request) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as r:
        body: bytes = r.read()
        return body


def test_opencv_reads_the_mjpeg_stream_and_the_page_controls_the_daemon(tiny_model: Path) -> None:
    cfg = replace(ServeConfig(model=str(tiny_model), width=96, height=64, fps=20),
                  publish=f"tcp://127.0.0.1:{free_tcp_port()}", control=f"tcp://127.0.0.1:{free_tcp_port()}")
    pipe = build_pipeline(cfg)
    runner = threading.Thread(target=pipe.run)
    runner.start()
    port, stop = free_tcp_port(), threading.Event()
    http = threading.Thread(target=serve_http, args=("127.0.0.1", port, cfg.publish, cfg.control, "frame.stylised", stop))
    http.start()
    base = f"http://127.0.0.1:{port}"
    try:
        assert pipe.first_published.wait(60)
        cap = cv2.VideoCapture(f"{base}/stream.mjpg", cv2.CAP_FFMPEG, [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, 10000, cv2.CAP_PROP_READ_TIMEOUT_MSEC, 10000])
        assert cap.isOpened()
        frames = [cap.read() for _ in range(5)]
        cap.release()
        assert all(ok and f.shape == (64, 96, 3) for ok, f in frames)
        page = _get(f"{base}/").decode()
        assert '<img src="/stream.mjpg"' in page and "set_style" in page
        for path, ctype in (("/", "text/html"), ("/stream.mjpg", "multipart/x-mixed-replace")):  # HEAD was a 501
            with urllib.request.urlopen(urllib.request.Request(base + path, method="HEAD"), timeout=10) as r:
                assert r.status == 200 and r.headers["Content-Type"].startswith(ctype) and r.read() == b""
        state = json.loads(_get(f"{base}/state"))
        assert state["styles"] == ["style_a", "style_b"]
        body = json.dumps({"cmd": "set_style", "style": "style_b"}).encode()
        req = urllib.request.Request(f"{base}/control", data=body, method="POST", headers={"Content-Type": "application/json", "Origin": base})
        reply = json.loads(_get(req))
        assert reply["ok"] and reply["state"]["style"]["style_b"] == 1.0
        # what a page on another site can send without a CORS preflight, or with a foreign Origin: refused
        for headers in ({"Content-Type": "text/plain"}, {"Content-Type": "application/json", "Origin": "http://evil.example"}):
            with pytest.raises(urllib.error.HTTPError) as e:
                _get(urllib.request.Request(f"{base}/control", data=json.dumps({"cmd": "set_strength", "value": 0.1}).encode(), method="POST", headers=headers))
            assert e.value.code == 403
            e.value.close()
        from streamer.client import request

        assert request(cfg.control, {"cmd": "status"}, timeout=10)["state"]["strength"] == 1.0  # not 0.1
        big = urllib.request.Request(f"{base}/control", data=b"x" * 5000, method="POST", headers={"Content-Type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as e:
            _get(big)
        assert e.value.code == 413
        e.value.close()
    finally:
        stop.set()
        http.join(10)
        pipe.stop()
        runner.join(30)
    assert not http.is_alive()


def test_control_refusal_rules() -> None:
    from streamer.http_view import control_refusal

    ok = {"Content-Type": "application/json; charset=utf-8", "Host": "10.0.0.5:8080", "Origin": "http://10.0.0.5:8080"}
    assert control_refusal(ok, True) is None
    assert control_refusal({k: v for k, v in ok.items() if k != "Origin"}, True) is None  # curl, scripts
    assert "off on this viewer" in (control_refusal(ok, False) or "")
    assert "Content-Type" in (control_refusal({**ok, "Content-Type": "text/plain"}, True) or "")
    assert "not accepted" in (control_refusal({**ok, "Origin": "https://10.0.0.5:8080.evil.example"}, True) or "")


def _viewer(**kwargs: object) -> tuple[str, int, threading.Event, threading.Thread]:
    """A viewer on loopback whose daemon is absent: the page and the refusals need none."""
    port, stop = free_tcp_port(), threading.Event()
    args = ("127.0.0.1", port, f"tcp://127.0.0.1:{free_tcp_port()}", f"tcp://127.0.0.1:{free_tcp_port()}", "frame.stylised", stop)
    t = threading.Thread(target=serve_http, args=args, kwargs=kwargs, daemon=True)
    t.start()
    for _ in range(100):  # until it listens
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.05)
    return f"http://127.0.0.1:{port}", port, stop, t


def _status(port: int, method: str, path: str, host: str, extra: dict[str, str] | None = None, body: bytes = b"") -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.putrequest(method, path, skip_host=True)
        for k, v in {"Host": host, **(extra or {})}.items():
            conn.putheader(k, v)
        if body:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body or None)
        return conn.getresponse().status
    finally:
        conn.close()


def test_a_dns_rebinding_page_is_refused_before_anything_is_served() -> None:
    """A page on evil.example whose name now resolves to 127.0.0.1 sends Host and Origin
    evil.example: the old check (Origin against Host) let it drive and watch the daemon."""
    _, port, stop, t = _viewer(names=["studio.lan"])
    evil = f"evil.example:{port}"
    control = json.dumps({"cmd": "set_strength", "value": 0.1}).encode()
    try:
        for path in ("/", "/state", "/stream.mjpg"):
            assert _status(port, "GET", path, evil) == 421
        assert _status(port, "POST", "/control", evil, {"Content-Type": "application/json", "Origin": f"http://{evil}"}, control) == 421
        for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"studio.lan:{port}", "localhost"):
            assert _status(port, "GET", "/", host) == 200, host
        assert _status(port, "GET", "/", "127.0.0.1:1") == 421  # another port's name
    finally:
        stop.set()
        t.join(10)


def test_host_refusal_rules() -> None:
    from streamer.http_view import host_refusal

    assert host_refusal(None, "127.0.0.1", 8080) is None  # HTTP/1.0 tools
    assert host_refusal("10.0.0.5:8080", "10.0.0.5", 8080) is None  # the address the client reached
    assert host_refusal("[::1]:8080", "::1", 8080) is None
    assert host_refusal("LOCALHOST:8080", "127.0.0.1", 8080) is None
    assert "not an address" in (host_refusal("10.0.0.6:8080", "10.0.0.5", 8080) or "")
    assert "--http-name" in (host_refusal("evil.example:8080", "127.0.0.1", 8080) or "")
    assert host_refusal("cam.lan:8080", "10.0.0.5", 8080, ["cam.lan"]) is None


def test_slow_clients_time_out_and_cannot_hold_every_thread() -> None:
    """200 connections that send headers and one byte of a POST body, then nothing: before,
    each held a thread and a descriptor for ever. Now the extras are answered 503 at once, the
    rest are closed after the client timeout, and the page is served again."""
    base, port, stop, t = _viewer(timeout=1.0, max_clients=16)
    threads_before = threading.active_count()
    slow = []
    try:
        for _ in range(200):
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            s.sendall(f"POST /control HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: 50\r\n\r\n{{".encode())
            slow.append(s)
        assert threading.active_count() <= threads_before + 16 + 2
        deadline = time.monotonic() + 8
        for s in slow:  # every one is answered (503) or closed by the viewer, none held
            s.settimeout(max(0.1, deadline - time.monotonic()))
            try:
                while s.recv(4096):
                    pass
            except ConnectionResetError:
                pass
        assert time.monotonic() < deadline
        assert _get(base + "/").startswith(b"<!doctype html>")
    finally:
        for s in slow:
            s.close()
        stop.set()
        t.join(10)


def test_a_bad_control_body_is_a_4xx_and_no_daemon_is_a_504() -> None:
    _, port, stop, t = _viewer()
    host, ctype = f"127.0.0.1:{port}", {"Content-Type": "application/json"}
    try:
        assert _status(port, "POST", "/control", host, ctype, b"{not json") == 400  # was 200 with ok: false
        assert _status(port, "POST", "/control", host, ctype, b"\xff\xfe") == 400
        assert _status(port, "POST", "/control", host, ctype, b'{"cmd": "status"}') == 504  # nobody answered in 3 s
    finally:
        stop.set()
        t.join(10)
