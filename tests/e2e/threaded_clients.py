#!/usr/bin/python3
"""Many threads using sockets at once, for e2e.preload_python: THREADS threads each open, use
and close ROUNDS blocking TCP connections to an echo server (asyncio_peer.py server), all at
the same time — the hook's tables and libdpm's per-thread control connections under load.

  threaded_clients.py ADDR PORT THREADS ROUNDS

Each round sends 20000 random bytes, shuts the write side, reads the echo to EOF and compares
sha256. Prints "threads THREADS rounds ROUNDS ok OK failed FAILED" (OK + FAILED = THREADS*ROUNDS)
and exits 0 when none failed.
"""
import hashlib
import os
import socket
import sys
import threading


def main():
    addr, port, threads, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    counts = {"ok": 0, "failed": 0}
    lock = threading.Lock()

    def worker():
        for _ in range(rounds):
            payload = os.urandom(20000)
            got = bytearray()
            try:
                with socket.create_connection((addr, port), timeout=20) as s:
                    s.sendall(payload)
                    s.shutdown(socket.SHUT_WR)
                    while True:
                        chunk = s.recv(65536)
                        if not chunk:
                            break
                        got += chunk
                good = hashlib.sha256(got).digest() == hashlib.sha256(payload).digest()
            except OSError as e:
                print("error", e, flush=True)
                good = False
            with lock:
                counts["ok" if good else "failed"] += 1

    workers = [threading.Thread(target=worker) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    print(f"threads {threads} rounds {rounds} ok {counts['ok']} failed {counts['failed']}")
    return 0 if counts["failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
