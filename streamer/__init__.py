"""stylecast's daemon side: capture → infer → render → publish over ZeroMQ, control, clients.

Importing this package imports neither torch nor any GPU runtime.
"""

__version__ = "0.1.0"
