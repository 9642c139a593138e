//! The report as evidence for a ticket: certificates exported and verified with OpenSSL,
//! Wireshark filters and fixes per finding, client fingerprints, filters, the HTML report
//! rendered by a real browser.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{chainsniff, chromium, headless, pki_sha, repo, repo_path, tmp};

/// The DER of each PEM block in a file, in order.
fn pem_blocks(path: &Path) -> Vec<Vec<u8>> {
    let data = std::fs::read(path).unwrap();
    x509_parser::pem::Pem::iter_from_buffer(&data)
        .map(|p| p.unwrap().contents)
        .collect()
}

fn sha(der: &[u8]) -> String {
    hex::encode(chainsniff::pki::sha256(der))
}

/// `openssl verify` of a bundle's first certificate with the rest as untrusted intermediates.
fn openssl_verify(bundle: &Path) -> Output {
    Command::new("openssl")
        .args([
            "verify",
            "-CAfile",
            &repo_path("captures/pki/root.pem"),
            "-untrusted",
        ])
        .arg(bundle)
        .arg(bundle)
        .output()
        .expect("openssl is needed for this test (.ci/run installs it)")
}

#[test]
fn exported_bundle_verifies_with_openssl_against_the_root() {
    let dir = tmp("export-before");
    let out = chainsniff(&[
        "analyze",
        &repo_path("captures/lync-vip-before.pcapng"),
        "--trust",
        &repo_path("captures/pki/root.pem"),
        "--export-certs",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (leaf, issuing) = (pki_sha("leaf"), pki_sha("issuing"));

    // Every distinct certificate sent, named by SHA-256 prefix and subject.
    for (sha, name) in [
        (&leaf, "CN_lyncpool.contoso.test"),
        (&issuing, "CN_Contoso_Issuing_CA_01"),
    ] {
        let file = dir.join(format!("{}_{name}.pem", &sha[..16]));
        assert_eq!(
            pem_blocks(&file)
                .iter()
                .map(|d| self::sha(d))
                .collect::<Vec<_>>(),
            std::slice::from_ref(sha)
        );
    }
    // Each variant in the order sent: the VIP's leaf-only chain A, the full chain B.
    let chain = |v: &str| {
        pem_blocks(&dir.join(format!(
            "chain-lyncpool.contoso.test_127.0.0.10_443-{v}.pem"
        )))
        .iter()
        .map(|d| sha(d))
        .collect::<Vec<_>>()
    };
    assert_eq!(chain("A"), std::slice::from_ref(&leaf));
    assert_eq!(chain("B"), [leaf.clone(), issuing.clone()]);

    // The bundle the VIP should send: leaf + intermediate, no root; OpenSSL agrees it verifies.
    let bundle = dir.join("bundle-lyncpool.contoso.test_127.0.0.10_443.pem");
    let shas: Vec<String> = pem_blocks(&bundle).iter().map(|d| sha(d)).collect();
    assert_eq!(shas, [leaf.clone(), issuing.clone()]);
    let v = openssl_verify(&bundle);
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stderr));
    assert!(String::from_utf8_lossy(&v.stdout).ends_with(": OK\n"));
    // The leaf alone (what the VIP sent) does not.
    let leaf_only = dir.join("chain-lyncpool.contoso.test_127.0.0.10_443-A.pem");
    assert!(!openssl_verify(&leaf_only).status.success());
}

