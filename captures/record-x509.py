#!/usr/bin/env python3
"""Record the X.509 chain-problem captures: real OpenSSL clients reacting to broken chains.

Usage (from the repository root):

    unshare -n python3 captures/record-x509.py [STEP...]   # as root; every step without names
    python3 captures/record-x509.py lync-vip-phone-port   # this step needs neither root nor a namespace
    python3 captures/record-x509.py x509-report           # print the case table (tshark, openssl verify)

Steps, in the order they run:

  x509-cases           captures/x509-cases.pcap: one TLS 1.2 server per case on 127.0.2.N:443, one
                       client connection per case from 127.0.3.N (Python ssl, i.e. OpenSSL 3.0, on
                       both ends); makes the Fabrikam PKI in captures/pki/x509/ first when missing.
                       The case table (x509-report) is printed after it. One case is served by
                       GnuTLS (gnutls-serv) instead: leaf-key-usage, whose leaf an OpenSSL server
                       refuses to use for ECDHE-ECDSA (see CASES).
  lync-vip-phone-port  captures/lync-vip-phone-port.pcap: captures/lync-vip-phones.pcap cut down with
                       tshark to the frames of the two failing phones (127.0.1.11, 127.0.1.12), as a
                       capture at their switch port would show them: no connection carries the
                       intermediate CA. Real bytes, no re-recording.
  tls13-resumption     captures/tls13-resumption.pcapng + .keylog: TLS 1.3, OpenSSL both ends, the
                       Contoso PKI of captures/pki (not regenerated): a full handshake from phone
                       127.0.1.11 to the VIP 127.0.0.10:443 (leaf + intermediate), a ticket, and a
                       second connection resuming it (PSK, no Certificate).
  x509-report          prints, for every case, the frames (tshark) and `openssl verify`'s verdict.

The Fabrikam PKI (ECDSA P-256 and SHA-256 unless the case says otherwise; dates relative to the
moment the PKI is made: it must be made anew, `rm -r captures/pki/x509`, before recording again
once the not-yet-valid leaf has become valid, 30 days later):

  root.pem               O=Fabrikam, CN=Fabrikam Test Root CA (self-signed, the clients' anchor)
  issuing.pem            CN=Fabrikam Issuing CA (root -> issuing; issues the good leaves)
  issuing-old.pem        CN=Fabrikam Issuing CA again, another key: the one before the re-key
  <issuer>.pem           the broken or extra issuers of the cases (see CASES)
  unrelated-root.pem     CN=Unrelated Root (self-signed)
  northwind-*.pem        O=Northwind, CN=Northwind Root CA -> O=Northwind, CN=Northwind Issuing CA
  <case>.pem, .key       each case's server certificate and its key (throwaway test keys; every
                         certificate's key is kept next to it)

When pki/x509/ exists, only its missing certificates are made (a case added later gets its leaf
without the others changing; its serial is still its position in CERTS).
"""
import datetime
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PKI = os.path.join(HERE, "pki", "x509")
CONTOSO = os.path.join(HERE, "pki")
DOMAIN = "fabrikam.test"

# The certificates of the Fabrikam PKI, in the order they are made (serial = position + 1):
# file name -> (subject, issuer file or None for self-signed, extensions section, key, digest,
# (not_before, not_after) in days from now).
YEAR = 365


def NOW_TO(days):
    """Valid from a day ago (clock slack) until `days` from now."""
    return (-1, days)


def leaf_ext(names, extra=""):
    return (
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
        "extendedKeyUsage=serverAuth\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n"
        "subjectAltName=" + ",".join("DNS:" + n for n in names) + "\n" + extra
    )


CA_EXT = (
    "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n"
    "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n"
)
ROOT_EXT = "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\n"
# An issuer like a CA in every respect but basicConstraints (keyUsage keyCertSign, cRLSign kept,
# so basicConstraints is the only thing wrong).
NOT_CA_EXT = (
    "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,keyCertSign,cRLSign\n"
    "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n"
)
NO_BC_EXT = "keyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n"


