"""Sending alerts off the event loop: one worker thread and one bounded queue per service.

apprise's ``Apprise.notify`` blocks (HTTP, SMTP) for up to its timeouts (apprise's ``cto``/``rto``
URL options, 4 s each by default), so it never runs on the bot's event loop: the loop only
puts an :class:`~perpbot.plugins.alerts.messages.Alert` into each service's queue
(``put_nowait``, never blocking; a full queue answers False and the caller counts the alert
as held back, see :mod:`perpbot.plugins.alerts.ratelimit`). Each :class:`ServiceWorker` thread
sends its queue in order; one slow or dead service delays no other.

A failed send (apprise's ``notify`` result is false, or it raises) is retried ``retries``
times, after ``backoff_s``, ``2*backoff_s``, ... seconds; then it is logged as an error
naming the alert kind, the service's label (scheme and host only, never the URL) and
apprise's own last warning for it (secrets scrubbed). Nothing is dropped without a log line,
and no failure reaches the bot: trading never waits for, nor stops because of, an alert.

The apprise call: ``Apprise(asset=AppriseAsset(storage_mode="memory"))`` (no files written),
``add(url)``, ``notify(body=, title=, notify_type=)``; the result's ``logs()`` hold the
warnings of the call (apprise ``apprise/apprise.py``, ``Apprise.notify``; ``AppriseResult``).
Imports :mod:`perpbot.core` and apprise.
"""

from __future__ import annotations

import queue
import threading
import time
from decimal import Decimal
from typing import Callable

from loguru import logger

from perpbot.plugins.alerts.messages import Alert, Scrubber
from perpbot.plugins.alerts.settings import AlertService

def apprise_sender(service: AlertService) -> Callable[[Alert], tuple[bool, str]]:
    """A function that sends one alert to ``service`` with apprise: ``send(alert) -> (ok, why)``.

    ``why`` is apprise's last warning of the call (empty on success). Called in the worker
    thread only (it blocks).
    """
    import apprise

    obj = apprise.Apprise(asset=apprise.AppriseAsset(storage_mode="memory"))
    obj.add(service.reveal())
    types = {"info": apprise.NotifyType.INFO, "success": apprise.NotifyType.SUCCESS,
             "warning": apprise.NotifyType.WARNING, "failure": apprise.NotifyType.FAILURE}

    def send(alert: Alert) -> tuple[bool, str]:
        result = obj.notify(body=alert.body, title=alert.title, notify_type=types.get(alert.level, apprise.NotifyType.INFO),
                            body_format=apprise.NotifyFormat.TEXT)
        if result:
            return True, ""
        logs = [e.message for e in result.logs()] if hasattr(result, "logs") else []
        return False, (logs[-1] if logs else "apprise reported a failure")

    return send


