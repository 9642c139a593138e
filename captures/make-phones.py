#!/usr/bin/env python3
"""Make captures/lync-vip-phones.pcap: the load-balancer story with the phones' identities.

Usage (from the repository root; needs only python3):

    python3 captures/make-phones.py

It takes captures/lync-vip-before.pcapng (real OpenSSL handshakes recorded on loopback by
captures/record.py, whose Ethernet addresses are all zero) and, without touching one byte of
IP, TCP or TLS:

- gives every host the MAC address of the device it plays: the desk phones are Polycom CX3000s
  (Lync Phone Edition, IEEE prefix 00:04:f2), the tolerant client is the admin's PC running
  the Lync client (Dell, 00:14:22), the VIP is a Cisco ACE (00:1b:d4), the front end a VMware
  guest (00:50:56);
- adds, before the handshakes, what a span port on the phones' VLAN would show: each device's
  DHCP REQUEST / ACK and, for the phones, the DHCPINFORM asking for options 43 and 120 (the
  field report's Lync provisioning); DNS answers for the pool, the front end and the PKI
  host, and PTR answers naming the phones; and the PC's plain-HTTP fetch of the issuing CA
  from the AIA caIssuers URL (http://pki.contoso.test/issuing-ca.crt), which is how it
  tolerates the VIP's incomplete chain.

These added packets are built here byte by byte (DHCP, DNS and HTTP are not what chainsniff
is tested for; their parsers are). The TLS conversations are the recorded ones, unchanged.
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(HERE, "lync-vip-before.pcapng")
OUT = os.path.join(HERE, "lync-vip-phones.pcap")

MACS = {
    "127.0.1.11": "00:04:f2:c3:00:11",  # Polycom CX3000
    "127.0.1.12": "00:04:f2:c3:00:12",
    "127.0.1.13": "00:04:f2:c3:00:13",
    "127.0.1.14": "00:04:f2:c3:00:14",
    "127.0.1.21": "00:14:22:0a:d0:21",  # Dell PC, Lync client
    "127.0.0.10": "00:1b:d4:ac:e0:10",  # Cisco ACE VIP
    "127.0.0.11": "00:50:56:fe:00:01",  # VMware guest: front end fe01
    "127.0.0.53": "00:50:56:d0:00:53",  # DNS / DHCP server
    "127.0.0.50": "00:50:56:50:00:50",  # pki.contoso.test
}
PHONES = ["127.0.1.11", "127.0.1.12", "127.0.1.13", "127.0.1.14"]
PC = "127.0.1.21"
DHCP_SERVER = "127.0.0.53"
PKI = "127.0.0.50"
BROADCAST_MAC = "ff:ff:ff:ff:ff:ff"


def mac(s):
    return bytes(int(x, 16) for x in s.split(":"))


def ip(s):
    return bytes(int(x) for x in s.split("."))


def checksum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def ipv4(src, dst, proto, payload, ident=0):
    h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident, 0x4000, 64, proto, 0, ip(src), ip(dst))
    h = h[:10] + struct.pack("!H", checksum(h)) + h[12:]
    return h + payload


def ether(src_mac, dst_mac, payload):
    return mac(dst_mac) + mac(src_mac) + b"\x08\x00" + payload


def udp(src, sport, dst, dport, payload):
    u = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    return ipv4(src, dst, 17, u)


def tcp(src, sport, dst, dport, seq, ack, flags, payload=b""):
    t = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 65535, 0, 0) + payload
    pseudo = ip(src) + ip(dst) + struct.pack("!BBH", 0, 6, len(t))
    t = t[:16] + struct.pack("!H", checksum(pseudo + t)) + t[18:]
    return ipv4(src, dst, 6, t)


def dhcp(op, msg_type, chaddr, ciaddr="0.0.0.0", yiaddr="0.0.0.0", options=()):
    b = struct.pack("!BBBBIHH4s4s4s4s", op, 1, 6, 0, 0x5EED0000 | chaddr[-1], 0, 0,
                    ip(ciaddr), ip(yiaddr), ip("0.0.0.0"), ip("0.0.0.0"))
    b += chaddr + b"\0" * 10 + b"\0" * 192 + b"\x63\x82\x53\x63"
    b += bytes([53, 1, msg_type])
    for code, value in options:
        b += bytes([code, len(value)]) + value
    return b + b"\xff"


def dns_name(name):
    return b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"


def dns_answer(ident, qname, qtype, rdata):
    """A response with one question and one answer (name compressed to the question)."""
    h = struct.pack("!HHHHHH", ident, 0x8180, 1, 1, 0, 0)
    q = dns_name(qname) + struct.pack("!HH", qtype, 1)
    a = b"\xc0\x0c" + struct.pack("!HHIH", qtype, 1, 300, len(rdata)) + rdata
    return h + q + a


def read_pcapng(path):
    data = open(path, "rb").read()
    i, resol, out = 0, 1_000_000, []
    while i + 12 <= len(data):
        btype, blen = struct.unpack("<II", data[i:i + 8])
        body = data[i + 8:i + blen - 4]
        if btype == 1:  # IDB: look for if_tsresol
            j = 8
            while j + 4 <= len(body):
                code, olen = struct.unpack("<HH", body[j:j + 4])
                if code == 0:
                    break
                if code == 9:
                    r = body[j + 4]
                    resol = 2 ** (r & 0x7F) if r & 0x80 else 10 ** r
                j += 4 + (olen + 3) // 4 * 4
        elif btype == 6:  # EPB
            _, hi, lo, caplen, _ = struct.unpack("<IIIII", body[:20])
            ts = (hi << 32 | lo) * 1_000_000 // resol
            out.append((ts, body[20:20 + caplen]))
        i += blen
    return out


def main():
    recorded = read_pcapng(SRC)
    t0 = recorded[0][0]
    added = []  # (ts_us, frame)

    def at(ms):
        return t0 - 60_000_000 + int(ms * 1000)

    # DHCP: REQUEST + ACK for every device; the phones then INFORM for options 43 and 120.
    t = 0
    for host in PHONES + [PC]:
        chaddr = mac(MACS[host])
        phone = host in PHONES
        name = ("CX3000-" + host.split(".")[-1]) if phone else "WS-ADMIN01"
        vendor = b"MS-UC-Client" if phone else b"MSFT 5.0"
        params = bytes([1, 3, 6, 15, 42, 43, 120]) if phone else bytes([1, 3, 6, 15, 31, 33, 43, 44, 46, 47, 119, 121, 249, 252])
        opts = [(50, ip(host)), (12, name.encode()), (60, vendor), (55, params)]
        req = dhcp(1, 3, chaddr, options=opts)
        added.append((at(t), ether(MACS[host], BROADCAST_MAC, udp("0.0.0.0", 68, "255.255.255.255", 67, req))))
        ack = dhcp(2, 5, chaddr, yiaddr=host, options=[(54, ip(DHCP_SERVER)), (51, struct.pack("!I", 86400))])
        added.append((at(t + 2), ether(MACS[DHCP_SERVER], MACS[host], udp(DHCP_SERVER, 67, host, 68, ack))))
        if phone:
            inform = dhcp(1, 8, chaddr, ciaddr=host, options=[(12, name.encode()), (60, vendor), (55, bytes([1, 3, 6, 15, 43, 120]))])
            added.append((at(t + 10), ether(MACS[host], BROADCAST_MAC, udp(host, 68, "255.255.255.255", 67, inform))))
        t += 50

    # DNS: the pool and the front end as the clients resolve them; PTR names for the phones.
    ident = 0x100
    for host, qname, qtype, rdata in (
        ["127.0.1.11", "lyncpool.contoso.test", 1, ip("127.0.0.10")],
        ["127.0.1.14", "fe01.contoso.test", 1, ip("127.0.0.11")],
        [PC, "pki.contoso.test", 1, ip(PKI)],
    ) + tuple(
        [PC, ".".join(reversed(p.split("."))) + ".in-addr.arpa", 12, dns_name("cx3000-%s.contoso.test" % p.split(".")[-1])]
        for p in PHONES
    ):
        resp = dns_answer(ident, qname, qtype, rdata)
        added.append((at(t), ether(MACS[DHCP_SERVER], MACS[host], udp(DHCP_SERVER, 53, host, 40000 + ident, resp))))
        ident += 1
        t += 5

    # The PC fetches the issuing CA from the leaf's AIA caIssuers URL (plain HTTP).
    der = open(os.path.join(HERE, "pki", "issuing.pem")).read()
    import base64
    der = base64.b64decode("".join(l for l in der.splitlines() if "-----" not in l))
    c, s = (PC, 49800), (PKI, 80)
    cm, sm = MACS[PC], MACS[PKI]
    get = b"GET /issuing-ca.crt HTTP/1.1\r\nHost: pki.contoso.test\r\nUser-Agent: Microsoft-CryptoAPI/10.0\r\nAccept: */*\r\n\r\n"
    resp = b"HTTP/1.1 200 OK\r\nContent-Type: application/pkix-cert\r\nContent-Length: %d\r\n\r\n" % len(der) + der
    for dt, (src, dst, smac, dmac, seq, ack, flags, payload) in enumerate([
        (c, s, cm, sm, 1000, 0, 0x02, b""),
        (s, c, sm, cm, 5000, 1001, 0x12, b""),
        (c, s, cm, sm, 1001, 5001, 0x10, b""),
        (c, s, cm, sm, 1001, 5001, 0x18, get),
        (s, c, sm, cm, 5001, 1001 + len(get), 0x18, resp),
        (c, s, cm, sm, 1001 + len(get), 5001 + len(resp), 0x11, b""),
        (s, c, sm, cm, 5001 + len(resp), 1002 + len(get), 0x11, b""),
        (c, s, cm, sm, 1002 + len(get), 5002 + len(resp), 0x10, b""),
    ]):
        pkt = tcp(src[0], src[1], dst[0], dst[1], seq, ack, flags, payload)
        added.append((at(t + dt), ether(smac, dmac, pkt)))

    # The recorded conversations, with each host's MAC.
    frames = list(added)
    for ts, f in recorded:
        if len(f) >= 34 and f[12:14] == b"\x08\x00":
            src = ".".join(str(b) for b in f[26:30])
            dst = ".".join(str(b) for b in f[30:34])
            f = mac(MACS[dst]) + mac(MACS[src]) + f[12:]
        frames.append((ts, f))

    with open(OUT, "wb") as out:
        out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
        for ts, f in frames:
            out.write(struct.pack("<IIII", ts // 1_000_000, ts % 1_000_000, len(f), len(f)))
            out.write(f)
    print("wrote %s: %d frames (%d added before the %d recorded)" % (OUT, len(frames), len(added), len(recorded)))


if __name__ == "__main__":
    main()