#[test]
fn the_fixed_balancer_bundle_drops_the_duplicate_leaf_and_the_root() {
    let dir = tmp("export-fixed");
    let out = chainsniff(&[
        "analyze",
        &repo_path("captures/lync-vip-fixed.pcap"),
        "--trust",
        &repo_path("captures/pki/root.pem"),
        "--export-certs",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0));
    let sent: Vec<String> =
        pem_blocks(&dir.join("chain-lyncpool.contoso.test_127.0.0.10_443-A.pem"))
            .iter()
            .map(|d| sha(d))
            .collect();
    let (leaf, issuing, root) = (pki_sha("leaf"), pki_sha("issuing"), pki_sha("root"));
    assert_eq!(sent, [leaf.clone(), leaf.clone(), issuing.clone(), root]);
    let bundle = dir.join("bundle-lyncpool.contoso.test_127.0.0.10_443.pem");
    let shas: Vec<String> = pem_blocks(&bundle).iter().map(|d| sha(d)).collect();
    assert_eq!(shas, [leaf, issuing]);
    assert!(openssl_verify(&bundle).status.success());
}

fn phones() -> chainsniff::Report {
    let opts = chainsniff::Options {
        trust: vec![common::repo("captures/pki/root.pem")],
        ..Default::default()
    };
    chainsniff::run(&[repo_path("captures/lync-vip-phones.pcap")], &opts).unwrap()
}

#[test]
fn clients_are_named_by_mac_vendor_dhcp_and_dns() {
    let r = phones();
    let ips: Vec<String> = r.clients.iter().map(|c| c.ip.to_string()).collect();
    assert_eq!(
        ips,
        [
            "127.0.1.11",
            "127.0.1.12",
            "127.0.1.13",
            "127.0.1.14",
            "127.0.1.21"
        ]
    );
    let phone = &r.clients.get(0).identity;
    assert_eq!(phone.mac.as_deref(), Some("00:04:f2:c3:00:11"));
    assert_eq!(phone.vendor.as_deref(), Some("Polycom"));
    let dhcp = phone.dhcp.as_ref().unwrap();
    assert_eq!(dhcp.hostname.as_deref(), Some("CX3000-11"));
    assert_eq!(dhcp.vendor_class.as_deref(), Some("MS-UC-Client"));
    // The DHCPINFORM of the field report: options 43 and 120, frame 3.
    assert_eq!(dhcp.requested_options, [1, 3, 6, 15, 43, 120]);
    assert_eq!(dhcp.frame, 3);
    assert_eq!(phone.dns_names, ["cx3000-11.contoso.test"]);

    let pc = &r.clients.get(4).identity;
    assert_eq!(pc.mac.as_deref(), Some("00:14:22:0a:d0:21"));
    assert_eq!(pc.vendor.as_deref(), Some("Dell Inc."));
    let dhcp = pc.dhcp.as_ref().unwrap();
    assert_eq!(dhcp.hostname.as_deref(), Some("WS-ADMIN01"));
    assert_eq!(dhcp.vendor_class.as_deref(), Some("MSFT 5.0"));
    assert_eq!(dhcp.frame, 13);

    // Every client ran the same OpenSSL: one JA3, one JA4.
    for c in r.clients.iter() {
        assert_eq!(c.ja3, ["70e47b149c152d891341c87d58c2b327"]);
        assert_eq!(c.ja4, ["t12d150700_d68b136fe8d9_e7e480e5a997"]);
    }
    let vip = &r.servers[0];
    assert_eq!(vip.server.to_string(), "127.0.0.10:443");
    assert_eq!(vip.identity.dns_names, ["lyncpool.contoso.test"]);
    assert_eq!(vip.identity.vendor.as_deref(), Some("Cisco Systems, Inc"));
}

