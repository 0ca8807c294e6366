"""Sensor files sampled by a separate process, through a shared-memory ring buffer.

A polled reader whose read is a file read (``READ_KIND = "file"``: hwmon, the
Jetson INA3221 rails) is sampled here rather than by a thread of the workload's
own interpreter, where every sample had to take the GIL: beside a pure-Python
workload a thread asked for 1000 Hz got 123 Hz, with gaps of 36 ms (see
docs/power-benchmarks.md).

* The child is a fresh interpreter (``python -I -S`` running this file, which
  imports nothing but the standard library), started with :mod:`subprocess`:
  nothing is forked, nothing is pickled, and the parent's ``__main__`` (the
  ``wattbench`` command and all it imports) is not imported again, as
  :mod:`multiprocessing`'s ``spawn`` would. It opens each sensor file once and
  re-reads it with ``os.pread`` at offset 0, which makes sysfs produce a fresh
  value; it parses the number and stores it. A file that is not under
  ``/sys`` (a recorded or fake tree) is also checked for having been replaced
  (an ``fstat`` link count of 0 after a rename over it) and reopened.
* The ring is an anonymous shared memory file (``memfd``) handed to the child
  as a file descriptor: no name to leak if either side dies, and none of
  :mod:`multiprocessing.shared_memory`'s resource tracking. A 64-byte header
  holds the number of samples written so far; slot ``k % capacity`` holds
  sample ``k``: ``width`` float64 values ``(t, raw_0, …)``, the time stamp
  (``time.monotonic``, the midpoint of the reads) and the number each file
  held, NaN where a read failed. The child writes a slot, then the count.
* Control is a pipe each way: ``run <interval_s>``, ``pause`` (answered with
  ``paused <count> <failed reads> <cpu s> <first failure>``) and ``exit``; the
  child waits for its next tick in ``select`` on the command pipe, so a pause
  is answered at once, and end of file (the parent died) ends it. The parent
  reads the ring in full only after the ``paused`` answer, which orders the
  child's writes before its reads on any CPU; while a window runs, a drain
  (:meth:`ProcessSampler.take` with a lag of a few slots) copies the raw bytes
  out before the ring comes round, and a sample overwritten before it was
  copied is counted as lost (a gap), never read torn: every slot's time stamp
  must be finite and later than the previous one.
* Priority: the child asks for the lowest real-time priority (``SCHED_FIFO``
  1). It gets it as root or with an ``rtprio`` limit (``CAP_SYS_NICE``), and
  otherwise runs as an ordinary process, which says so (:attr:`ProcessSampler.priority`).
  On a machine whose cores are all busy, an ordinary process waits for a core
  at every wakeup and misses ticks; a real-time one runs at once. It sleeps
  between samples and runs some 10-30 µs per sample, so it cannot starve anything
  (and the kernel keeps 5 % of each core for ordinary tasks in any case).
"""

from __future__ import annotations

import contextlib
import math
import mmap
import os
import select
import struct
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

#: bytes before the first slot: the sample count (uint64), then unused
HEADER_BYTES = 64
#: slots in the ring: at 1000 Hz, 65 s of samples between two drains
DEFAULT_CAPACITY = 1 << 16
#: bytes read from a sensor file: a sysfs number and its newline fit many times
READ_BYTES = 64


def parse_number(data: bytes) -> float:
    """The number a sysfs file holds (``b"5000000\\n"``, or ``b"12 ms"``); ValueError if none."""
    try:
        return float(data)
    except ValueError:
        head = data.split(None, 1)
        if not head:
            raise ValueError(f"empty read {data!r}") from None
        return float(int(head[0]))


