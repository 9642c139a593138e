#!/usr/bin/env python3
"""Record the bundled captures: the field report's load-balancer story, with real TLS stacks.

Usage (as root; needs openssl, tcpdump, editcap, gnutls-cli/gnutls-serv and python3):

    unshare -n python3 captures/record.py [NAME...]   # from the repository root

With names (lync-vip-before, lync-vip-fixed, tls13-openssl, tls13-gnutls, dtls-openssl,
smtp-starttls, quic-aioquic) only those captures
are recorded again, with the existing PKI; without, a missing PKI is made anew first.

It makes a test PKI with the openssl command (root CA -> issuing CA -> lyncpool.contoso.test),
starts real OpenSSL-backed TLS servers (Python's ssl module) on loopback addresses in a private
network namespace, connects real TLS clients to them from several source addresses, and records
the traffic with tcpdump. Every byte of TLS in the captures comes from OpenSSL; nothing is
hand-built. See captures/README.md for what each capture shows.

Addresses (all loopback, inside the namespace):
  127.0.0.10:443  the load-balancer VIP (SSL offload) for lyncpool.contoso.test
  127.0.0.11:443  front end fe01, reached directly (sends leaf + intermediate)
  127.0.1.11-14   desk phones: trust the root only, never fetch intermediates (like LPE)
  127.0.1.21      a softphone: has the issuing CA cached (as AIA fetching would give it)
"""
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PKI = os.path.join(HERE, "pki")
SNI = "lyncpool.contoso.test"
VIP = "127.0.0.10"
FE = "127.0.0.11"
PHONES = ["127.0.1.11", "127.0.1.12", "127.0.1.13", "127.0.1.14"]
SOFTPHONE = "127.0.1.21"


def run(*cmd, **kw):
    subprocess.run(cmd, check=True, **kw)


def make_pki(work):
    """Root CA -> Contoso Issuing CA -> lyncpool.contoso.test, RSA 2048, SHA-256."""
    os.makedirs(PKI, exist_ok=True)

    def path(name):
        return os.path.join(PKI, name)

    ext = os.path.join(work, "ext.cnf")
    with open(ext, "w") as f:
        f.write(
            "[ca]\nbasicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n"
            "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n"
            "[leaf]\nbasicConstraints=critical,CA:FALSE\n"
            "keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n"
            "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n"
            f"subjectAltName=DNS:{SNI},DNS:fe01.contoso.test\n"
            "authorityInfoAccess=caIssuers;URI:http://pki.contoso.test/issuing-ca.crt\n"
        )
    for name in ("root", "issuing", "leaf"):
        run("openssl", "genrsa", "-out", path(f"{name}.key"), "2048", stderr=subprocess.DEVNULL)
    run("openssl", "req", "-x509", "-new", "-key", path("root.key"), "-sha256", "-days", "7300",
        "-subj", "/O=Contoso/CN=Contoso Root CA", "-set_serial", "1",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        "-out", path("root.pem"))
    run("openssl", "req", "-new", "-key", path("issuing.key"),
        "-subj", "/O=Contoso/CN=Contoso Issuing CA 01", "-out", os.path.join(work, "issuing.csr"))
    run("openssl", "x509", "-req", "-in", os.path.join(work, "issuing.csr"), "-CA", path("root.pem"),
        "-CAkey", path("root.key"), "-set_serial", "2", "-days", "3650", "-sha256",
        "-extfile", ext, "-extensions", "ca", "-out", path("issuing.pem"), stderr=subprocess.DEVNULL)
    run("openssl", "req", "-new", "-key", path("leaf.key"),
        "-subj", f"/O=Contoso/CN={SNI}", "-out", os.path.join(work, "leaf.csr"))
    run("openssl", "x509", "-req", "-in", os.path.join(work, "leaf.csr"), "-CA", path("issuing.pem"),
        "-CAkey", path("issuing.key"), "-set_serial", "3", "-days", "825", "-sha256",
        "-extfile", ext, "-extensions", "leaf", "-out", path("leaf.pem"), stderr=subprocess.DEVNULL)
    for name in ("root", "issuing"):
        os.remove(path(f"{name}.key"))  # CA keys are not needed again; the leaf key serves.


def chain_file(work, name, parts):
    out = os.path.join(work, name)
    with open(out, "w") as f:
        for p in parts:
            with open(os.path.join(PKI, p)) as src:
                f.write(src.read())
    return out


def server_context(certfile, tls13=False):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    if tls13:
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    else:
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2  # TLS 1.2: the Certificate is visible
    ctx.load_cert_chain(certfile, os.path.join(PKI, "leaf.key"))
    return ctx