#[test]
fn findings_name_their_frame_filter_fix_and_the_aia_fetch() {
    let r = phones();
    assert_eq!(
        r.summary.headlines[0],
        "missing intermediate O=Contoso, CN=Contoso Issuing CA 01: 1 chain of lyncpool.contoso.test (127.0.0.10:443), which sends other clients another chain; 3 clients (2 Polycom (MS-UC-Client): CX3000-11, CX3000-12; 1 Dell Inc. (MSFT 5.0): WS-ADMIN01): 2 failed (alert unknown_ca, first in frame 37), 1 went on. Fix: Send the full chain: the leaf, then each intermediate. Install bundle-lyncpool.contoso.test_127.0.0.10_443.pem (--export-certs DIR)."
    );
    // Why the admin's own test worked: the client that fetched the issuer went on.
    let coping = r.summary.causes[0].coping.as_deref().unwrap();
    assert!(
        coping.ends_with("In this capture 1 client went on (127.0.1.21 fetched it in frame 25)."),
        "{coping}"
    );
    let vip = &r.servers[0];
    let inconsistent = &vip.findings[0];
    assert_eq!(inconsistent.kind.as_str(), "inconsistent_chains");
    assert_eq!(inconsistent.frame, Some(53));
    assert_eq!(
        inconsistent.filter.as_deref(),
        Some("tcp.stream in {1,2,3,4,6}")
    );

    let a = &vip.variants[0];
    assert_eq!(a.id, "A");
    let missing = &a.findings[0];
    assert_eq!(missing.kind.as_str(), "missing_intermediate");
    assert_eq!(missing.frame, Some(35));
    assert_eq!(missing.filter.as_deref(), Some("tcp.stream in {1,2,4,6}"));
    assert!(missing.fix.contains("chain group"));
    assert_eq!(
        missing.aia.as_ref().unwrap().ca_issuers,
        ["http://pki.contoso.test/issuing-ca.crt"]
    );
    let fetches: Vec<(String, u64)> = missing
        .aia
        .as_ref()
        .unwrap()
        .aia_fetches
        .iter()
        .map(|g| (g.client.to_string(), g.frame))
        .collect();
    assert_eq!(fetches, [("127.0.1.21".to_string(), 25)]);

    // The same finding on one handshake points at its own stream.
    let h = &r.handshakes.get(a.clients.get(0).handshake);
    assert_eq!(h.filter, "tcp.stream == 1");
    assert_eq!(h.findings[0].frame, Some(35));
    assert_eq!(h.findings[0].filter.as_deref(), Some("tcp.stream == 1"));
}

/// The facts someone who never saw the capture needs, in every format for people.
const STORY: &[&str] = &[
    "missing intermediate O=Contoso, CN=Contoso Issuing CA 01",
    "lyncpool.contoso.test (127.0.0.10:443)",
    "CN=Contoso Issuing CA 01",
    "NOT SENT",
    "CX3000-11",
    "Polycom",
    "MS-UC-Client",
    "WS-ADMIN01",
    "unknown_ca",
    "tcp.stream in {1,2,4,6}",
    "http://pki.contoso.test/issuing-ca.crt",
    "127.0.1.21 fetched it in frame 25",
    "chain group",
    "t12d150700_d68b136fe8d9_e7e480e5a997",
];

