//! Certificate chain diagnosis on arbitrary "certificates": the input is a list of 16-bit
//! length-prefixed DER blobs, as a server would send them; the first byte picks the SNI case.
#![no_main]

use chainsniff::pki::{CertStore, TrustStore};
use chainsniff::pki::Checker;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, mut rest)) = data.split_first() else {
        return;
    };
    let mut store = CertStore::default();
    let mut sent = Vec::new();
    while rest.len() >= 2 && sent.len() < 64 {
        let len = u16::from_be_bytes([rest[0], rest[1]]) as usize;
        rest = &rest[2..];
        let der = &rest[..len.min(rest.len())];
        rest = &rest[der.len()..];
        sent.push(store.add(der, None));
    }
    if sent.is_empty() {
        return;
    }
    let trust = TrustStore::new(false);
    let mut checker = Checker::new(&store, &trust);
    let sni = match pick % 3 {
        0 => None,
        1 => Some("lyncweb.contoso.com"),
        _ => Some("*.example"),
    };
    let d = checker.diagnose(&sent, 1_790_000_000, sni);
    assert!(d.path.len() <= sent.len() + 16);
});
