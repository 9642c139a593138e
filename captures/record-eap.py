#!/usr/bin/env python3
"""Record the 802.1X captures: TLS handshakes carried in EAP, from real EAP stacks.

Usage (as root, from the repository root; needs freeradius, eapoltest (eapol_test), hostapd,
wpasupplicant, openssl, tcpdump, iproute2 and tshark):

    unshare -n python3 captures/record-eap.py [STEP...]   # every step without names
    python3 captures/record-eap.py eap-report             # the frame tables, from the captures

Steps, in the order they run (each capture step records one file under captures/):

  eap-radius-leaf-only   RADIUS (UDP 1812) between eapol_test (authenticator + EAP-TLS supplicant,
                         NAS 127.0.4.2) and FreeRADIUS 3.2 (127.0.4.1) whose certificate_file holds
                         the server leaf only (auto_chain = no): the supplicant, trusting only the
                         Tailspin root, cannot build the chain, answers with a TLS alert unknown_ca
                         inside EAP, and gets Access-Reject / EAP-Failure.
  eap-radius-full-chain  The same, FreeRADIUS sending leaf + intermediate: Access-Accept.
  eap-peap-radius        PEAP (outer TLS leaf + intermediate, inner EAP-MSCHAPv2 for user "alice"
                         from FreeRADIUS's users file, outer identity anonymous@tailspin.test).
  eap-ttls-radius        EAP-TTLS (outer TLS leaf + intermediate, inner PAP for "alice").
  eapol-wired-leaf-only  Wired 802.1X on a veth pair (EtherType 0x888E, Ethernet headers):
                         hostapd -D wired on "sw-port1" with its internal EAP server (server_cert =
                         the leaf only) and wpa_supplicant -D wired on "phone0" (EAP-TLS, CA = root
                         only), captured on phone0: the supplicant fails (alert unknown_ca).
  eapol-wired-full-chain The same with leaf + intermediate: EAP-Success.
  eap-report             prints, for every capture, the EAP/TLS/RADIUS frames (tshark).

The Tailspin PKI in captures/pki/eap/ (RSA 2048, SHA-256; made when missing; every key is kept
beside its certificate, throwaway test keys):

  root.pem        O=Tailspin, CN=Tailspin Root CA (self-signed; the supplicants' only anchor)
  issuing.pem     O=Tailspin, CN=Tailspin Issuing CA (root -> issuing, pathlen 0)
  radius.pem      O=Tailspin, CN=radius.tailspin.test (serverAuth, SAN DNS:radius.tailspin.test,
                  AIA caIssuers http://pki.tailspin.test/issuing-ca.crt)
  phone-0011.pem  O=Tailspin, CN=phone-0011.tailspin.test (clientAuth; the EAP-TLS client
                  certificate: the supplicants send it with the issuing CA)

Everything runs in the private network namespace unshare -n gives: loopback addresses for RADIUS,
a veth pair for the wired port. No traffic leaves the machine. Every daemon started is stopped.
"""
import datetime
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PKI = os.path.join(HERE, "pki", "eap")
RADIUS = "127.0.4.1"        # the RADIUS server (FreeRADIUS)
NAS = "127.0.4.2"           # the authenticator (eapol_test plays the switch "sw-access-01")
SECRET = "tailspin-radius"  # RADIUS shared secret (in the capture's Message-Authenticator only)
PHONE_MAC = "00:04:f2:00:00:11"   # Polycom OUI: the phone's port
SWITCH_MAC = "00:1b:54:00:00:01"  # Cisco OUI: the access switch's port
PHONE_ID = "phone-0011@tailspin.test"
USER, PASSWORD = "alice", "Tailspin-Test-1"
ANON = "anonymous@tailspin.test"
FREERADIUS_CONF = "/etc/freeradius/3.0"

CAPTURES = ["eap-radius-leaf-only", "eap-radius-full-chain", "eap-peap-radius", "eap-ttls-radius",
            "eapol-wired-leaf-only", "eapol-wired-full-chain"]


def run(*cmd, **kw):
    subprocess.run(cmd, check=True, **kw)