def fqdn(case):
    return f"{case}.{DOMAIN}"


CERTS = [
    ("root", "/O=Fabrikam/CN=Fabrikam Test Root CA", None, ROOT_EXT, "ec", "sha256", NOW_TO(20 * YEAR)),
    ("issuing", "/CN=Fabrikam Issuing CA", "root", CA_EXT, "ec", "sha256", NOW_TO(15 * YEAR)),
    # The intermediate before the re-key: same name, another key, older.
    ("issuing-old", "/CN=Fabrikam Issuing CA", "root", CA_EXT, "ec", "sha256", (-2 * YEAR, 13 * YEAR)),
    ("not-a-ca-issuer", "/CN=Fabrikam Not-a-CA Issuer", "root", NOT_CA_EXT, "ec", "sha256", NOW_TO(15 * YEAR)),
    ("no-basic-constraints-issuer", "/CN=Fabrikam No-BasicConstraints Issuer", "root", NO_BC_EXT, "ec", "sha256",
     NOW_TO(15 * YEAR)),
    ("path-length-a", "/CN=Fabrikam Path CA A", "root",
     CA_EXT.replace("CA:TRUE", "CA:TRUE,pathlen:0"), "ec", "sha256", NOW_TO(15 * YEAR)),
    ("path-length-b", "/CN=Fabrikam Path CA B", "path-length-a", CA_EXT, "ec", "sha256", NOW_TO(15 * YEAR)),
    ("no-cert-sign-issuer", "/CN=Fabrikam No-CertSign Issuer", "root",
     CA_EXT.replace("keyCertSign,cRLSign", "digitalSignature"), "ec", "sha256", NOW_TO(15 * YEAR)),
    ("name-constraints-issuer", "/CN=Fabrikam Contoso-Only CA", "root",
     CA_EXT + "nameConstraints=critical,permitted;DNS:.contoso.test\n", "ec", "sha256", NOW_TO(15 * YEAR)),
    ("wrong-order-a", "/CN=Fabrikam Order CA A", "root", CA_EXT, "ec", "sha256", NOW_TO(15 * YEAR)),
    ("wrong-order-b", "/CN=Fabrikam Order CA B", "wrong-order-a", CA_EXT, "ec", "sha256", NOW_TO(15 * YEAR)),
    ("unrelated-root", "/CN=Unrelated Root", None, ROOT_EXT, "ec", "sha256", NOW_TO(20 * YEAR)),
    ("northwind-root", "/O=Northwind/CN=Northwind Root CA", None, ROOT_EXT, "ec", "sha256", NOW_TO(20 * YEAR)),
    ("northwind-issuing", "/O=Northwind/CN=Northwind Issuing CA", "northwind-root", CA_EXT, "ec", "sha256",
     NOW_TO(15 * YEAR)),
    # The servers' certificates, one per case (file = case name).
    ("not-a-ca", None, "not-a-ca-issuer", None, "ec", "sha256", NOW_TO(10 * YEAR)),
    ("no-basic-constraints", None, "no-basic-constraints-issuer", None, "ec", "sha256", NOW_TO(10 * YEAR)),
    ("eku-client-only", None, "issuing",
     leaf_ext([fqdn("eku-client-only")]).replace("extendedKeyUsage=serverAuth", "extendedKeyUsage=clientAuth"),
     "ec", "sha256", NOW_TO(10 * YEAR)),
    ("path-length", None, "path-length-b", None, "ec", "sha256", NOW_TO(10 * YEAR)),
    ("no-cert-sign", None, "no-cert-sign-issuer", None, "ec", "sha256", NOW_TO(10 * YEAR)),
    ("name-constraints", None, "name-constraints-issuer", None, "ec", "sha256", NOW_TO(10 * YEAR)),
    ("critical-extension", None, "issuing",
     leaf_ext([fqdn("critical-extension")], "1.3.6.1.4.1.55555.1.1=critical,DER:05:00\n"),
     "ec", "sha256", NOW_TO(10 * YEAR)),
    ("ca-as-leaf", None, "issuing",
     "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,digitalSignature\n"
     "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n"
     f"subjectAltName=DNS:{fqdn('ca-as-leaf')}\n", "ec", "sha256", NOW_TO(10 * YEAR)),
    ("rekeyed-issuer", None, "issuing", None, "ec", "sha256", NOW_TO(10 * YEAR)),
    ("expired", None, "issuing", None, "ec", "sha256", (-400, -10)),
    ("not-yet-valid", None, "issuing", None, "ec", "sha256", (30, 30 + 10 * YEAR)),
    ("wrong-order", None, "wrong-order-b", None, "ec", "sha256", NOW_TO(10 * YEAR)),
    ("unrelated", None, "issuing", None, "ec", "sha256", NOW_TO(10 * YEAR)),
    ("name-mismatch", "/CN=other.fabrikam.test", "issuing", leaf_ext(["other.fabrikam.test"]), "ec", "sha256",
     NOW_TO(10 * YEAR)),
    ("untrusted-root", None, "northwind-issuing", None, "ec", "sha256", NOW_TO(10 * YEAR)),
    ("weak-key", None, "issuing", None, "rsa:1024", "sha256", NOW_TO(10 * YEAR)),
    ("weak-signature", None, "issuing", None, "ec", "sha1", NOW_TO(10 * YEAR)),
    ("good", None, "issuing", None, "ec", "sha256", NOW_TO(10 * YEAR)),
    ("client-rejects", None, "issuing", None, "ec", "sha256", NOW_TO(10 * YEAR)),
    # keyUsage keyEncipherment only: no digitalSignature, which ECDHE-ECDSA needs of the leaf.
    ("leaf-key-usage", None, "issuing",
     leaf_ext([fqdn("leaf-key-usage")]).replace("keyUsage=critical,digitalSignature",
                                                "keyUsage=critical,keyEncipherment"),
     "ec", "sha256", NOW_TO(10 * YEAR)),
]

