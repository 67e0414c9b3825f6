"""The maintenance events queue, read in ``peek`` or ``consume`` mode (docs/architecture.md
"Events").

* ``peek`` (default) changes nothing in the queue: other consumers keep every message. A peek
  sees at most the first 32 messages, so the queue's approximate depth is read too (at once
  when a peek comes back full, else every ``DEPTH_EVERY`` polls) and a depth beyond what a
  peek can see is warned about.
* ``consume`` is for a queue dedicated to aumwatch: a message is received (hidden for the
  visibility timeout), its events are written to the journal and committed, and only then is
  the message deleted. A crash between the two leaves the message to reappear after the
  visibility timeout; the journal already holds its events under that message id, so the
  re-delivery is a no-op. Every message is therefore either still in the queue or in the
  journal, and none is journaled twice.

Message text is read raw (the SDK's default, no decode policy: docs/azure.md says its base64 policy
breaks on non-base64 text) and decoded by :func:`services.domain.events.decode_message`.
A message that
does not decode is kept: journaled raw with the reason and reported in the batch (in consume
mode it is deleted only after being journaled). Event Grid delivers at least once, so a second
delivery of an event (same id and type, another message) is counted and flagged, never shown as
a new event.

Each :meth:`EventSource.poll` returns one frozen :class:`EventBatch` and never raises: a
failure (queue unreachable, unauthorized, journal full) is its ``error`` line.

With a ``before_delete`` hook and ``hook_concurrency`` above 1 (``aumwatch tasks`` and a
dashboard running the declared tasks), a poll journals and returns its messages' events at
once and runs each message's hook, then its delete (or release), as a background task, up to
``hook_concurrency`` at a time: the tasks of different messages run side by side and the
event tail keeps moving while they run. A background failure is the ``error`` of the next
batch; its message stays in the queue, as with the sequential hook. While a message's hook
runs, its visibility timeout is renewed (``update_message``), so the timeout stays short
and the message of a runner that died comes back soon.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from datetime import datetime, timedelta
from typing import Any

from services.azure.journal import Journal, JournalError, RecordStatus

# The batch and its parts are the seam's types (services/domain/boundary.py); imported here
# under their old names too.
from services.domain.boundary import EventBatch, Mode, ReceivedEvent, UndecodableMessage
from services.domain.clock import Clock, ensure_utc
from services.domain.errors import service_error
from services.domain.events import EventDecodeError, MaintenanceEvent, decode_message
from services.domain.queueid import queue_identity_of_url

#: Awaited in consume mode with one message's decoded events (all of them, also those already
#: journaled by an earlier delivery) before the message is deleted; False keeps the message.
BeforeDelete = Callable[[tuple[MaintenanceEvent, ...]], Awaitable[bool]]


class Postponed(Exception):
    """Raised by a ``before_delete`` hook that stops before its work is done (its runner is
    stopping): the message is made visible again at once, for the next runner to finish,
    instead of staying hidden for its whole visibility timeout, and the poll reports no
    failure."""
MODES: tuple[Mode, ...] = ("peek", "consume")

#: The most messages one peek (or one receive) can return (Storage Queue service limit).
PEEK_LIMIT = 32
#: Polls between two reads of the queue's depth while the reads come back short of
#: PEEK_LIMIT (a full read has its depth read at once). The depth only feeds the status bar
#: and the truncation warning; reading it every poll doubled the requests of a 1-s poll.
DEPTH_EVERY = 10
PREVIEW_CHARS = 200
#: How long after it was last seen a message id or an event's (id, type) is remembered to
#: recognise a second sight. A message still in the queue is peeked again every poll and so
#: stays remembered whatever the queue's message time-to-live; the horizon only counts once
#: it is gone. Event Grid retries an unacknowledged delivery 10 s, 30 s, 1 min, 5 min,
#: 10 min, 30 min and 1 h after the previous attempt (about 1 h 47 min in all): two hours
#: covers a duplicate from any of those retries (docs/azure.md "Event Grid -> Storage Queue").
DEDUPE_HORIZON = timedelta(hours=2)


def raw_preview(text: str, limit: int = PREVIEW_CHARS) -> str:
    """The start of an untrusted message, safe to print: control and other non-printable
    characters escaped (``\\x1b``, ``\\n``), cut at ``limit`` characters with an ellipsis."""
    out: list[str] = []
    size = 0
    for char in text:
        piece = char if char.isprintable() else repr(char)[1:-1]
        if size + len(piece) > limit:
            out.append("…")
            break
        out.append(piece)
        size += len(piece)
    return "".join(out)


def make_queue_client(
    queue_name: str,
    *,
    connection_string: str | None = None,
    account_url: str | None = None,
    credential: Any = None,
    **kwargs: Any,
) -> Any:
    """An ``azure.storage.queue.aio.QueueClient`` from a connection string, or an account URL
    plus a credential (Entra ID, preferred). Message text is left raw (no decode policy).

    Extra keyword arguments go to the client (``connection_verify`` and the like); its
    transport is :func:`services.azure.transport.async_transport_kwargs`'s.
    """
    if not queue_name:
        raise ValueError("no queue name: set queue.name in the config file or AUMWATCH_QUEUE_NAME")
    if connection_string and account_url:
        raise ValueError("give either a queue connection string or an account URL, not both")
    from azure.storage.queue.aio import QueueClient

    from services.azure.transport import async_transport_kwargs, missing_bundle

    verify = kwargs.get("connection_verify")
    if isinstance(verify, str | os.PathLike) and not os.path.isfile(verify):
        raise ValueError(missing_bundle(os.fspath(verify)))  # said before any poll
    kwargs = async_transport_kwargs(kwargs)

    if connection_string:
        return QueueClient.from_connection_string(connection_string, queue_name, **kwargs)
    if account_url:
        if credential is None:
            raise ValueError(f"queue account URL {account_url} needs a credential (Entra ID)")
        return QueueClient(account_url, queue_name, credential=credential, **kwargs)
    raise ValueError(
        "no queue configured: set queue.account_url (Entra ID) or a connection string in the "
        "environment or the config file"
    )


class _Seen:
    """Keys remembered until ``horizon`` after they were last seen, and at most ``limit`` of
    them (the oldest sight goes first). Each key may carry a payload (a message's event
    keys). Ordered by last sight, so forgetting by age pops from the front only.

    A long tail must not grow without bound, and a count cap alone fills up over hours at a
    steady event rate; the age bound makes the memory flat (docs/architecture.md "Events")."""

    def __init__(self, limit: int, horizon: timedelta) -> None:
        self._limit = limit
        self._horizon = horizon
        self._keys: OrderedDict[Hashable, tuple[datetime, tuple[Hashable, ...]]] = OrderedDict()

    def __contains__(self, key: Hashable) -> bool:
        return key in self._keys

    def __len__(self) -> int:
        return len(self._keys)

    def add(self, key: Hashable, now: datetime, payload: tuple[Hashable, ...] = ()) -> None:
        """Remember ``key`` as seen at ``now`` (a key seen again is refreshed)."""
        self._keys[key] = (now, payload)
        self._keys.move_to_end(key)
        while len(self._keys) > self._limit:
            self._keys.popitem(last=False)

    def touch(self, key: Hashable, now: datetime) -> tuple[Hashable, ...]:
        """Refresh the last sight of a remembered ``key``; returns its payload."""
        _, payload = self._keys[key]
        self.add(key, now, payload)
        return payload

    def forget_before(self, now: datetime) -> None:
        """Forget every key last seen more than the horizon before ``now``."""
        oldest = now - self._horizon
        while self._keys:
            seen_at, _ = next(iter(self._keys.values()))
            if seen_at >= oldest:
                break
            self._keys.popitem(last=False)


class EventSource:
    """Polls one queue (an ``aio`` QueueClient, already constructed) in peek or consume mode.

    ``journal`` is optional in peek mode (events are then only deduplicated in memory) and
    required in consume mode. ``visibility_timeout`` (seconds) is how long a received message
    stays hidden before it reappears, should this process die before deleting it.
    ``identity`` is the queue's full identity its journal rows are written under
    (:func:`services.domain.queueid.queue_identity`, with the stand-in world); by default the
    client's own URL, normalised, with no world.
    """

    def __init__(
        self,
        queue: Any,
        *,
        clock: Clock,
        journal: Journal | None = None,
        mode: Mode = "peek",
        visibility_timeout: int = 60,
        seen_limit: int = 10_000,
        dedupe_horizon: timedelta = DEDUPE_HORIZON,
        depth_every: int = DEPTH_EVERY,
        before_delete: BeforeDelete | None = None,
        max_messages: int = PEEK_LIMIT,
        hook_concurrency: int = 1,
        identity: str | None = None,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"queue mode must be peek or consume, not {mode!r}")
        if mode == "consume" and journal is None:
            raise ValueError("consume mode needs the journal (messages are deleted only once "
                             "their events are journaled)")
        if visibility_timeout < 1:
            raise ValueError(f"visibility_timeout must be at least 1 s, got {visibility_timeout}")
        if depth_every < 1:
            raise ValueError(f"depth_every must be at least 1 poll, got {depth_every}")
        if dedupe_horizon <= timedelta(0):
            raise ValueError(f"dedupe_horizon must be positive, got {dedupe_horizon}")
        if before_delete is not None and mode != "consume":
            raise ValueError("before_delete is for consume mode only (peek deletes nothing)")
        if not 1 <= max_messages <= PEEK_LIMIT:
            raise ValueError(f"max_messages must be 1..{PEEK_LIMIT}, got {max_messages}")
        if not 1 <= hook_concurrency <= PEEK_LIMIT:
            raise ValueError(
                f"hook_concurrency must be 1..{PEEK_LIMIT}, got {hook_concurrency}")
        if hook_concurrency > 1 and before_delete is None:
            raise ValueError("hook_concurrency is for a before_delete hook only")
        self._hook_concurrency = hook_concurrency
        #: The background hooks (hook, then delete or release) of received messages.
        self._hooks: set[asyncio.Task[None]] = set()
        #: Their failures, one line each, until a poll reports them.
        self._hook_errors: list[str] = []
        self._before_delete = before_delete
        self._max_messages = max_messages
        self.queue = queue
        self.mode: Mode = mode
        self._clock = clock
        self._journal = journal
        self._visibility = visibility_timeout
        self._messages = _Seen(seen_limit, dedupe_horizon)
        self._events = _Seen(seen_limit, dedupe_horizon)
        self._depth_every = depth_every
        self._polls_to_depth = 0  # polls left until the depth is read again; 0 = this one
        url = getattr(queue, "url", None)
        self.identity = identity if identity is not None else (
            queue_identity_of_url(str(url)) if url else None)

    @property
    def queue_name(self) -> str:
        return str(getattr(self.queue, "queue_name", "") or "")

    @property
    def in_flight(self) -> int:
        """How many received messages have their hook (or delete) running in the
        background (always 0 with ``hook_concurrency`` 1)."""
        return sum(1 for hook in self._hooks if not hook.done())

    async def drain(self, timeout: float | None = None) -> bool:
        """Wait for the background hooks (each up to its delete or release) to end, at most
        ``timeout`` seconds (None: however long they take). True when none is left. Their
        failures stay pending for the next poll (or :meth:`take_hook_error`)."""
        pending = {hook for hook in self._hooks if not hook.done()}
        if pending:
            await asyncio.wait(pending, timeout=timeout)
        return self.in_flight == 0

    def take_hook_error(self) -> str | None:
        """The failures of background hooks not yet reported, as one line (None: none), and
        forget them. A poll reports them as its batch's ``error``; this is for a caller
        that stops polling (``aumwatch tasks --once`` after its last drain)."""
        if not self._hook_errors:
            return None
        first, more = self._hook_errors[0], len(self._hook_errors) - 1
        self._hook_errors.clear()
        return first if not more else f"{first} (and {more} more failure(s) like it)"

    @property
    def remembered(self) -> tuple[int, int]:
        """How many message ids and event keys the dedupe memory holds now."""
        return len(self._messages), len(self._events)

    async def poll(self) -> EventBatch:
        """Read once; never raises (failures are the batch's ``error``).

        The queue's depth is read on the first poll, every ``depth_every`` polls after it,
        and whenever a read came back full (the queue may hold more than one read sees);
        the batch's ``depth`` is None on the other polls (not measured, not zero).
        """
        fetched_at = ensure_utc(self._clock.now())
        collector = _Collector(fetched_at)
        self._messages.forget_before(fetched_at)
        self._events.forget_before(fetched_at)
        depth: int | None = None
        earlier = self.take_hook_error()
        if earlier is not None:
            collector.fail(earlier)  # a background hook failed since the last poll
        try:
            if self._polls_to_depth <= 0:
                depth = await self._read_depth()
            else:
                self._polls_to_depth -= 1
            read = 0
            if self.mode == "peek":
                messages = await self.queue.peek_messages(max_messages=PEEK_LIMIT)
                for message in messages:
                    read += 1
                    self._take(message, collector)
            elif self._hook_concurrency > 1:
                read = await self._receive_side_by_side(collector)
            else:
                # With a hook, one message per request: the next is received only once the
                # last is done, so none waits hidden (and unrenewed) behind a slow hook.
                per_page = 1 if self._before_delete is not None else self._max_messages
                pager = self.queue.receive_messages(
                    messages_per_page=per_page, max_messages=self._max_messages,
                    visibility_timeout=self._visibility)
                async for message in pager:
                    read += 1
                    collector.last_events = ()
                    if not self._take(message, collector):
                        # Journal failed: leave this and the rest to reappear later.
                        break
                    if not await self._before_deleting(collector, message):
                        if collector.postponed:
                            await self._release(message, collector)
                        break
                    await self._delete(message, collector)
            if depth is None and read >= PEEK_LIMIT:
                depth = await self._read_depth()
        except Exception as exc:  # a poll must never take the caller down
            collector.fail(service_error(exc, what=f"queue {self.queue_name or '?'}").message)
            self._polls_to_depth = 0  # after a failure, measure again on the next poll
        truncated = self.mode == "peek" and depth is not None and depth > PEEK_LIMIT
        warning = None
        if truncated and depth is not None:
            import humanize

            warning = (f"the queue holds about {humanize.intcomma(depth)} messages; a peek "
                       f"sees only the first {PEEK_LIMIT}: drain it, or give aumwatch a "
                       "dedicated queue in consume mode")
        return EventBatch(
            mode=self.mode, fetched_at=fetched_at, events=tuple(collector.events),
            duplicates=tuple(collector.duplicates), undecodable=tuple(collector.undecodable),
            redelivered=collector.redelivered, depth=depth, truncated=truncated,
            warning=warning, error=collector.error,
        )

    async def _receive_side_by_side(self, collector: _Collector) -> int:
        """Consume mode with concurrent hooks: receive as many messages as there are free
        hook slots (none when all are busy), journal and classify each now (the batch shows
        their events at once), and start each one's hook and delete in the background.
        Returns how many messages were read."""
        room = min(self._hook_concurrency - self.in_flight, self._max_messages)
        if room <= 0:
            return 0
        read = 0
        pager = self.queue.receive_messages(messages_per_page=room, max_messages=room,
                                            visibility_timeout=self._visibility)
        async for message in pager:
            read += 1
            collector.last_events = ()
            if not self._take(message, collector):
                # Journal failed: leave this and the rest to reappear later.
                break
            if not collector.last_events:
                # Nothing for the hook (undecodable, journaled raw): delete it now, as the
                # sequential path does.
                await self._delete(message, collector)
                continue
            hook = asyncio.ensure_future(self._hook_then_delete(message,
                                                                collector.last_events))
            self._hooks.add(hook)
            hook.add_done_callback(self._hook_ended)
        return read

    async def _hook_then_delete(self, message: Any,
                                events: tuple[MaintenanceEvent, ...]) -> None:
        """One received message's hook, then its delete, release (:class:`Postponed`) or
        nothing (a failure keeps it in the queue), decided as the sequential path does;
        failures are kept for the next poll's ``error``."""
        scratch = _Collector(ensure_utc(self._clock.now()))
        scratch.last_events = events
        if await self._before_deleting(scratch, message):
            await self._delete(message, scratch)
        elif scratch.postponed:
            await self._release(message, scratch)
        if scratch.error is not None:
            self._hook_errors.append(scratch.error)

    def _hook_ended(self, hook: asyncio.Task[None]) -> None:
        self._hooks.discard(hook)
        if hook.cancelled():
            # The loop is closing under it: the message reappears after its visibility
            # timeout and the journal makes the re-delivery a no-op for what was done.
            self._hook_errors.append("a message's task runs were cut short (cancelled): it "
                                     "stays in the queue")
            return
        exc = hook.exception()
        if exc is not None:  # _hook_then_delete catches what it expects; never lose the rest
            self._hook_errors.append(
                service_error(exc, what="handling a consumed message").message)

    async def _read_depth(self) -> int | None:
        props = await self.queue.get_queue_properties()
        self._polls_to_depth = self._depth_every - 1
        depth = getattr(props, "approximate_message_count", None)
        return depth if isinstance(depth, int) else None

    # -- one message ---------------------------------------------------------------------------
    def _take(self, message: Any, out: _Collector) -> bool:
        """Decode, journal and classify one message; False when the journal failed (consume
        mode must then not delete it)."""
        message_id = getattr(message, "id", None)
        if message_id is not None and message_id in self._messages and self.mode == "peek":
            # The same message, peeked again: it is still in the queue, so it and its events
            # stay remembered (a duplicate delivery may yet arrive beside it).
            for key in self._messages.touch(message_id, out.fetched_at):
                if key in self._events:
                    self._events.touch(key, out.fetched_at)
            return True
        raw = _text_of(getattr(message, "content", ""))
        inserted_at = _aware(getattr(message, "inserted_on", None))
        try:
            events = decode_message(raw)
        except EventDecodeError as exc:
            return self._undecodable(raw, str(exc), message_id, inserted_at, out)
        out.last_events = tuple(events)
        shown: list[ReceivedEvent] = []
        dups: list[ReceivedEvent] = []
        seen_before = True
        keys = tuple(event.dedupe_key for event in events)
        for event in events:
            status = RecordStatus.NEW
            if self._journal is not None:
                try:
                    status = self._journal.record_event(
                        event, raw, received_at=out.fetched_at, message_id=message_id,
                        source_queue=self.queue_name or None, queue_identity=self.identity)
                except JournalError as exc:
                    out.fail(str(exc))
                    if self.mode == "consume":
                        return False
            item = ReceivedEvent(event, out.fetched_at, message_id, inserted_at)
            if self.mode == "consume" and status is RecordStatus.SEEN:
                continue  # journaled from this very message before a crash: a re-delivery
            seen_before = False
            # Peek mode judges duplicates within this session (the queue's current content is
            # shown once per session); consume mode also trusts the journal's memory.
            again = event.dedupe_key in self._events or (
                self.mode == "consume" and status is RecordStatus.DUPLICATE)
            if again:
                dups.append(ReceivedEvent(event, out.fetched_at, message_id, inserted_at,
                                          duplicate=True))
            else:
                shown.append(item)
            self._events.add(event.dedupe_key, out.fetched_at)
        if seen_before and self.mode == "consume":
            out.redelivered += 1
        out.events.extend(shown)
        out.duplicates.extend(dups)
        if message_id is not None:
            self._messages.add(message_id, out.fetched_at, keys)
        return True

    def _undecodable(self, raw: str, reason: str, message_id: str | None,
                     inserted_at: datetime | None, out: _Collector) -> bool:
        new = True
        if self._journal is not None:
            try:
                new = self._journal.record_undecodable(
                    raw, reason, received_at=out.fetched_at, message_id=message_id,
                    source_queue=self.queue_name or None, queue_identity=self.identity)
            except JournalError as exc:
                out.fail(str(exc))
                if self.mode == "consume":
                    return False
        if message_id is not None:
            self._messages.add(message_id, out.fetched_at)
        if not new and self.mode == "consume":
            out.redelivered += 1
            return True
        out.undecodable.append(UndecodableMessage(reason, raw_preview(raw), out.fetched_at,
                                                  message_id, inserted_at))
        return True

    async def _before_deleting(self, out: _Collector, message: Any = None) -> bool:
        """Await the ``before_delete`` hook with the message's events; False keeps the
        message in the queue (the hook failed or said its work is not recorded). While the
        hook runs, the message's visibility timeout is renewed (:meth:`_keep_hidden`)."""
        if self._before_delete is None or not out.last_events:
            return True
        ended = asyncio.Event()
        renewer = (asyncio.ensure_future(self._keep_hidden(message, ended))
                   if message is not None else None)
        try:
            done = await self._before_delete(out.last_events)
        except Postponed:
            out.postponed = True
            return False
        except Exception as exc:  # the hook's failure keeps the message, never the caller down
            out.fail(service_error(exc, what="recording the message's task runs").message)
            return False
        finally:
            ended.set()
            if renewer is not None:
                # Let a renewal under way finish: the delete needs its new pop receipt.
                await asyncio.gather(renewer, return_exceptions=True)
        if not done:
            out.fail("the message's task runs could not be recorded: it stays in the queue")
        return bool(done)

    async def _keep_hidden(self, message: Any, ended: asyncio.Event) -> None:
        """Renew a received message's visibility timeout every third of it until ``ended``
        is set, keeping its new pop receipt for the delete. The timeout can then be short
        (services/azure/tasks.py: a minute) however long the hook's tasks run, and a
        message whose runner died comes back soon for the next one. A failed renewal is
        tried again at the next turn; should the message reappear meanwhile, the journal
        makes its second delivery a no-op."""
        every = max(self._visibility / 3, 0.2)
        while not ended.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ended.wait(), every)
                return
            try:
                reply = await self.queue.update_message(
                    message.id, pop_receipt=message.pop_receipt,
                    visibility_timeout=self._visibility)
            except Exception:  # tried again at the next turn (see the docstring)
                continue
            receipt = getattr(reply, "pop_receipt", None)
            if receipt:
                message.pop_receipt = receipt

    async def _release(self, message: Any, out: _Collector) -> None:
        """Make a received message visible again now (its visibility timeout only)."""
        try:
            await self.queue.update_message(message.id, pop_receipt=message.pop_receipt,
                                            visibility_timeout=0)
        except Exception as exc:  # it reappears when its visibility timeout ends anyway
            out.fail(service_error(exc, what="returning a message to the queue").message)

    async def _delete(self, message: Any, out: _Collector) -> None:
        try:
            await self.queue.delete_message(message)
        except Exception as exc:
            # Journaled already: when it reappears the journal makes it a no-op.
            out.fail(service_error(exc, what="deleting a consumed message").message)


class _Collector:
    """Mutable scratch for one poll, frozen into an :class:`EventBatch` at the end."""

    def __init__(self, fetched_at: datetime) -> None:
        self.fetched_at = fetched_at
        self.events: list[ReceivedEvent] = []
        self.duplicates: list[ReceivedEvent] = []
        self.undecodable: list[UndecodableMessage] = []
        self.redelivered = 0
        self.error: str | None = None
        #: The before_delete hook stopped short (:class:`Postponed`): the message goes back.
        self.postponed = False
        #: The decoded events of the message being handled (for the before_delete hook).
        self.last_events: tuple[MaintenanceEvent, ...] = ()

    def fail(self, message: str) -> None:
        # The first failure is the one that explains the rest.
        if self.error is None:
            self.error = message


def _text_of(content: Any) -> str:
    if isinstance(content, bytes | bytearray):
        return bytes(content).decode("utf-8", "backslashreplace")
    return "" if content is None else str(content)


def _aware(value: Any) -> datetime | None:
    if not isinstance(value, datetime):
        return None
    try:
        return ensure_utc(value)
    except ValueError:
        return None
