//! The first screen on a large capture: the root causes of a capture made by
//! `examples/gen-bench` (real conversations replayed among thousands of others), counted
//! against the generator's truth file, and every cause with its fix in the first 24 lines of
//! the text report.

mod common;

use std::path::Path;
use std::process::Command;

use common::{gen_bench, repo, tmp};

/// The report's root causes against the generator's truth: every cause with its counts and no
/// other, ranked by failing clients, the leaf-only chain's fix naming the bundles, and each
/// cause with its fix and client count in the first 24 lines of the text report.
fn check_causes(r: &chainsniff::Report, truth: &serde_json::Value) {
    // Every cause of the truth, with its counts, and no other.
    let causes = truth["causes"].as_object().unwrap();
    assert_eq!(
        r.summary.causes.len(),
        causes.len(),
        "{:#?}",
        r.summary.headlines
    );
    for c in &r.summary.causes {
        let t = &causes[c.kind.as_ref()];
        let n = |k: &str| t[k].as_u64().unwrap() as usize;
        assert_eq!(c.handshakes, n("handshakes"), "{}: handshakes", c.kind);
        assert_eq!(c.clients, n("clients"), "{}: clients", c.kind);
        assert_eq!(
            c.failed_clients,
            n("failed_clients"),
            "{}: failed clients",
            c.kind
        );
        if c.kind != "not_judged" {
            assert_eq!(c.chains, n("chains"), "{}: server chains", c.kind);
        }
        assert_eq!(
            c.mixed_servers,
            n("mixed_servers"),
            "{}: mixed servers",
            c.kind
        );
    }
    // Ranked by impact: the failing clients first; the leaf-only chain's fix names the
    // bundles to install.
    let first = &r.summary.causes[0];
    assert_eq!(first.kind, "missing_intermediate");
    assert!(first.failed_clients >= r.summary.causes[1].failed_clients);
    assert_eq!(first.bundles.len(), first.chains);

    // The first screen names each cause and its fix.
    let mut text = Vec::new();
    chainsniff::render::text::write(r, &mut text, &chainsniff::render::Style::default()).unwrap();
    let text = String::from_utf8(text).unwrap();
    let screen: String = text
        .lines()
        .take(24)
        .collect::<Vec<_>>()
        .join(" ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    for c in &r.summary.causes {
        let what: String = c.what.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(
            screen.contains(&what),
            "{what} in the first 24 lines:\n{text}"
        );
        let fix = format!("fix: {}", c.action);
        assert!(
            screen.contains(&fix),
            "{fix} in the first 24 lines:\n{text}"
        );
        let clients = format!("{} clients", c.clients);
        assert!(
            c.clients == 0 || screen.contains(&clients),
            "{clients} in the first 24 lines:\n{text}"
        );
    }
}

/// The page loads in Chromium (its script ran) at desktop and at phone width, is never wider
/// than the window, and draws its timelines; skipped with a notice without a browser.
fn in_the_browser(page: &Path) {
    let Some(browser) = common::chromium() else {
        return;
    };
    for width in ["1280,1000", "420,900"] {
        let out = common::headless(
            &browser,
            &[&format!("--window-size={width}"), "--dump-dom"],
            page,
        );
        let dom = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && dom.contains("data-ready=\"1\""),
            "{width}"
        );
        assert!(
            dom.contains("data-overflow=\"0\""),
            "{width}: wider than the window"
        );
        assert!(dom.contains("<rect "), "{width}: the timelines are drawn");
    }
}

#[test]
fn root_causes_of_a_generated_capture_match_its_truth() {
    let out = tmp("causes.pcap");
    let status = Command::new(gen_bench())
        .args(["--size", "12MiB", "--seed", "7", "--out"])
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    let truth: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{}.truth.json", out.display())).unwrap(),
    )
    .unwrap();
    let opts = chainsniff::Options {
        trust: vec![repo("captures/pki/root.pem")],
        ..Default::default()
    };
    let r = chainsniff::run(&[out.to_string_lossy().into_owned()], &opts).unwrap();
    assert_eq!(
        r.summary.handshakes as u64,
        truth["tls_handshakes"].as_u64().unwrap()
    );

    check_causes(&r, &truth);
    // The HTML page of the same capture: bounded in size (handshake lists cut at 500 rows per
    // chain), each server with problems has its timeline, and at phone width the page is not
    // wider than the window.
    let mut html = Vec::new();
    chainsniff::render::html::write(&r, &mut html, &chainsniff::render::Style::default()).unwrap();
    assert!(html.len() < 8 << 20, "{} bytes of HTML", html.len());
    let html = String::from_utf8(html).unwrap();
    assert_eq!(
        html.matches("<figure class=\"timeline-chart\">").count(),
        r.servers.len(),
        "every server here has a problem, so a timeline"
    );
    let page = tmp("causes.html");
    std::fs::write(&page, &html).unwrap();
    in_the_browser(&page);
    let _ = std::fs::remove_file(&out);
    let _ = std::fs::remove_file(format!("{}.truth.json", out.display()));
}

#[test]
fn the_page_of_25000_handshakes_stays_usable() {
    // Short conversations, so that 25,000 handshakes fit in about 200 MB: the issue's "a
    // generated capture of at least 200 MB with several root causes".
    let out = tmp("many.pcap");
    let status = Command::new(gen_bench())
        .args([
            "--size",
            "200MiB",
            "--mean-data",
            "300",
            "--seed",
            "11",
            "--out",
        ])
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    let opts = chainsniff::Options {
        trust: vec![repo("captures/pki/root.pem")],
        ..Default::default()
    };
    let r = chainsniff::run(&[out.to_string_lossy().into_owned()], &opts).unwrap();
    let truth: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{}.truth.json", out.display())).unwrap(),
    )
    .unwrap();
    assert!(truth["bytes"].as_u64().unwrap() >= 200_000_000);
    let _ = std::fs::remove_file(&out);
    let _ = std::fs::remove_file(format!("{}.truth.json", out.display()));
    assert!(r.summary.handshakes >= 25_000, "{}", r.summary.handshakes);
    // At this size too, the first screen names every root cause with true counts.
    check_causes(&r, &truth);

    // Bounded: 100 handshake rows per chain, 2,000 on the page, each list saying how many
    // more there are; every server with problems keeps its timeline.
    let mut html = Vec::new();
    chainsniff::render::html::write(&r, &mut html, &chainsniff::render::Style::default()).unwrap();
    assert!(html.len() < 4 << 20, "{} bytes of HTML", html.len());
    let html = String::from_utf8(html).unwrap();
    assert_eq!(html.matches("<tr class=\"hs\">").count(), 2000);
    assert!(html.contains("more handshakes with this chain (every one is in --format json)"));
    assert_eq!(
        html.matches("<figure class=\"timeline-chart\">").count(),
        r.servers.len()
    );
    let page = tmp("many.html");
    std::fs::write(&page, &html).unwrap();
    in_the_browser(&page);
    let _ = std::fs::remove_file(&page);
}
