"""farm — the harness for rfarm's multi-process tests.

Every end-to-end test runs the real programs on loopback: a private
redis-server, one rfarm-coordinator and N rfarm-workers, driven through the
real `rfarm` CLI and read back with `rf-vidprobe`. Nothing is mocked, so a
test that passes here says the farm works as an operator would run it.

The ideas it rests on:

- Isolation. Each Farm gets fresh loopback ports (found by binding port 0),
  its own temporary directory (Redis dir, spool, logs, outputs) and a Redis
  key prefix, so tests never see each other or a developer's farm.
- Nothing outlives the test. Every child runs in its own process group and
  asks the kernel to kill it if this interpreter dies (PR_SET_PDEATHSIG);
  Farm.stop() runs from __exit__ whatever happened (exceptions, Ctrl-C,
  SIGTERM from the test runner), sends SIGTERM, waits a bounded time and
  then kills the whole group with SIGKILL.
- Graceful stop is part of the contract: a coordinator or worker that does
  not exit 0 after SIGTERM, or that died on its own, is a failed check.
- Every wait is bounded; a hung program fails the test, it never hangs CI.
- When something failed, the temporary directory is kept and the tails of
  all logs go to stderr, so CI output shows why without a rerun.

Running one test by hand:

    python3 tests/e2e/test_e2e_render.py --bin /path/to/build [--keep]

`--keep` (or RFARM_E2E_KEEP=1) keeps the temporary directories even on
success. Each script prints one line per check and ends with
`N passed, M failed`; its exit status is 0 only when M is 0.
"""

import argparse
import ctypes
import fractions
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback

PREFIX = "rfarm-test:"

# Bounded waits, in seconds.
READY_TIMEOUT = 20.0  # a program printing its "ready" line
STOP_TIMEOUT = 10.0  # a program exiting after SIGTERM
CLI_TIMEOUT = 30.0  # one CLI call that is not `wait`

_BIN = None  # the build directory, set by Suite


class FarmError(Exception):
    """Something the harness could not do (a program did not start, a CLI
    call failed unexpectedly). Counts as a failed check."""


# ---------------------------------------------------------------------------
# Checks and their summary


class Suite:
    """One test script: parses --bin, counts checks, runs cases.

    A case is a function; an exception escaping it is one failed check
    (with its traceback), so one broken case does not hide the others."""

    def __init__(self, name, argv=None):
        global _BIN
        ap = argparse.ArgumentParser(description=name)
        ap.add_argument("--bin", required=True, help="build directory holding the rfarm programs")
        ap.add_argument("--keep", action="store_true", help="keep temporary directories")
        args = ap.parse_args(argv)
        self.name = name
        self.bin = os.path.abspath(args.bin)
        self.keep = args.keep or os.environ.get("RFARM_E2E_KEEP", "") not in ("", "0")
        self.passed = 0
        self.failed = 0
        self.failures = []
        _BIN = self.bin
        # The test runner stops us with SIGTERM on a timeout: turn it into an
        # exception so that every `finally` (and Farm.__exit__) runs.
        signal.signal(signal.SIGTERM, _raise_terminated)
        missing = [p for p in ("rfarm-coordinator", "rfarm-worker", "rfarm", "rf-vidprobe")
                   if not os.access(os.path.join(self.bin, p), os.X_OK)]
        if missing:
            print(f"{name}: missing programs in {self.bin}: {', '.join(missing)}", file=sys.stderr)
            print("0 passed, 1 failed")
            sys.exit(1)
        for tool in ("redis-server", "redis-cli"):
            if shutil.which(tool) is None:
                print(f"{name}: {tool} is not on PATH (Debian package redis-server)", file=sys.stderr)
                print("0 passed, 1 failed")
                sys.exit(1)

    def check(self, cond, what, detail=None):
        """Record one check. Returns cond, so callers can skip dependent checks."""
        if cond:
            self.passed += 1
            print(f"  ok    {what}", flush=True)
        else:
            self.failed += 1
            msg = what if detail is None else f"{what}: {detail}"
            self.failures.append(msg)
            print(f"  FAIL  {msg}", flush=True)
        return bool(cond)

    def equal(self, got, want, what):
        return self.check(got == want, what, f"got {got!r}, want {want!r}")

    def fail(self, what, detail=None):
        return self.check(False, what, detail)

    def case(self, fn, *args, **kwargs):
        """Run one case; an exception is a failed check."""
        print(f"== {fn.__name__}", flush=True)
        t0 = time.monotonic()
        try:
            fn(*args, **kwargs)
        except (FarmError, AssertionError, OSError, ValueError, subprocess.SubprocessError) as e:
            self.fail(f"{fn.__name__} stopped early", f"{type(e).__name__}: {e}")
            traceback.print_exc(file=sys.stderr)
        except Exception as e:  # a bug in the test itself is still a failure
            self.fail(f"{fn.__name__} raised", f"{type(e).__name__}: {e}")
            traceback.print_exc(file=sys.stderr)
        print(f"   ({fn.__name__}: {time.monotonic() - t0:.1f}s)", flush=True)

    def farm(self, **kwargs):
        return Farm(self, **kwargs)

    def finish(self):
        """Print the summary line; returns the exit status for sys.exit."""
        if self.failures:
            print(f"{self.name}: failures:", file=sys.stderr)
            for f in self.failures:
                print(f"  - {f}", file=sys.stderr)
        print(f"{self.passed} passed, {self.failed} failed", flush=True)
        return 0 if self.failed == 0 else 1


