"""kombu's filesystem transport, with each message written whole before it can be read.

kombu writes a message file in place, so a worker polling the folder can take it
half-written, fail to decode it and stop. Here each message is written under a
temporary name, which the transport ignores, then renamed into place: a rename
within one folder is atomic.
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
