#!/usr/bin/python3
"""Writes the seeds of fuzz/offload_fuzzer.cc into fuzz/corpus/offload/ (Scapy): /usr/bin/python3 fuzz/make_offload_seeds.py

Each seed is a virtio-net header (10 bytes, little-endian) and an IPv4 packet whose transport
checksum field holds the pseudo-header sum, as a TUN device with offload hands it over."""
import os
import struct

from scapy.all import IP, TCP, UDP, Raw, raw
from scapy.utils import checksum

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "offload")


def partial(pkt, offset):
    """The packet with its transport checksum replaced by the folded pseudo-header sum."""
    b = bytearray(raw(pkt))
    ihl = (b[0] & 15) * 4
    length = len(b) - ihl
    pseudo = b[12:20] + struct.pack("!BBH", 0, b[9], length)
    s = 0xFFFF - checksum(bytes(pseudo))  # checksum() returns ~sum; the field holds sum
    struct.pack_into("!H", b, ihl + offset, s if s else 0xFFFF)
    return bytes(b), ihl


def header(flags, gso, hdr_len, gso_size, start, offset):
    return struct.pack("<BBHHHH", flags, gso, hdr_len, gso_size, start, offset)


def main():
    os.makedirs(OUT, exist_ok=True)
    tcp = IP(src="10.77.1.10", dst="198.51.100.10", flags="DF", id=7) / TCP(
        sport=40000, dport=80, seq=0xFFFFF000, flags="PA") / Raw(bytes(range(256)) * 20)
    body, ihl = partial(tcp, 16)
    seeds = {
        "gso_tcpv4": header(1, 1, ihl + 20, 1448, ihl, 16) + body,
        "partial_tcp": header(1, 0, 0, 0, 20, 16)
        + partial(IP(src="10.77.1.10", dst="198.51.100.10") / TCP(sport=40000, dport=80, flags="A") / Raw(b"hi" * 50), 16)[0],
        "partial_udp": header(1, 0, 0, 0, 20, 6)
        + partial(IP(src="10.77.1.10", dst="198.51.100.10") / UDP(sport=5351, dport=5351) / Raw(b"x" * 60), 6)[0],
        "none": header(0, 0, 0, 0, 0, 0) + raw(IP(src="10.77.1.10", dst="198.51.100.10") / UDP() / Raw(b"ok")),
    }
    for name, data in seeds.items():
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