# The cases, in recording order: case N is served on 127.0.2.N:443 under SNI <case>.fabrikam.test,
# and its client connects from 127.0.3.N. (case, certificates the server sends, client's anchor,
# security level 0 on both ends, server: None for Python's ssl, else a GnuTLS priority string for
# gnutls-serv). New cases go at the end: the earlier ones keep their tcp.stream and frame numbers.
ROOT = os.path.join(PKI, "root.pem")
CONTOSO_ROOT = os.path.join(CONTOSO, "root.pem")
CASES = [
    ("not-a-ca", ["not-a-ca", "not-a-ca-issuer"], ROOT, False),
    ("no-basic-constraints", ["no-basic-constraints", "no-basic-constraints-issuer"], ROOT, False),
    ("eku-client-only", ["eku-client-only", "issuing"], ROOT, False),
    ("path-length", ["path-length", "path-length-b", "path-length-a"], ROOT, False),
    ("no-cert-sign", ["no-cert-sign", "no-cert-sign-issuer"], ROOT, False),
    ("name-constraints", ["name-constraints", "name-constraints-issuer"], ROOT, False),
    ("critical-extension", ["critical-extension", "issuing"], ROOT, False),
    ("ca-as-leaf", ["ca-as-leaf", "issuing"], ROOT, False),
    ("rekeyed-issuer", ["rekeyed-issuer", "issuing-old"], ROOT, False),
    ("expired", ["expired", "issuing"], ROOT, False),
    ("not-yet-valid", ["not-yet-valid", "issuing"], ROOT, False),
    ("wrong-order", ["wrong-order", "wrong-order-a", "wrong-order-b"], ROOT, False),
    ("unrelated", ["unrelated", "issuing", "unrelated-root"], ROOT, False),
    ("name-mismatch", ["name-mismatch", "issuing"], ROOT, False),
    ("untrusted-root", ["untrusted-root", "northwind-issuing", "northwind-root"], ROOT, False),
    ("weak-key", ["weak-key", "issuing"], ROOT, True),
    ("weak-signature", ["weak-signature", "issuing"], ROOT, True),
    ("good", ["good", "issuing"], ROOT, False),
    ("client-rejects", ["client-rejects", "issuing"], CONTOSO_ROOT, False),
    # An OpenSSL server will not negotiate ECDHE-ECDSA with this leaf (ssl_set_masks: no
    # digitalSignature, no aECDSA; it answers handshake_failure, "no shared cipher", and never sends
    # the certificate), nor will GnuTLS by default ("No supported cipher suites"): gnutls-serv
    # serves it with %DEBUG_ALLOW_KEY_USAGE_VIOLATIONS, pinned to the suite of the other ECDSA
    # cases, ECDHE-ECDSA-AES256-GCM-SHA384. The client is OpenSSL as everywhere.
    ("leaf-key-usage", ["leaf-key-usage", "issuing"], ROOT, False,
     "NONE:+VERS-TLS1.2:+ECDHE-ECDSA:+AES-256-GCM:+AEAD:+SIGN-ALL:+GROUP-ALL:+COMP-NULL:+CTYPE-X509"
     ":%DEBUG_ALLOW_KEY_USAGE_VIOLATIONS"),
]
CASES = [c if len(c) == 5 else c + (None,) for c in CASES]


