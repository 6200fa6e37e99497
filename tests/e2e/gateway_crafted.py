#!/usr/bin/python3
"""Crafted traffic against a running `dpmd gateway` on virtual links (tests/e2e/gateway_crafted.sh).

The gateway's inside and outside links are UNIX datagram sockets; this script binds both peer
paths, so it is the private network on one side and the Internet on the other. Each check
prints PASS/FAIL; the exit status is the number of failures. Packets are made with Scapy.
"""
import json, os, socket, subprocess, sys, time
from scapy.all import IP, UDP, TCP, ICMP, Raw, raw, fragment, defragment

inside_gw, inside_me, outside_gw, outside_me, dpmd, api = sys.argv[1:7]
GW, CLIENT, SERVER, POOL = "10.77.0.1", "10.77.1.2", "198.51.100.10", "203.0.113.1"
failures = 0

def check(what, ok, detail=""):
    global failures
    print(("PASS: " if ok else "FAIL: ") + what + (f" ({detail})" if detail else ""))
    if not ok:
        failures += 1

def sock(path):
    if os.path.exists(path):
        os.unlink(path)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    s.settimeout(0.5)
    return s

inside, outside = sock(inside_me), sock(outside_me)

def status():
    out = subprocess.run([dpmd, "status", "--api-socket", api, "--json"], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)

def sessions():
    return status()["gateway"]["session_count"]

def recv(s, timeout=0.5):
    s.settimeout(timeout)
    try:
        return s.recv(70000)
    except socket.timeout:
        return None

def drain():
    for s in (inside, outside):
        while recv(s, 0.05) is not None:
            pass

def pcp_peer(client=CLIENT, internal_port=40000, lifetime=120, fixed=False):
    """A PCP PEER request (RFC 6887 §11.1, §12) in bytes."""
    mapped = lambda a: bytes(10) + b"\xff\xff" + socket.inet_aton(a)
    hdr = bytes([2, 2, 0, 0]) + lifetime.to_bytes(4, "big") + mapped(client)
    body = os.urandom(12) + bytes([6, 0, 0, 0]) + internal_port.to_bytes(2, "big") + (0).to_bytes(2, "big") \
        + bytes(16) + (80).to_bytes(2, "big") + bytes(2) + mapped(SERVER)
    opt = bytes([96, 0, 0, 0]) if fixed else b""
    return hdr + body + opt

def setup(payload, src=CLIENT, link=None, dst=GW):
    (link or inside).sendto(raw(IP(src=src, dst=dst) / UDP(sport=5350, dport=1080) / Raw(payload)), inside_gw if (link or inside) is inside else outside_gw)

def reply_on(s):
    data = recv(s)
    if data is None:
        return None
    p = IP(data)
    return bytes(p[UDP].payload) if UDP in p else None

drain()
base = sessions()

# 1. A valid setup request is answered with SUCCESS and creates one session.
setup(pcp_peer())
r = reply_on(inside)
check("a valid PEER request gets SUCCESS", r is not None and len(r) >= 24 and r[1] == 0x82 and r[3] == 0,
      "no reply" if r is None else f"opcode {r[1]:#x} result {r[3]}")
check("and creates one session", sessions() == base + 1)
base = sessions()

# 2. Every cut of a valid request: an error reply no larger than the request, or nothing; no state.
req = pcp_peer(internal_port=40001, fixed=True)
larger, answered = [], 0
for cut in range(0, len(req), 4 if len(req) > 40 else 1):
    if cut == 80:
        continue  # exactly the option-less request: valid
    setup(req[:cut])
    r = reply_on(inside)
    if r is not None:
        answered += 1
        if len(r) > cut:
            larger.append(cut)
check("truncated setup requests never get a larger reply", not larger, f"cuts {larger}")
check("truncated setup requests create no state", sessions() == base, f"{sessions()} vs {base}")
print(f"  ({answered} truncated requests answered with an error, the rest dropped as RFC 6887 §8.3 says)")

# 3. Oversized (1200 bytes): MALFORMED_REQUEST (3), no larger, no state.
big = pcp_peer(internal_port=40002) + bytes(1200 - 80)
setup(big)
r = reply_on(inside)
check("an oversized request gets MALFORMED_REQUEST", r is not None and r[3] == 3, "no reply" if r is None else f"result {r[3]}")
check("no larger than the request", r is None or len(r) <= len(big))
check("and no state", sessions() == base)

# 4. A spoofed client address (PCP client address is not the packet's source): ADDRESS_MISMATCH.
setup(pcp_peer(client="10.77.9.9", internal_port=40003))
r = reply_on(inside)
check("a spoofed client address gets ADDRESS_MISMATCH", r is not None and r[3] == 12, "no reply" if r is None else f"result {r[3]}")
check("and no state", sessions() == base)

# 5. Setup requests arriving on the outside link: no answer, no state.
outside.sendto(raw(IP(src=SERVER, dst=POOL) / UDP(sport=5350, dport=1080) / Raw(pcp_peer())), outside_gw)
outside.sendto(raw(IP(src=SERVER, dst=GW) / UDP(sport=5350, dport=1080) / Raw(pcp_peer())), outside_gw)
check("setup requests on the outside link get no answer", reply_on(outside) is None and reply_on(inside) is None)
check("and create no state", sessions() == base)

# 6. A packet from a plain host is translated (NAPT) with correct checksums.
inside.sendto(raw(IP(src="10.77.3.2", dst=SERVER) / UDP(sport=33333, dport=53) / Raw(b"hello")), inside_gw)
d = recv(outside)
ok = False
if d is not None:
    p = IP(d)
    chk_ip, chk_udp = p.chksum, p[UDP].chksum
    del p.chksum, p[UDP].chksum
    q = IP(raw(p))
    ok = p.src == POOL and p.dst == SERVER and q.chksum == chk_ip and q[UDP].chksum == chk_udp and bytes(p[UDP].payload) == b"hello"
