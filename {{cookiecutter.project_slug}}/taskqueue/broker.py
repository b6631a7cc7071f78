"""The embedded broker: Celery messages as files in a folder on this machine.

This is kombu's filesystem transport (``filesystem://`` in CELERY_BROKER_URL)
with what a worker needs to trust it:

- A message is claimed by renaming its file with the name of the process that
  took it, and deleted only when the task is acknowledged. Each such process
  holds a lock on a file of its own, which the kernel releases however the
  process ends (kill -9, OOM, power cut), so another process can tell a dead
  owner from a live one without trusting PIDs: a worker puts a dead process's
  claimed messages back in the queue when it starts, and every few seconds.
- On Linux a worker learns of new message files from inotify instead of
  listing the folder: it waits in Celery's event loop, like on Redis or
  RabbitMQ, and costs nothing while idle. Elsewhere it lists the folder every
  polling_interval.
- Each message file is written under a temporary name, then renamed, so no
  reader sees it half-written; a file that still cannot be read is moved to
  ``.bad/`` and logged, and the worker goes on.
- A task message is on the disk before the call that sent it returns: its data
  is flushed before the rename, the folder after it (one flush of the folder
  serves every thread of the process that renamed a file before it began). A
  claim renames the file in the same folder, which a power cut keeps whole or
  not at all. After a power cut every task sent is waiting, claimed or done.
- An auto-delete queue (``celery events``, Flower, ``celery inspect`` replies)
  names the process that declared it; once that process is gone, messages for
  it are no longer stored.

``filesystem://`` names it (taskqueue/apps.py). The folder is ``.broker/``
beside manage.py, or the URL's path
(``filesystem:///srv/myproject/broker``); it must be on a local filesystem (file
locks and inotify are not reliable over NFS). Its layout:

    queue/<time>_<id>.<queue>.msg   messages waiting
    queue/<message>.<owner>.claim   messages a process took and has not acknowledged
    queue/.owners/<owner>           that process's lock file
    queue/.bad/                     message files that could not be read
    control/<exchange>.exchange     exchange bindings, in kombu's format
    control/<queue>.owner           the owner of an auto-delete queue
"""

import atexit
import contextlib
import ctypes
import fcntl
import heapq
import logging
import os
import select
import socket
import sys
import threading
import time
import uuid
from pathlib import Path
from queue import Empty

from kombu.entity import TRANSIENT_DELIVERY_MODE
from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.transport.virtual import BrokerState
from kombu.utils.json import dumps, loads

logger = logging.getLogger(__name__)

FOLDER = Path(__file__).resolve().parent.parent / ".broker"
RECOVERY_INTERVAL = 5  # seconds between looks for the claims of dead processes
OWNER_CACHE = 1  # seconds a queue owner's liveness is trusted before looking again
STALE_TEMPORARY = 600  # seconds after which a half-written message file is removed
CLAIMED = ".claim"  # the suffix of a claimed message file: <name>.<owner>.claim
# This machine: its name, and its kernel's boot id, which the containers of one host share.
HOST = socket.gethostname()
BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
BOOT = BOOT_ID.read_text().strip() if BOOT_ID.exists() else ""

# inotify(7) constants.
IN_CLOSE_WRITE, IN_MOVED_TO, IN_Q_OVERFLOW = 0x8, 0x80, 0x4000


def flush(fd, data_only=False):
    """Make what was written through `fd` durable: a file's data, or a folder's entries."""
    if hasattr(fcntl, "F_FULLFSYNC"):  # macOS: fsync reaches the drive, not its medium
        fcntl.fcntl(fd, fcntl.F_FULLFSYNC)
    elif data_only:
        os.fdatasync(fd)
    else:
        os.fsync(fd)


