"""kombu's Redis transport, with one fix: a worker whose Redis connection drops stays up.

When a worker loses its broker connection, Celery 5.7.0 discards the connection's client,
then closes its channels once more. A channel whose first close stopped at the dead socket
then hands its unacknowledged messages back to Redis, and kombu 5.7.0, finding no client
to connect with, raises AttributeError ("'NoneType' object has no attribute 'hostname'"),
which stops the worker. Here that channel raises a connection error instead, which Celery
expects and ignores: the worker reconnects, and the messages stay among Redis's
unacknowledged ones, which Redis delivers again after the visibility timeout.
"""

from kombu.transport import redis
from redis.exceptions import ConnectionError


class Channel(redis.Channel):
    def _connparams(self, asynchronous=False):
        if self.connection.client is None:
            raise ConnectionError("the broker connection is closed")
        return super()._connparams(asynchronous=asynchronous)


class Transport(redis.Transport):
    Channel = Channel
