"""kombu's filesystem transport, with two changes.

- Each message is written whole before it can be read. kombu writes a message
  file in place, so a worker polling the folder can take it half-written, fail
  to decode it and stop. Here it is written under a temporary name, which the
  transport ignores, then renamed into place: a rename in one folder is atomic.
- A busy worker looks for its next message soon after a task ends, not one
  polling interval later (see Transport.polling_interval).
"""

import os
import uuid
from time import monotonic

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.json import dumps


class Channel(filesystem.Channel):
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


class Transport(filesystem.Transport):
    Channel = Channel

    # How soon to look again while every channel holds all the unacknowledged
    # messages it may (CELERY_WORKER_PREFETCH_MULTIPLIER).
    busy_polling_interval = 0.005
    _polling_interval = filesystem.Transport.polling_interval

    @property
    def polling_interval(self):
        """How long kombu sleeps when it gets no message.

        It gets none while the worker already holds its full share of
        unacknowledged tasks; a finished task's ack then frees a slot from
        another thread. Sleeping a whole polling interval there would cap a
        worker at concurrency / interval tasks a second (20 at 0.1 s), so a busy
        worker looks again soon, and an idle one every polling interval.
        """
        if any(not channel.qos.can_consume() for channel in self.channels):
            return self.busy_polling_interval
        return self._polling_interval

    @polling_interval.setter
    def polling_interval(self, seconds):
        self._polling_interval = seconds
