"""The HTTP viewer, exercised by a client no one here wrote: OpenCV's FFmpeg MJPEG reader."""

from __future__ import annotations

import json
import threading
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