class FolderFlush:
    """The flushes of one folder's entries, shared by the threads of this process.

    A flush makes durable every change to the folder made before it began. A thread
    whose change is made needs a flush that begins after that: it starts one, or, if
    one is running, waits for it to end and for the next (which one of the waiting
    threads starts, for all of them).
    """

    def __init__(self, folder):
        self.folder = folder
        self.changed = threading.Condition()
        self.begun = self.ended = 0  # flushes, numbered
        self.running = False

    def __call__(self):
        with self.changed:
            needed = self.begun + 1
            while self.running and self.ended < needed:
                self.changed.wait()
            if self.ended >= needed:
                return
            self.running = True
            self.begun += 1
            number = self.begun
        done = False
        try:
            fd = os.open(self.folder, os.O_RDONLY | os.O_DIRECTORY)
            try:
                flush(fd)
            finally:
                os.close(fd)
            done = True
        finally:
            with self.changed:
                self.running = False
                if done:
                    self.ended = number
                self.changed.notify_all()


_flushes = {}  # folder -> its FolderFlush
_flushes_lock = threading.Lock()


def flush_folder(folder):
    """Make the changes already made to `folder`'s entries durable."""
    folder = str(folder)
    with _flushes_lock:
        folder_flush = _flushes.setdefault(folder, FolderFlush(folder))
    folder_flush()


def forget_flushes():
    """In a forked child: a thread of the parent may have held these locks."""
    global _flushes_lock
    _flushes.clear()
    _flushes_lock = threading.Lock()


os.register_at_fork(after_in_child=forget_flushes)


def write_file(path, data, durable=True):
    """Write `path` whole: under a temporary name, renamed over it once written, so that no
    reader sees half of it. With `durable`, its data is flushed before the rename, and the
    rename after it."""
    temporary = f"{path}.tmp"
    with open(temporary, "wb") as file:
        file.write(data)
        if durable:
            file.flush()
            flush(file.fileno(), data_only=True)
    os.rename(temporary, path)
    if durable:
        flush_folder(os.path.dirname(path))


def make_folder(folder):
    """Create `folder` and its missing parents, each durably: a message flushed into a
    folder whose own name was lost in a power cut would be lost with it."""
    folder = Path(folder)
    if not folder.is_dir():
        make_folder(folder.parent)
        with contextlib.suppress(FileExistsError):
            folder.mkdir()
        flush_folder(folder.parent)


def folder_of(client):
    """The broker's folder, from the URL of a kombu Connection."""
    path = client.virtual_host
    return FOLDER if path in (None, "", "/") else Path("/", path)


def queue_of(name):
    """The queue a message file belongs to ("123_ab.celery.msg" -> "celery"), or None."""
    rest = name.partition(".")[2]
    return rest[:-4] if rest.endswith(".msg") and not name.startswith(".") else None


def claimed_by(name):
    """The message name and owner of a claimed file's name ("123_ab.celery.msg.7-c4f.claim"
    -> ("123_ab.celery.msg", "7-c4f")), or None."""
    if not name.endswith(CLAIMED):
        return None
    message, _, owner = name.removesuffix(CLAIMED).rpartition(".")
    return message, owner