class Terminated(BaseException):
    """SIGTERM arrived; unwinds like KeyboardInterrupt."""


def _raise_terminated(signum, frame):
    raise Terminated(f"signal {signum}")


# ---------------------------------------------------------------------------
# Small helpers


def free_ports(n):
    """n distinct free loopback ports (all held open at once while choosing)."""
    socks, ports = [], []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
            ports.append(s.getsockname()[1])
    finally:
        for s in socks:
            s.close()
    return ports


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def probe(path, mad=False, frame_md5=False, timeout=60):
    """Read a video back with rf-vidprobe; returns its JSON object."""
    argv = [os.path.join(_BIN, "rf-vidprobe"), path]
    if mad:
        argv.append("--mad")
    if frame_md5:
        argv.append("--frame-md5")
    try:
        r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=timeout)
    except subprocess.TimeoutExpired:
        raise FarmError(f"rf-vidprobe {path}: no answer within {timeout}s")
    if r.returncode != 0:
        raise FarmError(f"rf-vidprobe {path}: exit {r.returncode}: {r.stderr.strip()}")
    try:
        return json.loads(r.stdout)
    except ValueError as e:
        raise FarmError(f"rf-vidprobe {path}: output is not JSON ({e}): {r.stdout[:300]!r}")


def fps_of(info):
    """A probe's frame rate as a Fraction (None when absent)."""
    num, den = info.get("fps_num"), info.get("fps_den")
    if not num or not den:
        return None
    return fractions.Fraction(int(num), int(den))


def expected_segments(frames, seg_len, overlap):
    """[(first, end)] per the planner: segment k starts at k*(L-O); the
    count is the smallest n with (n-1)*(L-O)+L >= frames (1 if frames <= L)."""
    if frames <= seg_len:
        return [(0, frames)]
    step = seg_len - overlap
    n = 1
    while (n - 1) * step + seg_len < frames:
        n += 1
    return [(k * step, min(k * step + seg_len, frames)) for k in range(n)]


