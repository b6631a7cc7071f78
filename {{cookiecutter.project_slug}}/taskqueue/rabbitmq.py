"""Celery's worker consumer, with one fix: a RabbitMQ node that is down does not hold
the worker up.

On quorum queues, a worker declares RabbitMQ's delayed delivery (the exchanges and
queues that keep countdown and ETA tasks until they are due) each time it connects.
Celery 5.7.0 does it through every URL of CELERY_BROKER_URL in turn, trying one that
does not answer for about 40 s before the worker takes a task. The nodes of a cluster
share their exchanges and queues, so one is enough; and with a node down, each
reconnection waited those 40 s, longer than the heartbeat, so the node the worker had
just reached closed the connection, and the worker never took a task again. Here the
worker declares them through the node it is connected to.
"""

from celery.worker import consumer
from celery.worker.consumer import delayed_delivery


class DelayedDelivery(delayed_delivery.DelayedDelivery):
    def start(self, c):
        self.connected_to = c.connection.as_uri(include_password=True)
        super().start(c)

    def _validate_broker_urls(self, broker_urls):
        return {self.connected_to}


class Consumer(consumer.Consumer):
    class Blueprint(consumer.Consumer.Blueprint):
        default_steps = [
            f"{__name__}:DelayedDelivery" if step.endswith(":DelayedDelivery") else step
            for step in consumer.Consumer.Blueprint.default_steps
        ]
