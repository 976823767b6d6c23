"""Stopping on SIGTERM or SIGINT, as a service manager or a client stopping its server expects.

The stdio transport (server/stdio.py) watches for both signals. On the first one it stops reading
requests, logs the signal and one line per call it drops, and cancels what runs: a queued request
leaves the queue, a running one stops at its next step boundary (engine/queue.py), and nothing of
a dropped call is stored (images are written to a temporary name and renamed once complete, so no
half-written file is ever listed). Then the lifespan releases the models and the process exits
with code 0. Work that cannot stop at a step (a model load in progress) is given STOP_DEADLINE_S;
after that, or on a second signal, the process exits at once.
"""

from __future__ import annotations

#: Seconds a stop waits for running work to reach a step boundary before the process exits anyway.
STOP_DEADLINE_S = 10.0

#: Why the server is stopping ("SIGTERM", "SIGINT"), once a signal asked it to; None while it serves.
reason: str | None = None


def stopping() -> str | None:
    return reason