def server_addr(n):
    return f"127.0.2.{n}"


def client_addr(n):
    return f"127.0.3.{n}"


def run(*cmd, **kw):
    subprocess.run(cmd, check=True, **kw)


def pem(name):
    return os.path.join(PKI, name + ".pem")


def key(name):
    return os.path.join(PKI, name + ".key")


def asn1_time(t):
    return t.strftime("%y%m%d%H%M%SZ") if t.year < 2050 else t.strftime("%Y%m%d%H%M%SZ")


def make_pki(missing_only=False):
    """The Fabrikam PKI with `openssl ca` (explicit dates: some cases are about them); with
    missing_only, only the certificates that pki/x509/ does not have yet, issued by the ones it has."""
    os.makedirs(PKI, exist_ok=True)
    work = tempfile.mkdtemp()
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    cnf = os.path.join(work, "ca.cnf")
    with open(cnf, "w") as f:
        f.write(
            "[ca]\ndefault_ca=fab\n[fab]\n"
            f"database={work}/index.txt\nnew_certs_dir={work}\nserial={work}/serial\n"
            "policy=any\nunique_subject=no\nemail_in_dn=no\ncopy_extensions=none\n"
            "[any]\ncommonName=optional\norganizationName=optional\n"
            "[req]\ndistinguished_name=dn\nprompt=no\n[dn]\n"
        )
    open(os.path.join(work, "index.txt"), "w").close()
    for serial, (name, subject, issuer, ext, keytype, md, (start, end)) in enumerate(CERTS, 1):
        if missing_only and os.path.exists(pem(name)):
            continue
        print(f"making {pem(name)} (serial {serial})")
        subject = subject or f"/CN={fqdn(name)}"
        ext = ext or leaf_ext([fqdn(name)])
        if keytype == "ec":
            run("openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                "-out", key(name))
        else:
            run("openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:" + keytype.split(":")[1],
                "-out", key(name), stderr=subprocess.DEVNULL)
        csr = os.path.join(work, name + ".csr")
        run("openssl", "req", "-config", cnf, "-new", "-key", key(name), "-subj", subject, "-out", csr)
        extfile = os.path.join(work, name + ".ext")
        with open(extfile, "w") as f:
            f.write("[x]\n" + ext)
        with open(os.path.join(work, "serial"), "w") as f:
            f.write("%02X\n" % serial)
        args = ["openssl", "ca", "-batch", "-config", cnf, "-notext", "-preserveDN", "-md", md,
                "-startdate", asn1_time(now + datetime.timedelta(days=start)),
                "-enddate", asn1_time(now + datetime.timedelta(days=end)),
                "-extfile", extfile, "-extensions", "x", "-in", csr, "-out", pem(name)]
        if issuer is None:
            args += ["-selfsign", "-keyfile", key(name)]
        else:
            args += ["-cert", pem(issuer), "-keyfile", key(issuer)]
        run(*args, stderr=subprocess.DEVNULL)
    shutil.rmtree(work)


def pki_is_stale():
    """The not-yet-valid leaf must still be in its future at recording time."""
    out = subprocess.run(["openssl", "x509", "-in", pem("not-yet-valid"), "-noout", "-startdate"],
                         capture_output=True, text=True, check=True).stdout
    start = out.split("notBefore=")[1].strip()
    t = datetime.datetime.strptime(start, "%b %d %H:%M:%S %Y %Z").replace(tzinfo=datetime.timezone.utc)
    return t <= datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=1)


