#!/usr/bin/env python3
"""Record tls12-renegotiation.pcap and its key log: TLS 1.2 renegotiation, OpenSSL both ends.

Usage (as root, from the repository root; needs openssl, tcpdump and tshark):

    unshare -n python3 captures/record-tls12.py

`openssl s_server -tls1_2` at 127.0.0.10:443 sends the Contoso chain of pki/ (leaf +
intermediate; client renegotiation allowed, never resumed); `openssl s_client -tls1_2 -keylogfile` from 127.0.1.11 connects three times, one
cipher suite each (ECDHE-RSA-AES256-GCM-SHA384, ECDHE-RSA-AES128-GCM-SHA256,
ECDHE-RSA-CHACHA20-POLY1305), sends a line, renegotiates (s_client's `R` command: a new
ClientHello under the first handshake's keys, so the server's second Certificate is encrypted),
sends another line and quits. The key log gets a CLIENT_RANDOM line for each handshake, both
the first and the renegotiation. Every byte comes from OpenSSL; nothing is hand-built.
"""
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PKI = os.path.join(HERE, "pki")
VIP, PHONE, SNI = "127.0.0.10", "127.0.1.11", "lyncpool.contoso.test"
CIPHERS = ["ECDHE-RSA-AES256-GCM-SHA384", "ECDHE-RSA-AES128-GCM-SHA256",
           "ECDHE-RSA-CHACHA20-POLY1305"]
OUT = os.path.join(HERE, "tls12-renegotiation.pcap")
KEYLOG = os.path.join(HERE, "tls12-renegotiation.keylog")


def run(*cmd, **kw):
    subprocess.run(cmd, check=True, **kw)


def wait_port(port):
    for _ in range(50):
        if subprocess.run(["ss", "-Hltn", f"sport = :{port}"], capture_output=True,
                          text=True).stdout.strip():
            return
        time.sleep(0.1)
    sys.exit(f"nothing listens on port {port}")


def connection(cipher):
    server = subprocess.Popen(
        ["openssl", "s_server", "-tls1_2", "-accept", f"{VIP}:443", "-naccept", "1",
         "-cert", os.path.join(PKI, "leaf.pem"), "-key", os.path.join(PKI, "leaf.key"),
         "-cert_chain", os.path.join(PKI, "issuing.pem"), "-cipher", cipher, "-quiet",
         # OpenSSL 3 refuses a client's renegotiation unless told; a full one, not a resumption
         "-client_renegotiation", "-no_resumption_on_reneg"],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(443)
    client = subprocess.Popen(
        ["openssl", "s_client", "-tls1_2", "-connect", f"{VIP}:443", "-bind", f"{PHONE}:0",
         "-servername", SNI, "-CAfile", os.path.join(PKI, "root.pem"), "-verify_return_error",
         "-cipher", cipher, "-keylogfile", KEYLOG],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in ("hello\n", "R\n", "again\n", "Q\n"):
        time.sleep(0.5)
        client.stdin.write(line)
        client.stdin.flush()
    out, _ = client.communicate(timeout=10)
    server.communicate(timeout=10)  # s_server closes when its stdin ends: only now
    print(f"  {cipher}: renegotiated: {'RENEGOTIATING' in out}, "
          f"verify: {[l.strip() for l in out.splitlines() if 'Verify return code' in l][:1]}")


def main():
    if os.geteuid() != 0:
        sys.exit("run as root inside a private network namespace: "
                 "unshare -n python3 captures/record-tls12.py")
    run("ip", "link", "set", "lo", "up")
    for a in (VIP, PHONE):
        subprocess.run(["ip", "addr", "add", f"{a}/32", "dev", "lo"], stderr=subprocess.DEVNULL)
    if os.path.exists(KEYLOG):
        os.remove(KEYLOG)
    tmp = os.path.join(tempfile.mkdtemp(), "tls12.pcap")
    dump = subprocess.Popen(["tcpdump", "-Z", "root", "--immediate-mode", "-i", "lo", "-U", "-s",
                             "0", "-w", tmp, "tcp port 443"], stderr=subprocess.DEVNULL)
    time.sleep(1.0)
    print("tls12-renegotiation:")
    for cipher in CIPHERS:
        connection(cipher)
        time.sleep(0.3)
    time.sleep(1.0)
    dump.send_signal(2)  # SIGINT: tcpdump flushes and exits
    dump.wait()
    run("cp", tmp, OUT)
    # What Wireshark sees with the key log: every handshake message, by frame and stream.
    print(subprocess.run(
        ["tshark", "-r", OUT, "-o", f"tls.keylog_file:{KEYLOG}", "-Y", "tls.handshake.type",
         "-T", "fields", "-e", "frame.number", "-e", "tcp.stream", "-e", "tls.handshake.type"],
        capture_output=True, text=True, check=True).stdout, end="")


if __name__ == "__main__":
    main()