class SensorFiles:
    """Sensor files opened once and re-read with ``os.pread`` at offset 0.

    ``watch_replaced`` (default: for files outside ``/sys``) also reopens a file
    that was replaced by a rename or deleted since it was opened, as tests and
    recorded trees do; a sysfs attribute never is, and is spared the ``fstat``.
    """

    def __init__(self, paths: Sequence[str], watch_replaced: bool | None = None) -> None:
        self.paths = [str(p) for p in paths]
        self.fds: list[int | None] = [None] * len(self.paths)
        if watch_replaced is None:
            watch_replaced = not all(os.path.realpath(p).startswith("/sys/") for p in self.paths)
        self.watch_replaced = watch_replaced

    def _open(self, i: int) -> int:
        fd = os.open(self.paths[i], os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        self.fds[i] = fd
        return fd

    def _drop(self, i: int) -> None:
        fd, self.fds[i] = self.fds[i], None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)

    def read(self, i: int) -> float:
        """File ``i``'s number now; OSError (naming the file) or ValueError when it fails."""
        fd = self.fds[i]
        try:
            if fd is None:
                fd = self._open(i)
            elif self.watch_replaced and os.fstat(fd).st_nlink == 0:
                self._drop(i)
                fd = self._open(i)
            data = os.pread(fd, READ_BYTES, 0)
        except OSError as exc:
            self._drop(i)
            if exc.filename is None:
                raise OSError(exc.errno, exc.strerror, self.paths[i]) from None
            raise
        return parse_number(data)

    def close(self) -> None:
        for i in range(len(self.fds)):
            self._drop(i)


# --- the child ---------------------------------------------------------------------------


def _reply(line: str) -> None:
    data = (line.replace("\n", " ") + "\n").encode("utf-8", "replace")
    while data:
        data = data[os.write(1, data) :]


def _realtime() -> str:
    """Ask for the lowest real-time priority; ``"fifo"``, or why it was refused."""
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
    except (AttributeError, OSError) as exc:
        return f"refused ({exc})"
    return "fifo"


def child_main(argv: Sequence[str]) -> int:
    """``<memfd> <capacity> <watch 0|1> <realtime 0|1> <path>…``: serve commands on stdin
    until ``exit`` or end of file."""
    fd, capacity, watch, rt = int(argv[0]), int(argv[1]), argv[2] == "1", argv[3] == "1"
    files = SensorFiles(argv[4:], watch_replaced=watch)
    n_files = len(files.paths)
    width = 1 + n_files
    mm = mmap.mmap(fd, HEADER_BYTES + capacity * width * 8)
    os.close(fd)
    header = memoryview(mm)[:HEADER_BYTES].cast("Q")
    ring = memoryview(mm)[HEADER_BYTES:].cast("d")
    nan = math.nan
    monotonic = time.monotonic
    wait_on = [0]
    pending = b""
    _reply(f"ready {_realtime() if rt else 'not asked'}")
    while True:
        while b"\n" not in pending:
            chunk = os.read(0, 4096)
            if not chunk:
                return 0  # the parent is gone
            pending += chunk
        line, pending = pending.split(b"\n", 1)
        cmd, _, arg = line.decode().partition(" ")
        if cmd == "exit":
            return 0
        if cmd == "pause":  # not running: nothing to stop
            _reply(f"paused {header[0]} 0 0.0 -")
            continue
        if cmd != "run":
            print(f"sampler: unknown command {line!r}", file=sys.stderr)
            return 2
        interval = float(arg)
        failed = 0
        first_failure = "-"
        cpu0 = time.process_time()
        n = header[0]
        next_t = monotonic() + interval
        while True:
            if not pending:
                wait = next_t - monotonic()
                if wait > 0 and select.select(wait_on, (), (), wait)[0]:
                    chunk = os.read(0, 4096)
                    if not chunk:
                        return 0
                    pending += chunk
            if pending:
                break  # a command: answered below
            base = (n % capacity) * width
            t0 = monotonic()
            for i in range(n_files):
                try:
                    ring[base + 1 + i] = files.read(i)
                except (OSError, ValueError) as exc:
                    ring[base + 1 + i] = nan
                    failed += 1
                    if failed == 1:
                        first_failure = f"{type(exc).__name__}: {exc}"
            t1 = monotonic()
            ring[base] = (t0 + t1) / 2
            n += 1
            header[0] = n
            next_t += interval
            if next_t <= t1:
                next_t = t1 + interval  # fell behind: skip the missed ticks, never burst
        # Any command ends the run and is answered with what the run did; a pause
        # needs nothing more (any other command is served next).
        if pending.split(b"\n", 1)[0].strip() == b"pause":
            pending = pending.split(b"\n", 1)[1] if b"\n" in pending else b""
        _reply(f"paused {n} {failed} {time.process_time() - cpu0!r} {first_failure}")


