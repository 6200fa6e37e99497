#!/usr/bin/env python3
"""Sends malformed packets into a dpmd's virtual link (tests/e2e/dpmd_bad_input.sh).

  malformed.py LINK_PATH DST_IP SRC_IP MTU

A virtual link is a UNIX datagram socket carrying one IP packet per datagram, so a plain
AF_UNIX sendto() to the daemon's local link path injects a packet. Prints one line per packet:
the status counter it should raise. Packets are crafted with Scapy (python3-scapy).
"""
import socket
import sys

from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6


def packets(dst, src, mtu):
    good_tcp = bytes(IP(src=src, dst=dst) / TCP(sport=40000, dport=7, flags="S", seq=1))

    ihl3 = bytearray(good_tcp)
    ihl3[0] = 0x43  # version 4, header length 3 words (12 bytes) < the 20-byte minimum

    long_total = bytearray(good_tcp)
    long_total[2:4] = (len(good_tcp) + 100).to_bytes(2, "big")  # claims 100 bytes it does not have

    bad_ip_sum = IP(src=src, dst=dst) / TCP(sport=40001, dport=7, flags="S")
    bad_ip_sum = IP(bytes(bad_ip_sum))
    bad_ip_sum.chksum ^= 0x5555
    bad_ip_sum = bytes(bad_ip_sum)

    bad_tcp_sum = bytes(IP(src=src, dst=dst) / TCP(sport=40002, dport=7, flags="S", chksum=0xDEAD))
    bad_udp_sum = bytes(IP(src=src, dst=dst) / UDP(sport=40003, dport=7, chksum=0xBEEF) / b"payload")

    oversize = bytes(IP(src=src, dst=dst) / UDP(sport=40004, dport=7) / (b"x" * (mtu + 100)))

    return [
        ("too_short", b"\x45\x00\x00\x05\x00"),
        ("not_ipv4", bytes(IPv6(src="fd00::2", dst="fd00::1") / UDP(sport=1, dport=7))),
        ("bad_header_length", bytes(ihl3)),
        ("bad_total_length", bytes(long_total)),
        ("lwip_ip_chksum", bad_ip_sum),
        ("lwip_tcp_chksum", bad_tcp_sum),
        ("lwip_udp_chksum", bad_udp_sum),
        ("oversize", oversize),
    ]


def main(argv):
    if len(argv) != 5:
        sys.stderr.write(__doc__)
        return 2
    link, dst, src, mtu = argv[1], argv[2], argv[3], int(argv[4])
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    for counter, data in packets(dst, src, mtu):
        s.sendto(data, link)
        print("%s %d" % (counter, len(data)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
