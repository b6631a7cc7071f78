"""kombu's filesystem transport, with three changes.

- Each message is written whole before it can be read. kombu writes a message
  file in place, so a worker polling the folder can take it half-written, fail
  to decode it and stop. Here it is written under a temporary name, which the
  transport ignores, then renamed into place: a rename in one folder is atomic.
- A worker lists the queue folder once for many messages. kombu lists and
  sorts the whole folder for every message it takes, so with thousands of
  messages waiting that listing is most of a worker's work.
- A busy worker takes its next message as soon as a task ends, not one
  polling interval later (see Transport.drain_events).
"""

import os
import threading
import uuid
from collections import deque
from queue import Empty
from time import monotonic

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.json import dumps, loads


class Channel(filesystem.Channel):
    # How long one listing of the folder may answer for a queue that was empty
    # in it; a queue emptied by taking its messages is listed again at once.
    listing_max_age = 0.02

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._listed = {}  # "<queue>.msg": message file names, oldest first
        self._listed_at = float("-inf")

    def _put(self, queue, payload, **kwargs):
        # The name kombu gives a message: ordered by time, matched by queue.
        name = f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        path = os.path.join(self.data_folder_out, name)
        try:
            with open(f"{path}.tmp", "wb") as file:
                file.write(dumps(payload).encode())
            os.replace(f"{path}.tmp", path)
        except OSError as exc:
            raise ChannelError(f"Cannot add file {path!r} to directory") from exc

    def basic_ack(self, delivery_tag, multiple=False):
        super().basic_ack(delivery_tag, multiple)
        self.connection.acked.set()

    def basic_reject(self, delivery_tag, requeue=False):
        super().basic_reject(delivery_tag, requeue)
        self.connection.acked.set()

    def _get(self, queue):
        key = f"{queue}.msg"
        names = self._listed.get(key)
        if not names and monotonic() - self._listed_at > self.listing_max_age:
            self._listed = {}
            for name in sorted(os.listdir(self.data_folder_in)):
                self._listed.setdefault(name.partition(".")[2], deque()).append(name)
            self._listed_at = monotonic()
            names = self._listed.get(key)
        while names:
            path = os.path.join(self.data_folder_in, names.popleft())
            if not names:
                self._listed_at = float("-inf")
            # Renaming the file claims its message: of several workers that listed
            # it, one renames it and the others find it gone.
            claimed = f"{path}.{os.getpid()}.claimed"
            try:
                os.rename(path, claimed)
            except FileNotFoundError:
                continue
            try:
                with open(claimed, "rb") as file:
                    payload = file.read()
                os.remove(claimed)
            except OSError as exc:
                raise ChannelError(f"Cannot read file {claimed!r} from queue") from exc
            return loads(payload)
        raise Empty()


class Transport(filesystem.Transport):
    Channel = Channel

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.acked = threading.Event()

    def drain_events(self, connection, timeout=None):
        """Deliver one message, polling every polling_interval until there is one.

        While a worker holds all the unacknowledged tasks it may
        (CELERY_WORKER_PREFETCH_MULTIPLIER), it takes no message; an ack from the
        pool's result thread then frees a slot. kombu would sleep a whole polling
        interval there, capping a busy worker at concurrency / interval tasks a
        second; here an ack ends the wait at once.
        """
        started = monotonic()
        while True:
            self.acked.clear()
            try:
                self.cycle.get(self._deliver, timeout=timeout)
                return
            except Empty:
                pass
            wait = self.polling_interval or 0
            if timeout is not None:
                left = timeout - (monotonic() - started)
                if left <= 0:
                    raise TimeoutError()
                wait = min(wait, left)
            self.acked.wait(wait)