class Server(threading.Thread):
    """A TLS server; `contexts` are used round-robin, one per accepted connection, like the
    members of a load-balancer pool that are not configured alike."""

    def __init__(self, addr, contexts):
        super().__init__(daemon=True)
        self.sock = socket.create_server((addr, 443))
        self.contexts = contexts
        self.n = 0

    def stop(self):
        self.sock.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        self.sock.close()
        self.join()

    def run(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            ctx = self.contexts[self.n % len(self.contexts)]
            self.n += 1
            try:
                with ctx.wrap_socket(conn, server_side=True) as tls:
                    tls.recv(4096)
                    body = b"<certprov>ok</certprov>"
                    tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            except (ssl.SSLError, OSError):
                conn.close()


def client(src, dst, cafile, label, keylog=None):
    ctx = ssl.create_default_context(cafile=cafile)
    if keylog:
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        ctx.keylog_filename = keylog
    else:
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    sock = socket.create_connection((dst, 443), source_address=(src, 0))
    try:
        with ctx.wrap_socket(sock, server_hostname=SNI) as tls:
            tls.sendall(f"GET /CertProv/CertProvisioningService.svc HTTP/1.1\r\nHost: {SNI}\r\n\r\n".encode())
            tls.recv(4096)
            print(f"  {label} {src} -> {dst}: logged in")
    except ssl.SSLError as e:
        print(f"  {label} {src} -> {dst}: {e.reason}")
    time.sleep(0.05)


def gnutls_client(dst, port, keylog, ciphers=""):
    """GnuTLS 3.7 (gnutls-cli), a TLS stack of its own, verifying against the root only."""
    req = f"GET / HTTP/1.1\r\nHost: {SNI}\r\n\r\n".encode()
    p = subprocess.run(["gnutls-cli", dst, "-p", str(port), "--sni-hostname", SNI,
                        "--verify-hostname", SNI, "--x509cafile", os.path.join(PKI, "root.pem"),
                        "--priority", "NORMAL:-VERS-ALL:+VERS-TLS1.3" + ciphers],
                       input=req, capture_output=True, env={**os.environ, "SSLKEYLOGFILE": keylog},
                       timeout=10)
    verdict = "logged in" if p.returncode == 0 else "failed: " + p.stderr.decode().strip().splitlines()[-1]
    print(f"  gnutls-cli -> {dst}:{port} {ciphers}: {verdict}")
    time.sleep(0.05)


def gnutls_server(port, chain, extra=""):
    p = subprocess.Popen(["gnutls-serv", "-p", str(port), "--http", "--x509certfile", chain,
                          "--x509keyfile", os.path.join(PKI, "leaf.key"),
                          "--priority", "NORMAL:-VERS-ALL:+VERS-TLS1.3" + extra],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    return p


def openssl_dtls_server(port, chain_parts):
    """OpenSSL's s_server over DTLS, answering one client."""
    args = ["openssl", "s_server", "-dtls", "-accept", f"{VIP}:{port}", "-naccept", "1",
            "-cert", os.path.join(PKI, "leaf.pem"), "-key", os.path.join(PKI, "leaf.key"), "-quiet"]
    if chain_parts:
        args += ["-cert_chain", os.path.join(PKI, chain_parts)]
    p = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    return p


def openssl_dtls_client(port):
    p = subprocess.run(["openssl", "s_client", "-dtls", "-connect", f"{VIP}:{port}",
                        "-servername", SNI, "-CAfile", os.path.join(PKI, "root.pem"),
                        "-verify_return_error"],
                       input=b"Q\n", capture_output=True, timeout=10)
    print(f"  s_client -dtls -> {VIP}:{port}: exit {p.returncode}")
    time.sleep(0.1)


def smtp_server(chain):
    """A minimal SMTP server that upgrades with STARTTLS (TLS from Python's ssl/OpenSSL)."""
    ctx = server_context(chain)
    sock = socket.create_server((FE, 25))

    def serve():
        conn, _ = sock.accept()
        f = conn.makefile("rb")
        conn.sendall(b"220 mail.contoso.test ESMTP\r\n")
        f.readline()  # EHLO
        conn.sendall(b"250-mail.contoso.test\r\n250 STARTTLS\r\n")
        f.readline()  # STARTTLS
        conn.sendall(b"220 2.0.0 Ready to start TLS\r\n")
        try:
            with ctx.wrap_socket(conn, server_side=True) as tls:
                tls.recv(1024)
                tls.sendall(b"221 2.0.0 Bye\r\n")
        except (ssl.SSLError, OSError):
            pass
        sock.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    return t


def quic_exchange():
    """A QUIC handshake between aioquic's client and server (HTTP/3 ALPN)."""
    import asyncio
    from aioquic.asyncio import connect, serve
    from aioquic.quic.configuration import QuicConfiguration

    async def main():
        server_cfg = QuicConfiguration(is_client=False, alpn_protocols=["h3"])
        server_cfg.load_cert_chain(os.path.join(HERE, "pki", "leaf+issuing.tmp.pem"),
                                   os.path.join(PKI, "leaf.key"))
        server = await serve(VIP, 4443, configuration=server_cfg)
        client_cfg = QuicConfiguration(is_client=True, alpn_protocols=["h3"], server_name=SNI)
        client_cfg.load_verify_locations(os.path.join(PKI, "root.pem"))
        async with connect(VIP, 4443, configuration=client_cfg) as client:
            await client.ping()
        server.close()

    asyncio.run(main())
    print(f"  aioquic -> {VIP}:4443: handshake done")


def record(out, scenario):
    pcap = out + ".tmp.pcap"
    dump = subprocess.Popen(["tcpdump", "-Z", "root", "--immediate-mode", "-i", "lo", "-U", "-s", "0", "-w", pcap, "tcp port 443 or tcp port 8443 or tcp port 9443 or tcp port 25 or udp port 4433 or udp port 4434 or udp port 4443"],
                            stderr=subprocess.DEVNULL)
    time.sleep(1.0)
    scenario()
    time.sleep(1.5)
    dump.send_signal(2)  # SIGINT: tcpdump flushes and exits
    dump.wait()
    return pcap


def main():
    if os.geteuid() != 0:
        sys.exit("run as root inside a private network namespace: unshare -n python3 captures/record.py")
    run("ip", "link", "set", "lo", "up")
    for a in [VIP, FE] + PHONES + [SOFTPHONE]:
        subprocess.run(["ip", "addr", "add", f"{a}/32", "dev", "lo"], stderr=subprocess.DEVNULL)
    work = tempfile.mkdtemp()
    only = sys.argv[1:]
    if not os.path.exists(os.path.join(PKI, "leaf.key")):
        make_pki(work)  # a new PKI changes every capture's certificates: record them all
    root = os.path.join(PKI, "root.pem")
    cached = chain_file(work, "root+issuing.pem", ["root.pem", "issuing.pem"])
    leaf_only = server_context(chain_file(work, "leaf.pem", ["leaf.pem"]))
    leaf_int = server_context(chain_file(work, "leaf+int.pem", ["leaf.pem", "issuing.pem"]))
    sloppy = server_context(chain_file(work, "group.pem", ["leaf.pem", "leaf.pem", "issuing.pem", "root.pem"]))

    # Before the fix: the VIP's SSL offload sends the leaf only, except one pool member that
    # was set up with the chain; the front end, reached directly, sends leaf + intermediate.
    def before():
        vip = Server(VIP, [leaf_only, leaf_only, leaf_int])
        fe = Server(FE, [leaf_int])
        vip.start()
        fe.start()
        print("lync-vip-before:")
        client(PHONES[0], VIP, root, "phone")       # leaf only -> unknown_ca
        client(PHONES[1], VIP, root, "phone")       # leaf only -> unknown_ca
        client(PHONES[2], VIP, root, "phone")       # leaf + intermediate -> logs in
        client(SOFTPHONE, VIP, cached, "softphone")  # leaf only, but has the CA -> logs in
        client(PHONES[3], FE, root, "phone")        # direct to the front end -> logs in
        client(PHONES[0], VIP, root, "phone")       # leaf only again -> unknown_ca
        vip.stop()
        fe.stop()

    # After the fix ("certificate chain group"): leaf, leaf again, intermediate and root.
    def after():
        vip = Server(VIP, [sloppy])
        vip.start()
        print("lync-vip-fixed:")
        for p in PHONES[:3]:
            client(p, VIP, root, "phone")
        vip.stop()

    # TLS 1.3, OpenSSL on both ends, the client writing its key log: the VIP sends the leaf
    # only (the phone aborts with an encrypted alert), the front end the full chain.
    openssl_keylog = os.path.join(HERE, "tls13-openssl.keylog")
    gnutls_keylog = os.path.join(HERE, "tls13-gnutls.keylog")

    def tls13_openssl():
        if os.path.exists(openssl_keylog):
            os.remove(openssl_keylog)
        vip = Server(VIP, [server_context(chain_file(work, "l.pem", ["leaf.pem"]), tls13=True)])
        fe = Server(FE, [server_context(chain_file(work, "li.pem", ["leaf.pem", "issuing.pem"]), tls13=True)])
        vip.start()
        fe.start()
        print("tls13-openssl:")
        client(PHONES[0], VIP, root, "phone", keylog=openssl_keylog)
        client(PHONES[3], FE, root, "phone", keylog=openssl_keylog)
        vip.stop()
        fe.stop()

    # TLS 1.3, GnuTLS on both ends: leaf only on port 443, leaf + intermediate on 8443.
    def tls13_gnutls():
        if os.path.exists(gnutls_keylog):
            os.remove(gnutls_keylog)
        a = gnutls_server(443, chain_file(work, "gl.pem", ["leaf.pem"]))
        b = gnutls_server(8443, chain_file(work, "gli.pem", ["leaf.pem", "issuing.pem"]))
        print("tls13-gnutls:")
        gnutls_client(VIP, 443, gnutls_keylog)
        gnutls_client(VIP, 8443, gnutls_keylog)
        # The other two TLS 1.3 cipher suites (the default above is TLS_AES_256_GCM_SHA384).
        gnutls_client(VIP, 8443, gnutls_keylog, ":-CIPHER-ALL:+AES-128-GCM")
        gnutls_client(VIP, 8443, gnutls_keylog, ":-CIPHER-ALL:+CHACHA20-POLY1305")
        # A server that only accepts a group the client sent no key share for: HelloRetryRequest.
        c = gnutls_server(9443, chain_file(work, "gli.pem", ["leaf.pem", "issuing.pem"]),
                          ":-GROUP-ALL:+GROUP-FFDHE2048")
        gnutls_client(VIP, 9443, gnutls_keylog)
        c.terminate()
        c.wait()
        a.terminate()
        b.terminate()
        a.wait()
        b.wait()

    # DTLS 1.2, OpenSSL s_server / s_client: leaf only on 4433 (the client aborts), leaf +
    # intermediate on 4434.
    def dtls_openssl():
        a = openssl_dtls_server(4433, None)
        print("dtls-openssl:")
        openssl_dtls_client(4433)
        a.kill()
        b = openssl_dtls_server(4434, "issuing.pem")
        openssl_dtls_client(4434)
        b.kill()
        a.wait()
        b.wait()

    # SMTP with STARTTLS: OpenSSL's s_client -starttls smtp against a mail server sending
    # leaf + intermediate after the upgrade.
    def smtp_starttls():
        t = smtp_server(chain_file(work, "smtp.pem", ["leaf.pem", "issuing.pem"]))
        print("smtp-starttls:")
        p = subprocess.run(["openssl", "s_client", "-starttls", "smtp", "-connect", f"{FE}:25",
                            "-servername", SNI, "-CAfile", root, "-verify_return_error",
                            "-tls1_2"], input=b"QUIT\r\n", capture_output=True, timeout=10)
        print(f"  s_client -starttls smtp -> {FE}:25: exit {p.returncode}")
        t.join(timeout=5)

    # QUIC (aioquic, a QUIC stack in Python): the Initial packets carry the hellos.
    def quic_aioquic():
        tmp_chain = os.path.join(HERE, "pki", "leaf+issuing.tmp.pem")
        shutil.copy(chain_file(work, "q.pem", ["leaf.pem", "issuing.pem"]), tmp_chain)
        print("quic-aioquic:")
        try:
            quic_exchange()
        finally:
            os.remove(tmp_chain)

    for name, scenario, out in (
        ("lync-vip-before", before, "pcapng"),
        ("lync-vip-fixed", after, "pcap"),
        ("tls13-openssl", tls13_openssl, "pcapng"),
        ("tls13-gnutls", tls13_gnutls, "pcapng"),
        ("dtls-openssl", dtls_openssl, "pcap"),
        ("smtp-starttls", smtp_starttls, "pcap"),
        ("quic-aioquic", quic_aioquic, "pcap"),
    ):
        if only and name not in only:
            continue
        pcap = record(os.path.join(HERE, name), scenario)
        if out == "pcapng":
            run("editcap", "-F", "pcapng", pcap, os.path.join(HERE, name + ".pcapng"))
            os.remove(pcap)
        else:
            shutil.move(pcap, os.path.join(HERE, name + ".pcap"))
        if name == "lync-vip-before":
            # The same traffic as a capture with a 200-byte snap length would have it.
            run("editcap", "-s", "200", os.path.join(HERE, name + ".pcapng"),
                os.path.join(HERE, name + "-snap200.pcapng"))
        if name == "tls13-openssl":
            # The same capture with its key log embedded (a pcapng Decryption Secrets Block).
            run("editcap", "--inject-secrets", f"tls,{openssl_keylog}",
                os.path.join(HERE, name + ".pcapng"), os.path.join(HERE, name + "-dsb.pcapng"))
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
