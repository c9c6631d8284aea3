"""``stylecast relay``: one ZeroMQ XSUB/XPUB proxy (``zmq.proxy_steerable``) that fans many
publishers in and many subscribers out, so a subscriber connects to one address for every camera
and a camera's frames cross the network once per relay, not once per viewer.

    frontends (XSUB connects to each daemon's publish endpoint)  →  backend (XPUB binds)

Messages pass unchanged (wire format v1, one frame each); subscriptions flow upstream, so a
subscriber to ``frame.stylised\\0`` makes every daemon send only that topic to the relay.
Optional CURVE on either side: the backend serves allowed keys only, the frontend connects as a
client of daemons that have CURVE on.
"""

from __future__ import annotations

import itertools
import logging
import threading
from contextlib import ExitStack
from typing import Any

import zmq

from streamer.security import ClientKeys, CurveAuthenticator, ServerKeys

log = logging.getLogger(__name__)

_ids = itertools.count()


class RelayError(RuntimeError):
    """The relay could not bind, connect or keep proxying."""


class Relay:
    """Proxy ``frontends`` → ``backend`` until ``run(stop)``'s event is set. The proxy thread owns
    the XSUB/XPUB sockets; ``run``'s thread owns the steering socket that stops it."""

    def __init__(self, frontends: list[str], backend: str, backend_curve: ServerKeys | None = None, frontend_curve: ClientKeys | None = None,
                 ctx: zmq.Context[Any] | None = None) -> None:
        if not frontends:
            raise RelayError("relay: at least one --frontend publisher is needed")
        self.frontends, self.backend = frontends, backend
        self.backend_curve, self.frontend_curve = backend_curve, frontend_curve
        self.ctx = ctx or zmq.Context.instance()
        self.ready = threading.Event()  # set once the backend is bound and every frontend connected
        self._error: BaseException | None = None
        self._steer = f"inproc://stylecast-relay-{next(_ids)}"

    def run(self, stop: threading.Event) -> None:
        """Block until ``stop`` is set (then stop the proxy) or the proxy fails (re-raised)."""
        with ExitStack() as stack:
            if self.backend_curve is not None:  # the ZAP handler runs before the backend binds
                stack.enter_context(CurveAuthenticator(self.ctx, self.backend_curve.clients_dir))
            ctl = self.ctx.socket(zmq.PAIR)
            stack.callback(ctl.close, 0)
            ctl.bind(self._steer)
            t = threading.Thread(target=self._proxy, name="stylecast-relay", daemon=True)
            t.start()
            while t.is_alive() and not stop.wait(0.1):
                pass
            if t.is_alive():
                ctl.send(b"TERMINATE")
                t.join(5.0)
        if self._error is not None:
            raise self._error

    def _proxy(self) -> None:
        xsub, xpub, steer = self.ctx.socket(zmq.XSUB), self.ctx.socket(zmq.XPUB), self.ctx.socket(zmq.PAIR)
        try:
            for s in (xsub, xpub, steer):
                s.setsockopt(zmq.LINGER, 0)
            xpub.setsockopt(zmq.SNDHWM, 8)  # real time: a slow viewer drops frames, never stalls the relay
            xpub.setsockopt(zmq.MAXMSGSIZE, 1024)  # subscribers send only subscriptions
            if self.backend_curve is not None:
                self.backend_curve.apply(xpub)
            try:
                xpub.bind(self.backend)
            except zmq.ZMQError as e:
                raise RelayError(f"backend: cannot bind {self.backend}: {e}") from e
            if self.frontend_curve is not None:
                self.frontend_curve.apply(xsub)
            for ep in self.frontends:
                try:
                    xsub.connect(ep)
                except zmq.ZMQError as e:
                    raise RelayError(f"frontend: cannot connect to {ep}: {e}") from e
            steer.connect(self._steer)
            log.info("relay: %s → %s", ", ".join(self.frontends), self.backend)
            self.ready.set()
            zmq.proxy_steerable(xsub, xpub, None, steer)
        except BaseException as e:  # surfaced by run()
            self._error = e
        finally:
            for s in (xsub, xpub, steer):
                s.close(0)
