"""boto3 clients shared by configuration across sensor ticks and runs of one process.

A new boto3 session reads botocore's service models again: 0.2-0.4 s on every tick of the long-lived code
server. boto3 clients are thread-safe, sessions are not, so a client is made under a lock; a few
configurations are kept (inbox, lake, a rotated key...), the oldest dropped — never closed: a tick may still
be using it.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

MAX_CLIENTS = 6
_clients: OrderedDict[Hashable, Any] = OrderedDict()
_lock = threading.Lock()


def shared_client(key: Hashable, make: Callable[[], Any]) -> Any:
    """The client made by `make()` for `key` (every setting the client depends on, credentials included)."""
    with _lock:
        if key in _clients:
            _clients.move_to_end(key)
            return _clients[key]
        client = _clients[key] = make()
        while len(_clients) > MAX_CLIENTS:
            _clients.popitem(last=False)
        return client
