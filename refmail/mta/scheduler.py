"""The outbound scheduler: delivers queued mail, retries it, gives up on it, bounces it.

One thread sleeps until the earliest ``next_attempt`` in the queue (or until ``wake()``: a
new message, ``flush()``, a finished delivery) and hands each message that is due to a
delivery thread; at most ``config.mta.max_outbound_connections`` run at once.  An attempt
sends to every pending recipient (one SMTP transaction per destination host), then records
each result in the envelope, durably (the spool writes temp + fsync + rename):

- delivered: done; a 5xx or a refusal we decided ourselves: failed, and a DSN goes to the
  sender (``dsn.py``; never for the null sender); 4xx or no connection: still pending, next
  try after ``config.mta.retry[attempt]`` seconds plus jitter, until ``give_up_after`` from
  first queueing has passed, then failed as expired (RFC 5321 4.5.4.1; RFC 3463 4.4.7).
- the message leaves the queue only when every recipient is delivered or failed and told.

Crash windows (RFC 5321 6.1: the sender keeps responsibility until the receiver's 250):
between the next hop's 250 to DATA and our envelope update, a crash makes the next run send
the message again: a duplicate, which SMTP cannot avoid (see RFC 1047).  Between marking a
recipient failed and recording its DSN as sent, a crash sends the DSN twice.  Nothing that
was accepted is ever lost.  ``queue delete`` while a message is being sent cannot call it
back; the scheduler notices the missing files and stops tracking it.
"""

from __future__ import annotations

import logging
import os
import random
import ssl
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from refmail.config import Config
from refmail.errors import StorageError
from refmail.mta import dsn
from refmail.mta.client import Outcome, SmarthostPolicy, SMTPClient, failure
from refmail.mta.routes import Resolver, Route, RouteError, Router
from refmail.mta.spool import MESSAGE_SUFFIX, Spool

if TYPE_CHECKING:
    from refmail.delivery import LocalDelivery

log = logging.getLogger(__name__)

#: Retry delays are spread by up to this fraction, so a burst queued together (or a restart)
#: does not hit the remote hosts in lockstep.
RETRY_JITTER = 0.1
#: A message file without an envelope older than this is an enqueue cut short by a crash
#: (the client never got 250 for it) and is removed; younger ones may be an enqueue running now.
ORPHAN_GRACE = 3600.0
#: Seconds ``stop()`` waits for deliveries in progress before leaving them (daemon threads:
#: an unfinished attempt is simply retried at the next start).
STOP_GRACE = 10.0

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"


def smarthost_context(cafile: str | os.PathLike[str] | None) -> ssl.SSLContext | None:
    """A context trusting ``cafile`` (a smarthost with its own CA or a self-signed
    certificate); None: the system's CAs (``ssl.create_default_context``)."""
    if cafile is None:
        return None
    return ssl.create_default_context(cafile=os.fspath(cafile))


