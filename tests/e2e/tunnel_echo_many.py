#!/usr/bin/env python3
"""tunnel_echo_many.py HOST PORT N [SIZE]: opens N TCP connections to HOST:PORT (an echo
server) one after another, keeps them all open, then sends each a different SIZE-byte message
(default 4096) and reads every echo back at once with a selector. Prints "ok N" when every echo
is byte-exact, else "bad I ..." lines, and exits 1. Run under dpm-run --tunnel: each connect()
is a tunneled stream, all sharing the redirector's and the proxy's one TLS connection."""
import hashlib
import selectors
import socket
import sys
import time


def main(host, port, n, size=4096):
    n, size, port = int(n), int(size), int(port)
    socks = []
    t0 = time.time()
    for i in range(n):
        s = socket.create_connection((host, port), timeout=30)
        socks.append(s)
    opened = time.time() - t0
    want = [hashlib.sha256(b"%d" % i).digest() * (size // 32 + 1) for i in range(n)]
    want = [w[:size] for w in want]
    for s in socks:
        s.setblocking(False)
    sel = selectors.DefaultSelector()
    got = [bytearray() for _ in range(n)]
    sent = [0] * n
    for i, s in enumerate(socks):
        sel.register(s, selectors.EVENT_READ | selectors.EVENT_WRITE, i)
    deadline = time.time() + 120
    done = 0
    while done < n and time.time() < deadline:
        for key, ev in sel.select(timeout=1):
            i = key.data
            s = key.fileobj
            if ev & selectors.EVENT_WRITE and sent[i] < size:
                try:
                    sent[i] += s.send(want[i][sent[i]:])
                except BlockingIOError:
                    pass
                if sent[i] == size:
                    sel.modify(s, selectors.EVENT_READ, i)
            if ev & selectors.EVENT_READ:
                try:
                    data = s.recv(65536)
                except BlockingIOError:
                    continue
                if not data:
                    sel.unregister(s)
                    done += 1
                    continue
                got[i] += data
                if len(got[i]) >= size:
                    sel.unregister(s)
                    done += 1
    bad = [i for i in range(n) if bytes(got[i]) != want[i]]
    for i in bad[:10]:
        print("bad %d: %d of %d bytes" % (i, len(got[i]), size))
    for s in socks:
        s.close()
    if bad:
        return 1
    print("ok %d (opened in %.1f s)" % (n, opened))
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
