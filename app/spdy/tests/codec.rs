//! The codec against C zlib's output (a third implementation, so that Encoder and Decoder do
//! not only agree with each other), bytes split at every offset, and random frame sequences.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use spdy::{DICTIONARY, Decoder, Encoder, Frame, HeaderBlock, Setting};

/// Two SYN_STREAMs as kubectl opens a port-forward (error stream with FIN, then data),
/// compressed by C zlib 1.x (Python's `zlib.compressobj(9, zdict=DICTIONARY)` with a sync
/// flush per block), one zlib stream for both: the second block refers back to the first.
const KUBECTL_LIKE: &[u8] = &[
    0x80, 0x03, 0x00, 0x01, 0x01, 0x00, 0x00, 0x3d, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x78, 0xf9, 0xe3, 0xc6, 0xa7, 0xc2, 0x02, 0x25, 0x3a, 0x48, 0xf9, 0x5b, 0x04, 0x4e,
    0xea, 0x16, 0x06, 0x16, 0x06, 0x40, 0x9a, 0xb3, 0x08, 0x12, 0x5f, 0x99, 0xa0, 0x74, 0xcc, 0x68,
    0x00, 0x4e, 0x89, 0x25, 0x45, 0xa9, 0x89, 0xb9, 0xd0, 0xc2, 0x86, 0x35, 0x15, 0x14, 0x15, 0x00,
    0x00, 0x00, 0x00, 0xff, 0xff, 0x80, 0x03, 0x00, 0x01, 0x00, 0x00, 0x00, 0x16, 0x00, 0x00, 0x00,
    0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x22, 0x53, 0x33, 0xa8, 0xa4, 0x4a, 0x04, 0x00, 0x00,
    0x00, 0xff, 0xff,
];

fn expected_kubectl_like() -> Vec<Frame> {
    let headers = |ty: &str| {
        HeaderBlock::new()
            .with("port", "8080")
            .with("requestid", "0")
            .with("streamtype", ty)
    };
    vec![
        Frame::SynStream {
            stream_id: 1,
            associated_to: 0,
            priority: 0,
            fin: true,
            unidirectional: false,
            headers: headers("error"),
        },
        Frame::SynStream {
            stream_id: 3,
            associated_to: 0,
            priority: 0,
            fin: false,
            unidirectional: false,
            headers: headers("data"),
        },
    ]
}

fn decode_all(decoder: &mut Decoder, chunks: &[&[u8]]) -> Vec<Frame> {
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        while let Some(frame) = decoder.decode(&mut buf).expect("valid SPDY") {
            frames.push(frame);
        }
    }
    assert!(buf.is_empty(), "{} bytes left over", buf.len());
    frames
}

#[test]
fn the_dictionary_is_spdy3s() {
    // The Adler-32 a SPDY/3 peer puts in its zlib header (FDICT) and checks on ours.
    assert_eq!(DICTIONARY.len(), 1423);
    let (mut a, mut b) = (1u32, 0u32);
    for &byte in DICTIONARY {
        a = (a + u32::from(byte)) % 65521;
        b = (b + a) % 65521;
    }
    assert_eq!(b << 16 | a, 0xe3c6_a7c2);
}

#[test]
fn header_blocks_compressed_by_c_zlib_decode_split_at_every_offset() {
    for cut in 0..=KUBECTL_LIKE.len() {
        let mut d = Decoder::new();
        let (a, b) = KUBECTL_LIKE.split_at(cut);
        assert_eq!(
            decode_all(&mut d, &[a, b]),
            expected_kubectl_like(),
            "cut {cut}"
        );
    }
    let mut d = Decoder::new();
    let bytes: Vec<&[u8]> = KUBECTL_LIKE.chunks(1).collect();
    assert_eq!(decode_all(&mut d, &bytes), expected_kubectl_like());
}

#[test]
fn our_header_blocks_start_with_the_dictionary_id() {
    let mut e = Encoder::new().unwrap();
    let mut out = BytesMut::new();
    e.encode(&expected_kubectl_like()[0], &mut out).unwrap();
    // 8 header + 10 fixed fields, then zlib: CMF, FLG with FDICT, DICTID.
    assert_eq!(out[18] & 0x0f, 8, "deflate");
    assert_ne!(out[19] & 0x20, 0, "FDICT set");
    assert_eq!(&out[20..24], &0xe3c6_a7c2u32.to_be_bytes());
    // And it ends in a sync flush, so the peer can read it on its own.
    assert_eq!(&out[out.len() - 4..], &[0, 0, 0xff, 0xff]);
}