class ServiceWorker:
    """The thread and bounded queue that send one service's alerts, with retries.

    :param service: the :class:`~perpbot.plugins.alerts.settings.AlertService`.
    :param scrub: the run's :class:`~perpbot.plugins.alerts.messages.Scrubber` (for apprise's
        error text in log lines).
    :param retries: retries after a failed send; :param backoff_s: seconds before the first
        retry (doubling); :param queue_size: alerts waiting at most.
    :param sender: ``sender(service)`` -> ``send(alert) -> (ok, why)`` (default :func:`apprise_sender`).
    """

    def __init__(self, service: AlertService, scrub: Scrubber, *, retries: int = 3, backoff_s: Decimal = Decimal(1),
                 queue_size: int = 100, sender: Callable = apprise_sender):
        self.service = service
        self.scrub = scrub
        self.retries = retries
        self.backoff_s = float(backoff_s)  # a delay, not money
        self.queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self.sender = sender
        #: alerts delivered, alerts given up after every retry
        self.sent = 0
        self.failed = 0
        self._closing = threading.Event()
        self._finish = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"perpbot-alerts {service.label}", daemon=True)

    def start(self) -> None:
        """Start the worker thread."""
        self.thread.start()

    def put(self, alert: Alert) -> bool:
        """Queue ``alert`` without blocking; False when the queue is full (the caller holds it back)."""
        try:
            self.queue.put_nowait(alert)
            return True
        except queue.Full:
            return False

    def pending(self) -> int:
        """Alerts queued and not yet handled (approximate, as :meth:`queue.Queue.qsize`)."""
        return self.queue.qsize()

    def _run(self) -> None:
        try:
            send = self.sender(self.service)
        except Exception as exc:  # apprise could not be set up for this URL: say so for every alert
            send = None
            setup_error = f"{type(exc).__name__}: {self.scrub.clean(exc)}"
        while True:
            alert = self.queue.get()
            if alert is not None:
                if send is None:
                    self.failed += 1
                    logger.error(f"alert {alert.kind} to {self.service.label} not sent: {setup_error}")
                else:
                    self._deliver(send, alert)
            if self._finish.is_set() and self.queue.empty():
                return

    def _deliver(self, send: Callable, alert: Alert) -> None:
        why, tries = "", 0
        for attempt in range(self.retries + 1):
            tries += 1
            if attempt:
                # waits between tries; at stop (closing) the remaining tries go without waiting
                self._closing.wait(self.backoff_s * 2 ** (attempt - 1))
            try:
                ok, why = send(alert)
            except Exception as exc:  # apprise raising is a failed send like any other
                ok, why = False, f"{type(exc).__name__}: {exc}"
            if ok:
                self.sent += 1
                return
        self.failed += 1
        logger.error(f"alert {alert.kind} to {self.service.label} failed after {tries} attempt(s), "
                     f"given up: {self.scrub.clean(why)} (title: {alert.title[:80]})")

    def finish(self) -> None:
        """Ask the thread to stop once its queue is empty (returns at once). A ``None`` wakes a
        thread waiting on an empty queue; with a full queue the thread sees the request after
        its next alert."""
        self._finish.set()
        try:
            self.queue.put_nowait(None)
        except queue.Full:
            pass

    def join(self, timeout: float) -> int:
        """Wait up to ``timeout`` seconds for the thread (blocking: call it off the event loop);
        returns how many alerts were still queued or in flight when it gave up (0: all handled)."""
        self.thread.join(max(timeout, 0.0))
        if self.thread.is_alive():
            self._closing.set()  # no more backoff waits
            return self.queue.qsize() + 1
        return 0


class Dispatcher:
    """The workers of every service: :meth:`put` an alert to all of them, :meth:`close` at the end.

    :param services: the run's services; the other parameters as :class:`ServiceWorker`.
    """

    def __init__(self, services, scrub: Scrubber, *, retries: int, backoff_s: Decimal, queue_size: int,
                 sender: Callable = apprise_sender):
        self.scrub = scrub
        self.workers = [ServiceWorker(s, scrub, retries=retries, backoff_s=backoff_s, queue_size=queue_size,
                                      sender=sender) for s in services]

    def start(self) -> None:
        """Start every worker thread."""
        for w in self.workers:
            w.start()

    def put(self, alert: Alert) -> bool:
        """Queue ``alert`` (secrets scrubbed once more) for every service; False when some queue was
        full (that service did not get it; the caller counts it as held back)."""
        clean = Alert(alert.kind, alert.level, self.scrub.final(alert.title), self.scrub.final(alert.body),
                      self.scrub.final(alert.line), alert.ts_ns)
        ok = True
        for w in self.workers:
            if not w.put(clean):
                ok = False
                logger.warning(f"alert queue of {w.service.label} is full ({w.queue.maxsize}); "
                               f"{alert.kind} alert held back for a digest")
        return ok

    def close(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds in all for queued alerts (blocking: run it in a thread);
        a service that could not finish is logged with how many alerts it did not send."""
        deadline = time.monotonic() + timeout
        for w in self.workers:
            w.finish()
        for w in self.workers:
            left = w.join(deadline - time.monotonic())
            if left:
                logger.error(f"alerts to {w.service.label}: {left} alert(s) not delivered within {timeout:g}s "
                             "of the stop (service slow or down)")