class Scheduler:
    """Drives the spool: ``start()``, ``stop()``, ``wake()``, ``flush()``; ``process(id)`` is
    one attempt at one message, run synchronously (the delivery threads call it)."""

    def __init__(
        self,
        config: Config,
        spool: Spool,
        delivery: LocalDelivery,
        *,
        resolver: Resolver | None = None,
        client: SMTPClient | None = None,
        delay_warning_after: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.spool = spool
        self.delivery = delivery
        self.router = Router(config.mta, resolver)
        mta = config.mta
        self.client = client or SMTPClient(
            helo_name=config.hostname,
            smarthost=SmarthostPolicy(
                tls_required=mta.smarthost_tls == "required",
                username=mta.smarthost_user,
                password=mta.smarthost_password,
                context=smarthost_context(getattr(mta, "smarthost_ca", None)),
            ),
        )
        #: Seconds after first queueing when a "delayed" DSN goes out once (None: never);
        #: ``config.mta.delay_warning_after`` when the configuration has that setting.
        if delay_warning_after is None:
            delay_warning_after = getattr(mta, "delay_warning_after", None)
        self.delay_warning_after = delay_warning_after
        self.clock = clock
        self._wakeup = threading.Event()
        self._stopping = threading.Event()
        self._flush_requested = False
        self._lock = threading.Lock()
        self._in_flight: dict[str, threading.Thread] = {}
        #: Messages whose last attempt failed unexpectedly (disk full, a corrupt envelope):
        #: held in memory until this time, so an envelope we cannot update is not retried hot.
        self._held_until: dict[str, float] = {}
        self._slots = threading.BoundedSemaphore(max(1, mta.max_outbound_connections))
        self._thread: threading.Thread | None = None

    # ----------------------------------------------------------------- control

    def start(self) -> None:
        """Start the scheduling thread; queued mail from before a restart is picked up."""
        if self._thread is not None:
            return
        self._remove_orphans()
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="refmail-mta", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = STOP_GRACE) -> None:
        """Stop scheduling; wait up to ``timeout`` for deliveries in progress."""
        self._stopping.set()
        self._wakeup.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        deadline = time.monotonic() + timeout
        with self._lock:
            workers = list(self._in_flight.values())
        for worker in workers:
            worker.join(max(0.0, deadline - time.monotonic()))

    def wake(self, queue_id: str | None = None) -> None:
        """Look at the queue again now (a message was queued); fits ``Spool.on_enqueue``."""
        self._wakeup.set()

    def flush(self) -> None:
        """Try every queued message now, whatever its next_attempt (``queue flush``).
        Safe to call from a signal handler: it only sets a flag and an event."""
        self._flush_requested = True
        self._wakeup.set()

    @property
    def busy(self) -> bool:
        """True while a delivery is running (for tests and ``queue list``)."""
        with self._lock:
            return bool(self._in_flight)

    # ----------------------------------------------------------------- the loop

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wakeup.clear()
            try:
                next_due = self._dispatch_due()
            except Exception:  # a bad queue entry must not stop all outbound mail
                log.exception("scheduler: dispatching the queue failed")
                next_due = self.clock() + 60
            delay = None if next_due is None else max(0.0, next_due - self.clock())
            self._wakeup.wait(delay)

    def _dispatch_due(self) -> float | None:
        """Start a delivery for every due message a slot is free for; return when the next
        message not started falls due (None: nothing queued that we wait for)."""
        flush, self._flush_requested = self._flush_requested, False
        now = self.clock()
        next_due: float | None = None
        for envelope in self.spool.list():
            queue_id = envelope.get("id", "")
            with self._lock:
                if queue_id in self._in_flight:
                    continue
                held = self._held_until.get(queue_id, 0.0)
            if not (self.spool.queue_dir / (queue_id + MESSAGE_SUFFIX)).exists():
                # Only ``queue delete`` racing an envelope update leaves an envelope without
                # its message (enqueue writes the message first): finish that delete.
                self._forget(queue_id)
                continue
            try:
                due = float(envelope.get("next_attempt", 0))
            except (TypeError, ValueError):
                due = now
            due = max(due, held)
            if (flush or due <= now) and not self._stopping.is_set():
                if self._slots.acquire(blocking=False):
                    self._start_worker(queue_id)
                    continue
                # No slot free: a finishing delivery wakes us, so no timer is needed for
                # this one; a flush stays owed until then.
                self._flush_requested = self._flush_requested or flush
                continue
            next_due = due if next_due is None else min(next_due, due)
        return next_due

    def _start_worker(self, queue_id: str) -> None:
        worker = threading.Thread(
            target=self._work, args=(queue_id,), name=f"refmail-mta-{queue_id}", daemon=True
        )
        with self._lock:
            self._in_flight[queue_id] = worker
        worker.start()

    def _work(self, queue_id: str) -> None:
        try:
            self.process(queue_id)
            with self._lock:
                self._held_until.pop(queue_id, None)
        except Exception:
            log.exception("%s: delivery attempt failed", queue_id)
            with self._lock:
                self._held_until[queue_id] = self.next_retry_at(1, self.clock())
        finally:
            with self._lock:
                self._in_flight.pop(queue_id, None)
            self._slots.release()
            self._wakeup.set()

    def _remove_orphans(self) -> None:
        now = time.time()
        for queue_id in self.spool.orphans():
            path = self.spool.queue_dir / (queue_id + MESSAGE_SUFFIX)
            try:
                if now - path.stat().st_mtime > ORPHAN_GRACE:
                    log.warning("%s: removing a message without envelope (crash)", queue_id)
                    path.unlink()
            except FileNotFoundError:
                pass

    # ----------------------------------------------------------------- one attempt

    def process(self, queue_id: str) -> None:
        """One delivery attempt for every pending recipient of ``queue_id``, its results
        recorded, reports sent, and the message removed once nothing is left to do."""
        try:
            envelope = self.spool.load(queue_id)
        except KeyError:
            return  # delivered, or removed by ``queue delete``
        try:
            message = self.spool.message(queue_id)
        except KeyError:  # ``queue delete`` raced with an envelope update: finish the delete
            self._forget(queue_id)
            return
        now = self.clock()
        pending = [r for r in envelope["recipients"] if r["state"] == PENDING]
        if pending:
            outcomes = self.attempt(envelope["sender"], [r["address"] for r in pending], message)
            envelope["attempts"] = int(envelope.get("attempts", 0)) + 1
            envelope["last_attempt"] = now
            for rcpt in pending:
                self._record(rcpt, outcomes[rcpt["address"]], now)
            self._schedule(envelope, now)
            if not self._save(queue_id, envelope):
                return
        self._report(queue_id, envelope, message, now)

    def attempt(self, sender: str, recipients: list[str], message: bytes) -> dict[str, Outcome]:
        """Route every recipient and send: local domains straight into the store, foreign
        ones one SMTP transaction per route (RFC 5321 3.3)."""
        outcomes: dict[str, Outcome] = {}
        by_route: dict[Any, tuple[Route, list[str]]] = {}
        routes: dict[str, Route | RouteError] = {}
        for rcpt in recipients:
            domain = rcpt.rpartition("@")[2].lower()
            if self.delivery.is_local_domain(domain):
                outcomes[rcpt] = self._deliver_local(sender, rcpt, message)
                continue
            if domain not in routes:
                try:
                    routes[domain] = self.router.route(domain)
                except RouteError as exc:
                    routes[domain] = exc
            route = routes[domain]
            if isinstance(route, RouteError):
                outcomes[rcpt] = failure(route.status, route.text)
                continue
            by_route.setdefault(route.key, (route, []))[1].append(rcpt)
        for route, rcpts in by_route.values():
            if self._stopping.is_set():
                outcomes.update({r: failure("4.3.2", "server shutting down") for r in rcpts})
                continue
            outcomes.update(self.client.send(route, sender, rcpts, message))
        return outcomes

    def _deliver_local(self, sender: str, rcpt: str, message: bytes) -> Outcome:
        user = self.delivery.resolve(rcpt)
        if user is None:
            return failure("5.1.1", "no such user here")
        try:
            self.delivery.deliver(message, [user], return_path=sender, received=b"")
        except StorageError as exc:
            return failure("4.3.0", f"local delivery failed: {exc}")
        return Outcome("delivered", "2.0.0", f"delivered to local user {user}")

    @staticmethod
    def _record(rcpt: dict[str, Any], outcome: Outcome, now: float) -> None:
        rcpt["status"] = outcome.status
        rcpt["remote"] = outcome.remote
        rcpt["diagnostic"] = outcome.diagnostic
        if outcome.kind == "delivered":
            rcpt["state"] = DELIVERED
            rcpt["last_error"] = None
            return
        rcpt["last_error"] = f"{outcome.status} {outcome.text}"
        if outcome.kind == "permanent":
            rcpt["state"] = FAILED
            rcpt["failed_at"] = now
            rcpt["notified"] = False

    def _schedule(self, envelope: dict[str, Any], now: float) -> None:
        """Next try, or give up once ``give_up_after`` has passed (RFC 5321 4.5.4.1)."""
        pending = [r for r in envelope["recipients"] if r["state"] == PENDING]
        deadline = float(envelope["first_queued"]) + self.config.mta.give_up_after
        errors = [r["last_error"] for r in envelope["recipients"] if r.get("last_error")]
        envelope["last_error"] = errors[-1] if errors else None
        if not pending:
            envelope["next_attempt"] = now
            return
        if now >= deadline:
            for rcpt in pending:
                last = rcpt.get("last_error") or "4.4.7 no attempt succeeded"
                status = rcpt.get("status") or "4.4.7"
                rcpt["state"] = FAILED
                rcpt["failed_at"] = now
                rcpt["notified"] = False
                rcpt["status"] = status if status.startswith("4") else "4.4.7"
                rcpt["last_error"] = f"delivery time expired; last error: {last}"
            envelope["next_attempt"] = now
            return
        envelope["next_attempt"] = min(self.next_retry_at(envelope["attempts"], now), deadline)

    def next_retry_at(self, attempts: int, now: float) -> float:
        """``config.mta.retry[attempts - 1]`` (the last entry repeats) with jitter."""
        schedule = self.config.mta.retry or (3600,)
        delay = schedule[min(max(attempts, 1), len(schedule)) - 1]
        return now + delay * (1 + random.uniform(0, RETRY_JITTER))

    def _save(self, queue_id: str, envelope: dict[str, Any]) -> bool:
        try:
            self.spool.update(queue_id, envelope)
            return True
        except KeyError:
            log.info("%s: removed from the queue while being delivered", queue_id)
            return False

    def _forget(self, queue_id: str) -> None:
        try:
            self.spool.delete(queue_id)
        except KeyError:
            pass

    # ----------------------------------------------------------------- reports

    def _report(self, queue_id: str, envelope: dict[str, Any], message: bytes, now: float) -> None:
        """Send the DSNs owed, then remove the message once every recipient is done."""
        sender = envelope["sender"]
        failed = [r for r in envelope["recipients"] if r["state"] == FAILED]
        unreported = [r for r in failed if not r.get("notified")]
        if unreported:
            if sender:
                self._send_report(envelope, message, unreported, "failed", now)
            else:  # RFC 5321 4.5.5: never a bounce for a bounce
                log.warning(
                    "%s: undeliverable message with null sender dropped for %s",
                    queue_id,
                    ", ".join(f"<{r['address']}>" for r in unreported),
                )
            for rcpt in unreported:
                rcpt["notified"] = True
        pending = [r for r in envelope["recipients"] if r["state"] == PENDING]
        if not pending:
            self._forget(queue_id)
            states = Counter(rcpt["state"] for rcpt in envelope["recipients"])
            log.info("%s: done (%s)", queue_id, ", ".join(f"{n} {s}" for s, n in states.items()))
            return
        changed = bool(unreported)
        warn = self.delay_warning_after
        if (
            warn is not None
            and sender
            and not envelope.get("warned")
            and now - float(envelope["first_queued"]) >= warn
        ):
            self._send_report(envelope, message, pending, "delayed", now)
            envelope["warned"] = True
            changed = True
        if changed:
            self._save(queue_id, envelope)

    def _send_report(
        self,
        envelope: dict[str, Any],
        message: bytes,
        recipients: list[dict[str, Any]],
        action: str,
        now: float,
    ) -> None:
        until = float(envelope["first_queued"]) + self.config.mta.give_up_after
        statuses = [
            dsn.RecipientStatus(
                address=r["address"],
                action=action,
                status=r.get("status") or ("4.0.0" if action == "delayed" else "5.0.0"),
                diagnostic=r.get("diagnostic") or r.get("last_error") or "",
                remote_mta=r.get("remote"),
                last_attempt=envelope.get("last_attempt"),
                will_retry_until=until if action == "delayed" else None,
            )
            for r in recipients
        ]
        report = dsn.build_report(
            hostname=self.config.hostname,
            sender=envelope["sender"],
            original=message,
            arrival=float(envelope["first_queued"]),
            recipients=statuses,
            now=now,
        )
        try:
            where = dsn.send_report(
                report,
                envelope["sender"],
                delivery=self.delivery,
                spool=self.spool,
                hostname=self.config.hostname,
            )
        except (StorageError, OSError):
            log.exception("%s: could not send the %s report", envelope["id"], action)
            raise
        log.info(
            "%s: %s report for %d recipient(s) sent to %s",
            envelope["id"],
            action,
            len(statuses),
            where,
        )
