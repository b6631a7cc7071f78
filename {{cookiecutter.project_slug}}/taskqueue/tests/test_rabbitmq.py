"""taskqueue/rabbitmq.py: delayed delivery set up through the node the worker reached."""

from types import SimpleNamespace

from celery import Celery
from kombu import Connection

from taskqueue.rabbitmq import Consumer, DelayedDelivery


def test_the_worker_sets_up_delayed_delivery_through_its_node_only(monkeypatch):
    cluster = "amqp://u:p@rabbit1//;amqp://u:p@rabbit2//;amqp://u:p@rabbit3//"
    monkeypatch.setenv("CELERY_BROKER_URL", cluster)  # which Celery reads first
    app = Celery()
    worker = SimpleNamespace(app=app, connection=Connection("amqp://u:p@rabbit2//"))
    step = DelayedDelivery(worker)
    through = []
    monkeypatch.setattr(step, "_setup_delayed_delivery", lambda c, url: through.append(url))
    step.start(worker)
    assert through == ["amqp://u:p@rabbit2:5672//"]


def test_the_worker_consumer_uses_it():
    steps = Consumer.Blueprint.default_steps
    assert "taskqueue.rabbitmq:DelayedDelivery" in steps
    assert not any(step.startswith("celery.") and "DelayedDelivery" in step for step in steps)
