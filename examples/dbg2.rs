fn main() {
    let p = std::env::args().nth(1).unwrap();
    let (r, hs) = chainsniff::analysis::analyze_capture(&p).unwrap();
    println!("{:?}", r.tcp_connections);
    for h in hs {
        println!(
            "stream {} ch {:?} cert {:?} events {:?}",
            h.stream,
            h.client_hellos
                .iter()
                .map(|c| c.at.frame)
                .collect::<Vec<_>>(),
            h.certificate.as_ref().map(|c| c.at.frame),
            h.events
                .iter()
                .map(|e| (e.at.frame, format!("{:?}", e.kind)))
                .take(6)
                .collect::<Vec<_>>()
        );
    }
}
