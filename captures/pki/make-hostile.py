#!/usr/bin/env python3
"""Certificates that hostile or broken servers send, for tests/adversarial.rs.

  loop-a.der, loop-b.der  A is issued (and signed) by B, and B by A: a chain that loops.
  ctrl-names.der          self-signed, with NUL, ESC (a terminal colour sequence), newline,
                          bidi override, Markdown and HTML metacharacters in its names.

Run: python3 captures/pki/make-hostile.py  (needs the `cryptography` package). The keys are
thrown away; the certificates are what servers would send.
"""
import datetime
import pathlib

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

OUT = pathlib.Path(__file__).resolve().parent / "hostile"
NOT_BEFORE = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
NOT_AFTER = datetime.datetime(2036, 1, 1, tzinfo=datetime.timezone.utc)


def name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def cert(subject, subject_key, issuer, issuer_key, serial, ca=True, san=None):
    b = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(subject_key.public_key())
        .serial_number(serial)
        .not_valid_before(NOT_BEFORE)
        .not_valid_after(NOT_AFTER)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(subject_key.public_key()), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
    )
    if san:
        b = b.add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in san]), critical=False)
    return b.sign(issuer_key, hashes.SHA256())


def main():
    OUT.mkdir(exist_ok=True)
    ka = ec.generate_private_key(ec.SECP256R1())
    kb = ec.generate_private_key(ec.SECP256R1())
    a = cert(name("Loop CA A"), ka, name("Loop CA B"), kb, 0xA)
    b = cert(name("Loop CA B"), kb, name("Loop CA A"), ka, 0xB)
    (OUT / "loop-a.der").write_bytes(a.public_bytes(serialization_der()))
    (OUT / "loop-b.der").write_bytes(b.public_bytes(serialization_der()))

    kc = ec.generate_private_key(ec.SECP256R1())
    evil = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, "evil\x00.example\x1b[31mRED\x1b[0m\n| `x` \u202egnp.exe"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "<script>alert(1)</script>"),
        ]
    )
    c = cert(evil, kc, evil, kc, 0xC, ca=False, san=["ctrl.example"])
    (OUT / "ctrl-names.der").write_bytes(c.public_bytes(serialization_der()))


def serialization_der():
    from cryptography.hazmat.primitives.serialization import Encoding

    return Encoding.DER


if __name__ == "__main__":
    main()