def wait_for(pred, timeout, interval=0.05):
    """pred()'s first truthy value within timeout seconds (it is asked at
    least once, also after the deadline), else None."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            return None
        time.sleep(interval)


def log_fields(line):
    """key=value pairs of one log line (values may be double-quoted)."""
    out = {}
    for k, v in re.findall(r'(\w+)=("(?:[^"\\]|\\.)*"|\S+)', line):
        out[k] = v[1:-1] if len(v) >= 2 and v[0] == '"' and v[-1] == '"' else v
    return out


def _resp_read(f):
    """One RESP value from a binary file object (Farm.redis_command)."""
    line = f.readline()
    if not line.endswith(b"\r\n"):
        raise FarmError(f"redis: connection closed mid-reply ({line!r})")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest.decode("utf-8", "replace")
    if kind == b"-":
        raise FarmError(f"redis error: {rest.decode('utf-8', 'replace')}")
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)
        if len(data) != n + 2:
            raise FarmError("redis: connection closed mid-reply")
        return data[:-2].decode("utf-8", "replace")
    if kind == b"*":
        n = int(rest)
        return None if n < 0 else [_resp_read(f) for _ in range(n)]
    raise FarmError(f"redis: unexpected reply {line!r}")


def tail(path, lines=40):
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        return f"(cannot read {path}: {e})"
    text = data.decode("utf-8", "replace").splitlines()
    return "\n".join(text[-lines:])


def _child_setup():
    # Die with the test: if this interpreter is killed (even with SIGKILL),
    # the kernel sends SIGKILL to the child.
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def _describe_rc(rc):
    if rc is None:
        return "still running"
    if rc < 0:
        try:
            return f"killed by {signal.Signals(-rc).name}"
        except ValueError:
            return f"killed by signal {-rc}"
    return f"exit status {rc}"


# ---------------------------------------------------------------------------
# Processes


def _wrap(argv):
    """RFARM_E2E_WRAP (e.g. "valgrind --error-exitcode=99 --leak-check=full")
    runs the coordinator and workers under a tool; a program that then does
    not exit 0 on SIGTERM fails its check, so the tool's errors do too."""
    wrap = os.environ.get("RFARM_E2E_WRAP", "").split()
    return wrap + argv if wrap else argv


