"""A filesystem that forgets, at a simulated power cut, whatever was not flushed to it.

As LazyFS does for data (and ALICE's strictest model for names), it keeps apart every change
that no flush has made durable, following POSIX's strict model:

- a file's contents reach the disk only when the file is flushed: fsync or fdatasync, or a
  write through a file opened O_SYNC or O_DSYNC;
- a folder's entries (names created, renamed, unlinked) reach the disk only when the folder
  itself is flushed (fsync of the folder). A rename between two folders is two entry changes,
  one per folder, each durable with its own folder's flush.

Files live in memory, in two versions: what processes see, and what the disk holds. The disk
is a real folder, DISK: it is read when the filesystem is mounted, and rewritten when it is
unmounted, with what a power cut at that moment would have left. Between the two, the mount
point shows the files as processes left them. A test cuts the power by killing every process
that uses the mount, then unmounting it (`Mount.cut`); mounting DISK again is the reboot.

    python -m support.lazyfs MOUNTPOINT DISK    # serve DISK at MOUNTPOINT until unmounted

On exit it prints one JSON document: the paths the cut threw away ("lost"), brought back
("back": removed, but not durably) and changed. It needs /dev/fuse, Debian's fuse3 and
mfusepy (tests/requirements.txt), and root or a user allowed to mount.
"""

import contextlib
import errno
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import mfusepy

SYNC_FLAGS = os.O_SYNC | os.O_DSYNC
MOUNT_TIMEOUT = 30  # seconds to wait for the mount to appear, or for its process to end
EXIT_TIMEOUT = 10  # seconds for the process to end once unmounted, before SIGTERM


class Node:
    """A file or a folder: as processes see it (`data`, `entries`), and as the disk holds it
    (`synced`, `synced_entries`)."""

    def __init__(self, mode, data=b""):
        self.mode = mode
        self.mtime = time.time_ns()
        if stat.S_ISDIR(mode):
            self.entries, self.synced_entries = {}, {}
        else:
            self.data, self.synced = bytearray(data), bytes(data)

    @property
    def is_dir(self):
        return stat.S_ISDIR(self.mode)

    def flush(self):
        if self.is_dir:
            self.synced_entries = dict(self.entries)
        else:
            self.synced = bytes(self.data)


def load(folder):
    """The tree under `folder`, as a disk holds it: every file and name already durable."""
    node = Node(stat.S_IFDIR | 0o755)
    for entry in os.scandir(folder):
        if entry.is_dir(follow_symlinks=False):
            node.entries[entry.name] = load(entry.path)
        elif entry.is_file(follow_symlinks=False):
            mode = stat.S_IFREG | stat.S_IMODE(entry.stat().st_mode)
            node.entries[entry.name] = Node(mode, Path(entry.path).read_bytes())
    node.flush()
    return node


def contents(node, durable, prefix=""):
    """Path -> bytes (None for a folder) of the tree, as processes see it or as the disk
    holds it."""
    tree = {}
    for name, child in (node.synced_entries if durable else node.entries).items():
        path = f"{prefix}/{name}"
        if child.is_dir:
            tree[path] = None
            tree |= contents(child, durable, path)
        else:
            tree[path] = child.synced if durable else bytes(child.data)
    return tree


def save(node, folder):
    """Write what the disk holds of `node` to `folder`, replacing what was there."""
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    for path, data in contents(node, durable=True).items():
        if data is None:
            os.makedirs(f"{folder}{path}", exist_ok=True)
        else:
            Path(f"{folder}{path}").write_bytes(data)


