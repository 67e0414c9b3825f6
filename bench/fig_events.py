"""Figure 3: queue message sent to Azurite -> event visible, p50/p95 over N events.

* ``app_*``: the dashboard (headless, ``run_test``) with its default settings (peek mode,
  its own events poll interval); "visible" = the moment its ``apply_events`` receives the
  event (instance-wrapped, so the timing is taken on the app's own loop).
* ``service_*``: :class:`services.azure.eventsource.EventSource` polled directly with a 1 s
  interval, for comparison (what the poll itself costs).

A sender thread writes base64 Event Grid messages (as Event Grid does) at about 4 per second
with jitter, and, acting as the queue's other consumer, deletes each one 7 s after sending
it: a peek sees only the first 32 messages, so an undrained queue would hide later events.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections import deque
from datetime import timedelta
from typing import Any

from bench.result import FigureResult, percentile
from services.domain.clock import SystemClock
from services.standin.azurite import Azurite
from services.standin.events_out import build_event, encode_message

#: Slow enough that the queue never holds more than a peek's 32 messages although each stays
#: KEEP_S seconds, longer than the app's events poll interval (else the app would miss some).
RATE_PER_S = 4.0
KEEP_S = 7.0
SERVICE_INTERVAL_S = 1.0


class Sender(threading.Thread):
    """Sends ``count`` pre-events, recording when each send returned (perf_counter)."""

    def __init__(self, connection_string: str, queue_name: str, count: int) -> None:
        super().__init__(name="bench-sender", daemon=True)
        from azure.storage.queue import QueueClient

        self.client = QueueClient.from_connection_string(connection_string, queue_name)
        self.client.create_queue()
        self.count = count
        self.sent: dict[str, float] = {}
        self.error: BaseException | None = None
        self._rng = random.Random(6)

    def _event(self, i: int) -> tuple[str, str]:
        now = SystemClock().now()
        start = now.replace(microsecond=0) + timedelta(minutes=30, seconds=i)
        cfg = (f"/subscriptions/00000000-0000-4000-8000-000000000001/resourceGroups/rg/"
               f"providers/Microsoft.Maintenance/maintenanceConfigurations/bcfg{i % 50:05d}")
        run_id = f"{cfg}/providers/microsoft.maintenance/applyupdates/" \
                 f"{start.strftime('%Y%m%d%H%M%S')}"
        event = build_event(kind="pre", correlation_id=run_id, configuration_id=cfg,
                            configuration_name=cfg.rsplit("/", 1)[-1], start=start,
                            end=start + timedelta(hours=2),
                            subscription_ids=["00000000-0000-4000-8000-000000000001"],
                            event_time=now, cutoff=start - timedelta(minutes=10))
        return run_id, encode_message(event)

    def run(self) -> None:
        pending: deque[tuple[float, Any]] = deque()
        try:
            for i in range(self.count):
                run_id, text = self._event(i)
                message = self.client.send_message(text)
                self.sent[run_id.lower()] = time.perf_counter()
                pending.append((time.perf_counter(), message))
                while pending and time.perf_counter() - pending[0][0] > KEEP_S:
                    _, old = pending.popleft()
                    self.client.delete_message(old.id, old.pop_receipt)
                time.sleep(self._rng.uniform(0, 2 / RATE_PER_S))
        except BaseException as exc:  # reported by the figure
            self.error = exc
        finally:
            self.client.close()


def _latencies(sent: dict[str, float], seen: dict[str, float]) -> list[float]:
    return [seen[k] - sent[k] for k in sent if k in seen]


async def _service_level(azurite: Azurite, count: int) -> tuple[list[float], int]:
    from services.azure.eventsource import EventSource, make_queue_client

    sender = Sender(azurite.connection_string, "bench-service", count)
    queue = make_queue_client("bench-service", connection_string=azurite.connection_string)
    seen: dict[str, float] = {}
    async with queue:
        source = EventSource(queue, clock=SystemClock())
        sender.start()
        deadline = time.monotonic() + count / RATE_PER_S * 2 + 20
        while time.monotonic() < deadline and (sender.is_alive() or len(seen) < count):
            batch = await source.poll()
            at = time.perf_counter()
            for received in batch.events:
                seen.setdefault(received.event.id.lower(), at)
            if len(seen) >= count:
                break
            await asyncio.sleep(SERVICE_INTERVAL_S)
    sender.join(10)
    if sender.error:
        raise sender.error
    return _latencies(sender.sent, seen), count - len(seen)


async def _app_level(azurite: Azurite, count: int) -> tuple[list[float], int]:
    from services.settings import Settings
    from tui.app import AumwatchApp

    # Resource Graph points nowhere (its polls fail and back off): only events matter here.
    settings = Settings(cloud="standin", token="bench", arm_endpoint="https://127.0.0.1:9",
                        queue_connection_string=azurite.connection_string,
                        queue_name="bench-app")
    sender = Sender(azurite.connection_string, "bench-app", count)
    app = AumwatchApp(settings)
    seen: dict[str, float] = {}

    async with app.run_test(size=(160, 50)) as pilot:
        # The dashboard screen exists once the app runs; its first events poll builds the
        # queue client first, so this is in place before any batch arrives.
        original = app.dashboard.apply_events

        def observed(batch: Any) -> None:
            at = time.perf_counter()
            for received in batch.events:
                seen.setdefault(received.event.id.lower(), at)
            original(batch)

        app.dashboard.apply_events = observed  # type: ignore[method-assign]
        await pilot.pause(1.0)  # the first events poll (clients are built lazily)
        sender.start()
        deadline = time.monotonic() + count / RATE_PER_S * 2 + 30
        while time.monotonic() < deadline and len(seen) < count:
            await pilot.pause(0.1)
    sender.join(10)
    if sender.error:
        raise sender.error
    return _latencies(sender.sent, seen), count - len(seen)


def run(quick: bool) -> FigureResult:
    """p50/p95 send -> visible, in the app (default settings) and at the service level."""
    out = FigureResult(3, "Queue message sent -> event visible (Azurite)", "p95 <= 1.5 s")
    count = 20 if quick else 200
    with Azurite() as azurite:
        # Half as many at the service level: it only shows what the poll itself costs.
        service, service_missed = asyncio.run(_service_level(azurite, max(10, count // 2)))
        out.metrics.update({
            "service_p50_s": percentile(service, 50), "service_p95_s": percentile(service, 95),
            "service_max_s": max(service, default=float("nan")),
            "service_missed": service_missed,
        })
        try:
            app, app_missed = asyncio.run(_app_level(azurite, count))
        except ImportError as exc:
            out.notes.append(f"app-level measurement skipped: {exc}")
        else:
            out.metrics.update({
                "app_p50_s": percentile(app, 50), "app_p95_s": percentile(app, 95),
                "app_max_s": max(app, default=float("nan")), "app_missed": app_missed,
            })
            if percentile(app, 95) > 1.5:
                out.notes.append(f"MISSED: app p95 {percentile(app, 95):.2f} s > 1.5 s")
    out.metrics["events"] = count
    out.notes.append(f"{count} events (app; half at the service level) at ~{RATE_PER_S:g}/s, "
                     f"each deleted {KEEP_S:g} s after "
                     f"sending (the other consumer); service poll interval "
                     f"{SERVICE_INTERVAL_S:g} s; the app uses its own default")
    return out