# --- the parent --------------------------------------------------------------------------


class SamplerError(RuntimeError):
    """The sampler process could not be started, or stopped answering."""


@dataclass(frozen=True)
class Paused:
    """The child's answer to ``pause``: what the run since ``run`` did."""

    count: int
    failed: int
    cpu_s: float
    first_failure: str | None


def process_sampling_supported() -> str | None:
    """None when a sampler process can run here, else why not."""
    if not hasattr(os, "memfd_create"):
        return "no os.memfd_create on this platform (Linux only)"
    if not sys.executable:
        return "sys.executable is empty: no interpreter to start"
    if not os.path.isfile(__file__):
        return f"{__file__} is not a file the child can run"
    return None


class ProcessSampler:
    """A child process that samples ``paths`` into a shared ring (see the module docs).

    :meth:`resume` starts sampling, :meth:`pause` stops it and synchronises;
    :meth:`take` returns the raw bytes of the samples written since the last take.
    """

    def __init__(
        self,
        paths: Sequence[str],
        *,
        capacity: int = DEFAULT_CAPACITY,
        watch_replaced: bool | None = None,
        realtime: bool = True,
        start_timeout_s: float = 10.0,
    ) -> None:
        why = process_sampling_supported()
        if why:
            raise SamplerError(why)
        if capacity < 4:
            raise ValueError("capacity must be at least 4")
        self.paths = [str(p) for p in paths]
        self.capacity = capacity
        self.width = 1 + len(self.paths)
        self._size = HEADER_BYTES + capacity * self.width * 8
        if watch_replaced is None:
            watch_replaced = SensorFiles(self.paths).watch_replaced
        fd = os.memfd_create("wattbench-sampler", os.MFD_CLOEXEC)
        try:
            os.ftruncate(fd, self._size)
            self._mm = mmap.mmap(fd, self._size)
            # -I: no environment, no user site; -S: no site (the file needs the stdlib only)
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-I",
                    "-S",
                    __file__,
                    str(fd),
                    str(capacity),
                    "1" if watch_replaced else "0",
                    "1" if realtime else "0",
                    *self.paths,
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                pass_fds=(fd,),
            )
        finally:
            os.close(fd)
        self._header = memoryview(self._mm)[:HEADER_BYTES].cast("Q")
        self._ring = memoryview(self._mm)[HEADER_BYTES:]
        # NaN time stamps: a slot read before the child wrote it is dropped, not taken as t=0
        self._mm[HEADER_BYTES:] = struct.pack("d", math.nan) * (capacity * self.width)
        self._read_pos = 0
        self._out = b""
        self.running = False
        line = self._readline(start_timeout_s)
        if line is None or not line.startswith("ready "):
            self.close()
            raise SamplerError(f"sampler process did not start: {line or self.exit_reason()}")
        #: the child's scheduling: ``"fifo"`` (real-time), ``"refused (…)"`` or ``"not asked"``
        self.priority = line.removeprefix("ready ")

    # -- control ----------------------------------------------------------------

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def exit_reason(self) -> str:
        """How the child ended (exit code or signal, and the tail of its stderr)."""
        code = self.proc.poll()
        if code is None:
            return "the sampler process is running"
        how = f"killed by signal {-code}" if code < 0 else f"exited with code {code}"
        err = ""
        if self.proc.stderr is not None:
            try:
                os.set_blocking(self.proc.stderr.fileno(), False)
                err = (self.proc.stderr.read() or b"").decode("utf-8", "replace").strip()
            except (OSError, ValueError):
                err = ""
        tail = err.splitlines()[-1] if err else ""
        return f"sampler process {self.pid} {how}" + (f" ({tail})" if tail else "")

    def _send(self, line: str) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(line.encode() + b"\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, ValueError, OSError) as exc:
            raise SamplerError(self.exit_reason()) from exc

    def _readline(self, timeout_s: float) -> str | None:
        """One line from the child within ``timeout_s``; None at EOF or on timeout."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout_s
        while b"\n" not in self._out:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                return None
            chunk = os.read(fd, 4096)
            if not chunk:
                return None
            self._out += chunk
        line, self._out = self._out.split(b"\n", 1)
        return line.decode("utf-8", "replace")

    def resume(self, interval_s: float) -> None:
        """Start sampling every ``interval_s``; later :meth:`take` calls see only new samples."""
        if not interval_s > 0:
            raise ValueError("interval_s must be positive")
        self._read_pos = self._header[0]  # the child is paused: the count is still
        self._send(f"run {interval_s!r}")
        self.running = True

    def pause(self, timeout_s: float = 2.0) -> Paused:
        """Stop sampling and wait for the child to say so (SamplerError if it cannot)."""
        self.running = False
        self._send("pause")
        line = self._readline(timeout_s)
        if line is None:
            if self.alive():
                raise SamplerError(f"sampler process {self.pid} did not answer in {timeout_s:g} s")
            raise SamplerError(self.exit_reason())
        word, count, failed, cpu_s, first = (line.split(" ", 4) + ["-"] * 5)[:5]
        if word != "paused":
            raise SamplerError(f"sampler process said {line!r}")
        return Paused(int(count), int(failed), float(cpu_s), None if first == "-" else first)

    def count(self) -> int:
        """Samples written since the child started (only exact after :meth:`pause`)."""
        return int(self._header[0])

    # -- the ring -----------------------------------------------------------------

    def take(self, lag: int = 0) -> tuple[bytes, int]:
        """``(raw slots, lost)``: the bytes of the samples written since the last take,
        oldest first, and how many were overwritten before they could be copied.

        ``lag`` leaves the newest samples for the next take (a drain while the child
        writes); after :meth:`pause`, take everything (``lag=0``).
        """
        # While the child runs, the slot after the last one counted may be half written.
        margin = 1 if self.running else 0
        end = self._header[0] - lag
        start = self._read_pos
        if end <= start:
            return b"", 0
        lost = max(0, end + margin - self.capacity - start)
        start += lost
        slot = self.width * 8
        a, b = start % self.capacity, end % self.capacity
        if a < b:
            data = bytes(self._ring[a * slot : b * slot])
        else:  # the range runs past the end of the ring
            data = bytes(self._ring[a * slot :]) + bytes(self._ring[: b * slot])
        # The child may have written over the oldest slots while they were copied (+1:
        # the slot it may be writing now, not yet counted).
        overwritten = min(end - start, max(0, self._header[0] + margin - self.capacity - start))
        if overwritten:
            data = data[overwritten * slot :]
            lost += overwritten
        self._read_pos = end
        return data, lost

    def rows(self, data: bytes) -> tuple[list[tuple[float, ...]], int]:
        """``(rows, torn)``: ``(t, raw_0, …)`` per slot from :meth:`take`'s bytes, and how
        many slots were dropped for a time stamp that is not finite or not increasing."""
        flat = memoryview(data).cast("d").tolist()
        w = self.width
        out: list[tuple[float, ...]] = []
        torn = 0
        last = -math.inf
        for k in range(0, len(flat) - w + 1, w):
            t = flat[k]
            if not (math.isfinite(t) and t > last):
                torn += 1
                continue
            last = t
            out.append(tuple(flat[k : k + w]))
        return out, torn

    def close(self, timeout_s: float = 2.0) -> None:
        """Tell the child to exit, kill it if it does not, and release the ring."""
        if self.proc.poll() is None:
            try:
                self._send("exit")
                self.proc.wait(timeout_s)
            except (SamplerError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        for view in (self._header, self._ring):
            view.release()
        self._mm.close()


if __name__ == "__main__":
    sys.exit(child_main(sys.argv[1:]))