class Proc:
    """One child program with its log file."""

    def __init__(self, name, argv, log_path, cwd, env=None):
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self.stopped = False  # we sent it SIGTERM
        self.exit_checked = False
        self._log = open(log_path, "wb")
        try:
            self.popen = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self._log,
                                          stderr=subprocess.STDOUT, cwd=cwd, env=env,
                                          start_new_session=True, preexec_fn=_child_setup)
        except OSError:
            self._log.close()
            raise
        self.pid = self.popen.pid

    def alive(self):
        return self.popen.poll() is None

    def log_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def wait_for_line(self, pattern, timeout):
        """Wait until the log has a line matching pattern; FarmError if the
        program exits first or the time runs out."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            if rx.search(self.log_text()):
                return
            if not self.alive():
                raise FarmError(f"{self.name} exited ({_describe_rc(self.popen.returncode)}) "
                                f"before logging /{pattern}/; log {self.log_path}:\n"
                                f"{tail(self.log_path, 20)}")
            if time.monotonic() > deadline:
                raise FarmError(f"{self.name} did not log /{pattern}/ within {timeout:.0f}s; "
                                f"log {self.log_path}:\n{tail(self.log_path, 20)}")
            time.sleep(0.05)

    def terminate(self):
        # Once only: many programs read a second SIGTERM as "quit now".
        if self.alive() and not self.stopped:
            self.stopped = True
            try:
                self.popen.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass

    def wait_exit(self, timeout):
        """Wait for exit; SIGKILL the whole group after timeout. Returns
        (returncode, killed)."""
        killed = False
        try:
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            killed = True
            self.dump_stacks()
            self.kill_group()
            try:
                self.popen.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        self.kill_group()  # children it left behind (an exec engine's command)
        self._log.close()
        return self.popen.returncode, killed

    def dump_stacks(self):
        """Where a hung program is stuck: every thread's backtrace, by gdb
        when it is installed (RFARM_E2E_GDB=0 turns this off), appended to
        its log so the failure report shows it."""
        if shutil.which("gdb") is None or os.environ.get("RFARM_E2E_GDB") == "0" or not self.alive():
            return
        try:
            r = subprocess.run(["gdb", "-batch", "-nx", "-p", str(self.pid), "-ex", "thread apply all bt"],
                               stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30)
            text = r.stdout + r.stderr
        except (OSError, subprocess.SubprocessError) as e:
            text = f"(gdb failed: {e})"
        lines = [ln for ln in text.splitlines()
                 if ln.startswith(("Thread ", "#")) or "ptrace" in ln or "gdb failed" in ln]
        with open(self.log_path, "a") as f:
            f.write(f"---- e2e harness: {self.name} (pid {self.pid}) hung; stacks:\n")
            f.write("\n".join(lines) + "\n")

    def kill_group(self):
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


# ---------------------------------------------------------------------------
# The farm


class Farm:
    """A private farm: redis-server, rfarm-coordinator and N rfarm-workers.

        with suite.farm(workers=3, capacity=1) as f:
            job = f.submit(spec)
            rc, err = f.wait(job, 60)
            st = f.status(job)
    """

    def __init__(self, suite, workers=3, capacity=None, prefix=PREFIX, name="farm",
                 coordinator_args=(), redis_aof=False, share_spool=None):
        self.suite = suite
        # Workers here always run beside the coordinator, so they could all
        # write its spool directly; by default they send frames over the
        # socket, the path remote workers take. Tests that want the shared
        # spool ask for it; RFARM_E2E_SHARE_SPOOL=1 makes it every farm's
        # default (ctest runs the fault tests once that way).
        if share_spool is None:
            share_spool = os.environ.get("RFARM_E2E_SHARE_SPOOL") == "1"
        self.share_spool = share_spool
        self.bin = suite.bin
        self.nworkers = workers
        self.capacity = capacity
        self.prefix = prefix
        self.name = name
        self.coordinator_args = list(coordinator_args)
        # redis_aof: run Redis with append-only persistence (fsync on every
        # write), so that stop_redis()/start_redis() lose nothing.
        self.redis_aof = redis_aof
        self.tmp = None
        self.redis = None
        self.coordinator = None
        self.workers = {}
        self.retired = []  # earlier coordinator and Redis processes (restarts)
        self._failed_before = 0
        self._cli_count = 0
        self._announces_workers = True
        self._stopped = False
        self._stuck = False

    # -- lifecycle

    def __enter__(self):
        self._failed_before = self.suite.failed
        try:
            self.start()
        except BaseException:
            self._finish(failed=True)
            raise
        return self

    def __exit__(self, exc_type, exc, tb):
        failed = exc_type is not None or self.suite.failed > self._failed_before
        self._finish(failed)
        return False

    def start(self):
        self.tmp = tempfile.mkdtemp(prefix=f"rfarm-e2e-{self.name}-")
        self.out_dir = os.path.join(self.tmp, "out")
        self.spool = os.path.join(self.tmp, "spool")
        self.log_dir = os.path.join(self.tmp, "logs")
        for d in (self.out_dir, self.spool, self.log_dir, os.path.join(self.tmp, "redis"),
                  os.path.join(self.tmp, "specs")):
            os.makedirs(d, exist_ok=True)
        self.redis_port, self.worker_port, self.client_port = free_ports(3)
        self.worker_ep = f"tcp://127.0.0.1:{self.worker_port}"
        self.client_ep = f"tcp://127.0.0.1:{self.client_port}"
        print(f"   farm {self.name}: dir={self.tmp} redis={self.redis_port} "
              f"workers={self.worker_ep} clients={self.client_ep}", flush=True)
        self._start_redis()
        self._start_coordinator()
        for i in range(self.nworkers):
            self.add_worker(f"w{i}")

    def _start_redis(self, log_name="redis.log"):
        persistence = (["--appendonly", "yes", "--appendfsync", "always"] if self.redis_aof
                       else ["--appendonly", "no"])
        self.redis = Proc("redis-server",
                          ["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1",
                           "--dir", os.path.join(self.tmp, "redis"), "--save", ""]
                          + persistence + ["--daemonize", "no"],
                          os.path.join(self.log_dir, log_name), self.tmp)
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            if self._redis_ping():
                return
            if not self.redis.alive():
                raise FarmError(f"redis-server exited ({_describe_rc(self.redis.popen.returncode)}):"
                                f"\n{tail(self.redis.log_path, 20)}")
            if time.monotonic() > deadline:
                raise FarmError(f"redis-server did not answer PING within {READY_TIMEOUT:.0f}s")
            time.sleep(0.05)

    def _redis_ping(self):
        try:
            with socket.create_connection(("127.0.0.1", self.redis_port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                return s.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def _start_coordinator(self):
        argv = _wrap([os.path.join(self.bin, "rfarm-coordinator"),
                      "--worker-bind", self.worker_ep, "--client-bind", self.client_ep,
                      "--redis", f"127.0.0.1:{self.redis_port}", "--prefix", self.prefix,
                      "--spool", self.spool] + self.coordinator_args)
        self.coordinator = Proc("coordinator", argv, os.path.join(self.log_dir, "coordinator.log"),
                                self.tmp)
        self.coordinator.wait_for_line(r"coordinator ready", READY_TIMEOUT)

    def add_worker(self, name=None, capacity=None, env=None, args=(), share_spool=None):
        """Start one more worker (extra command-line `args`) and wait until it
        is ready (and, when the coordinator's log names workers, until the
        coordinator has seen it)."""
        if name is None:
            name = f"w{len(self.workers)}"
        if name in self.workers:
            raise FarmError(f"worker {name} already exists")
        cap = capacity if capacity is not None else self.capacity
        argv = _wrap([os.path.join(self.bin, "rfarm-worker"), "--connect", self.worker_ep,
                      "--id", name])
        if cap is not None:
            argv += ["--capacity", str(cap)]
        share = self.share_spool if share_spool is None else share_spool
        argv += ["--share-spool", "auto" if share else "off"]
        argv += [str(a) for a in args]
        full_env = None
        if env:
            full_env = dict(os.environ)
            full_env.update(env)
        w = Proc(f"worker {name}", argv, os.path.join(self.log_dir, f"worker-{name}.log"),
                 self.tmp, full_env)
        self.workers[name] = w
        w.wait_for_line(r"worker ready", READY_TIMEOUT)
        self._wait_worker_known(name)
        return w

    def _wait_worker_known(self, name, timeout=3.0):
        # ZeroMQ connects asynchronously: "worker ready" does not promise the
        # coordinator has the worker's Hello. Wait (bounded) until the
        # coordinator's log or Redis names it, so scheduling tests start with
        # every worker in play. If neither ever names workers, stop waiting.
        if not self._announces_workers:
            return
        rx = re.compile(r"(?<![\w.-])" + re.escape(name) + r"(?![\w.-])")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if rx.search(self.coordinator.log_text()):
                return
            if self.redis_cli("SISMEMBER", self.prefix + "workers", name).strip() == "1":
                return
            time.sleep(0.05)
        self._announces_workers = False
        print(f"   note: coordinator did not name worker {name} within {timeout:.0f}s "
              f"(neither in its log nor in {self.prefix}workers); not waiting for later ones",
              flush=True)

    def stop_worker(self, name, timeout=STOP_TIMEOUT):
        """SIGTERM one worker and check it exits 0. Returns the exit status."""
        w = self.workers[name]
        return self._stop_proc(w, timeout, must_exit_zero=True)

    def kill_coordinator(self):
        """SIGKILL the coordinator on purpose (it is then not expected to
        exit 0 when the farm stops)."""
        c = self.coordinator
        c.stopped = True
        c.exit_checked = True
        c.kill_group()
        try:
            c.popen.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass

    def restart_coordinator(self):
        """Start a new coordinator with the very same command line (same
        ports, spool, Redis and prefix) after the old one was killed, and
        wait until it is ready. Its log is coordinator-2.log (-3, ...); the
        old process stays in self.retired. Returns the new Proc."""
        old = self.coordinator
        if old.alive():
            raise FarmError("restart_coordinator: the coordinator is still running (kill it first)")
        old.exit_checked = True
        old._log.close()
        self.retired.append(old)
        n = 1 + sum(1 for p in self.retired if p.name.startswith("coordinator"))
        self.coordinator = Proc("coordinator", list(old.argv),
                                os.path.join(self.log_dir, f"coordinator-{n}.log"), self.tmp)
        self.coordinator.wait_for_line(r"coordinator ready", READY_TIMEOUT)
        return self.coordinator

    def kill_worker(self, name, sig=signal.SIGKILL):
        """Kill one worker on purpose with sig (SIGKILL by default) and wait
        for it to die; it is then not expected to exit 0 when the farm stops.
        Returns its exit status (-signal)."""
        w = self.workers[name]
        w.stopped = True
        w.exit_checked = True
        try:
            os.kill(w.pid, sig)
        except ProcessLookupError:
            pass
        try:
            w.popen.wait(timeout=5)
        except subprocess.TimeoutExpired:
            w.kill_group()
            w.popen.wait(timeout=5)
        w.kill_group()  # whatever it left behind
        w._log.close()
        return w.popen.returncode

    def signal_worker(self, name, sig):
        """Send sig (SIGSTOP, SIGCONT, ...) to one worker process, nothing
        else. A worker left stopped cannot exit on SIGTERM: SIGCONT it."""
        os.kill(self.workers[name].pid, sig)

    def stop_redis(self, timeout=10.0):
        """SIGTERM Redis and wait until it has exited (with redis_aof=True it
        flushes its append-only file first). Returns its exit status."""
        r = self.redis
        r.terminate()
        rc, killed = r.wait_exit(timeout)
        r.exit_checked = True
        if killed:
            raise FarmError(f"redis-server still running {timeout:.0f}s after SIGTERM")
        return rc

    def start_redis(self):
        """Start Redis again after stop_redis(): same command line (port,
        dir, persistence), log redis-2.log (-3, ...); waits for PING."""
        old = self.redis
        if old is not None and old.alive():
            raise FarmError("start_redis: redis-server is still running (stop_redis first)")
        if old is not None:
            self.retired.append(old)
        n = 1 + sum(1 for p in self.retired if p.name.startswith("redis"))
        self._start_redis(log_name=f"redis-{n}.log")

    def stop(self):
        """Stop everything: workers first (they drain), then the coordinator,
        then Redis. Checks that the coordinator and workers exit 0."""
        if self._stopped:
            return
        self._stopped = True
        workers = [w for w in self.workers.values() if not w.exit_checked]
        for w in workers:
            self._note_unexpected_exit(w)
            w.terminate()
        deadline = time.monotonic() + STOP_TIMEOUT  # one deadline: they stop in parallel
        for w in workers:
            self._stop_proc(w, max(0.1, deadline - time.monotonic()), must_exit_zero=True,
                            grace=STOP_TIMEOUT)
        if self.coordinator is not None:
            self._stop_proc(self.coordinator, STOP_TIMEOUT, must_exit_zero=True)
        if self.redis is not None:
            self._stop_proc(self.redis, 5.0, must_exit_zero=False)

    def _note_unexpected_exit(self, p):
        if not p.stopped and not p.alive() and not p.exit_checked:
            p.exit_checked = True
            self.suite.fail(f"{self.name}: {p.name} kept running until stopped",
                            f"it died on its own ({_describe_rc(p.popen.returncode)})")
            p.wait_exit(0.1)
            return True
        return False

    def _stop_proc(self, p, timeout, must_exit_zero, grace=None):
        if p.exit_checked:
            return p.popen.returncode
        if self._note_unexpected_exit(p):
            return p.popen.returncode
        p.terminate()
        rc, killed = p.wait_exit(timeout)
        p.exit_checked = True
        if must_exit_zero:
            if killed:
                self.suite.fail(f"{self.name}: {p.name} exits after SIGTERM",
                                f"still running {grace or timeout:.0f}s after SIGTERM, killed with SIGKILL")
            else:
                self.suite.check(rc == 0, f"{self.name}: {p.name} exits 0 after SIGTERM",
                                 _describe_rc(rc))
        return rc

    def _finish(self, failed):
        try:
            self.stop()
        finally:
            # Whatever happened above, no child may survive.
            for p in [self.redis, self.coordinator] + list(self.workers.values()) + self.retired:
                if p is not None:
                    if p.alive():
                        p.kill_group()
                        try:
                            p.popen.wait(timeout=5)
                        except subprocess.TimeoutExpired:
                            pass
            failed = failed or self.suite.failed > self._failed_before
            if self.tmp is None:
                return
            if failed:
                self.dump_logs()
            elif self.suite.keep:
                print(f"   farm {self.name}: kept {self.tmp}", flush=True)
            else:
                shutil.rmtree(self.tmp, ignore_errors=True)

    def dump_logs(self, lines=60):
        print(f"\n---- farm {self.name}: something failed; kept {self.tmp}", file=sys.stderr)
        try:
            names = sorted(os.listdir(self.log_dir))
        except OSError:
            names = []
        for n in names:
            path = os.path.join(self.log_dir, n)
            print(f"---- {path} (last {lines} lines)", file=sys.stderr)
            print(tail(path, lines), file=sys.stderr)
        print("----", file=sys.stderr, flush=True)

    # -- the CLI

    def cli(self, *args, timeout=CLI_TIMEOUT, cwd=None):
        """Run `rfarm --endpoint <ep> args...`; returns CompletedProcess
        (text). Every call is appended to logs/cli.log."""
        argv = [os.path.join(self.bin, "rfarm"), "--endpoint", self.client_ep] + [str(a) for a in args]
        t0 = time.monotonic()
        try:
            r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                               timeout=timeout, cwd=cwd or self.tmp, start_new_session=True)
        except subprocess.TimeoutExpired as e:
            self._cli_log(argv, None, e.stdout, e.stderr, time.monotonic() - t0)
            raise FarmError(f"`rfarm {' '.join(map(str, args))}` did not return within {timeout:.0f}s"
                            f" (coordinator {'alive' if self.coordinator.alive() else 'DEAD'})")
        self._cli_log(argv, r.returncode, r.stdout, r.stderr, time.monotonic() - t0)
        return r

    def _cli_log(self, argv, rc, out, err, secs):
        def s(x):
            if x is None:
                return ""
            return x.decode("utf-8", "replace") if isinstance(x, bytes) else x
        with open(os.path.join(self.log_dir, "cli.log"), "a") as f:
            f.write(f"$ {' '.join(argv[3:])}\n  rc={rc} secs={secs:.2f}\n")
            for label, text in (("stdout", s(out)), ("stderr", s(err))):
                for line in text.splitlines():
                    f.write(f"  {label}| {line}\n")

    def write_spec(self, spec):
        """Write a spec (dict, or raw text) to a file; returns its path."""
        self._cli_count += 1
        path = os.path.join(self.tmp, "specs", f"spec-{self._cli_count}.json")
        with open(path, "w") as f:
            f.write(spec if isinstance(spec, str) else json.dumps(spec, indent=2))
        return path

    def submit_raw(self, spec, cwd=None):
        """Submit without judging the answer; returns CompletedProcess."""
        return self.cli("submit", self.write_spec(spec), cwd=cwd)

    def submit(self, spec, cwd=None):
        """Submit a spec that must be accepted; returns the job id."""
        r = self.submit_raw(spec, cwd=cwd)
        if r.returncode != 0:
            raise FarmError(f"submit was refused (exit {r.returncode}): {r.stderr.strip()}")
        job = r.stdout.strip()
        if not job or "\n" in job:
            raise FarmError(f"submit printed {r.stdout!r}, want the job id alone")
        return job

    def wait(self, job, timeout=60):
        """`rfarm wait JOB --timeout T`; returns (exit status, stderr).
        Once a wait of this farm has timed out the farm is presumed stuck and
        later waits get at most 10 s, so one hang does not cost every job's
        full timeout; a dead coordinator is not asked at all."""
        if not self.coordinator.alive():
            return 2, f"(harness) coordinator is not running: {_describe_rc(self.coordinator.popen.returncode)}"
        if self._stuck:
            timeout = min(timeout, 10)
        r = self.cli("wait", job, "--timeout", int(timeout), timeout=timeout + 15)
        if r.returncode == 3:
            self._stuck = True
        return r.returncode, r.stderr

    def wait_done(self, job, timeout=60):
        """Wait for a job that must finish; records one check."""
        t0 = time.monotonic()
        rc, err = self.wait(job, timeout)
        why = f"exit {rc}: {err.strip()}"
        if not self.coordinator.alive() and "(harness)" not in err:
            why += f" (the coordinator died: {_describe_rc(self.coordinator.popen.returncode)})"
        ok = self.suite.check(rc == 0, f"job {job} done (rfarm wait exit 0)", why)
        if ok:
            print(f"   job {job}: done in {time.monotonic() - t0:.1f}s", flush=True)
        return ok

    def status_all(self):
        r = self.cli("status", "--json")
        if r.returncode != 0:
            raise FarmError(f"status --json: exit {r.returncode}: {r.stderr.strip()}")
        try:
            return json.loads(r.stdout)
        except ValueError as e:
            raise FarmError(f"status --json printed no JSON ({e}): {r.stdout[:300]!r}")

    def status(self, job):
        """The status object of one job (from `rfarm status JOB --json`)."""
        r = self.cli("status", job, "--json")
        if r.returncode != 0:
            raise FarmError(f"status {job} --json: exit {r.returncode}: {r.stderr.strip()}")
        try:
            doc = json.loads(r.stdout)
        except ValueError as e:
            raise FarmError(f"status {job} --json printed no JSON ({e}): {r.stdout[:300]!r}")
        jobs = [j for j in doc.get("jobs", []) if j.get("id") == job]
        if len(jobs) != 1:
            raise FarmError(f"status {job} --json: want one job {job}, got {r.stdout[:300]!r}")
        return jobs[0]

    # -- Redis, read directly

    def redis_cli(self, *args, timeout=10):
        """redis-cli --raw against this farm's Redis; returns stdout."""
        argv = ["redis-cli", "-h", "127.0.0.1", "-p", str(self.redis_port), "--raw"] + [str(a) for a in args]
        try:
            r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                               timeout=timeout)
        except subprocess.TimeoutExpired:
            raise FarmError(f"redis-cli {' '.join(map(str, args))}: no answer within {timeout}s")
        if r.returncode != 0:
            raise FarmError(f"redis-cli {' '.join(map(str, args))}: exit {r.returncode}: {r.stderr.strip()}")
        return r.stdout.rstrip("\n")

    def redis_command(self, *args, timeout=5.0):
        """One command on a fresh connection to this farm's Redis, spoken in
        RESP directly (values may hold newlines, which redis-cli --raw
        cannot show unambiguously). Returns str, int, None or a list of
        them; FarmError when Redis is unreachable or answers an error."""
        parts = [a if isinstance(a, bytes) else str(a).encode() for a in args]
        req = b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in parts)
        try:
            with socket.create_connection(("127.0.0.1", self.redis_port), timeout=timeout) as s:
                s.sendall(req)
                f = s.makefile("rb")
                return _resp_read(f)
        except OSError as e:
            raise FarmError(f"redis {' '.join(map(str, args))}: {e}")

    def redis_hgetall(self, key):
        """A Redis hash as a dict of strings ({} when the key is absent)."""
        out = self.redis_command("HGETALL", key) or []
        return {out[i]: out[i + 1] for i in range(0, len(out) - 1, 2)}

    def redis_keys(self, pattern):
        out = self.redis_cli("KEYS", pattern)
        return sorted(k for k in out.splitlines() if k)

    # -- who did what

    def worker_segments(self, job):
        """{worker name: sorted segment indices} that each worker rendered,
        from the logs: the coordinator's `segment done job=J seg=K worker=W`
        lines (results it accepted) and each worker's own `segment done` or
        `segment finished` lines."""
        out = {name: set() for name in self.workers}
        for line in self.coordinator.log_text().splitlines():
            if "segment done" in line:
                f = log_fields(line)
                if f.get("job") == job and f.get("seg", "").isdigit() and f.get("worker") in out:
                    out[f["worker"]].add(int(f["seg"]))
        for name, w in self.workers.items():
            for line in w.log_text().splitlines():
                if re.search(r"segment (done|finished)\b", line):
                    f = log_fields(line)
                    if f.get("job") == job and f.get("seg", "").isdigit():
                        out[name].add(int(f["seg"]))
        return {name: sorted(segs) for name, segs in out.items()}

    def redis_segment_workers(self, job, nseg):
        """{k: the `worker` field of <prefix>job:<id>:seg:<k>}."""
        return {k: self.redis_cli("HGET", f"{self.prefix}job:{job}:seg:{k}", "worker").strip()
                for k in range(nseg)}

    def out(self, name):
        """An absolute path in this farm's output directory."""
        return os.path.join(self.out_dir, name)


