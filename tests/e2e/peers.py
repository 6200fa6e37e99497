#!/usr/bin/env python3
"""Plain Linux peers for the end-to-end tests (kernel sockets, run inside a test namespace).

  peers.py udp-echo ADDR PORT LOG            echo every datagram back; log "IP:PORT LEN" per datagram
  peers.py udp-client ADDR PORT COUNT        send COUNT datagrams, check each reply's bytes and source
  peers.py tcp-sender ADDR PORT RESULT       accept one connection, send until the peer goes;
                                             RESULT gets "reset", "pipe" or "other:<error>"
  peers.py tcp-idle-client ADDR PORT RESULT  connect, send nothing, read until the peer goes;
                                             RESULT gets "eof", "reset" or "other:<error>"
  peers.py tcp-idle-server ADDR PORT RESULT  accept one connection, then as tcp-idle-client
                                             (also a sink: it reads and discards everything)
  peers.py tcp-echo ADDR PORT LOG            echo every connection's bytes back until its EOF,
                                             then close; log "ready" once, then "IP:PORT" per
                                             connection accepted
  peers.py tcp-resetter ADDR PORT LOG        reset every connection (SO_LINGER 0, close) right
                                             after accepting it; log "ready" once
"""
import os
import socket
import struct
import sys
import threading


def write_result(path, text):
    with open(path + ".tmp", "w") as f:
        f.write(text + "\n")
    os.rename(path + ".tmp", path)  # readers never see a half-written file


def udp_echo(addr, port, log):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((addr, int(port)))
    with open(log, "a", buffering=1) as f:
        f.write("ready\n")
        while True:
            data, peer = s.recvfrom(65535)
            s.sendto(data, peer)
            f.write("%s:%d %d\n" % (peer[0], peer[1], len(data)))


def udp_client(addr, port, count):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(2.0)
    want = (addr, int(port))
    bad = 0
    for i in range(int(count)):
        payload = (b"%d:" % i) + os.urandom(16 + i * 97 % 1400)
        for attempt in range(3):  # UDP: a first datagram may race the listener's start
            s.sendto(payload, want)
            try:
                data, peer = s.recvfrom(65535)
                break
            except socket.timeout:
                data, peer = None, None
        if data != payload or peer != want:
            print("udp-client: datagram %d: reply %r from %r" % (i, data[:16] if data else data, peer))
            bad += 1
    print("udp-client: %d of %s datagrams echoed by %s:%s" % (int(count) - bad, count, addr, port))
    return 0 if bad == 0 else 1


def tcp_sender(addr, port, result):
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((addr, int(port)))
    ls.listen(1)
    write_result(result + ".listening", "listening")
    conn, _ = ls.accept()
    chunk = b"\0" * 65536
    try:
        while True:
            conn.sendall(chunk)
    except ConnectionResetError:
        write_result(result, "reset")
    except BrokenPipeError:
        write_result(result, "pipe")
    except OSError as e:
        write_result(result, "other:%s" % e)


def tcp_idle_client(addr, port, result):
    s = socket.create_connection((addr, int(port)), timeout=10)
    s.settimeout(None)
    write_result(result + ".connected", "connected")
    read_until_gone(s, result)


def tcp_idle_server(addr, port, result):
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((addr, int(port)))
    ls.listen(1)
    write_result(result + ".listening", "listening")
    s, peer = ls.accept()
    write_result(result + ".connected", "%s:%d" % peer)
    read_until_gone(s, result)


def read_until_gone(s, result):
    try:
        while True:
            if not s.recv(65536):
                write_result(result, "eof")
                break
    except ConnectionResetError:
        write_result(result, "reset")
    except OSError as e:
        write_result(result, "other:%s" % e)
    s.close()


def tcp_echo(addr, port, log):
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((addr, int(port)))
    ls.listen(64)

    def serve(conn):
        try:
            while True:
                data = conn.recv(65536)
                if not data:
                    break
                conn.sendall(data)
        except OSError:
            pass
        conn.close()

    with open(log, "a", buffering=1) as f:
        f.write("ready\n")
        while True:
            conn, peer = ls.accept()
            f.write("%s:%d\n" % peer)
            threading.Thread(target=serve, args=(conn,), daemon=True).start()


def tcp_resetter(addr, port, log):
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((addr, int(port)))
    ls.listen(64)
    with open(log, "a", buffering=1) as f:
        f.write("ready\n")
        while True:
            conn, _ = ls.accept()
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()  # RST


def main(argv):
    commands = {
        "udp-echo": udp_echo,
        "udp-client": udp_client,
        "tcp-sender": tcp_sender,
        "tcp-idle-client": tcp_idle_client,
        "tcp-idle-server": tcp_idle_server,
        "tcp-echo": tcp_echo,
        "tcp-resetter": tcp_resetter,
    }
    if len(argv) < 2 or argv[1] not in commands:
        sys.stderr.write(__doc__)
        return 2
    return commands[argv[1]](*argv[2:]) or 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