def pki(name):
    return os.path.join(PKI, name)


def make_pki(work):
    """Tailspin Root CA -> Tailspin Issuing CA -> radius.tailspin.test, phone-0011.tailspin.test."""
    os.makedirs(PKI, exist_ok=True)
    ext = os.path.join(work, "ext.cnf")
    with open(ext, "w") as f:
        f.write(
            "[root]\nbasicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n"
            "subjectKeyIdentifier=hash\n"
            "[issuing]\nbasicConstraints=critical,CA:TRUE,pathlen:0\n"
            "keyUsage=critical,keyCertSign,cRLSign\n"
            "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n"
            "[server]\nbasicConstraints=critical,CA:FALSE\n"
            "keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n"
            "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n"
            "subjectAltName=DNS:radius.tailspin.test\n"
            "authorityInfoAccess=caIssuers;URI:http://pki.tailspin.test/issuing-ca.crt\n"
            "[client]\nbasicConstraints=critical,CA:FALSE\n"
            "keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n"
            "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n"
            "subjectAltName=DNS:phone-0011.tailspin.test\n"
            "authorityInfoAccess=caIssuers;URI:http://pki.tailspin.test/issuing-ca.crt\n"
        )
    cnf = os.path.join(work, "ca.cnf")
    with open(cnf, "w") as f:
        f.write(
            "[ca]\ndefault_ca=tailspin\n[tailspin]\n"
            f"database={work}/index.txt\nnew_certs_dir={work}\nserial={work}/serial\n"
            "policy=any\nunique_subject=no\nemail_in_dn=no\ncopy_extensions=none\n"
            "[any]\ncommonName=optional\norganizationName=optional\n"
            "[req]\ndistinguished_name=dn\nprompt=no\n[dn]\n"
        )
    open(os.path.join(work, "index.txt"), "w").close()
    now = datetime.datetime.now(datetime.timezone.utc)

    def asn1_time(t):
        return t.strftime("%Y%m%d%H%M%SZ")

    # name, subject, issuer (None: self-signed), extensions section, years valid; serial = position.
    # Valid from a day before the PKI is made (clock slack), like the Fabrikam PKI.
    certs = [
        ("root", "/O=Tailspin/CN=Tailspin Root CA", None, "root", 20),
        ("issuing", "/O=Tailspin/CN=Tailspin Issuing CA", "root", "issuing", 15),
        ("radius", "/O=Tailspin/CN=radius.tailspin.test", "issuing", "server", 10),
        ("phone-0011", "/O=Tailspin/CN=phone-0011.tailspin.test", "issuing", "client", 10),
    ]
    for serial, (name, subj, issuer, section, years) in enumerate(certs, 1):
        key = pki(f"{name}.key")
        run("openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
            "-out", key, stderr=subprocess.DEVNULL)
        csr = os.path.join(work, f"{name}.csr")
        run("openssl", "req", "-config", cnf, "-new", "-key", key, "-subj", subj, "-out", csr)
        with open(os.path.join(work, "serial"), "w") as f:
            f.write("%02X\n" % serial)
        args = ["openssl", "ca", "-batch", "-config", cnf, "-notext", "-preserveDN", "-md", "sha256",
                "-startdate", asn1_time(now - datetime.timedelta(days=1)),
                "-enddate", asn1_time(now + datetime.timedelta(days=365 * years)),
                "-extfile", ext, "-extensions", section, "-in", csr, "-out", pki(f"{name}.pem")]
        if issuer is None:
            args += ["-selfsign", "-keyfile", key]
        else:
            args += ["-cert", pki(f"{issuer}.pem"), "-keyfile", pki(f"{issuer}.key")]
        run(*args, stderr=subprocess.DEVNULL)
    for name in ("root", "issuing", "radius", "phone-0011"):
        os.chmod(pki(f"{name}.key"), 0o644)  # throwaway test keys, readable by the daemons
    run("openssl", "verify", "-CAfile", pki("root.pem"), "-untrusted", pki("issuing.pem"),
        pki("radius.pem"), pki("phone-0011.pem"), stdout=subprocess.DEVNULL)


