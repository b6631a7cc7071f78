"""The embedded broker (broker.py) on real files, with real processes that die."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from kombu import Connection, Exchange, Producer, Queue

from taskqueue import broker
from taskqueue.broker import BOOT, HOST, Transport, recover

PROJECT = Path(__file__).resolve().parents[2]

# Run in a child process: connect to the broker, claim a message or declare a queue,
# print "ready", then exit when its standard input closes (unless killed first). Django
# is not set up there, so the transport is named rather than found by its scheme.
CHILD = """
import json, sys
from kombu import Connection, Exchange, Queue

options, action = sys.argv[1:]
transport = "taskqueue.broker:Transport"
with Connection(transport=transport, transport_options=json.loads(options)) as conn:
    if action == "claim":
        message = conn.SimpleQueue("jobs").get(timeout=10)
    else:
        Queue("listener", Exchange("news", "fanout"), auto_delete=True)(conn.channel()).declare()
    print("ready", flush=True)
    sys.stdin.read()
"""


def options(folder, **more):
    return {
        "data_folder_in": str(folder / "queue"),
        "data_folder_out": str(folder / "queue"),
        "control_folder": str(folder / "control"),
        **more,
    }


def connect(folder, **more):
    return Connection("filesystem://", transport_options=options(folder, **more))


def child(folder, action):
    """A process that does `action` on the broker in `folder`, then waits."""
    process = subprocess.Popen(
        [sys.executable, "-c", CHILD, json.dumps(options(folder)), action],
        cwd=PROJECT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout.readline() == "ready\n"
    return process


def end(process, how="kill"):
    if how == "kill":
        process.send_signal(signal.SIGKILL)
    process.stdin.close()
    process.wait(10)
    process.stdout.close()


def test_filesystem_url_is_the_projects_transport(tmp_path):
    with Connection(f"filesystem://{tmp_path}") as conn:  # the URL's path is the folder
        assert isinstance(conn.transport, Transport)
        assert conn.default_channel.data_folder_in == str(tmp_path / "queue")


@pytest.mark.parametrize(
    "machine, restored",
    [(f"another-host\n{BOOT}", True), (f"{HOST}\nanother-boot", True), ("elsewhere\nx", False)],
    ids=["container-on-this-host", "before-a-reboot", "another-machine"],
)
@pytest.mark.parametrize("claimed", ["1-abc.claim", ".claimed/1-abc/"], ids=["now", "earlier"])
def test_claims_of_another_machine_are_left_alone(tmp_path, machine, restored, claimed):
    """An unlocked owner file is a dead owner, unless it names another machine (another name
    and another kernel), whose locks this one cannot see. Claims are files renamed
    <message>.<owner>.claim, or, by earlier versions, moved into .claimed/<owner>/."""
    folder = tmp_path / "queue"
    (folder / ".owners").mkdir(parents=True)
    (folder / ".owners" / "1-abc").write_text(machine)
    name = "00000000000000001_x.jobs.msg"
    path = folder / (f"{claimed}{name}" if claimed.endswith("/") else f"{name}.{claimed}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("{}")
    assert recover(folder) == int(restored)
    assert (folder / name).exists() == restored


def test_claims_whose_owner_left_no_lock_file_go_back_at_start(tmp_path):
    """After a power cut the claims can be on the disk without their owner's lock file: the
    scan of a process that starts to read the folder puts them back."""
    folder = tmp_path / "queue"
    folder.mkdir()
    (folder / "00000000000000001_x.jobs.msg.1-abc.claim").write_text("{}")
    assert recover(folder) == 0
    assert recover(folder, scan=True) == 1
    assert os.listdir(folder) == ["00000000000000001_x.jobs.msg"]


def test_messages_claimed_by_a_killed_process_go_back_to_the_queue(tmp_path):
    with connect(tmp_path) as conn:
        conn.SimpleQueue("jobs").put({"n": 1})
    claimer = child(tmp_path, "claim")
    with connect(tmp_path) as conn, pytest.raises(conn.SimpleQueue("jobs").Empty):
        conn.SimpleQueue("jobs").get(timeout=0.1)  # a live process's claim stays its own
    end(claimer)
    with connect(tmp_path) as conn:
        message = conn.SimpleQueue("jobs").get(timeout=5)
        assert message.payload == {"n": 1}
        message.ack()
    assert list((tmp_path / "queue").glob("*.claim")) == []


def test_an_acknowledged_message_is_gone_and_a_rejected_one_comes_back(tmp_path):
    with connect(tmp_path) as conn:
        queue = conn.SimpleQueue("jobs")
        queue.put({"n": 1})
        queue.get(timeout=5).reject(requeue=True)
        message = queue.get(timeout=5)
        assert message.payload == {"n": 1}
        message.ack()
        with pytest.raises(queue.Empty):
            queue.get(timeout=0.5)
    assert [name for name in os.listdir(tmp_path / "queue") if not name.startswith(".")] == []


def test_unreadable_message_files_are_set_aside(tmp_path, caplog):
    queue_folder = tmp_path / "queue"
    with connect(tmp_path) as conn:
        queue = conn.SimpleQueue("jobs")
        queue.put({"n": 1})
        # Older than the real message, so they are read first.
        (queue_folder / "00000000000000001_empty.jobs.msg").write_bytes(b"")
        (queue_folder / "00000000000000002_cut.jobs.msg").write_bytes(b'{"body": "x')
        (queue_folder / "00000000000000003_list.jobs.msg").write_bytes(b"[]")
        assert queue.get(timeout=5).payload == {"n": 1}
    assert sorted(os.listdir(queue_folder / ".bad")) == [
        "00000000000000001_empty.jobs.msg",
        "00000000000000002_cut.jobs.msg",
        "00000000000000003_list.jobs.msg",
    ]
    assert caplog.text.count("Set aside message file") == 3


@pytest.mark.parametrize("how", ["exit", "kill"])
def test_a_gone_consumers_queue_stops_collecting_messages(tmp_path, how, monkeypatch):
    # What a sender knows of a queue's owner is trusted for OWNER_CACHE seconds: not here.
    monkeypatch.setattr(broker, "OWNER_CACHE", 0)
    news = Exchange("news", "fanout")
    listener = child(tmp_path, "listen")
    with connect(tmp_path) as conn:
        Queue("archive", news)(conn.channel()).declare()
        Producer(conn.channel(), news).publish({"n": 1})
        assert sorted(queue_names(tmp_path)) == ["archive", "listener"]
        end(listener, how)
        Producer(conn.channel(), news).publish({"n": 2})
        assert sorted(queue_names(tmp_path)) == ["archive", "archive"]  # the listener's: gone
        assert [binding.queue for binding in conn.default_channel.get_table("news")] == ["archive"]


def queue_names(folder):
    return [name.split(".")[1] for name in os.listdir(folder / "queue") if name.endswith(".msg")]


@pytest.mark.parametrize("inotify", [True, False], ids=["inotify", "polling"])
def test_a_consumer_receives_what_another_process_sends(tmp_path, inotify):
    received = []
    with connect(tmp_path, inotify=inotify) as conn:
        queue = Queue("jobs", Exchange("jobs"), "jobs")
        with conn.Consumer(queue, callbacks=[lambda body, message: received.append(body)]):
            with connect(tmp_path) as sender:
                sender.Producer().publish({"n": 1}, exchange=queue.exchange, routing_key="jobs")
            conn.drain_events(timeout=5)
        watch = conn.transport.watch(tmp_path / "queue")
        assert (watch.fd is not None) == inotify
    assert received == [{"n": 1}]
