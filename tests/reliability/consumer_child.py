"""A consume-mode tail in its own process, for the kill -9 test (not a test module).

``python -m tests.reliability.consumer_child CONNECTION_STRING QUEUE JOURNAL`` polls the queue
in consume mode forever (visibility timeout 1 s) and prints one line per poll.
"""

from __future__ import annotations

import asyncio
import sys

from services.azure.eventsource import EventSource, make_queue_client
from services.azure.journal import Journal
from services.domain.clock import SystemClock


async def main(connection_string: str, queue_name: str, journal_path: str) -> None:
    with Journal(journal_path) as journal:
        client = make_queue_client(queue_name, connection_string=connection_string)
        async with client:
            source = EventSource(client, clock=SystemClock(), journal=journal, mode="consume",
                                 visibility_timeout=1)
            while True:
                batch = await source.poll()
                print(len(batch.events), batch.redelivered, batch.error, flush=True)
                await asyncio.sleep(0.01)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
