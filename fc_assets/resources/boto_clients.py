"""boto3 clients shared by configuration across sensor ticks and runs of one process.

A new boto3 session reads botocore's service models again: 0.2-0.4 s on every tick of the long-lived code
server. boto3 clients are thread-safe, sessions are not, so a client is made under a lock; a few
configurations are kept (inbox, lake, a rotated key...), the oldest dropped — never closed: a tick may still
be using it. Each is made again after `MAX_AGE_S`: keys botocore read from a credentials file or profile when
the client was made are never read again (roles and web identities renew themselves), so a rotated file
would fail every tick until the code server restarted.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

MAX_CLIENTS = 6
MAX_AGE_S = 600.0  # (a client costs 0.2-0.4 s: once in 10 minutes)
_clients: OrderedDict[Hashable, tuple[float, Any]] = OrderedDict()
_lock = threading.Lock()
_clock = time.monotonic


def shared_client(key: Hashable, make: Callable[[], Any]) -> Any:
    """The client made by `make()` for `key` (every setting the client depends on, credentials included)."""
    with _lock:
        now = _clock()
        if key in _clients and now - _clients[key][0] < MAX_AGE_S:
            _clients.move_to_end(key)
            return _clients[key][1]
        client = make()
        _clients[key] = (now, client)
        _clients.move_to_end(key)
        while len(_clients) > MAX_CLIENTS:
            _clients.popitem(last=False)
        return client