def chain_file(work, name, parts):
    out = os.path.join(work, name)
    with open(out, "w") as f:
        for p in parts:
            with open(pki(p)) as src:
                f.write(src.read())
    return out


class Daemon:
    """A daemon in the foreground, its output in a log file; waits until `ready` is logged."""

    def __init__(self, name, args, log, ready=None, timeout=15):
        self.name, self.log = name, log
        self.out = open(log, "w")
        self.p = subprocess.Popen(args, stdout=self.out, stderr=subprocess.STDOUT)
        if ready and not self.wait_for(ready, timeout):
            self.stop()
            sys.exit(f"{name} did not start (no {ready!r}); see {log}:\n" + self.text()[-3000:])

    def text(self):
        with open(self.log, errors="replace") as f:
            return f.read()

    def wait_for(self, needles, timeout):
        if isinstance(needles, str):
            needles = [needles]
        end = time.time() + timeout
        while time.time() < end:
            t = self.text()
            for n in needles:
                if n in t:
                    return n
            if self.p.poll() is not None:
                return None
            time.sleep(0.1)
        return None

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.out.close()


class Capture:
    def __init__(self, iface, bpf, out):
        self.pcap = out
        self.p = subprocess.Popen(["tcpdump", "-Z", "root", "--immediate-mode", "-U", "-s", "0",
                                   "-i", iface, "-w", out, bpf], stderr=subprocess.DEVNULL)
        time.sleep(1.0)

    def stop(self):
        time.sleep(1.0)
        self.p.send_signal(signal.SIGINT)  # tcpdump flushes and exits
        self.p.wait()


# --- FreeRADIUS -------------------------------------------------------------------------------

EAP_MODULE = """\
eap {
	default_eap_type = %(default_eap_type)s
	timer_expire = 60
	ignore_unknown_eap_types = no
	cisco_accounting_username_bug = no
	max_sessions = ${max_requests}
	md5 {
	}
	tls-config tls-common {
		private_key_file = %(key)s
		certificate_file = %(chain)s
		ca_file = %(root)s
		auto_chain = no
		cipher_list = "DEFAULT"
		cipher_server_preference = no
		tls_min_version = "1.2"
		tls_max_version = "1.2"
		ecdh_curve = ""
		fragment_size = 1024
		include_length = yes
		cache {
			enable = no
		}
		verify {
		}
	}
	tls {
		tls = tls-common
	}
	ttls {
		tls = tls-common
		default_eap_type = md5
		copy_request_to_tunnel = no
		use_tunneled_reply = no
		virtual_server = "inner-tunnel"
	}
	peap {
		tls = tls-common
		default_eap_type = mschapv2
		copy_request_to_tunnel = no
		use_tunneled_reply = no
		virtual_server = "inner-tunnel"
	}
	mschapv2 {
	}
}
"""


def freeradius_config(work, chain, default_eap_type):
    """A copy of Debian's /etc/freeradius/3.0 with our eap module, client and user."""
    conf = os.path.join(work, "raddb")
    shutil.rmtree(conf, ignore_errors=True)
    shutil.copytree(FREERADIUS_CONF, conf, symlinks=True)
    eap = os.path.join(conf, "mods-enabled", "eap")
    os.remove(eap)
    with open(eap, "w") as f:
        f.write(EAP_MODULE % {"default_eap_type": default_eap_type, "key": pki("radius.key"),
                              "chain": chain, "root": pki("root.pem")})
    with open(os.path.join(conf, "clients.conf"), "w") as f:
        f.write("client sw-access-01 {\n\tipaddr = %s\n\tsecret = %s\n\tshortname = sw-access-01\n}\n"
                % (NAS, SECRET))
    authorize = os.path.join(conf, "mods-config", "files", "authorize")
    os.remove(authorize)  # Debian's "users" (mods-config/files/authorize): only our user
    with open(authorize, "w") as f:
        f.write(f'{USER}\tCleartext-Password := "{PASSWORD}"\n')
    radiusd = os.path.join(conf, "radiusd.conf")
    with open(radiusd) as f:
        text = f.read()
    # Stay root (the config and logs are in a private temp folder).
    text = text.replace("\tuser = freerad\n", "").replace("\tgroup = freerad\n", "")
    with open(radiusd, "w") as f:
        f.write(text)
    # Listen on the RADIUS server's address (IPv4; the [::] listeners stay as Debian has them).
    default = os.path.join(conf, "sites-enabled", "default")
    os.remove(default)
    with open(os.path.join(FREERADIUS_CONF, "sites-available", "default")) as f:
        site = f.read()
    site = site.replace("\tipaddr = *\n", f"\tipaddr = {RADIUS}\n", 2)
    with open(default, "w") as f:
        f.write(site)
    return conf


