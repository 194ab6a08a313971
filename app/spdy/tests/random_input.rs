//! The decoder under random and mutated input, the stand-in for the cargo-fuzz target
//! (`fuzz/`) where no nightly toolchain with cargo-fuzz is at hand. Runs for
//! `SPDY_FUZZ_SECS` seconds (default 1) and prints how many inputs it tried.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use spdy::{Decoder, Encoder, Frame, HeaderBlock};

/// xorshift64*: deterministic, seedable, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// A valid connection prefix: SYN_STREAMs with headers, data, pings, settings.
fn valid_wire() -> Vec<u8> {
    let mut e = Encoder::new().expect("encoder");
    let mut out = BytesMut::new();
    for id in [1u32, 3, 5] {
        let headers = HeaderBlock::new()
            .with("streamtype", if id == 1 { "error" } else { "data" })
            .with("port", "8080")
            .with("requestid", "0");
        let frames = [
            Frame::SynStream {
                stream_id: id,
                associated_to: 0,
                priority: 0,
                fin: id == 1,
                unidirectional: false,
                headers,
            },
            Frame::Data {
                stream_id: id,
                fin: false,
                data: Bytes::from_static(b"GET / HTTP/1.1\r\n\r\n"),
            },
            Frame::Ping { id },
            Frame::WindowUpdate {
                stream_id: id,
                delta: 65536,
            },
        ];
        for f in &frames {
            e.encode(f, &mut out).expect("encodes");
        }
    }
    out.to_vec()
}

fn decode_split(input: &[u8], cut: usize) -> usize {
    let mut d = Decoder::with_max_length(1 << 20);
    let mut buf = BytesMut::new();
    let mut frames = 0;
    for part in [&input[..cut], &input[cut..]] {
        buf.extend_from_slice(part);
        while let Ok(Some(_)) = d.decode(&mut buf) {
            frames += 1;
        }
    }
    frames
}

#[test]
fn random_and_mutated_input_never_panics_the_decoder() {
    let secs: u64 = std::env::var("SPDY_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let valid = valid_wire();
    assert!(
        decode_split(&valid, valid.len() / 2) >= 12,
        "the seed decodes"
    );
    let mut rng = Rng(0x005e_ed0f_5bd1);
    let start = Instant::now();
    let mut runs = 0u64;
    let mut input = Vec::new();
    while start.elapsed() < Duration::from_secs(secs) {
        input.clear();
        if runs.is_multiple_of(4) {
            let len = rng.below(512);
            input.extend((0..len).map(|_| rng.next() as u8));
        } else {
            input.extend_from_slice(&valid);
            for _ in 0..=rng.below(8) {
                let at = rng.below(input.len());
                match rng.below(4) {
                    0 => input[at] ^= 1 << rng.below(8),
                    1 => input[at] = rng.next() as u8,
                    2 => input.truncate(at),
                    _ => input.insert(at, rng.next() as u8),
                }
                if input.is_empty() {
                    break;
                }
            }
        }
        let cut = rng.below(input.len() + 1);
        decode_split(&input, cut);
        runs += 1;
    }
    eprintln!("decoded {runs} random or mutated inputs in {secs} s without a panic");
    assert!(runs > 0);
}
