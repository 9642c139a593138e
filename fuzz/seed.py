#!/usr/bin/env python3
"""Seed corpora for the fuzz targets, made from the bundled captures (captures/).

  capture_reader, analyze: every capture as it is
  packet:                  every frame of the classic pcap captures, prefixed by the link type pick
  tls_stream:              each TCP conversation's payloads as chunks (see fuzz_targets/tls_stream.rs)
  chain:                   the certificates each server sent, 16-bit length-prefixed, plus the PKI

Run: python3 fuzz/seed.py   (writes fuzz/corpus/<target>/, which is not committed)
"""
import base64
import pathlib
import struct

ROOT = pathlib.Path(__file__).resolve().parent.parent
CORPUS = ROOT / "fuzz" / "corpus"


def frames(path):
    """(linktype, frame bytes) of a classic pcap or pcapng file."""
    raw = path.read_bytes()
    if raw[:4] == b"\x0a\x0d\x0d\x0a":
        o, linktypes = 0, []
        while o + 12 <= len(raw):
            kind, length = struct.unpack_from("<II", raw, o)
            body = raw[o + 8 : o + length - 4]
            if kind == 1:
                linktypes.append(struct.unpack_from("<H", body, 0)[0])
            elif kind == 6:
                iface, _, _, caplen, _ = struct.unpack_from("<IIIII", body, 0)
                yield linktypes[iface], body[20 : 20 + caplen]
            o += length
        return
    endian = "<" if raw[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    linktype = struct.unpack_from(endian + "I", raw, 20)[0]
    o = 24
    while o + 16 <= len(raw):
        caplen = struct.unpack_from(endian + "I", raw, o + 8)[0]
        yield linktype, raw[o + 16 : o + 16 + caplen]
        o += 16 + caplen


def tcp_payload(linktype, frame):
    """((src, sport, dst, dport), payload) of an Ethernet/IPv4 or IPv6 TCP frame, else None."""
    if linktype == 1:
        ethertype, ip = struct.unpack_from(">H", frame, 12)[0], frame[14:]
    elif linktype == 113:
        ethertype, ip = struct.unpack_from(">H", frame, 14)[0], frame[16:]
    elif linktype == 276:
        ethertype, ip = struct.unpack_from(">H", frame, 0)[0], frame[20:]
    else:
        return None
    if ethertype == 0x0800 and len(ip) >= 20 and ip[9] == 6:
        ihl = (ip[0] & 15) * 4
        total = struct.unpack_from(">H", ip, 2)[0]
        src, dst, tcp = ip[12:16], ip[16:20], ip[ihl:total]
    elif ethertype == 0x86DD and len(ip) >= 40 and ip[6] == 6:
        src, dst, tcp = ip[8:24], ip[24:40], ip[40 : 40 + struct.unpack_from(">H", ip, 4)[0]]
    else:
        return None
    sport, dport = struct.unpack_from(">HH", tcp, 0)
    return (src, sport, dst, dport), tcp[(tcp[12] >> 4) * 4 :]


LINKTYPE_PICKS = [1, 101, 228, 229, 0, 108, 113, 276, 9]


def main():
    captures = sorted(p for p in (ROOT / "captures").iterdir() if p.suffix in (".pcap", ".pcapng"))
    for target in ("capture_reader", "analyze", "packet", "tls_stream", "chain"):
        (CORPUS / target).mkdir(parents=True, exist_ok=True)
    for cap in captures:
        for target in ("capture_reader", "analyze"):
            (CORPUS / target / cap.name).write_bytes(cap.read_bytes())
        flows = {}
        for i, (linktype, frame) in enumerate(frames(cap)):
            if linktype in LINKTYPE_PICKS and i < 40:
                pick = LINKTYPE_PICKS.index(linktype)
                (CORPUS / "packet" / f"{cap.stem}-{i}").write_bytes(bytes([pick]) + frame)
            t = tcp_payload(linktype, frame)
            if t and t[1]:
                (src, sport, dst, dport), payload = t
                key = tuple(sorted([(src, sport), (dst, dport)]))
                first = flows.setdefault(key, {"client": (src, sport), "chunks": []})
                server = (src, sport) != first["client"]
                first["chunks"].append(bytes([0x80 if server else 0]) + struct.pack(">H", len(payload)) + payload)
        for n, flow in enumerate(flows.values()):
            (CORPUS / "tls_stream" / f"{cap.stem}-{n}").write_bytes(b"".join(flow["chunks"]))
    pki = []
    for pem in sorted((ROOT / "captures" / "pki").glob("*.pem")):
        text = pem.read_text()
        if "CERTIFICATE" in text:
            b64 = "".join(l for l in text.splitlines() if not l.startswith("-----"))
            pki.append(base64.b64decode(b64))
    for der in sorted((ROOT / "captures" / "pki" / "hostile").glob("*.der")):
        pki.append(der.read_bytes())
    for n, order in enumerate([[1, 0, 2], [1], [1, 1, 0, 2], [0, 1], [4, 5, 4], [3]]):
        blob = bytes([n % 3]) + b"".join(struct.pack(">H", len(pki[i])) + pki[i] for i in order if i < len(pki))
        (CORPUS / "chain" / f"pki-{n}").write_bytes(blob)


if __name__ == "__main__":
    main()