def eapol_test(work, name, network, log):
    conf = os.path.join(work, f"{name}.conf")
    with open(conf, "w") as f:
        f.write("network={\n" + "".join(f"\t{k}={v}\n" for k, v in network.items()) + "}\n")
    with open(log, "w") as out:
        p = subprocess.run(["eapol_test", "-c", conf, "-a", RADIUS, "-A", NAS, "-s", SECRET,
                            "-M", PHONE_MAC, "-t", "15", "-N", "32:s:sw-access-01",
                            "-N", "61:d:15", "-C", "CONNECT Ethernet 1000Mbps Full duplex"],
                           stdout=out, stderr=subprocess.STDOUT)
    with open(log, errors="replace") as f:
        lines = f.read().splitlines()
    return p.returncode, lines[-1] if lines else ""


def tls_network():
    """EAP-TLS as the phone does it: client certificate + issuing CA, trusting the root only."""
    return {
        "key_mgmt": "IEEE8021X",
        "eap": "TLS",
        "identity": f'"{PHONE_ID}"',
        "ca_cert": f'"{pki("root.pem")}"',
        "domain_match": '"radius.tailspin.test"',
        "client_cert": f'"{pki("phone-0011+issuing.tmp.pem")}"',
        "private_key": f'"{pki("phone-0011.key")}"',
        "phase1": '"tls_disable_tlsv1_3=1"',
        "eapol_flags": "0",
    }


def radius_capture(work, name, chain_parts, default_eap_type, network):
    out = os.path.join(HERE, f"{name}.pcap")
    chain = chain_file(work, f"{name}-chain.pem", chain_parts)
    conf = freeradius_config(work, chain, default_eap_type)
    print(f"{name}:")
    rad = Daemon("freeradius", ["freeradius", "-X", "-d", conf], os.path.join(work, f"{name}-radiusd.log"),
                 ready="Ready to process requests")
    try:
        cap = Capture("lo", "udp port 1812", out)
        try:
            rc, last = eapol_test(work, name, network, os.path.join(work, f"{name}-eapol_test.log"))
        finally:
            cap.stop()
    finally:
        rad.stop()
    print(f"  eapol_test ({network['eap']}) -> FreeRADIUS sending {' + '.join(chain_parts)}: "
          f"exit {rc}, {last}")
    for line in open(os.path.join(work, f"{name}-eapol_test.log"), errors="replace"):
        if "TLS: Certificate verification failed" in line or "CTRL-EVENT-EAP-TLS-CERT-ERROR" in line:
            print("  supplicant: " + line.strip())
    return out


def eap_radius_leaf_only(work):
    radius_capture(work, "eap-radius-leaf-only", ["radius.pem"], "tls", tls_network())


def eap_radius_full_chain(work):
    radius_capture(work, "eap-radius-full-chain", ["radius.pem", "issuing.pem"], "tls", tls_network())


def eap_peap_radius(work):
    radius_capture(work, "eap-peap-radius", ["radius.pem", "issuing.pem"], "peap", {
        "key_mgmt": "IEEE8021X",
        "eap": "PEAP",
        "identity": f'"{USER}"',
        "anonymous_identity": f'"{ANON}"',
        "password": f'"{PASSWORD}"',
        "ca_cert": f'"{pki("root.pem")}"',
        "domain_match": '"radius.tailspin.test"',
        "phase1": '"peapver=0 tls_disable_tlsv1_3=1"',
        "phase2": '"auth=MSCHAPV2"',
        "eapol_flags": "0",
    })