check("a plain host's UDP leaves as 203.0.113.1 with correct checksums", ok, "nothing left" if d is None else IP(d).summary())

# 7. Bad IP checksum and TTL 1 from inside: dropped and counted, nothing leaves; the TTL 1
#    packet's source gets ICMP time exceeded from the gateway (RFC 1812 §5.3.1).
drain()
before = status()["gateway"]["nat_drops"]
bad = bytearray(raw(IP(src="10.77.3.2", dst=SERVER) / UDP(sport=33334, dport=53) / Raw(b"x")))
bad[10] ^= 0xff
inside.sendto(bytes(bad), inside_gw)
inside.sendto(raw(IP(src="10.77.3.2", dst=SERVER, ttl=1) / UDP(sport=33335, dport=53) / Raw(b"x")), inside_gw)
time.sleep(0.3)
left = recv(outside, 0.3)
after = status()["gateway"]["nat_drops"]
moved = {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}
check("bad checksum and TTL 1: nothing leaves", left is None, "" if left is None else IP(left).summary())
check("each is counted by reason", moved.get("bad_checksum", 0) >= 1 and moved.get("ttl_exceeded", 0) >= 1, str(moved))
te = None
while True:
    d = recv(inside, 0.5)
    if d is None:
        break
    if IP(d).haslayer(ICMP) and IP(d)[ICMP].type == 11:
        te = IP(d)
        break
quoted_ok = te is not None and te[ICMP].code == 0 and te.src == GW and te.dst == "10.77.3.2" and \
    IP(bytes(te[ICMP].payload)).haslayer(UDP) and IP(bytes(te[ICMP].payload))[UDP].sport == 33335
check("the TTL 1 packet's source gets time exceeded from 10.77.0.1, quoting its datagram", quoted_ok,
      "none" if te is None else te.summary())
check("the gateway counts the ICMP error it sent", status()["gateway"]["icmp_errors_sent"] >= 1)

# 8. Fragments (RFC 4787 REQ-14): UDP datagrams cut in 4, sent in order and out of order
#    (the last fragment first, the first last), leave translated: every fragment from the pool
#    address with the datagram's IP id, and together a datagram with a correct UDP checksum.
def collect(s, n, timeout=1.0):
    got, end = [], time.time() + timeout
    while len(got) < n and time.time() < end:
        d = recv(s, max(0.05, end - time.time()))
        if d is not None:
            got.append(IP(d))
    return got

def udp_checksum_ok(p):
    q = IP(raw(p))
    sent = q[UDP].chksum
    del q[UDP].chksum
    return IP(raw(q))[UDP].chksum == sent

def check_fragments(what, frags, n, src, dst, ip_id, payload):
    check(f"{what}: all {n} fragments arrive", len(frags) == n, f"{len(frags)} arrived")
    check(f"{what}: each from {src} to {dst} with IP id {ip_id:#x}",
          frags and all(f.src == src and f.dst == dst and f.id == ip_id and (f.flags.MF or f.frag) for f in frags),
          "; ".join(f"{f.src}>{f.dst} id {f.id:#x} frag {f.frag}" for f in frags))
    whole = defragment(frags) if frags else []
    ok = len(whole) == 1 and UDP in whole[0] and not whole[0].flags.MF and whole[0].frag == 0
    check(f"{what}: reassembled with a correct UDP checksum and its payload",
          ok and udp_checksum_ok(whole[0]) and bytes(whole[0][UDP].payload) == payload,
          whole[0].summary() if len(whole) == 1 else f"{len(whole)} packets after reassembly")
    return whole[0] if ok else None

payload = bytes(range(256)) * 12
drain()
for what, ip_id, order in (("in order", 0x4d01, [0, 1, 2, 3]), ("out of order", 0x4d02, [3, 1, 2, 0])):
    frags = fragment(IP(src="10.77.3.2", dst=SERVER, id=ip_id) / UDP(sport=33340, dport=53) / Raw(payload), fragsize=1000)
    for i in order:
        inside.sendto(raw(frags[i]), inside_gw)
    sent = check_fragments(f"a fragmented datagram from inside, {what}", collect(outside, len(frags)), len(frags),
                           POOL, SERVER, ip_id, payload)
# ... and the answer comes back in, out of order.
if sent is not None:
    frags = fragment(IP(src=SERVER, dst=POOL, id=0x4d03) / UDP(sport=53, dport=sent[UDP].sport) / Raw(payload), fragsize=1000)
    for i in (3, 0, 1, 2):
        outside.sendto(raw(frags[i]), outside_gw)
    back = check_fragments("the fragmented answer from outside, out of order", collect(inside, len(frags)), len(frags),
                           SERVER, "10.77.3.2", 0x4d03, payload)
    check("and reaches the host's port", back is not None and back[UDP].dport == 33340)
# A lone later fragment of a datagram whose first fragment never comes: not forwarded (held,
# then dropped as fragment_timeout after 30 s).
lone = fragment(IP(src="10.77.3.2", dst=SERVER, id=0x4d04) / UDP(sport=33341, dport=53) / Raw(payload), fragsize=1000)[2]
inside.sendto(raw(lone), inside_gw)
left = recv(outside, 0.5)
check("a lone later fragment is not forwarded", left is None, "" if left is None else IP(left).summary())

# 9. Still serving afterwards.
setup(pcp_peer(internal_port=40009))
r = reply_on(inside)
check("the gateway still answers setup requests", r is not None and r[3] == 0)
sys.exit(failures)