def chain_file(work, name, parts):
    out = os.path.join(work, name)
    with open(out, "w") as f:
        for p in parts:
            with open(p if os.path.isabs(p) else pem(p)) as src:
                f.write(src.read())
    return out


def record(out_pcap, scenario, port_filter="tcp port 443"):
    dump = subprocess.Popen(["tcpdump", "-Z", "root", "--immediate-mode", "-i", "lo", "-U", "-s", "0",
                             "-w", out_pcap, port_filter], stderr=subprocess.DEVNULL)
    time.sleep(1.0)
    scenario()
    time.sleep(1.5)
    dump.send_signal(2)  # SIGINT: tcpdump flushes and exits
    dump.wait()


def serve(addr, ctx):
    """A TLS server for one connection, in a thread. It answers one request, then closes only
    once the client has closed (FIN or, after an alert, RST): the client always closes first,
    so every recording has the same closing sequence."""
    sock = socket.create_server((addr, 443))

    def loop():
        conn, _ = sock.accept()
        sock.close()
        raw = conn.dup()  # the same TCP socket, to wait for the client's close even if TLS failed
        try:
            with ctx.wrap_socket(conn, server_side=True) as tls:
                tls.recv(4096)
                tls.sendall(b"HTTP/1.1 204 No Content\r\n\r\n")
        except (ssl.SSLError, OSError):
            pass
        try:  # below TLS: the client sends no close_notify, and OpenSSL would answer its FIN with an alert
            while raw.recv(4096):
                pass
        except OSError:
            pass
        raw.close()

    t = threading.Thread(target=loop, daemon=True)
    t.start()
    return t


def listening(port):
    """Whether a TCP socket listens on 0.0.0.0:port (from /proc: no probe connection)."""
    with open("/proc/net/tcp") as f:
        return any(fields[1] == "00000000:%04X" % port and fields[3] == "0A"
                   for fields in (line.split() for line in f.readlines()[1:]))