def eap_ttls_radius(work):
    radius_capture(work, "eap-ttls-radius", ["radius.pem", "issuing.pem"], "ttls", {
        "key_mgmt": "IEEE8021X",
        "eap": "TTLS",
        "identity": f'"{USER}"',
        "anonymous_identity": f'"{ANON}"',
        "password": f'"{PASSWORD}"',
        "ca_cert": f'"{pki("root.pem")}"',
        "domain_match": '"radius.tailspin.test"',
        "phase1": '"tls_disable_tlsv1_3=1"',
        "phase2": '"auth=PAP"',
        "eapol_flags": "0",
    })


# --- wired 802.1X: hostapd -D wired <-> wpa_supplicant -D wired over a veth pair ---------------

def wired_capture(work, name, chain_parts):
    out = os.path.join(HERE, f"{name}.pcap")
    chain = chain_file(work, f"{name}-chain.pem", chain_parts)
    subprocess.run(["ip", "link", "del", "sw-port1"], stderr=subprocess.DEVNULL)
    run("ip", "link", "add", "sw-port1", "address", SWITCH_MAC, "type", "veth",
        "peer", "name", "phone0", "address", PHONE_MAC)
    for dev in ("sw-port1", "phone0"):
        subprocess.run(["sysctl", "-q", "-w", f"net.ipv6.conf.{dev}.disable_ipv6=1"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        run("ip", "link", "set", dev, "up")
    users = os.path.join(work, "hostapd.eap_user")
    with open(users, "w") as f:
        f.write(f'"{PHONE_ID}"\tTLS\n')
    hconf = os.path.join(work, f"{name}-hostapd.conf")
    with open(hconf, "w") as f:
        f.write("\n".join([
            "interface=sw-port1", "driver=wired", "logger_stdout=-1", "logger_stdout_level=1",
            "ieee8021x=1", "eapol_version=2", "eap_reauth_period=0", "use_pae_group_addr=1",
            "eap_server=1", f"eap_user_file={users}", f"ca_cert={pki('root.pem')}",
            f"server_cert={chain}", f"private_key={pki('radius.key')}",
            "fragment_size=1024", "tls_flags=[DISABLE-TLSv1.3]", ""]))
    sconf = os.path.join(work, f"{name}-wpa_supplicant.conf")
    net = tls_network()
    with open(sconf, "w") as f:
        f.write("ap_scan=0\neapol_version=2\nnetwork={\n"
                + "".join(f"\t{k}={v}\n" for k, v in net.items() if k != "key_mgmt")
                + "\tkey_mgmt=IEEE8021X\n}\n")
    print(f"{name}:")
    cap = Capture("phone0", "ether proto 0x888e", out)
    try:
        ap = Daemon("hostapd", ["hostapd", "-d", hconf], os.path.join(work, f"{name}-hostapd.log"),
                    ready="AP-ENABLED")
        try:
            sup = Daemon("wpa_supplicant", ["wpa_supplicant", "-D", "wired", "-i", "phone0", "-c", sconf, "-d"],
                         os.path.join(work, f"{name}-wpa_supplicant.log"))
            try:
                got = sup.wait_for(["CTRL-EVENT-EAP-SUCCESS", "CTRL-EVENT-EAP-FAILURE"], 30)
                time.sleep(0.5)
            finally:
                sup.stop()
        finally:
            ap.stop()
    finally:
        cap.stop()
        run("ip", "link", "del", "sw-port1")
    print(f"  wpa_supplicant -D wired -> hostapd -D wired sending {' + '.join(chain_parts)}: {got}")
    for line in open(os.path.join(work, f"{name}-wpa_supplicant.log"), errors="replace"):
        if "CTRL-EVENT-EAP-TLS-CERT-ERROR" in line:
            print("  supplicant: " + line.strip())
    if got is None:
        sys.exit(f"{name}: no EAP result; logs in {work}")
    return out


def eapol_wired_leaf_only(work):
    wired_capture(work, "eapol-wired-leaf-only", ["radius.pem"])


def eapol_wired_full_chain(work):
    wired_capture(work, "eapol-wired-full-chain", ["radius.pem", "issuing.pem"])


# --- report -----------------------------------------------------------------------------------

def tshark(pcap, fields, dfilter=None, extra=()):
    args = ["tshark", "-r", pcap, "-T", "fields", "-E", "separator=\t", "-E", "occurrence=a",
            "-E", "aggregator=,", *extra]
    if dfilter:
        args += ["-Y", dfilter]
    for fld in fields:
        args += ["-e", fld]
    p = subprocess.run(args, capture_output=True, text=True, check=True)
    return [line.split("\t") for line in p.stdout.splitlines()]


def report():
    import hashlib
    for name in CAPTURES:
        pcap = os.path.join(HERE, f"{name}.pcap")
        if not os.path.exists(pcap):
            continue
        info = subprocess.run(["capinfos", "-M", "-c", "-E", "-T", "-r", pcap], capture_output=True,
                              text=True).stdout.strip().splitlines()[-1].split("\t")
        print(f"## {name}.pcap: {info[1]}, {info[2]} frames, {os.path.getsize(pcap)} bytes")
        fields = ["frame.number", "eapol.type", "radius.code", "radius.id", "eap.code", "eap.id",
                  "eap.type", "eap.identity", "eap.tls.flags", "eap.tls.len", "eap.tls.fragment",
                  "tls.handshake.type", "tls.alert_message.desc"]
        print("  " + "\t".join(fields))
        for r in tshark(pcap, fields, "eapol or eap or radius"):
            print("  " + "\t".join(v or "-" for v in r))
        for r in tshark(pcap, ["frame.number", "tls.handshake.certificate"], "tls.handshake.type == 11"):
            print(f"  Certificate in frame {r[0]}:")
            for der in r[1].split(","):
                raw = bytes.fromhex(der.replace(":", ""))
                subj = subprocess.run(["openssl", "x509", "-inform", "DER", "-noout", "-subject",
                                       "-nameopt", "RFC2253"], input=raw, capture_output=True).stdout
                print(f"    {subj.decode().strip()}  sha256={hashlib.sha256(raw).hexdigest()}")


STEPS = {
    "eap-radius-leaf-only": eap_radius_leaf_only,
    "eap-radius-full-chain": eap_radius_full_chain,
    "eap-peap-radius": eap_peap_radius,
    "eap-ttls-radius": eap_ttls_radius,
    "eapol-wired-leaf-only": eapol_wired_leaf_only,
    "eapol-wired-full-chain": eapol_wired_full_chain,
}


def main():
    only = sys.argv[1:] or list(STEPS) + ["eap-report"]
    unknown = [s for s in only if s not in STEPS and s != "eap-report"]
    if unknown:
        sys.exit(f"unknown step(s) {unknown}; steps: {', '.join(STEPS)}, eap-report")
    if any(s in STEPS for s in only):
        if os.geteuid() != 0:
            sys.exit("run as root inside a private network namespace: unshare -n python3 captures/record-eap.py")
        run("ip", "link", "set", "lo", "up")
        for a in (RADIUS, NAS):
            subprocess.run(["ip", "addr", "add", f"{a}/32", "dev", "lo"], stderr=subprocess.DEVNULL)
        work = tempfile.mkdtemp(prefix="record-eap.")
        if not os.path.exists(pki("radius.key")):
            make_pki(work)
        chain_file(PKI, "phone-0011+issuing.tmp.pem", ["phone-0011.pem", "issuing.pem"])
        try:
            for s in only:
                if s in STEPS:
                    STEPS[s](work)
        finally:
            os.remove(pki("phone-0011+issuing.tmp.pem"))
        if not os.environ.get("KEEP_LOGS"):
            shutil.rmtree(work)
        else:
            print(f"logs kept in {work}")
    if "eap-report" in only:
        report()


if __name__ == "__main__":
    main()
