#!/usr/bin/python3
"""UDP echo server for the e2e tests: udp_echo.py LOG PORT ADDRESS... ; each datagram is sent
back to its source, and "source_ip:source_port local_ip" is appended to LOG (what the server saw)."""
import select
import socket
import sys

log = open(sys.argv[1], "a", buffering=1)
port = int(sys.argv[2])
socks = []
for address in sys.argv[3:]:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((address, port))
    socks.append(s)
print("udp_echo ready", flush=True)
while True:
    ready, _, _ = select.select(socks, [], [])
    for s in ready:
        data, source = s.recvfrom(65535)
        log.write(f"{source[0]}:{source[1]} {s.getsockname()[0]}\n")
        s.sendto(data, source)