#[test]
fn a_decoder_out_of_step_with_the_encoder_fails_cleanly() {
    // The second block alone refers to a context this decoder never saw.
    let second = &KUBECTL_LIKE[69..];
    let mut d = Decoder::new();
    let mut buf = BytesMut::from(second);
    assert!(d.decode(&mut buf).is_err());
}

#[test]
fn control_frames_of_the_wrong_length_are_refused() {
    // PING with 3 bytes, RST_STREAM with 4, SPDY/2 version.
    for bytes in [
        &[0x80, 3, 0, 6, 0, 0, 0, 3, 1, 2, 3][..],
        &[0x80, 3, 0, 3, 0, 0, 0, 4, 0, 0, 0, 1][..],
        &[0x80, 2, 0, 6, 0, 0, 0, 4, 0, 0, 0, 1][..],
        &[0x80, 3, 0, 3, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 1][..],
    ] {
        let mut buf = BytesMut::from(bytes);
        assert!(Decoder::new().decode(&mut buf).is_err(), "{bytes:?}");
    }
}

#[test]
fn oversized_frames_are_refused_before_buffering() {
    let mut d = Decoder::with_max_length(1024);
    let mut buf = BytesMut::from(&[0, 0, 0, 1, 0, 0, 0x10, 0][..]);
    assert!(d.decode(&mut buf).is_err());
}

fn arb_headers() -> impl Strategy<Value = HeaderBlock> {
    prop::collection::btree_map("[a-z][a-z0-9-]{0,12}", "[ -~]{0,40}", 0..6)
        .prop_map(|m| m.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect())
}

fn arb_frame() -> impl Strategy<Value = Frame> {
    let id = 1u32..0x7fff_ffff;
    prop_oneof![
        (
            id.clone(),
            any::<bool>(),
            prop::collection::vec(any::<u8>(), 0..300)
        )
            .prop_map(|(stream_id, fin, d)| Frame::Data {
                stream_id,
                fin,
                data: Bytes::from(d)
            }),
        (
            id.clone(),
            0u32..0x7fff_ffff,
            0u8..8,
            any::<bool>(),
            any::<bool>(),
            arb_headers()
        )
            .prop_map(
                |(stream_id, associated_to, priority, fin, unidirectional, headers)| {
                    Frame::SynStream {
                        stream_id,
                        associated_to,
                        priority,
                        fin,
                        unidirectional,
                        headers,
                    }
                }
            ),
        (id.clone(), any::<bool>(), arb_headers()).prop_map(|(stream_id, fin, headers)| {
            Frame::SynReply {
                stream_id,
                fin,
                headers,
            }
        }),
        (id.clone(), any::<bool>(), arb_headers()).prop_map(|(stream_id, fin, headers)| {
            Frame::Headers {
                stream_id,
                fin,
                headers,
            }
        }),
        (id.clone(), 1u32..12)
            .prop_map(|(stream_id, status)| Frame::RstStream { stream_id, status }),
        any::<u32>().prop_map(|id| Frame::Ping { id }),
        (0u32..0x7fff_ffff, 0u32..3).prop_map(|(last_good_stream_id, status)| Frame::GoAway {
            last_good_stream_id,
            status
        }),
        (0u32..0x7fff_ffff, 0u32..0x7fff_ffff)
            .prop_map(|(stream_id, delta)| Frame::WindowUpdate { stream_id, delta }),
        (
            any::<bool>(),
            prop::collection::vec((any::<u8>(), 0u32..0x0100_0000, any::<u32>()), 0..4)
        )
            .prop_map(|(clear, e)| Frame::Settings {
                clear,
                entries: e
                    .into_iter()
                    .map(|(flags, id, value)| Setting { flags, id, value })
                    .collect()
            }),
    ]
}

proptest! {
    #[test]
    fn any_frame_sequence_round_trips_split_anywhere(
        frames in prop::collection::vec(arb_frame(), 1..12),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
    ) {
        let mut e = Encoder::new().unwrap();
        let mut wire = BytesMut::new();
        for f in &frames {
            e.encode(f, &mut wire).unwrap();
        }
        let mut offsets: Vec<usize> = cuts.iter().map(|i| i.index(wire.len() + 1)).collect();
        offsets.sort_unstable();
        let mut chunks = Vec::new();
        let mut start = 0;
        for o in offsets {
            chunks.push(&wire[start..o]);
            start = o;
        }
        chunks.push(&wire[start..]);
        let mut d = Decoder::new();
        prop_assert_eq!(decode_all(&mut d, &chunks), frames);
    }

    #[test]
    fn random_bytes_never_panic_the_decoder(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        let mut d = Decoder::with_max_length(4096);
        let mut buf = BytesMut::from(&bytes[..]);
        while let Ok(Some(_)) = d.decode(&mut buf) {}
    }
}
