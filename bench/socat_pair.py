#!/usr/bin/env python3
"""socat_pair.py: the pairing half of bench/tunnel.sh's socat relay (bench/README.md §8). It
only introduces connections to each other; every byte of a relayed connection is moved by a
`socat FD:a FD:b` process of its own, started once both ends exist.

  broker ADDR CTL_PORT PUB_PORT DATA_PORT SOCAT_BUF
      on the public host. Waits for the dialer's control connection on CTL_PORT, then for
      clients on PUB_PORT: for each it writes an 8-byte id (network byte order) on the control
      connection; the dialer's data connection on DATA_PORT starts with that id, and the two
      are handed to a new socat.
  dialer BROKER CTL_PORT DATA_PORT TARGET_ADDR TARGET_PORT SOCAT_BUF
      in network A. Connects out to the broker's control port; for each id it connects out to
      DATA_PORT, writes the id, connects to the real server and hands both to a new socat.

So both private networks only connect out, and the real server sees a connection only when a
client connected, as with the tunnel and ssh -R. Prints "<mode>: ready" once it serves.
"""
import os
import selectors
import signal
import socket
import struct
import sys

SOCAT = "/usr/bin/socat"


def relay(a, b, buf):
    """A socat moving bytes between sockets a and b (closed here; the child keeps them)."""
    for s in (a, b):
        s.setblocking(True)
        os.set_inheritable(s.fileno(), True)
    os.posix_spawn(SOCAT, [SOCAT, "-b", buf, "FD:%d" % a.fileno(), "FD:%d" % b.fileno()], os.environ)
    a.close()
    b.close()


def listener(addr, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, int(port)))
    s.listen(1024)
    return s


def read_exact(s, n):
    data = b""
    while len(data) < n:
        got = s.recv(n - len(data))
        if not got:
            raise EOFError("connection closed")
        data += got
    return data


def broker(addr, ctl_port, pub_port, data_port, buf):
    ctl_l, pub, data = listener(addr, ctl_port), listener(addr, pub_port), listener(addr, data_port)
    print("broker: ready", flush=True)
    ctl, _ = ctl_l.accept()
    ctl.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sel = selectors.DefaultSelector()
    sel.register(pub, selectors.EVENT_READ, "pub")
    sel.register(data, selectors.EVENT_READ, "data")
    sel.register(ctl, selectors.EVENT_READ, "ctl")
    pending, next_id = {}, 0
    while True:
        for key, _ in sel.select():
            if key.data == "ctl":
                sys.exit("broker: the dialer went away")
            c, _ = key.fileobj.accept()
            if key.data == "pub":
                next_id += 1
                pending[next_id] = c
                ctl.sendall(struct.pack("!Q", next_id))
            else:
                c.settimeout(10)
                (conn_id,) = struct.unpack("!Q", read_exact(c, 8))
                client = pending.pop(conn_id, None)
                if client is None:
                    c.close()
                else:
                    relay(client, c, buf)


def dialer(broker_addr, ctl_port, data_port, target_addr, target_port, buf):
    ctl = socket.create_connection((broker_addr, int(ctl_port)))
    print("dialer: ready", flush=True)
    while True:
        conn_id = read_exact(ctl, 8)
        d = socket.create_connection((broker_addr, int(data_port)), timeout=10)
        d.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # the id, then the bytes: no Nagle wait
        d.sendall(conn_id)
        try:
            t = socket.create_connection((target_addr, int(target_port)), timeout=10)
        except OSError:
            d.close()
            continue
        relay(d, t, buf)


if __name__ == "__main__":
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the socat children reap themselves
    modes = {"broker": broker, "dialer": dialer}
    if len(sys.argv) < 2 or sys.argv[1] not in modes:
        sys.exit(__doc__)
    modes[sys.argv[1]](*sys.argv[2:])
