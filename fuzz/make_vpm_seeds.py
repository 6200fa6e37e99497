#!/usr/bin/python3
"""Writes the seeds of fuzz/vpm_packet_fuzzer.cc, fuzz/vpm_configurator_fuzzer.cc and
fuzz/vpm_negotiation_fuzzer.cc into fuzz/corpus/vpm_packet/, vpm_configurator/ and
vpm_negotiation/ (Scapy for the packets; the negotiation messages are laid out here by hand,
as docs/vpm.md "Negotiation" has them):
    /usr/bin/python3 fuzz/make_vpm_seeds.py

A packet seed is a list of records [flags][length: 2 bytes, big-endian][IPv4 packet]; flags
bit 0 is the direction (0 inbound, 1 outbound), and the fuzzer's table has tcp/80 green on
hidden port 40000, blue on 40001, udp/53 green on 40000; sources in 10.77.5.0/24 are green."""
import json
import os
import struct

from scapy.all import IP, TCP, UDP, Raw, raw

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
US, GREEN_SRC, OTHER, SERVER = "10.77.1.2", "10.77.5.10", "192.0.2.7", "10.77.9.9"


def rec(pkt, outbound=False, flags=0):
    b = pkt if isinstance(pkt, bytes) else raw(pkt)
    return struct.pack("!BH", flags | (1 if outbound else 0), len(b)) + b


def tcp(src, sport, dst, dport, flags, seq=1000, ack=0, data=b""):
    return IP(src=src, dst=dst) / TCP(sport=sport, dport=dport, flags=flags, seq=seq, ack=ack) / Raw(data)


def udp(src, sport, dst, dport, data=b"q" * 12):
    return IP(src=src, dst=dst) / UDP(sport=sport, dport=dport) / Raw(data)


def vpm_message(client, aid, vport, cport, nonce, response=False, result=0, hidden=0, lifetime=10, protocol=6):
    """A PCP message with the VPM opcode (96): the 24-byte header, then the 56-byte body."""
    if response:
        header = struct.pack("!BBBBII12x", 2, 0x80 | 96, 0, result, lifetime, 1)
    else:
        header = struct.pack("!BBHI", 2, 96, 0, lifetime) + bytes(10) + b"\xff\xff" + bytes(map(int, client.split(".")))
    body = bytes(nonce) + struct.pack("!BBBBHHHH", protocol, 0, len(aid), 0, vport, hidden, cport, 0)
    return header + body + aid.encode().ljust(32, b"\0")


def neg(message, to_client=False, source=0, step=0):
    return struct.pack("!BH", (step << 4) | (source << 1) | (1 if to_client else 0), len(message)) + message


