"""Everything one running sandbox holds, and how `/_sandbox/reset` brings it back to its start-up state."""

from __future__ import annotations

from fc_assets.sandbox.auth import TokenIssuer
from fc_assets.sandbox.clock import SandboxClock
from fc_assets.sandbox.config import SandboxConfig
from fc_assets.sandbox.events import Events
from fc_assets.sandbox.faults import Faults
from fc_assets.sandbox.graphql_api import GraphQLService
from fc_assets.sandbox.jobs import Jobs
from fc_assets.sandbox.received import Received
from fc_assets.sandbox.store import Store


class SandboxState:
    """Store, clock, tokens, faults, jobs, events and the received log of one sandbox."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.clock = SandboxClock()
        self.tokens = TokenIssuer(config)
        self.graphql = GraphQLService(config.default_page_size, config.complexity_limit)
        self.faults = Faults()
        self.reset()

    def reset(self) -> None:
        """Reseed the store from the start-up flags; clear jobs, events, received, faults; real time again.
        Tokens stay valid, so connected clients carry on."""
        if hasattr(self, "jobs"):
            for task in list(self.jobs.tasks):
                task.cancel()
        self.clock.reset()
        self.store = Store(self.config, self.clock)
        self.received = Received(bulk=self.config.bulk_intake)
        self.jobs = Jobs(self)
        self.events = Events(self)
        self.faults.clear()
        if self.config.faults:
            self.faults.merge(self.config.faults)
