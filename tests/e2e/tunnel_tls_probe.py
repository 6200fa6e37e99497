#!/usr/bin/env python3
"""tunnel_tls_probe.py HOST PORT CA MODE [NAME TOKEN_FILE]: one TLS 1.3 client of a tunnel
server (docs/tunnel.md "Message format"), server name tunnel.test, chain verified against CA.
Prints one line: how the server answered and after how many seconds.

MODE partial-hello: ALPN dpm-tunnel/1; sends the first 6 bytes of a HELLO header and then
  nothing; reads until the server closes: "EOF SECONDS" (or "OPEN SECONDS" after 8 s).
MODE hello-no-alpn: offers no ALPN; sends a complete redirector HELLO for NAME with the token
  in TOKEN_FILE; prints "WELCOME|REFUSED|EOF|TLS-ERROR SECONDS" — what came back."""
import socket
import ssl
import struct
import sys
import time


def hello(name, token):
    def string(b):
        return struct.pack("!H", len(b)) + b
    body = bytes([2]) + string(name.encode()) + string(token.encode()) + struct.pack("!H", 0)
    return b"DPMT" + bytes([1, 1]) + b"\0\0" + struct.pack("!I", len(body)) + body


def main(host, port, ca, mode, name="", token_file=""):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_verify_locations(ca)
    if mode == "partial-hello":
        ctx.set_alpn_protocols(["dpm-tunnel/1"])
    raw = socket.create_connection((host, int(port)), timeout=8)
    start = time.monotonic()
    try:
        s = ctx.wrap_socket(raw, server_hostname="tunnel.test")
    except (ssl.SSLError, OSError) as e:
        print("TLS-ERROR %.1f %s" % (time.monotonic() - start, e))
        return 0
    if mode == "partial-hello":
        s.sendall(b"DPMT\x01\x01")
    else:
        s.sendall(hello(name, open(token_file).read().strip()))
    try:
        d = s.recv(12)
    except socket.timeout:
        print("OPEN %.1f" % (time.monotonic() - start))
        return 0
    except (ssl.SSLError, OSError):
        d = b""
    took = time.monotonic() - start
    if len(d) >= 6 and d[:4] == b"DPMT":
        print("%s %.1f" % ({2: "WELCOME", 3: "REFUSED"}.get(d[5], "TYPE%d" % d[5]), took))
    else:
        print("EOF %.1f" % took)
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