class Owner:
    """This process, as the holder of the messages it claimed from one queue folder.

    A claimed message stays in the queue folder, renamed to <name>.<owner>.claim.
    That is one change to one folder's entries, which a power cut keeps whole or
    not at all, so a claim needs no flush: the message is found claimed (and goes
    back to the queue) or still waiting. (A rename into another folder would be two
    changes, and a sender's flush of the queue folder could make the message's
    departure durable before its arrival.)

    Its lock file is locked before it appears under its final name, and stays
    locked while the process lives. A process forked from this one does not
    inherit the role (see forget_owners). The lock file need not survive a power
    cut either: claims whose owner left no lock file are a dead owner's.
    """

    def __init__(self, folder):
        self.id = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
        self.lock = folder / ".owners" / self.id
        self.lock.parent.mkdir(exist_ok=True)
        temporary = self.lock.with_name(f".{self.id}")
        self.fd = os.open(temporary, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        os.write(self.fd, f"{HOST}\n{BOOT}".encode())
        os.rename(temporary, self.lock)

    def claim(self, folder, name):
        """Claim message file `name`; its claimed path, or None if another process took
        it first (of several that saw the file, one renames it)."""
        claimed = folder / f"{name}.{self.id}{CLAIMED}"
        try:
            os.rename(folder / name, claimed)
        except FileNotFoundError:
            return None
        return claimed

    def release(self, folder):
        """At exit: put back what is still claimed, then give up the lock."""
        unclaim(folder, self.id, os.listdir(folder))
        with contextlib.suppress(FileNotFoundError):
            self.lock.unlink()
        os.close(self.fd)


_owners = {}  # queue folder -> this process's Owner for it


def owner_for(folder):
    if folder not in _owners:
        _owners[folder] = Owner(folder)
    return _owners[folder]


def forget_owners():
    """In a forked child: close the parent's lock files, so that the parent's lock
    ends with the parent (flock locks are shared with children that keep the file open)."""
    for owner in _owners.values():
        os.close(owner.fd)
    _owners.clear()


os.register_at_fork(after_in_child=forget_owners)


@atexit.register
def release_owners():
    for folder, owner in list(_owners.items()):
        with contextlib.suppress(OSError):
            owner.release(folder)
    _owners.clear()


def take_over(lock):
    """If the owner of lock file `lock` has died, lock it and return the open file
    descriptor (-1 if the file is gone); None while the owner lives, or if it ran on
    another machine (another name and another kernel), whose locks are not seen here."""
    mine = [owner for owner in _owners.values() if owner.lock == lock]
    if mine:
        return None
    try:
        fd = os.open(lock, os.O_RDWR)
    except FileNotFoundError:
        return -1
    try:
        host, _, boot = os.pread(fd, 255, 0).decode(errors="replace").partition("\n")
        if host and host != HOST and boot != BOOT:
            raise BlockingIOError
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def unclaim(folder, owner, names):
    """Put back the messages among the files `names` of `folder` that `owner` claimed;
    return how many."""
    restored = 0
    for name in names:
        claim = claimed_by(name)
        if claim and claim[1] == owner:
            with contextlib.suppress(FileNotFoundError):
                os.rename(folder / name, folder / claim[0])
                restored += 1
    return restored


def recover(folder, scan=False):
    """Put the messages claimed by dead processes back in `folder`; return how many.

    Each dead owner's lock file is taken over (locked) while its claims go back, so that
    two processes never restore the same claims. With `scan` (when a process starts to
    read the folder, as after a reboot), the claims of owners that left no lock file go
    back too, and message files a dead process left half-written are removed.
    """
    names = os.listdir(folder) if scan else None
    owners = {lock.name for lock in iter_folder(folder / ".owners") if lock.is_file()}
    owners |= {claims.name for claims in iter_folder(folder / ".claimed")}
    if scan:
        owners |= {claim[1] for claim in map(claimed_by, names) if claim}
    dead = {}  # owner -> its lock file, locked by us (-1 if it left none)
    for owner in owners:
        fd = take_over(folder / ".owners" / owner)
        if fd is not None:
            dead[owner] = fd
    if dead and names is None:
        names = os.listdir(folder)
    restored = 0
    for owner, fd in dead.items():
        count = unclaim(folder, owner, names) + recover_earlier_claims(folder, owner)
        if fd >= 0:
            (folder / ".owners" / owner).unlink(missing_ok=True)
            os.close(fd)
        if count:
            logger.warning(
                "Restored %d message(s) claimed by process %s, which has died",
                count,
                owner.partition("-")[0],
            )
        restored += count
    now = time.time()
    for name in names if scan else ():
        if name.endswith(".tmp"):
            with contextlib.suppress(FileNotFoundError):
                if now - os.stat(folder / name).st_mtime > STALE_TEMPORARY:
                    os.unlink(folder / name)
    return restored


def recover_earlier_claims(folder, owner):
    """The claims of a dead `owner` that earlier versions of this module moved into
    .claimed/<owner>/: back to `folder`, flushed there before their folder goes."""
    claims = folder / ".claimed" / owner
    names = [claim.name for claim in iter_folder(claims)]
    for name in names:
        os.rename(claims / name, folder / name)
    if names:
        flush_folder(folder)
    with contextlib.suppress(OSError):
        claims.rmdir()
        (folder / ".claimed").rmdir()  # once empty
    return len(names)


def table_row(routing_key, pattern, queue):
    """A binding as a row of an exchange's table, in kombu's format."""
    return filesystem.exchange_queue_t(routing_key or "", pattern or "", queue or "")


def iter_folder(folder):
    """The entries of `folder`; none if it does not exist."""
    try:
        return list(folder.iterdir())
    except FileNotFoundError:
        return []


class Watch:
    """The messages waiting in one queue folder, by queue, oldest first.

    On Linux inotify reports each new file, so the folder is listed only once
    (and again if the kernel's event queue overflowed); elsewhere it is listed
    again when a queue runs empty, at most every polling_interval.
    """

    def __init__(self, folder, inotify, polling_interval):
        self.folder = folder
        self.polling_interval = polling_interval
        self.waiting = {}  # queue -> heap of file names
        self.listed_at = float("-inf")
        self.fd = self._inotify() if inotify else None

    def _inotify(self):
        libc = ctypes.CDLL(None, use_errno=True)
        fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        events = IN_MOVED_TO | IN_CLOSE_WRITE
        if fd < 0 or libc.inotify_add_watch(fd, os.fsencode(self.folder), events) < 0:
            error = ctypes.get_errno()
            if fd >= 0:
                os.close(fd)
            raise OSError(error, f"inotify on {self.folder}: {os.strerror(error)}")
        return fd

    def close(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def list(self):
        names = sorted(os.listdir(self.folder))
        self.waiting = {queue: [] for queue in self.waiting}
        for name in names:
            heap = self.waiting.get(queue_of(name))
            if heap is not None:
                heap.append(name)  # sorted, so already a heap
        self.listed_at = time.monotonic()

    def read_events(self):
        """Add the messages inotify reported since the last call; True if there were any
        (claims, renamed in this folder too, are not)."""
        added = False
        while True:
            try:
                data = os.read(self.fd, 65536)
            except BlockingIOError:
                return added
            offset = 0
            while offset < len(data):
                mask = int.from_bytes(data[offset + 4 : offset + 8], sys.byteorder)
                length = int.from_bytes(data[offset + 12 : offset + 16], sys.byteorder)
                name = data[offset + 16 : offset + 16 + length].rstrip(b"\0")
                offset += 16 + length
                if mask & IN_Q_OVERFLOW:
                    self.list()
                    added = True
                    continue
                name = os.fsdecode(name)
                heap = self.waiting.get(queue_of(name))
                if heap is not None:
                    heapq.heappush(heap, name)
                    added = True

    def waiting_for(self, queue):
        """The heap of message names waiting for `queue`, brought up to date."""
        if queue not in self.waiting:
            self.waiting[queue] = []
            self.list()
        elif self.fd is not None:
            self.read_events()
        elif not self.waiting[queue] and (
            time.monotonic() - self.listed_at >= self.polling_interval
        ):
            self.list()
        return self.waiting[queue]


class Channel(filesystem.Channel):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._claims = {}  # delivery tag -> the claimed message file
        self._no_ack_queues = set()
        for folder in (self.data_folder_in, self.data_folder_out, self.control_folder):
            make_folder(folder)

    @property
    def data_folder_in(self):
        queue = folder_of(self.connection.client) / "queue"
        return self.transport_options.get("data_folder_in", str(queue))

    @property
    def data_folder_out(self):
        queue = folder_of(self.connection.client) / "queue"
        return self.transport_options.get("data_folder_out", str(queue))

    @property
    def control_folder(self):
        control = folder_of(self.connection.client) / "control"
        return Path(self.transport_options.get("control_folder", control))

    def _put(self, queue, payload, **kwargs):
        # Named like kombu's messages, with the time in microseconds since the epoch,
        # zero-padded so that names sort by time, also after a reboot.
        name = f"{time.time_ns() // 1000:017d}_{uuid.uuid4().hex}.{queue}.msg"
        path = os.path.join(self.data_folder_out, name)
        # As on RabbitMQ, only persistent messages (tasks) are flushed to the disk: events
        # and replies to `celery inspect` are transient, and worth nothing after a reboot.
        durable = payload.get("properties", {}).get("delivery_mode") != TRANSIENT_DELIVERY_MODE
        try:
            write_file(path, dumps(payload).encode(), durable)
        except OSError as exc:
            raise ChannelError(f"Cannot add file {path!r} to directory") from exc

    def _get(self, queue):
        folder = Path(self.data_folder_in)
        waiting = self.connection.watch(folder).waiting_for(queue)
        while waiting:
            name = heapq.heappop(waiting)
            claimed = owner_for(folder).claim(folder, name)
            if claimed is None:  # another process took it
                continue
            payload = self._read(claimed)
            if payload is None:
                continue
            if queue in self._no_ack_queues:
                claimed.unlink()
            else:
                self._claims[payload["properties"]["delivery_tag"]] = claimed
            return payload
        raise Empty()

    def _read(self, claimed):
        """The message in a claimed file; None if it is not one (the file is set aside)."""
        try:
            with open(claimed, "rb") as file:
                data = file.read()
        except OSError as exc:
            self._set_aside(claimed, exc)
            raise ChannelError(f"Cannot read file {str(claimed)!r} from queue") from exc
        try:
            payload = loads(data)
        except ValueError as exc:  # empty, cut short, not JSON
            self._set_aside(claimed, exc)
            return None
        properties = payload.get("properties") if isinstance(payload, dict) else None
        if not (
            isinstance(properties, dict)
            and "delivery_tag" in properties
            and isinstance(properties.get("delivery_info"), dict)
        ):
            self._set_aside(claimed, "not a kombu message")
            return None
        return payload

    def _set_aside(self, claimed, exc):
        bad = Path(self.data_folder_in) / ".bad" / claimed_by(claimed.name)[0]
        bad.parent.mkdir(exist_ok=True)
        with contextlib.suppress(OSError):
            os.rename(claimed, bad)
        logger.error("Set aside message file %s: %s", bad, exc)

    def basic_consume(self, queue, no_ack, *args, **kwargs):
        if no_ack:
            self._no_ack_queues.add(queue)
        super().basic_consume(queue, no_ack, *args, **kwargs)
        self.connection.on_settled()

    def basic_qos(self, *args, **kwargs):
        super().basic_qos(*args, **kwargs)
        self.connection.on_settled()

    def basic_get(self, queue, no_ack=False, **kwargs):
        message = super().basic_get(queue, no_ack, **kwargs)
        if message is not None and no_ack:
            self._settle(message.delivery_tag)
        return message

    def basic_ack(self, delivery_tag, multiple=False):
        super().basic_ack(delivery_tag, multiple)
        self._settle(delivery_tag)
        self.connection.on_settled()

    def basic_reject(self, delivery_tag, requeue=False):
        super().basic_reject(delivery_tag, requeue)
        self._settle(delivery_tag)
        self.connection.on_settled()

    def _settle(self, delivery_tag):
        # Not flushed: an acknowledgement lost in a power cut leaves the message claimed,
        # and it runs again. The task's result was stored before, durably on the default
        # SQLite (settings.py), and the next sender's flush makes the removal durable.
        claimed = self._claims.pop(delivery_tag, None)
        if claimed is not None:
            with contextlib.suppress(FileNotFoundError):
                claimed.unlink()

    def _restore(self, message):
        """Put an unacknowledged message back where it was, first in line."""
        claimed = self._claims.pop(message.delivery_tag, None)
        if claimed is not None:
            with contextlib.suppress(FileNotFoundError):
                os.rename(claimed, claimed.with_name(claimed_by(claimed.name)[0]))
                return
        super()._restore(message)

    # Auto-delete queues belong to the process that declared them.

    def queue_declare(self, queue=None, passive=False, **kwargs):
        ok = super().queue_declare(queue, passive, **kwargs)
        if not passive and (kwargs.get("auto_delete") or kwargs.get("exclusive")):
            owner_file = self._owner_file(ok.queue)
            if self.connection.queue_owner(owner_file) != "alive":
                # On the disk before the queue's binding is: a binding that survived a
                # power cut without its owner file would collect messages for ever.
                lock = owner_for(Path(self.data_folder_in)).lock
                write_file(owner_file, str(lock).encode())
                self.connection.forget_owner(owner_file)
        return ok

    def queue_delete(self, queue, if_unused=False, if_empty=False, **kwargs):
        super().queue_delete(queue, if_unused, if_empty, **kwargs)
        if not (if_empty and self._size(queue)):
            self._owner_file(queue).unlink(missing_ok=True)

    def get_table(self, exchange):
        """The exchange's bindings, less those of auto-delete queues whose owner died:
        those are deleted, with the messages already stored for them."""
        table = super().get_table(exchange)
        live = []
        for binding in table:
            owner_file = self._owner_file(binding.queue)
            if self.connection.queue_owner(owner_file) == "dead":
                logger.info("Deleting queue %s: the process that read it is gone", binding.queue)
                self._delete(binding.queue, exchange, binding.routing_key, binding.pattern)
                owner_file.unlink(missing_ok=True)
                self.connection.forget_owner(owner_file)
            else:
                live.append(binding)
        return live

    def _owner_file(self, queue):
        return self.control_folder / f"{queue}.owner"

    # Exchange tables (control/<exchange>.exchange). kombu rewrites one in place, which a
    # power cut can leave empty or cut short, and then every publish to the exchange fails
    # to read it: here each version is written whole (write_file) and durably.

    def _queue_bind(self, exchange, routing_key, pattern, queue):
        binding = table_row(routing_key, pattern, queue)
        self._change_table(exchange, lambda table: table if binding in table else [binding, *table])

    def _delete(self, queue, exchange, routing_key, pattern, *args, **kwargs):
        # What kombu's virtual Channel does (purge the queue), not what its filesystem
        # Channel adds (rewrite the table in place).
        super(filesystem.Channel, self)._delete(queue, exchange, routing_key, pattern, *args)
        binding = table_row(routing_key, pattern, queue)
        self._change_table(exchange, lambda table: [each for each in table if each != binding])

    def _change_table(self, exchange, change):
        """Replace an exchange's table with change(table), one process at a time."""
        file = self._exchange_file(exchange)
        self.control_folder.mkdir(exist_ok=True)
        with open(self.control_folder / ".tables.lock", "ab") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            table = filesystem.Channel.get_table(self, exchange)
            changed = change(table)
            if changed != table:
                write_file(file, dumps(changed).encode())


_states = {}  # control folder -> the exchanges and bindings declared in this process


class Transport(filesystem.Transport):
    Channel = Channel
    # A worker waits in Celery's event loop (with a pipe to each pool process),
    # as it does on Redis and RabbitMQ.
    implements = filesystem.Transport.implements.extend(asynchronous=True)
    # Only where inotify is not available.
    polling_interval = 0.1
    # The folder is named by the URL's path: there is no host to default to (kombu
    # would warn "No hostname was supplied" at every connection).
    default_connection_params = {}

    def __init__(self, client, **kwargs):
        super().__init__(client, **kwargs)
        options = client.transport_options
        # kombu keeps one set of exchanges and bindings for every folder; a binding
        # known from one folder would then never be written to another's.
        control = str(options.get("control_folder", folder_of(client) / "control"))
        self.state = _states.setdefault(control, BrokerState())
        self.inotify = options.get("inotify", sys.platform.startswith("linux"))
        self.recovery_interval = options.get("recovery_interval", RECOVERY_INTERVAL)
        self._watches = {}
        self._owners_seen = {}  # owner file -> ("alive", "dead" or None, when looked up)
        self._loop = None
        self._loop_entries = []
        self._wake = None  # (read, write) ends of a pipe that on_settled writes to

    def watch(self, folder):
        if folder not in self._watches:
            self._watches[folder] = Watch(folder, self.inotify, self.polling_interval)
            recover(folder, scan=True)
        return self._watches[folder]

    def queue_owner(self, owner_file):
        """Whether an auto-delete queue's owner is "alive" or "dead"; None for a queue
        that has no owner (a durable one). Looked up at most every OWNER_CACHE seconds."""
        now = time.monotonic()
        state, checked = self._owners_seen.get(owner_file, (None, float("-inf")))
        if now - checked > OWNER_CACHE:
            try:
                lock = Path(owner_file.read_text())
            except FileNotFoundError:
                state = None
            else:
                fd = take_over(lock)
                state = "alive" if fd is None else "dead"
                if fd is not None and fd >= 0:
                    os.close(fd)
            self._owners_seen[owner_file] = (state, now)
        return state

    def forget_owner(self, owner_file):
        self._owners_seen.pop(owner_file, None)

    def on_settled(self):
        """A message was acknowledged or rejected: a consumer at its prefetch limit
        may take the next one now, not a polling interval later."""
        if self._wake is not None:
            with contextlib.suppress(BlockingIOError):
                os.write(self._wake[1], b"\0")

    def _wake_fd(self):
        if self._wake is None:
            self._wake = os.pipe()
            for fd in self._wake:
                os.set_blocking(fd, False)
        return self._wake[0]

    # Celery's worker: its event loop calls us when a message file appears, or
    # when a message is settled (on_settled), and delivers from there. (Delivering
    # from an on_tick callback would leave the pool's writes for the next tick.)

    def register_with_event_loop(self, connection, loop):
        self._loop = loop
        options = self.client.transport_options
        folder = Path(options.get("data_folder_in", folder_of(self.client) / "queue"))
        make_folder(folder)
        watch = self.watch(folder)
        if watch.fd is not None:
            loop.add_reader(watch.fd, self._on_readable, watch)
        else:
            polling = loop.call_repeatedly(self.polling_interval, self._deliver_all)
            self._loop_entries.append(polling)
        recovery = loop.call_repeatedly(self.recovery_interval, self._recover)
        self._loop_entries.append(recovery)
        loop.add_reader(self._wake_fd(), self._on_woken)
        self.on_settled()  # deliver what is already waiting

    def _on_readable(self, watch):
        if watch.read_events():
            self._deliver_all()

    def _on_woken(self):
        with contextlib.suppress(BlockingIOError):
            os.read(self._wake[0], 4096)
        self._deliver_all()

    def _recover(self):
        for folder in self._watches:
            if recover(folder):
                self._deliver_all()

    def _deliver_all(self, most=100):
        """Hand each consumer messages until it has as many as it may hold (or `most`
        of them, then again from the loop)."""
        for _ in range(most):
            try:
                self.cycle.get(self._deliver)
            except Empty:
                return
            except ChannelError as exc:
                logger.error("%s", exc)
        self.on_settled()

    # Any other consumer (celery inspect, celery events, Flower) waits here.

    def drain_events(self, connection, timeout=None):
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                self.cycle.get(self._deliver, timeout=timeout)
                return
            except Empty:
                pass
            except ChannelError as exc:
                logger.error("%s", exc)
                continue
            wait = None if deadline is None else deadline - time.monotonic()
            if wait is not None and wait <= 0:
                raise TimeoutError()
            fds = [self._wake_fd()]
            for watch in self._watches.values():
                if watch.fd is not None:
                    fds.append(watch.fd)
                elif wait is None or wait > self.polling_interval:  # a polled folder
                    wait = self.polling_interval
            if select.select(fds, [], [], wait)[0]:
                with contextlib.suppress(BlockingIOError):
                    os.read(self._wake[0], 4096)

    def close_connection(self, connection):
        if self._loop is not None:
            for watch in self._watches.values():
                if watch.fd is not None:
                    self._loop.remove_reader(watch.fd)
            self._loop.remove_reader(self._wake[0])
            for entry in self._loop_entries:
                entry.cancel()
            self._loop = None
        super().close_connection(connection)
        for watch in self._watches.values():
            watch.close()
        self._watches.clear()
        for fd in self._wake or ():
            os.close(fd)
        self._wake = None
