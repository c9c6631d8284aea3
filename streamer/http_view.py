"""``stylecast view --http HOST:PORT``: the live stream as MJPEG plus a small control page, so a
browser, VLC, ffmpeg or OpenCV can watch it.

    GET  /             the page: the stream, style buttons, strength and stabilise sliders
    GET  /stream.mjpg  multipart/x-mixed-replace JPEG stream of frame.stylised (or overlay)
    GET  /state        the daemon's last meta.state message as JSON
    POST /control      a control request (JSON, ≤ 4096 bytes), forwarded to the REP socket;
                       only with ``Content-Type: application/json`` and no foreign ``Origin``
                       (so another web page open in the browser cannot drive it), and only
                       when control is allowed (by default: when bound to loopback)

One subscriber thread keeps only the newest frame, JPEG-encoded once, for every HTTP client.
"""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import cv2

from streamer.client import Subscriber, request
from streamer.controls import MAX_REQUEST_BYTES
from streamer.wire import TOPIC_STATE

log = logging.getLogger(__name__)
BOUNDARY = "stylecastframe"


class LatestFrame:
    """The newest JPEG and a sequence number; readers wait for a newer one."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.jpeg: bytes = b""
        self.seq = 0
        self.state: dict[str, Any] = {}

    def put(self, jpeg: bytes) -> None:
        with self._cond:
            self.jpeg, self.seq = jpeg, self.seq + 1
            self._cond.notify_all()

    def wait_newer(self, seq: int, timeout: float) -> tuple[int, bytes]:
        with self._cond:
            self._cond.wait_for(lambda: self.seq > seq, timeout)
            return self.seq, self.jpeg


def subscribe_loop(endpoint: str, topic: str, latest: LatestFrame, stop: threading.Event, quality: int = 80) -> None:
    with Subscriber(endpoint, topics=[topic + "\x00", TOPIC_STATE + "\x00"]) as sub:
        while not stop.is_set():
            msg = sub.recv(0.5)
            if msg is None:
                continue
            if msg.topic == TOPIC_STATE:
                latest.state = msg.header
            elif msg.image is not None:
                ok, buf = cv2.imencode(".jpg", msg.image, [cv2.IMWRITE_JPEG_QUALITY, quality])
                if ok:
                    latest.put(buf.tobytes())


PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>stylecast</title>
<style>body{font-family:sans-serif;background:#111;color:#eee;margin:0;padding:1em}
img{max-width:100%;border:1px solid #444;display:block;margin-bottom:.8em}
button{margin:.2em;padding:.4em .8em;background:#333;color:#eee;border:1px solid #666;border-radius:4px;cursor:pointer}
button.on{background:#2a6;border-color:#2a6} label{margin-right:1em} #msg{color:#f88;min-height:1.2em}</style></head>
<body><h2>stylecast — live</h2><img src="/stream.mjpg" alt="live stream">
<div id="styles"></div>
<label>strength <input id="strength" type="range" min="0" max="1" step="0.05" value="1"></label>
<label>stabilise <input id="stabilise" type="range" min="0" max="0.95" step="0.05" value="0.6"></label>
<label>mode <select id="mode"><option>stylised</option><option>side_by_side</option><option>attention</option></select></label>
<div id="msg"></div>
<script>
async function ctl(req){const r=await fetch('/control',{method:'POST',headers:{'Content-Type':'application/json'},body:JSON.stringify(req)});const j=await r.json();
 document.getElementById('msg').textContent=j.ok?'':j.error; if(j.ok) show(j.state); return j;}
function show(state){for(const b of document.querySelectorAll('#styles button')) b.className=(state.style[b.textContent]||0)>0.5?'on':'';
 document.getElementById('strength').value=state.strength; document.getElementById('mode').value=state.mode||'stylised';
 if(state.stabilise!==undefined) document.getElementById('stabilise').value=state.stabilise;}
async function init(){const s=await (await fetch('/state')).json(); const box=document.getElementById('styles');
 for(const name of (s.styles||[])){const b=document.createElement('button');b.textContent=name;b.onclick=()=>ctl({cmd:'set_style',style:name});box.appendChild(b);}
 if(s.state) show(s.state);}
document.getElementById('strength').onchange=e=>ctl({cmd:'set_strength',value:parseFloat(e.target.value)});
document.getElementById('mode').onchange=e=>ctl({cmd:'set_mode',mode:e.target.value});
document.getElementById('stabilise').onchange=e=>ctl({cmd:'set_stabilise',value:parseFloat(e.target.value)});
init();
</script></body></html>
"""