class LazyFS(mfusepy.Operations):
    use_ns = True  # times in nanoseconds

    def __init__(self, disk):
        self.disk = disk
        self.root = load(disk)
        self.handles = {}  # file handle -> (node, whether each write is flushed)
        self.next_handle = 1

    def init_with_config(self, conn_info, config):
        # A file unlinked while open is gone at once, not renamed to .fuse_hidden*.
        config.hard_remove = 1

    # Names.

    def _node(self, path):
        node = self.root
        for name in filter(None, path.split("/")):
            if not node.is_dir or name not in node.entries:
                raise mfusepy.FuseOSError(errno.ENOENT)
            node = node.entries[name]
        return node

    def _parent(self, path):
        folder, _, name = path.rpartition("/")
        parent = self._node(folder)
        if not parent.is_dir:
            raise mfusepy.FuseOSError(errno.ENOTDIR)
        return parent, name

    def _handle(self, node, flags=0):
        handle = self.next_handle
        self.next_handle += 1
        self.handles[handle] = (node, bool(flags & SYNC_FLAGS))
        return handle

    def getattr(self, path, fh=None):
        node = self.handles[fh][0] if fh else self._node(path)
        size = len(node.entries) if node.is_dir else len(node.data)
        return {
            "st_mode": node.mode,
            "st_nlink": 2 if node.is_dir else 1,
            "st_size": size,
            "st_uid": os.getuid(),
            "st_gid": os.getgid(),
            **dict.fromkeys(("st_atime", "st_mtime", "st_ctime"), node.mtime),
        }

    def mkdir(self, path, mode):
        parent, name = self._parent(path)
        if name in parent.entries:
            raise mfusepy.FuseOSError(errno.EEXIST)
        parent.entries[name] = Node(stat.S_IFDIR | mode)

    def create(self, path, mode, flags):
        parent, name = self._parent(path)
        node = parent.entries.setdefault(name, Node(stat.S_IFREG | stat.S_IMODE(mode)))
        return self._handle(node, flags)

    def unlink(self, path):
        parent, name = self._parent(path)
        if name not in parent.entries:
            raise mfusepy.FuseOSError(errno.ENOENT)
        if parent.entries[name].is_dir:
            raise mfusepy.FuseOSError(errno.EISDIR)
        del parent.entries[name]

    def rmdir(self, path):
        parent, name = self._parent(path)
        node = self._node(path)
        if not node.is_dir:
            raise mfusepy.FuseOSError(errno.ENOTDIR)
        if node.entries:
            raise mfusepy.FuseOSError(errno.ENOTEMPTY)
        del parent.entries[name]

    def rename(self, old, new):
        source, old_name = self._parent(old)
        target, new_name = self._parent(new)
        node = self._node(old)
        replaced = target.entries.get(new_name)
        if replaced is not None and replaced.is_dir:
            if not node.is_dir:
                raise mfusepy.FuseOSError(errno.EISDIR)
            if replaced.entries:
                raise mfusepy.FuseOSError(errno.ENOTEMPTY)
        del source.entries[old_name]
        target.entries[new_name] = node

    def link(self, target, source):
        parent, name = self._parent(target)
        if name in parent.entries:
            raise mfusepy.FuseOSError(errno.EEXIST)
        parent.entries[name] = self._node(source)

    def readdir(self, path, fh):
        return [".", "..", *self.handles[fh][0].entries]

    def opendir(self, path):
        return self._handle(self._node(path))

    def releasedir(self, path, fh):
        del self.handles[fh]

    def chmod(self, path, mode, fh=None):
        node = self.handles[fh][0] if fh else self._node(path)
        node.mode = stat.S_IFMT(node.mode) | stat.S_IMODE(mode)

    def chown(self, path, uid, gid, fh=None):
        pass  # one user: the tests run as root

    def utimens(self, path, times=None, fh=None):
        node = self.handles[fh][0] if fh else self._node(path)
        node.mtime = times[1] if times else time.time_ns()

    def statfs(self, path):
        blocks, files = 1 << 20, 1 << 16  # 4 GiB; half of it free
        return {"f_bsize": 4096, "f_frsize": 4096, "f_namemax": 255, "f_blocks": blocks,
                "f_bfree": blocks // 2, "f_bavail": blocks // 2, "f_files": files,
                "f_ffree": files // 2}  # fmt: skip

    # Contents.

    def open(self, path, flags):
        return self._handle(self._node(path), flags)

    def release(self, path, fh):
        del self.handles[fh]

    def read(self, path, size, offset, fh):
        return bytes(self.handles[fh][0].data[offset : offset + size])

    def write(self, path, data, offset, fh):
        node, synchronous = self.handles[fh]
        if offset > len(node.data):
            node.data.extend(bytes(offset - len(node.data)))
        node.data[offset : offset + len(data)] = data
        node.mtime = time.time_ns()
        if synchronous:
            node.flush()
        return len(data)

    def truncate(self, path, length, fh=None):
        node = self.handles[fh][0] if fh else self._node(path)
        del node.data[length:]
        node.data.extend(bytes(length - len(node.data)))

    # Flushes: what makes a change durable.

    def fsync(self, path, datasync, fh):
        self.handles[fh][0].flush()

    def fsyncdir(self, path, datasync, fh):
        self.handles[fh][0].flush()

    def destroy(self, path):
        """Unmounted: the power is cut. Write what survives to the disk, and say what did not."""
        seen, kept = contents(self.root, durable=False), contents(self.root, durable=True)
        save(self.root, self.disk)
        print(json.dumps({
            "lost": sorted(set(seen) - set(kept)),
            "back": sorted(set(kept) - set(seen)),
            "changed": sorted(path for path in set(seen) & set(kept) if seen[path] != kept[path]),
        }), flush=True)  # fmt: skip


class Mount:
    """`disk` served by LazyFS at `mountpoint`, in a process of its own (stopped by its PID).

    with Mount(mountpoint, disk) as mount:
        ...                 # processes use files under mountpoint; kill them all, then
        cut = mount.cut()   # unmount: `disk` holds what survived; what was lost, by path
    """

    def __init__(self, mountpoint, disk, log):
        self.mountpoint, self.disk, self.log = Path(mountpoint), Path(disk), Path(log)
        self.process = None

    def __enter__(self):
        self.mountpoint.mkdir(parents=True, exist_ok=True)
        self.disk.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as log:
            self.start = log.tell()
            self.process = subprocess.Popen(
                [sys.executable, "-m", "support.lazyfs", self.mountpoint, self.disk],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=Path(__file__).resolve().parent.parent,
            )
        deadline = time.monotonic() + MOUNT_TIMEOUT
        while not os.path.ismount(self.mountpoint):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise AssertionError(f"lazyfs did not mount {self.mountpoint}: {self.output()}")
            time.sleep(0.05)
        return self

    def output(self):
        with self.log.open("rb") as log:
            log.seek(self.start)
            return log.read().decode(errors="replace")

    def cut(self):
        """Unmount (every process using the mount must be gone): the power cut. What was seen
        and is lost, what comes back, what changed, by path."""
        deadline = time.monotonic() + MOUNT_TIMEOUT
        # Killed processes close their files as they exit, not when kill() returns.
        while subprocess.run(["fusermount3", "-u", "-q", self.mountpoint]).returncode:
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.mountpoint} stayed busy: {self.users()}")
            time.sleep(0.1)
        try:
            self.process.wait(EXIT_TIMEOUT)
        except subprocess.TimeoutExpired:
            # libfuse's loop ends on SIGTERM too, and then saves the disk all the same.
            waiting = Path(f"/proc/{self.process.pid}/wchan").read_text()
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(MOUNT_TIMEOUT)
            print(f"lazyfs outlived its unmount, waiting in {waiting}; stopped", file=sys.stderr)
        # libfuse may fail to unmount again what is unmounted already, and exit non-zero:
        # what counts is that the disk was saved.
        saved = [line for line in self.output().splitlines() if line.startswith('{"lost"')]
        assert saved, f"lazyfs did not save the disk:\n{self.output()}"
        return json.loads(saved[-1])

    def users(self):
        """The processes with a file open under the mount point, by PID."""
        found = set()
        for fd in Path("/proc").glob("[0-9]*/fd/*"):
            with contextlib.suppress(OSError):
                if os.readlink(fd).startswith(f"{self.mountpoint}/"):
                    found.add(int(fd.parts[2]))
        return sorted(found)

    def close(self):
        """Unmount if still mounted (lazily, should a process still hold it), stop the process."""
        # Also when its process died: ismount() cannot stat a mount left without one.
        subprocess.run(["fusermount3", "-u", "-z", "-q", self.mountpoint], timeout=MOUNT_TIMEOUT)
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(MOUNT_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __exit__(self, *exc):
        self.close()


def main():
    mountpoint, disk = sys.argv[1:]
    mfusepy.FUSE(LazyFS(disk), mountpoint, foreground=True, nothreads=True)


if __name__ == "__main__":
    main()
