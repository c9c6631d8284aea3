"""``stylecast view --http HOST:PORT``: the live stream as MJPEG plus a small control page, so a
browser, VLC, ffmpeg or OpenCV can watch it.

    GET  /             the page: the stream, style buttons, strength and stabilise sliders
    GET  /stream.mjpg  multipart/x-mixed-replace JPEG stream of frame.stylised (or overlay)
    GET  /state        the daemon's last meta.state message as JSON
    POST /control      a control request (JSON, ≤ 4096 bytes), forwarded to the REP socket;
                       only with ``Content-Type: application/json`` and no foreign ``Origin``
                       (so another web page open in the browser cannot drive it), and only
                       when control is allowed (by default: when bound to loopback)

Every request must name the viewer in ``Host``: an IP address it is reached on, ``localhost``,
or a name given with ``--http-name``. A page on another site that re-points its own name at
127.0.0.1 (DNS rebinding) sends its own name, and is refused (421) before anything is served.
Clients get ``CLIENT_TIMEOUT_S`` per read or write and at most ``MAX_CLIENTS`` connections at once
(503 beyond), so a flood of slow clients cannot hold threads and descriptors for ever.

One subscriber thread keeps only the newest frame, JPEG-encoded once, for every HTTP client.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import threading
from collections.abc import Collection
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import cv2

from streamer.client import Subscriber, request
from streamer.controls import MAX_REQUEST_BYTES
from streamer.security import ClientKeys
from streamer.wire import TOPIC_STATE

log = logging.getLogger(__name__)
BOUNDARY = "stylecastframe"

CLIENT_TIMEOUT_S = 10.0
"""Seconds a client may take to send its request, or to take the next frame of the stream."""

MAX_CLIENTS = 32
"""Connections served at once; more are answered 503 and closed."""


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


def subscribe_loop(endpoint: str, topic: str, latest: LatestFrame, stop: threading.Event, quality: int = 80,
                   curve: ClientKeys | None = None) -> None:
    with Subscriber(endpoint, topics=[topic + "\x00", TOPIC_STATE + "\x00"], curve=curve) as sub:
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


def split_host(header: str) -> tuple[str, str]:
    """``Host`` header → (name, port text; "" when none): ``name``, ``name:port``, ``[v6]:port``."""
    h = header.strip().lower()
    if h.startswith("["):
        name, _, rest = h[1:].partition("]")
        return name, rest[1:] if rest.startswith(":") else rest
    if h.count(":") == 1:
        name, port = h.split(":")
        return name, port
    return h, ""


def host_refusal(host_header: str | None, local_ip: str, port: int, names: Collection[str] = ()) -> str | None:
    """Why a request whose ``Host`` header is ``host_header`` is refused (None: it is not).

    Accepted: no Host (HTTP/1.0 tools; browsers always send one), or ``NAME[:port]`` where port
    is the one served and NAME is ``local_ip`` (the address the client reached), a loopback
    address, ``localhost`` or one of ``names``. Any other name may be a DNS rebinding."""
    if host_header is None:
        return None
    name, port_text = split_host(host_header)
    if port_text and port_text != str(port):
        return f"Host {host_header!r} names another port than this viewer's {port}"
    if name == "localhost" or name in {n.lower() for n in names}:
        return None
    try:
        ip = ipaddress.ip_address(name)
    except ValueError:
        return f"Host {host_header!r} is not a name this viewer is served on (add it with --http-name)"
    if ip.is_loopback or ip == ipaddress.ip_address(local_ip.split("%")[0]):
        return None
    return f"Host {host_header!r} is not an address of this viewer"


class BoundedServer(ThreadingHTTPServer):
    """``ThreadingHTTPServer`` that serves at most ``max_clients`` connections at once and
    answers the rest 503 at once."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], max_clients: int = MAX_CLIENTS) -> None:
        super().__init__(address, handler)
        self._slots = threading.BoundedSemaphore(max_clients)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            try:
                request.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            except OSError:
                pass
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


def make_handler(latest: LatestFrame, control: str, stop: threading.Event, allow_control: bool = True,
                 names: Collection[str] = (), client_timeout: float = CLIENT_TIMEOUT_S,
                 curve: ClientKeys | None = None) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "stylecast"
        timeout = client_timeout  # socketserver sets it on each connection: slow clients time out

        def handle_one_request(self) -> None:
            try:
                super().handle_one_request()
            except TimeoutError:  # a client too slow to send its request or take its frames
                self.close_connection = True

        def parse_request(self) -> bool:
            if not super().parse_request():
                return False
            local_ip, local_port = self.connection.getsockname()[:2]
            refused = host_refusal(self.headers.get("Host"), local_ip, local_port, names)
            if refused:
                self.close_connection = True
                self._send(421, json.dumps({"ok": False, "error": refused}).encode(), "application/json")
                return False
            return True

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

        def do_HEAD(self) -> None:  # noqa: N802 - what GET would answer, headers only (link checkers, curl -I)
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
                reply = request(control, {"cmd": "status"}, timeout=3.0, curve=curve)
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
            except (BrokenPipeError, ConnectionResetError, TimeoutError):
                pass  # the viewer went away, or stopped reading

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
            body = self.rfile.read(n)
            try:
                json.loads(body)
            except ValueError as e:  # not JSON (or not UTF-8): the client's mistake, said before the daemon is asked
                self._send(400, json.dumps({"ok": False, "error": f"the body is not JSON: {e}"}).encode(), "application/json")
                return
            try:
                reply = request(control, body, timeout=3.0, curve=curve)
            except TimeoutError as e:
                self._send(504, json.dumps({"ok": False, "error": str(e)}).encode(), "application/json")
                return
            self._send(200 if reply.get("ok") else 400, json.dumps(reply).encode(), "application/json")

    return Handler


def serve_http(host: str, port: int, endpoint: str, control: str, topic: str, stop: threading.Event, allow_control: bool = True,
               names: Collection[str] = (), timeout: float = CLIENT_TIMEOUT_S, max_clients: int = MAX_CLIENTS,
               curve: ClientKeys | None = None) -> None:
    """Serve until ``stop`` is set. Binds before returning control to the subscriber thread.
    ``allow_control``: forward POST /control at all (the CLI's default: only on loopback).
    ``names``: host names besides its addresses and ``localhost`` that clients may call it by.
    ``curve``: the viewer's client keys for a daemon with CURVE on (stream and control)."""
    latest = LatestFrame()
    httpd = BoundedServer((host, port), make_handler(latest, control, stop, allow_control, names, timeout, curve), max_clients)
    sub = threading.Thread(target=subscribe_loop, args=(endpoint, topic, latest, stop), kwargs={"curve": curve}, name="stylecast-http-sub", daemon=True)
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
