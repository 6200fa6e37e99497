#!/usr/bin/env python3
"""tunnel_probe.py: the small programs bench/tunnel.sh drives (bench/README.md §8).

  server ADDR PORT           accepts connections and sends each one byte ("x") at once, then
                             holds it until the peer closes (many at a time: one selector)
  latency HOST PORT N        N sequential connections: the time from the connect() call to the
                             first received byte, each; prints
                             "latency: n=N p50_us=.. p99_us=.. mean_us=.."
  idle HOST PORT N           opens N connections one after another, reads each one's byte,
                             prints "idle: ready=N", then holds them until killed

HOST is resolved once before any timing (under `dpm-run --tunnel` a pseudo name becomes a
pseudo address there). Exits 1 with a message when a connection fails or a byte is missing.
"""
import selectors
import signal
import socket
import sys
import time


def server(addr, port):
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((addr, int(port)))
    ls.listen(4096)
    ls.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(ls, selectors.EVENT_READ, None)
    print("server: ready", flush=True)
    while True:
        for key, _ in sel.select():
            if key.data is None:
                while True:
                    try:
                        c, _ = ls.accept()
                    except BlockingIOError:
                        break
                    c.setblocking(False)
                    try:
                        c.send(b"x")
                    except OSError:
                        c.close()
                        continue
                    sel.register(c, selectors.EVENT_READ, 1)
            else:
                c = key.fileobj
                try:
                    data = c.recv(65536)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if not data:
                    sel.unregister(c)
                    c.close()


def resolve(host, port):
    return socket.getaddrinfo(host, int(port), socket.AF_INET, socket.SOCK_STREAM)[0][4]


def first_byte(s):
    b = s.recv(1)
    if b != b"x":
        sys.exit("no byte from the server (got %r)" % b)


def latency(host, port, n):
    dest = resolve(host, port)
    times = []
    for _ in range(int(n)):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(30)
        t0 = time.perf_counter()
        s.connect(dest)
        first_byte(s)
        times.append((time.perf_counter() - t0) * 1e6)
        s.close()
    times.sort()
    pick = lambda q: times[min(len(times) - 1, int(q * len(times)))]
    print("latency: n=%d p50_us=%.0f p99_us=%.0f mean_us=%.0f"
          % (len(times), pick(0.50), pick(0.99), sum(times) / len(times)), flush=True)


def idle(host, port, n):
    dest = resolve(host, port)
    socks = []
    for _ in range(int(n)):
        s = socket.create_connection(dest, timeout=30)
        first_byte(s)
        socks.append(s)
    print("idle: ready=%d" % len(socks), flush=True)
    while True:
        signal.pause()


if __name__ == "__main__":
    modes = {"server": server, "latency": latency, "idle": idle}
    if len(sys.argv) < 2 or sys.argv[1] not in modes:
        sys.exit(__doc__)
    modes[sys.argv[1]](*sys.argv[2:])