# ---------------------------------------------------------------------------
# Specs


def synthetic_spec(job_id, output, *, frames=48, width=64, height=64, fps=24, seed=1,
                   disagreement=0.0, cost_ms=0, segment_frames=48, overlap_frames=8,
                   blend="cosine", container=None, codec=None, quality=None, preset=None,
                   prompt="rfarm e2e test", priority=0):
    """A synthetic-engine job spec. container/codec default from the output
    name's extension (mp4 -> h264, mkv -> ffv1, y4m -> rawvideo)."""
    ext = os.path.splitext(output)[1].lstrip(".")
    container = container or ext
    codec = codec or {"mp4": "h264", "mkv": "ffv1", "y4m": "rawvideo"}.get(container)
    out = {"path": output, "container": container, "codec": codec}
    if quality is not None:
        out["quality"] = quality
    if preset is not None:
        out["preset"] = preset
    spec = {
        "engine": "synthetic",
        "params": {"disagreement": disagreement, "cost_ms": cost_ms},
        "prompt": prompt,
        "seed": seed,
        "width": width,
        "height": height,
        "fps": fps,
        "frames": frames,
        "segment_frames": segment_frames,
        "overlap_frames": overlap_frames,
        "blend": blend,
        "output": out,
        "priority": priority,
    }
    if job_id is not None:
        spec["id"] = job_id
    return spec
