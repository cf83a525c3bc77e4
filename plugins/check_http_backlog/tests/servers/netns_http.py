#!/usr/bin/env python3
"""An HTTP server in its own network namespace, as a container runtime would start it.

Unshares the network namespace (needs CAP_SYS_ADMIN), brings its loopback up, listens on
127.0.0.1:PORT with BACKLOG and prints "READY <pid>". With NETNS_HTTP_EXTRA_ADDR set, that
address is added to the namespace's loopback and "serve" listens on it instead. MODE "serve" answers every GET with
200; MODE "stall" never accepts and opens FILL connections to itself from inside, so the
accept queue is full (the kernel drops the SYNs beyond backlog+1).

Bounded: exits after LIFETIME seconds, or at once when its parent dies.
Usage: netns_http.py MODE PORT BACKLOG FILL LIFETIME
"""

import ctypes
import fcntl
import http.server
import os
import signal
import socket
import struct
import sys
import threading
import time

CLONE_NEWNET = 0x40000000
PR_SET_PDEATHSIG = 1
SIOCGIFFLAGS, SIOCSIFFLAGS, SIOCSIFADDR, IFF_UP = 0x8913, 0x8914, 0x8916, 0x1


def add_address(addr):
    """`ip addr add ADDR dev lo` inside the namespace: an address only it has."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        sin = struct.pack("HH4s8x", socket.AF_INET, 0, socket.inet_aton(addr))
        fcntl.ioctl(s, SIOCSIFADDR, struct.pack("16s16s8x", b"lo:1", sin))


def enter_new_netns():
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if libc.unshare(CLONE_NEWNET) != 0:
        sys.exit(f"unshare(CLONE_NEWNET): {os.strerror(ctypes.get_errno())}")
    # `ip link set lo up`, without needing iproute2.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        ifreq = fcntl.ioctl(s, SIOCGIFFLAGS, struct.pack("16sH14x", b"lo", 0))
        flags = struct.unpack("16sH14x", ifreq)[1] | IFF_UP
        fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags))


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


def main():
    mode, port, backlog, fill = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    until = time.monotonic() + float(sys.argv[5])
    enter_new_netns()
    extra = os.environ.get("NETNS_HTTP_EXTRA_ADDR")
    if extra:
        add_address(extra)
    held = []
    if mode == "serve":
        http.server.ThreadingHTTPServer.request_queue_size = backlog
        server = http.server.ThreadingHTTPServer((extra or "127.0.0.1", port), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
    else:
        listener = socket.socket()
        listener.bind(("127.0.0.1", port))
        listener.listen(backlog)
        for _ in range(fill):
            c = socket.socket()
            c.settimeout(0.3)
            try:
                c.connect(("127.0.0.1", port))
                held.append(c)
            except OSError:
                c.close()  # else the kernel keeps retrying its SYN: more drops
                break
    print(f"READY {os.getpid()}", flush=True)
    while time.monotonic() < until:
        time.sleep(0.1)


if __name__ == "__main__":
    main()