def main():
    seeds = {
        "tcp_green": [rec(tcp(GREEN_SRC, 33000, US, 80, "S")),
                      rec(tcp(US, 40000, GREEN_SRC, 33000, "SA", 5000, 1001), True),
                      rec(tcp(GREEN_SRC, 33000, US, 80, "A", 1001, 5001, b"GET / HTTP/1.0\r\n\r\n")),
                      rec(tcp(US, 80, GREEN_SRC, 33000, "SA", 5000, 1001), True),  # a retransmission
                      rec(tcp(US, 40000, GREEN_SRC, 33000, "FA", 5001, 1019), True),
                      rec(tcp(GREEN_SRC, 33000, US, 80, "FA", 1019, 5002), flags=0x08 | 0x70)],
        "tcp_blue_default": [rec(tcp(OTHER, 2000, US, 80, "S")),
                             rec(tcp(US, 40001, OTHER, 2000, "SA", 1, 1001), True),
                             rec(tcp(OTHER, 2000, US, 80, "R", 1001), flags=0x08 | 0xb0)],
        "tcp_no_flow": [rec(tcp(OTHER, 2001, US, 80, "A", 5, 6, b"x")), rec(tcp(OTHER, 2001, US, 80, "R"))],
        "udp_both_ways": [rec(udp(GREEN_SRC, 5353, US, 53)), rec(udp(US, 40000, GREEN_SRC, 5353), True),
                          rec(udp(OTHER, 5353, US, 53)), rec(udp(US, 40000, OTHER, 5353), True),
                          rec(udp(OTHER, 5353, US, 53), flags=0x08 | 0x50)],
        "client_flow": [rec(tcp(US, 50000, SERVER, 9000, "S"), True),
                        rec(tcp(SERVER, 12760, US, 50000, "SA", 9, 1001)),
                        rec(tcp(US, 50000, SERVER, 12760, "S"), True)],
        "cut": [rec(raw(tcp(GREEN_SRC, 33000, US, 80, "S"))[:30]), rec(raw(udp(GREEN_SRC, 1, US, 53))[:25], True)],
        "fragment": [rec(IP(src=GREEN_SRC, dst=US, flags="MF", proto=17) / raw(UDP(sport=1, dport=53) / Raw(b"a" * 16))),
                     rec(IP(src=GREEN_SRC, dst=US, frag=3, proto=17) / Raw(b"b" * 8))],
    }
    out = os.path.join(ROOT, "vpm_packet")
    os.makedirs(out, exist_ok=True)
    for name, records in seeds.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(b"".join(records))

    n1, n2 = list(range(1, 13)), list(range(2, 14))
    green_q = vpm_message("10.77.9.1", "green", 9000, 50000, n1)
    negotiations = {
        "answered": [neg(green_q), neg(vpm_message("10.77.9.1", "blue", 9000, 50002, n2))],
        "udp": [neg(vpm_message("10.77.9.1", "green", 9053, 50004, n1, protocol=17)),
                neg(vpm_message("10.77.9.1", "blue", 9053, 50005, n2, protocol=17)),
                neg(vpm_message("10.77.9.1", "green", 9053, 50006, n1, protocol=132))],
        "retransmitted": [neg(green_q), neg(green_q, step=3)],
        "refusals": [neg(vpm_message("10.77.9.1", "red", 9000, 50003, n1)),
                     neg(vpm_message("10.77.9.1", "green", 9001, 50003, n1)),
                     neg(green_q, source=3), neg(green_q, source=2), neg(green_q[:40]), neg(green_q + bytes(4))],
        "matched": [neg(vpm_message("10.77.9.1", "green", 9000, 50000, n1, True, 0, 12760), True, 1),
                    neg(vpm_message("10.77.9.1", "red", 9000, 50001, n2, True, 192), True, 1)],
        "timeout": [neg(b"", True, 1, 3), neg(b"", True, 1, 4), neg(b"", True, 1, 9)],
    }
    out = os.path.join(ROOT, "vpm_negotiation")
    os.makedirs(out, exist_ok=True)
    for name, records in negotiations.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(b"".join(records))

    configs = {
        "full": {"hidden_ports": "41000-41009", "queue_timeout_ms": 2000,
                 "ports": {"tcp/80": {"default": "blue"}, "udp/53": {"default": "refuse"}},
                 "applications": [{"aid": "green", "ports": ["tcp/80", "udp/53"], "programs": ["/usr/sbin/nginx"],
                                   "users": ["1001"], "sources": ["10.77.1.0/24", "10.77.2.5/32:1024-2047"]},
                                  {"aid": "red", "ports": ["tcp/80"], "sources": ["0.0.0.0/0:7"]}]},
        "minimal": {"ports": {"tcp/8080": {"default": "a"}}},
        "refused": {"ports": {"tcp/80": {"default": "a"}}, "applications": [{"aid": "g", "ports": ["udp/53"]}]},
        "cooperative": {"ports": {"tcp/9000": {"default": "refuse"}},
                        "cooperative": {"port": 5351, "timeout_ms": 2000, "accept": ["10.77.9.0/24"],
                                        "peers": [{"destinations": ["10.77.9.2/32"], "ports": ["tcp/9001"],
                                                   "default": "green"}]},
                        "applications": [{"aid": "blue", "ports": ["tcp/9001"], "users": ["0"]}]},
    }
    out = os.path.join(ROOT, "vpm_configurator")
    os.makedirs(out, exist_ok=True)
    for name, config in configs.items():
        with open(os.path.join(out, name), "w") as f:
            json.dump(config, f, indent=1)


if __name__ == "__main__":
    main()
