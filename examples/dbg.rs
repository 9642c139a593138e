use chainsniff::capture::read_capture;
use chainsniff::decode::{Decoded, decode};
fn main() {
    let p = std::env::args().nth(1).unwrap();
    let max: u64 = std::env::args().nth(2).unwrap().parse().unwrap();
    read_capture(&p, |f| {
        if f.number > max {
            return;
        }
        match decode(f.linktype, f.data) {
            Ok(Decoded::Tcp(s)) => println!(
                "{} {}:{} -> {}:{} seq={} ack={} {:?} len={}",
                f.number,
                s.src,
                s.sport,
                s.dst,
                s.dport,
                s.seq,
                s.ack,
                s.flags,
                s.payload.len()
            ),
            other => println!("{} {:?}", f.number, other.map(|_| ())),
        }
    })
    .unwrap();
}
#[allow(dead_code)]
fn x() {}