fn report(format: &str) -> String {
    let out = chainsniff(&[
        "analyze",
        &repo_path("captures/lync-vip-phones.pcap"),
        "--trust",
        &repo_path("captures/pki/root.pem"),
        "--format",
        format,
    ]);
    assert_eq!(out.status.code(), Some(0));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn text_and_markdown_tell_the_whole_story() {
    for format in ["text", "markdown"] {
        let page = report(format);
        // Markdown escapes `_` and `*`; text wraps lines.
        let page = page.replace('\\', "");
        let page = page.split_whitespace().collect::<Vec<_>>().join(" ");
        for fact in STORY {
            assert!(page.contains(fact), "{format} report lacks {fact:?}");
        }
    }
}

#[test]
fn html_report_renders_in_a_headless_browser() {
    let html = report("html");
    // Self-contained: nothing fetched, one script (ours).
    for outside in ["http-equiv", "<link", "src=", "@import", "url("] {
        assert!(
            !html.contains(outside),
            "the page refers outside itself: {outside}"
        );
    }
    assert_eq!(html.matches("<script").count(), 1);
    let page = tmp("report.html");
    std::fs::write(&page, &html).unwrap();
    let Some(browser) = chromium() else { return };

    let out = headless(&browser, &["--dump-dom"], &page);
    let dom = String::from_utf8_lossy(&out.stdout);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    // The page's script ran to its end, and the console shows no error.
    assert!(
        dom.contains("data-ready=\"1\""),
        "script did not run:\n{log}"
    );
    for bad in ["Uncaught", "SyntaxError", "TypeError", "ReferenceError"] {
        assert!(!log.contains(bad), "console error in the page:\n{log}");
    }
    // The facts as the browser rendered them (markup removed, entities decoded).
    let mut text = String::new();
    let mut in_tag = false;
    for c in dom.chars() {
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                text.push(' ');
            }
            _ if !in_tag => text.push(c),
            _ => {}
        }
    }
    let text = text
        .replace("&amp;", "&")
        .replace("&lt;", "<")
        .replace("&gt;", ">");
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    for fact in STORY {
        assert!(text.contains(fact), "the rendered page lacks {fact:?}");
    }
    // The missing link is drawn as such, between the leaf and the root.
    let missing = dom
        .find("class=\"missing\"")
        .expect("no missing link drawn");
    let leaf = dom.find("sent by the server as #0").unwrap();
    let anchor = dom.find("trust anchor (not sent").unwrap();
    assert!(leaf < missing && missing < anchor);

    // At phone width nothing is off-screen to the right: the handshake rows stack, with the
    // client's reaction in them.
    let narrow = headless(&browser, &["--window-size=420,900", "--dump-dom"], &page);
    let dom = String::from_utf8_lossy(&narrow.stdout);
    assert!(dom.contains("data-ready=\"1\""));
    assert!(
        dom.contains("data-overflow=\"0\""),
        "wider than 420 px: {}",
        dom.split("data-overflow=")
            .nth(1)
            .unwrap_or("?")
            .chars()
            .take(12)
            .collect::<String>()
    );
    assert!(dom.contains("data-label=\"Client's reaction\""));
    // The server with the incomplete chain has its handshakes over time drawn.
    assert!(dom.contains("class=\"timeline-chart\"") && dom.contains("class=\"invalid\""));

    // A screenshot for a person to look at, in the temporary directory (never the tree).
    let shot = tmp("html-report.png");
    let out = headless(
        &browser,
        &[
            "--window-size=1280,2400",
            &format!("--screenshot={}", shot.display()),
        ],
        &page,
    );
    assert!(out.status.success());
    assert!(std::fs::metadata(&shot).unwrap().len() > 50_000);
    eprintln!("screenshot: {}", shot.display());
}