def control_refusal(headers: Any, allow_control: bool) -> str | None:
    """Why a POST /control with these request headers is refused (None: it is not).

    A cross-site form or ``fetch`` can POST text/plain without a CORS preflight, but not
    application/json, and a browser always names the page's origin in ``Origin``: so requiring
    the one and a same-host (or absent) other keeps pages on other sites from driving the daemon."""
    if not allow_control:
        return "control is off on this viewer (it is served beyond loopback, where anyone could use it; --http-control turns it on)"
    if headers.get("Content-Type", "").split(";")[0].strip().lower() != "application/json":
        return "Content-Type must be application/json"
    origin = headers.get("Origin")
    if origin is not None and origin.split("://", 1)[-1] != headers.get("Host", ""):
        return f"requests from {origin} are not accepted"
    return None


def make_handler(latest: LatestFrame, control: str, stop: threading.Event, allow_control: bool = True) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "stylecast"

        def log_message(self, fmt: str, *args: Any) -> None:
            log.debug("http %s " + fmt, self.address_string(), *args)

        def _send(self, code: int, body: bytes, ctype: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def do_HEAD(self) -> None:  # noqa: N802: what GET would answer, headers only (link checkers, curl -I)
            self.do_GET()

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            if self.path in ("/", "/index.html"):
                self._send(200, PAGE.encode(), "text/html; charset=utf-8")
            elif self.path == "/state":
                self._send(200, json.dumps(self._state()).encode(), "application/json")
            elif self.path.split("?")[0] == "/stream.mjpg":
                self._stream()
            else:
                self._send(404, b"not found\n", "text/plain")

        def _state(self) -> dict[str, Any]:
            """The last meta.state message; before one has arrived, the same asked of the daemon."""
            if latest.state:
                return latest.state
            try:
                reply = request(control, {"cmd": "status"}, timeout=3.0)
            except TimeoutError:
                return {}
            return {"state": reply["state"], "styles": list(reply["state"]["style"])} if reply.get("ok") else {}

        def _stream(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            if self.command == "HEAD":
                return
            seq = 0
            try:
                while not stop.is_set():
                    seq, jpeg = latest.wait_newer(seq, 1.0)
                    if not jpeg:
                        continue
                    self.wfile.write(f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n".encode() + jpeg + b"\r\n")
            except (BrokenPipeError, ConnectionResetError):
                pass  # the viewer went away

        def do_POST(self) -> None:  # noqa: N802
            if self.path != "/control":
                self._send(404, b"not found\n", "text/plain")
                return
            refused = control_refusal(self.headers, allow_control)
            if refused:
                self._send(403, json.dumps({"ok": False, "error": refused}).encode(), "application/json")
                return
            try:
                n = int(self.headers.get("Content-Length", "0"))
            except ValueError:
                n = -1
            if not 0 < n <= MAX_REQUEST_BYTES:
                self._send(413, json.dumps({"ok": False, "error": f"body must be 1–{MAX_REQUEST_BYTES} bytes"}).encode(), "application/json")
                return
            try:
                reply = request(control, self.rfile.read(n), timeout=3.0)
            except TimeoutError as e:
                reply = {"ok": False, "error": str(e)}
            self._send(200, json.dumps(reply).encode(), "application/json")

    return Handler


def serve_http(host: str, port: int, endpoint: str, control: str, topic: str, stop: threading.Event, allow_control: bool = True) -> None:
    """Serve until ``stop`` is set. Binds before returning control to the subscriber thread.
    ``allow_control``: forward POST /control at all (the CLI's default: only on loopback)."""
    latest = LatestFrame()
    httpd = ThreadingHTTPServer((host, port), make_handler(latest, control, stop, allow_control))
    httpd.daemon_threads = True
    sub = threading.Thread(target=subscribe_loop, args=(endpoint, topic, latest, stop), name="stylecast-http-sub", daemon=True)
    sub.start()
    server = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.2}, name="stylecast-http", daemon=True)
    server.start()
    log.info("serving http://%s:%d/ (stream /stream.mjpg)", host, port)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        httpd.shutdown()
        httpd.server_close()
        sub.join(2)
