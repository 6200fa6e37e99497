#!/usr/bin/python3
"""A DNS A query over UDP in three styles, for e2e.preload_udp (standard library only):

  dns_query.py SERVER PORT NAME

  sendto    unconnected socket: sendto(), recvfrom() (the answer's source must be the server)
  connected connect(), send(), recv(); getpeername() is the server
  sendmsg   unconnected socket: sendmsg() with the address, recvmsg()

Prints "STYLE: ANSWER from IP:PORT local IP:PORT" per style (ANSWER: the first A record, or
"none"); exit status 0 when every style got an answer from the server.
"""
import os
import socket
import struct
import sys


def query(qid, name):
    q = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    for label in name.rstrip(".").split("."):
        q += bytes([len(label)]) + label.encode()
    return q + b"\0" + struct.pack("!HH", 1, 1)  # QTYPE A, QCLASS IN


def first_a(msg, qid):
    """The first A record of an answer to query qid (RFC 1035 §4.1), or None."""
    rid, _, qd, an = struct.unpack("!HHHH", msg[:8])
    if rid != qid:
        return None
    i = 12
    for _ in range(qd):
        while msg[i] != 0:
            i += msg[i] + 1
        i += 5
    for _ in range(an):
        if msg[i] & 0xC0 == 0xC0:
            i += 2
        else:
            while msg[i] != 0:
                i += msg[i] + 1
            i += 1
        rtype, _, _, rdlen = struct.unpack("!HHIH", msg[i:i + 10])
        i += 10
        if rtype == 1 and rdlen == 4:
            return socket.inet_ntoa(msg[i:i + 4])
        i += rdlen
    return None


def attempt(style, server, name):
    """One style's exchange, with three tries (UDP may lose a datagram). Returns its line."""
    qid = int.from_bytes(os.urandom(2), "big")
    q = query(qid, name)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(5)
    try:
        if style == "connected":
            s.connect(server)
            assert s.getpeername() == server, s.getpeername()
        for _ in range(3):
            if style == "sendto":
                s.sendto(q, server)
            elif style == "connected":
                s.send(q)
            else:
                s.sendmsg([q[:5], q[5:]], [], 0, server)
            try:
                if style == "sendto":
                    msg, src = s.recvfrom(4096)
                elif style == "connected":
                    msg, src = s.recv(4096), s.getpeername()
                else:
                    msg, _, _, src = s.recvmsg(4096)
            except socket.timeout:
                continue
            answer = first_a(msg, qid)
            local = s.getsockname()
            return answer is not None and src == server, "%s: %s from %s:%d local %s:%d" % (
                style, answer or "none", src[0], src[1], local[0], local[1])
        return False, "%s: no answer" % style
    finally:
        s.close()


def main(argv):
    if len(argv) != 4:
        sys.stderr.write(__doc__)
        return 2
    server = (argv[1], int(argv[2]))
    ok = True
    for style in ("sendto", "connected", "sendmsg"):
        good, line = attempt(style, server, argv[3])
        print(line, flush=True)
        ok = ok and good
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