/// The JSON report on the phones capture, with these options too.
fn json(args: &[&str]) -> serde_json::Value {
    let (capture, root) = (
        repo_path("captures/lync-vip-phones.pcap"),
        repo_path("captures/pki/root.pem"),
    );
    let mut all = vec!["analyze", &capture, "--trust", &root, "--format", "json"];
    all.extend_from_slice(args);
    let out = chainsniff(&all);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn client_server_and_sni_filters_combine() {
    let r = json(&[
        "--client",
        "127.0.1.0/28",
        "--server",
        "127.0.0.10:443",
        "--sni",
        "*.CONTOSO.test",
    ]);
    let clients: Vec<&str> = r["handshakes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["client"]["ip"].as_str().unwrap())
        .collect();
    // 127.0.1.21 is outside the range; 127.0.1.14 talked to the front end.
    assert_eq!(
        clients,
        ["127.0.1.11", "127.0.1.12", "127.0.1.13", "127.0.1.11"]
    );
    assert_eq!(r["summary"]["filtered_out"], 2);

    // One phone only: its chain is still judged with every certificate of the capture, so the
    // missing intermediate is found where another client got it.
    let r = json(&["--client", "127.0.1.12"]);
    assert_eq!(r["summary"]["handshakes"], 1);
    let h = &r["handshakes"][0];
    assert_eq!(h["status"], "incomplete");
    assert_eq!(h["path"][1]["source"], "capture");
    assert_eq!(h["path"][1]["frame"], 53);

    let r = json(&["--sni", "nothing.example"]);
    assert_eq!(r["summary"]["handshakes"], 0);
    assert_eq!(r["summary"]["filtered_out"], 6);

    let bad = chainsniff(&[
        "analyze",
        &repo_path("captures/lync-vip-phones.pcap"),
        "--client",
        "10.0.0.300",
    ]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--client"));
}

#[test]
fn group_by_vendor_and_fingerprint() {
    let r = json(&["--group-by", "vendor"]);
    assert_eq!(r["groups"]["by"], "vendor");
    let groups = r["groups"]["groups"].as_array().unwrap();
    let summary: Vec<(String, usize, u64, u64, u64)> = groups
        .iter()
        .map(|g| {
            (
                g["key"].as_str().unwrap().to_string(),
                g["clients"].as_array().unwrap().len(),
                g["faulty_chain"].as_u64().unwrap(),
                g["aborted"].as_u64().unwrap(),
                g["went_on"].as_u64().unwrap(),
            )
        })
        .collect();
    // The story in two lines: the Lync phones abort, the PC (which fetches AIA) goes on.
    assert_eq!(
        summary,
        [
            (
                "Polycom, DHCP vendor class MS-UC-Client".to_string(),
                4,
                3,
                3,
                2
            ),
            (
                "Dell Inc., DHCP vendor class MSFT 5.0".to_string(),
                1,
                1,
                0,
                1
            ),
        ]
    );

    let r = json(&["--group-by", "fingerprint"]);
    let groups = r["groups"]["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0]["key"], "t12d150700_d68b136fe8d9_e7e480e5a997");
    assert_eq!(groups[0]["detail"], "JA3 70e47b149c152d891341c87d58c2b327");
    assert_eq!(groups[0]["handshakes"].as_array().unwrap().len(), 6);

    let text = String::from_utf8(
        chainsniff(&[
            "analyze",
            &repo_path("captures/lync-vip-phones.pcap"),
            "--group-by",
            "client",
        ])
        .stdout,
    )
    .unwrap();
    assert!(
        text.contains("BY CLIENT\n  * 127.0.1.11: 1 client, 2 handshakes"),
        "{text}"
    );
}

#[test]
fn colors_only_when_asked_or_in_a_terminal_and_quiet_is_quiet() {
    let capture = repo_path("captures/lync-vip-phones.pcap");
    let root = repo_path("captures/pki/root.pem");
    let run = |extra: &[&str]| {
        let mut args = vec!["analyze", capture.as_str(), "--trust", root.as_str()];
        args.extend_from_slice(extra);
        chainsniff(&args)
    };
    let always = String::from_utf8(run(&["--color", "always"]).stdout).unwrap();
    assert!(always.contains("\x1b[1;31mNOT SENT\x1b[0m"));
    assert!(always.contains("\x1b[1;31mrejected it\x1b[0m"));
    // Not a terminal: no colors by default.
    assert!(!String::from_utf8(run(&[]).stdout).unwrap().contains('\x1b'));
    assert!(
        !String::from_utf8(run(&["--color", "never"]).stdout)
            .unwrap()
            .contains('\x1b')
    );

    // A cut capture warns on standard error, unless --quiet.
    let data = std::fs::read(repo("captures/lync-vip-phones.pcap")).unwrap();
    let cut = tmp("phones-cut.pcap");
    std::fs::write(&cut, &data[..data.len() - 100]).unwrap();
    let warned = chainsniff(&["analyze", cut.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&warned.stderr).contains("warning"));
    let quiet = chainsniff(&["analyze", "-q", cut.to_str().unwrap()]);
    assert_eq!(quiet.status.code(), Some(0));
    assert!(
        quiet.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&quiet.stderr)
    );
    assert!(String::from_utf8_lossy(&quiet.stdout).contains("TRUNCATED"));
}
