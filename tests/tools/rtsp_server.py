"""A loopback RTSP server for the fault tests: Debian's gst-rtsp-server through python3-gi.

Run with the *system* Python (python3-gi is a Debian package, not in the venv):
    /usr/bin/python3 tests/tools/rtsp_server.py PORT WIDTH HEIGHT [FPS]
Serves ``rtsp://127.0.0.1:PORT/cam``: a moving test pattern, H.264 (x264enc, ugly plugins), so
OpenCV's FFmpeg backend reads it as an ordinary camera. Prints "READY" once listening.
"""

import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def main() -> None:
    port, width, height = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    fps = int(sys.argv[4]) if len(sys.argv) > 4 else 15
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(port)
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(
        f"( videotestsrc is-live=true pattern=ball ! video/x-raw,width={width},height={height},framerate={fps}/1 "
        "! videoconvert ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=15 bitrate=800 "
        "! rtph264pay name=pay0 pt=96 config-interval=1 )"
    )
    factory.set_shared(True)
    server.get_mount_points().add_factory("/cam", factory)
    if server.attach(None) == 0:
        print("cannot bind", flush=True)
        sys.exit(1)
    print("READY", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
