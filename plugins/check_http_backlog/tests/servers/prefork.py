#!/usr/bin/env python3
"""A pre-forking TCP server, shaped like nginx, php-fpm, gunicorn or Apache prefork.

The master opens the listener on 127.0.0.1 (an ephemeral port, written to PORTFILE), forks
WORKERS workers that inherit it, writes its PID to PIDFILE and waits; it never accepts.
Each worker lowers its own soft nofile to NOFILE and accepts, keeping every connection
open, until accept() fails with EMFILE; then it keeps retrying, as nginx does, while the
kernel fills the accept queue (BACKLOG) behind it.

Bounded: every process exits after LIFETIME seconds, or at once when its parent dies.
Usage: prefork.py PORTFILE PIDFILE WORKERS NOFILE BACKLOG LIFETIME
"""

import ctypes
import errno
import os
import resource
import signal
import socket
import sys
import time

PR_SET_PDEATHSIG = 1


def die_with_parent():
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def worker(listener, nofile, until, ready):
    die_with_parent()
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, hard))
    listener.settimeout(0.2)
    os.write(ready, b".")  # accepting from now on
    os.close(ready)
    held = []
    said = False
    while time.monotonic() < until:
        try:
            conn, _ = listener.accept()
            held.append(conn)
        except socket.timeout:
            pass
        except OSError as e:
            if e.errno != errno.EMFILE:
                raise
            if not said:
                print(f"worker {os.getpid()}: accept: EMFILE after {len(held)} connections",
                      file=sys.stderr, flush=True)
                said = True
            time.sleep(0.05)
    os._exit(0)


def main():
    portfile, pidfile = sys.argv[1], sys.argv[2]
    workers, nofile, backlog = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    until = time.monotonic() + float(sys.argv[6])
    die_with_parent()
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(backlog)
    children = []
    ready_r, ready_w = os.pipe()
    for _ in range(workers):
        pid = os.fork()
        if pid == 0:
            os.close(ready_r)
            worker(listener, nofile, until, ready_w)
        children.append(pid)
    os.close(ready_w)
    # The port is published once every worker accepts, so a client never fills the queue
    # before the workers have had their chance.
    got = b""
    while len(got) < workers:
        chunk = os.read(ready_r, workers)
        if not chunk:
            sys.exit("a worker died before accepting")
        got += chunk
    os.close(ready_r)
    with open(pidfile + ".tmp", "w") as f:
        f.write(f"{os.getpid()}\n")
    os.rename(pidfile + ".tmp", pidfile)
    with open(portfile + ".tmp", "w") as f:
        f.write(f"{listener.getsockname()[1]}\n")
    os.rename(portfile + ".tmp", portfile)
    while time.monotonic() < until:
        time.sleep(0.1)
    for pid in children:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


if __name__ == "__main__":
    main()
