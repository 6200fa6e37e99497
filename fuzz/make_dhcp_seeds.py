#!/usr/bin/python3
"""Writes the seeds of fuzz/dhcp_message_fuzzer.cc into fuzz/corpus/dhcp_message/ (Scapy):

    /usr/bin/python3 fuzz/make_dhcp_seeds.py          # write the seeds
    /usr/bin/python3 fuzz/make_dhcp_seeds.py --hex    # print them as hex (the unit-test fixtures)

Each seed is a DHCP message (the UDP payload, RFC 2131 §2) shaped like what dnsmasq sends to a
dpm client on the test link (10.77.0.0/16, server 10.77.0.1): its options in dnsmasq's order
(53, 54, 51, 58, 59, 1, 28, 3, 6, 61 echoed), the BROADCAST flag echoed, siaddr set to the
server; plus the client's own DISCOVER/REQUEST/RELEASE, a NAK, and an OFFER whose options
spill into 'file' and 'sname' (option overload, RFC 2132 §9.3).
tests/unit/dhcp_message_test.cc holds the OFFER and ACK hex printed by --hex."""
import os
import sys

from scapy.all import BOOTP, DHCP, raw

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "dhcp_message")

MAC = bytes.fromhex("02dd00000001")
CHADDR = MAC + bytes(10)
CLIENT_ID = b"\xff" + bytes.fromhex("00000001") + b"dpm-socket-7"  # type 255 + IAID-like + name
XID = 0x3903F326
SERVER = "10.77.0.1"
YIADDR = "10.77.0.50"


def reply(msg_type, ciaddr="0.0.0.0", yiaddr=YIADDR, extra=()):
    options = [("message-type", msg_type), ("server_id", SERVER), ("lease_time", 3600),
               ("renewal_time", 1800), ("rebinding_time", 3150), ("subnet_mask", "255.255.0.0"),
               ("broadcast_address", "10.77.255.255"), ("router", SERVER), ("name_server", SERVER),
               ("client_id", CLIENT_ID)] + list(extra) + ["end"]
    return raw(BOOTP(op=2, xid=XID, flags=0x8000, ciaddr=ciaddr, yiaddr=yiaddr, siaddr=SERVER,
                     chaddr=CHADDR) / DHCP(options=options))


def request(msg_type, options, ciaddr="0.0.0.0", flags=0x8000):
    return raw(BOOTP(op=1, xid=XID, flags=flags, ciaddr=ciaddr, chaddr=CHADDR) /
               DHCP(options=[("message-type", msg_type), ("client_id", CLIENT_ID)] + options + ["end"]))


def overloaded_offer():
    """An OFFER with option 52 = 3: the router in 'file', T1/T2 in 'sname'."""
    file_opts = bytes([3, 4, 10, 77, 0, 1, 255])
    sname_opts = bytes([58, 4, 0, 0, 7, 8, 59, 4, 0, 0, 12, 78, 255])
    return raw(BOOTP(op=2, xid=XID, flags=0x8000, yiaddr=YIADDR, siaddr=SERVER, chaddr=CHADDR,
                     sname=sname_opts, file=file_opts) /
               DHCP(options=[("message-type", "offer"), ("server_id", SERVER), ("lease_time", 3600),
                             ("subnet_mask", "255.255.0.0"), (52, b"\x03"), "end"]))


def seeds():
    prl = ("param_req_list", [1, 3, 6, 51, 58, 59])
    return {
        "offer": reply("offer"),
        "ack": reply("ack"),
        "ack_renewing": reply("ack", ciaddr=YIADDR),
        "nak": raw(BOOTP(op=2, xid=XID, flags=0x8000, chaddr=CHADDR) /
                   DHCP(options=[("message-type", "nak"), ("server_id", SERVER),
                                 ("error_message", "address not available"), ("client_id", CLIENT_ID), "end"])),
        "discover": request("discover", [prl]),
        "request_selecting": request("request", [("requested_addr", YIADDR), ("server_id", SERVER), prl]),
        "request_renewing": request("request", [prl], ciaddr=YIADDR),
        "release": request("release", [("server_id", SERVER)], ciaddr=YIADDR, flags=0),
        "offer_overloaded": overloaded_offer(),
    }


def main():
    all_seeds = seeds()
    if "--hex" in sys.argv:
        for name, data in all_seeds.items():
            print(name, len(data))
            print(data.hex())
        return
    os.makedirs(OUT, exist_ok=True)
    for name, data in all_seeds.items():
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