def serve_gnutls(work, case, chain, priority):
    """gnutls-serv (echo server) on port 443 of every address, for the one connection of a case;
    stopped after the client has closed. Returns a function that stops it and returns its log."""
    log = open(os.path.join(work, case + ".gnutls-serv.log"), "w+")
    proc = subprocess.Popen(["gnutls-serv", "--echo", "-p", "443", "--priority", priority,
                             "--disable-client-cert",  # the flight of the others: no CertificateRequest
                             "--x509certfile", chain, "--x509keyfile", key(case)],
                            stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 10
    while not listening(443):
        assert proc.poll() is None and time.time() < deadline, "gnutls-serv did not start"
        time.sleep(0.05)

    def stop():
        time.sleep(0.5)  # its close after the client's
        proc.terminate()
        proc.wait()
        log.seek(0)
        return log.read()

    return stop


def x509_cases(work):
    clients = {}

    def scenario():
        print("x509-cases:")
        for n, (case, sent, anchor, weak, gnutls) in enumerate(CASES, 1):
            chain = chain_file(work, case + ".chain.pem", sent)
            if gnutls:
                stop = serve_gnutls(work, case, chain, gnutls)
            else:
                srv = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                srv.maximum_version = ssl.TLSVersion.TLSv1_2  # the Certificate in clear
                if weak:
                    srv.set_ciphers("DEFAULT:@SECLEVEL=0")  # else OpenSSL refuses to load the certificate
                srv.load_cert_chain(chain, key(case))
                t = serve(server_addr(n), srv)
            cli = ssl.create_default_context(cafile=anchor)  # CERT_REQUIRED, check_hostname
            cli.maximum_version = ssl.TLSVersion.TLSv1_2
            if weak:
                cli.set_ciphers("DEFAULT:@SECLEVEL=0")
            sock = socket.create_connection((server_addr(n), 443), source_address=(client_addr(n), 0))
            tls = cli.wrap_socket(sock, server_hostname=fqdn(case), do_handshake_on_connect=False)
            try:
                tls.do_handshake()
                tls.sendall(f"GET / HTTP/1.1\r\nHost: {fqdn(case)}\r\n\r\n".encode())
                tls.recv(4096)
                verdict = "handshake completed"
            except ssl.SSLError as e:
                verdict = f"{e.reason}: {getattr(e, 'verify_message', '')}"
                # Not every rejection is a verification error (leaf-key-usage: BAD_ECC_CERT).
                clients[case] = (f"{e.verify_code} {e.verify_message}"
                                 if isinstance(e, ssl.SSLCertVerificationError) else e.reason)
            tls.close()  # without close_notify, as Python does; then the server closes
            if gnutls:
                served = stop()
                verdict += "".join(f"\n       gnutls-serv: {line.strip()}" for line in served.splitlines()
                                   if "violation" in line or "Error" in line)
            else:
                t.join(timeout=5)
            print(f"  {n:2} {case:22} {client_addr(n)} -> {server_addr(n)}: {verdict}")
            time.sleep(0.2)

    record(os.path.join(HERE, "x509-cases.pcap"), scenario)
    return clients


def tls13_resumption(work):
    keylog = os.path.join(HERE, "tls13-resumption.keylog")
    if os.path.exists(keylog):
        os.remove(keylog)
    sni = "lyncpool.contoso.test"
    vip, phone = "127.0.0.10", "127.0.1.11"

    def scenario():
        print("tls13-resumption:")
        srv = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        srv.minimum_version = ssl.TLSVersion.TLSv1_3
        srv.num_tickets = 1
        srv.load_cert_chain(chain_file(work, "contoso.pem", [os.path.join(CONTOSO, "leaf.pem"),
                                                             os.path.join(CONTOSO, "issuing.pem")]),
                            os.path.join(CONTOSO, "leaf.key"))
        cli = ssl.create_default_context(cafile=CONTOSO_ROOT)
        cli.minimum_version = ssl.TLSVersion.TLSv1_3
        cli.keylog_filename = keylog
        session = None
        for i in range(2):  # the same server context: its ticket key decrypts the ticket
            t = serve(vip, srv)
            sock = socket.create_connection((vip, 443), source_address=(phone, 0))
            tls = cli.wrap_socket(sock, server_hostname=sni, session=session)
            tls.sendall(b"x")
            tls.recv(4096)  # the reply follows the NewSessionTicket: the client has read it
            print(f"  connection {i + 1}: {tls.version()}, session reused: {tls.session_reused}")
            session = tls.session
            tls.close()  # the server closes after the client, as in x509-cases
            t.join(timeout=5)
            time.sleep(0.2)

    tmp = os.path.join(work, "tls13-resumption.pcap")
    record(tmp, scenario)
    run("editcap", "-F", "pcapng", tmp, os.path.join(HERE, "tls13-resumption.pcapng"))
    # The second handshake must be a resumption: pre_shared_key (41) in its ServerHello, no Certificate.
    out = subprocess.run(["tshark", "-r", os.path.join(HERE, "tls13-resumption.pcapng"),
                          "-o", f"tls.keylog_file:{keylog}", "-Y", "tls.handshake.type",
                          "-T", "fields", "-E", "separator=|", "-e", "frame.number", "-e", "tcp.stream",
                          "-e", "tls.handshake.type", "-e", "tls.handshake.extension.type"],
                         capture_output=True, text=True, check=True).stdout
    print(out, end="")
    streams = {}
    for line in out.splitlines():
        frame, stream, types, exts = line.split("|")
        streams.setdefault(stream, []).append((frame, types.split(","), exts.split(",")))
    second = [x for x in streams.get("1", [])]
    assert not any("11" in types for _, types, _ in second), "the resumption carries a Certificate"
    assert any("2" in types and "41" in exts for _, types, exts in second), "no pre_shared_key in ServerHello"
    assert any("11" in types for _, types, _ in streams.get("0", [])), "the full handshake has no Certificate"


def lync_vip_phone_port():
    """The frames of the failing phones .11 and .12 (their DHCP from 0.0.0.0 by their MACs)."""
    src = os.path.join(HERE, "lync-vip-phones.pcap")
    out = os.path.join(HERE, "lync-vip-phone-port.pcap")
    flt = ("ip.addr==127.0.1.11 || ip.addr==127.0.1.12 "
           "|| eth.addr==00:04:f2:c3:00:11 || eth.addr==00:04:f2:c3:00:12")
    run("tshark", "-r", src, "-Y", flt, "-F", "pcap", "-w", out)
    print("lync-vip-phone-port:")
    certs = subprocess.run(["tshark", "-r", out, "-Y", "tls.handshake.type==11", "-T", "fields",
                            "-e", "frame.number", "-e", "tcp.stream", "-e", "ip.dst",
                            "-e", "tls.handshake.certificate_length"],
                           capture_output=True, text=True, check=True).stdout
    for line in certs.splitlines():
        frame, stream, dst, lengths = line.split("\t")
        print(f"  frame {frame}, tcp.stream {stream}, to {dst}: {len(lengths.split(','))} certificate(s)")
        assert len(lengths.split(",")) == 1, "a connection at the phones' port carries the intermediate"


ALERTS = {"40": "handshake_failure", "42": "bad_certificate", "43": "unsupported_certificate",
          "44": "certificate_revoked", "45": "certificate_expired", "46": "certificate_unknown",
          "48": "unknown_ca", "51": "decrypt_error", "80": "internal_error"}


def openssl_verify(untrusted, case, *extra):
    """`openssl verify`'s errors ("N at depth D: text", in the order it met them) or OK."""
    v = subprocess.run(["openssl", "verify", *extra, "-CAfile", ROOT, "-untrusted", untrusted,
                        "-purpose", "sslserver", "-verify_hostname", fqdn(case), pem(case)],
                       capture_output=True, text=True)
    errs = re.findall(r"^error (\d+) at (\d+) depth lookup: (.*)$", v.stdout + v.stderr, re.M)
    if not errs:
        assert v.returncode == 0 and v.stdout.strip().endswith(": OK"), v.stdout + v.stderr
        return "OK"
    return "; ".join(f"error {n} at depth {d}: {text}" for n, d, text in errs)


def x509_report(clients=None):
    """The README's case table, from the capture (tshark) and `openssl verify`."""
    pcap = os.path.join(HERE, "x509-cases.pcap")
    out = subprocess.run(["tshark", "-r", pcap, "-T", "fields", "-E", "separator=|",
                          "-e", "frame.number", "-e", "tcp.stream", "-e", "ip.src", "-e", "ip.dst",
                          "-e", "tls.record.content_type", "-e", "tls.handshake.type",
                          "-e", "tls.alert_message.desc"], capture_output=True, text=True, check=True).stdout
    rows = [line.split("|") for line in out.splitlines()]
    clients = clients or {}
    work = tempfile.mkdtemp()
    print("| case | server | SNI | sent | tcp.stream | frames (ClientHello, Certificate, alert) "
          "| client reaction | `openssl verify` result |")
    print("|---|---|---|---|---|---|---|---|")
    for n, (case, sent, anchor, weak, _) in enumerate(CASES, 1):
        cli = client_addr(n)
        mine = [r for r in rows if cli in (r[2], r[3])]
        stream = mine[0][1]
        hello = next(r[0] for r in mine if r[2] == cli and "1" in r[5].split(","))
        cert = next(r[0] for r in mine if r[3] == cli and "11" in r[5].split(","))
        alert = [r for r in mine if r[2] == cli and "21" in r[4].split(",")]
        ccs = [r for r in mine if r[3] == cli and "20" in r[4].split(",")]
        appdata = [r for r in mine if r[3] == cli and "23" in r[4].split(",")]
        if alert:
            frames = f"{hello}, {cert}, {alert[0][0]}"
            reaction = f"alert `{ALERTS.get(alert[0][6], alert[0][6])}` (frame {alert[0][0]})"
            if case in clients:
                reaction += f"; Python: {clients[case]}"
        else:
            frames = f"{hello}, {cert}, —"
            reaction = (f"completes (server Finished frame {ccs[0][0]}, response frame {appdata[0][0]})"
                        if ccs and appdata else "no alert, not completed")
        untrusted = chain_file(work, case + ".untrusted.pem", sent[1:])
        verdict = openssl_verify(untrusted, case)
        if weak:  # the security level of a client with OpenSSL's defaults (Debian: 2)
            verdict += "; with `-auth_level 2`: " + openssl_verify(untrusted, case, "-auth_level", "2")
        shown = ", ".join(f"`{p}`" for p in sent)
        print(f"| {case} | {server_addr(n)}:443 | {fqdn(case)} | {shown} | {stream} | {frames} "
              f"| {reaction} | {verdict} |")
    shutil.rmtree(work)


STEPS = ["x509-cases", "lync-vip-phone-port", "tls13-resumption"]


def main():
    only = sys.argv[1:] or STEPS
    for name in only:
        if name not in STEPS + ["x509-report"]:
            sys.exit(f"unknown step {name}; steps: {', '.join(STEPS)}, x509-report")
    needs_root = [s for s in only if s in ("x509-cases", "tls13-resumption")]
    work = tempfile.mkdtemp()
    if needs_root:
        if os.geteuid() != 0:
            sys.exit("run as root inside a private network namespace: unshare -n python3 captures/record-x509.py")
        run("ip", "link", "set", "lo", "up")
        addrs = ["127.0.0.10", "127.0.1.11"]
        addrs += [server_addr(n) for n in range(1, len(CASES) + 1)]
        addrs += [client_addr(n) for n in range(1, len(CASES) + 1)]
        for a in addrs:
            subprocess.run(["ip", "addr", "add", f"{a}/32", "dev", "lo"], stderr=subprocess.DEVNULL)
    if "x509-cases" in only:
        if not os.path.exists(ROOT):
            make_pki()
        elif pki_is_stale():
            sys.exit("captures/pki/x509 is stale (the not-yet-valid leaf is valid now): rm -r captures/pki/x509")
        else:
            make_pki(missing_only=True)
        x509_report(x509_cases(work))
    if "lync-vip-phone-port" in only:
        lync_vip_phone_port()
    if "tls13-resumption" in only:
        tls13_resumption(work)
    if "x509-report" in only:
        x509_report()
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
