#!/usr/bin/env python3
"""tunnel_connect_errno.py HOST PORT [blocking|nonblocking]: one connect() to HOST:PORT and
prints its outcome as an errno name ("OK" for success, "EACCES", "ECONNREFUSED", ...).
blocking (default): socket.connect_ex, one blocking connect(). nonblocking: the socket is
O_NONBLOCK; connect() gives EINPROGRESS, poll() waits for writable, SO_ERROR gives the answer.
Name resolution goes through getaddrinfo (the hook resolves pseudo names)."""
import errno
import select
import socket
import sys


def name(e):
    return "OK" if e == 0 else errno.errorcode.get(e, str(e))


def main(host, port, mode="blocking"):
    try:
        addr = socket.getaddrinfo(host, int(port), socket.AF_INET, socket.SOCK_STREAM)[0][4]
    except socket.gaierror as e:
        print("GAI %s" % e.args[1])
        return 0
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if mode == "blocking":
        print(name(s.connect_ex(addr)))
        return 0
    s.setblocking(False)
    e = s.connect_ex(addr)
    if e != errno.EINPROGRESS:
        print(name(e))
        return 0
    p = select.poll()
    p.register(s, select.POLLOUT)
    if not p.poll(60000):
        print("POLL-TIMEOUT")
        return 0
    print(name(s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)))
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
