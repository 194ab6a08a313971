//! Feeds arbitrary bytes, split at an arbitrary point, to one decoder: it must return frames
//! or an error, never panic, loop or allocate beyond its frame limit.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let Some((&cut, data)) = input.split_first() else {
        return;
    };
    let cut = usize::from(cut).min(data.len());
    let mut decoder = spdy::Decoder::with_max_length(1 << 20);
    let mut buf = BytesMut::new();
    for part in [&data[..cut], &data[cut..]] {
        buf.extend_from_slice(part);
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(_)) => continue,
                Ok(None) | Err(_) => break,
            }
        }
    }
});
