//! A SPDY/3.1 frame codec with no I/O: the framing that `kubectl port-forward` and
//! `kubectl exec` (client-go over moby/spdystream) speak to the Kubernetes API server, either
//! after an HTTP `Upgrade: SPDY/3.1` or inside the binary messages of a WebSocket tunnel.
//!
//! [`Decoder`] turns bytes, split anywhere, into [`Frame`]s; [`Encoder`] turns frames into
//! bytes. Each owns the zlib context of one direction of a connection (header blocks are
//! compressed with the SPDY/3 [`DICTIONARY`] as one stream per direction), so a connection
//! needs exactly one of each, on both the client and the server side. Stream state (who opened
//! what, half-close, replies) belongs to the caller: this crate only frames.
//!
//! Flow control: SPDY/3.1 defines WINDOW_UPDATE, but spdystream (kubectl's and the kubelet's
//! implementation) neither sends it nor enforces windows; both frames are decoded so a peer can
//! accept and ignore them.

mod dictionary;
mod frame;
mod headers;
mod zlib;

pub use dictionary::DICTIONARY;
pub use frame::{
    DecodeError, Decoder, EncodeError, Encoder, Frame, MAX_FRAME_LENGTH, Setting, VERSION,
    encode_data_header,
};
pub use headers::HeaderBlock;

/// RST_STREAM status codes (SPDY/3 section 2.6.3).
pub mod rst {
    pub const PROTOCOL_ERROR: u32 = 1;
    pub const INVALID_STREAM: u32 = 2;
    pub const REFUSED_STREAM: u32 = 3;
    pub const UNSUPPORTED_VERSION: u32 = 4;
    pub const CANCEL: u32 = 5;
    pub const INTERNAL_ERROR: u32 = 6;
    pub const FLOW_CONTROL_ERROR: u32 = 7;
    pub const STREAM_IN_USE: u32 = 8;
    pub const STREAM_ALREADY_CLOSED: u32 = 9;
}

/// GOAWAY status codes (SPDY/3 section 2.6.6).
pub mod goaway {
    pub const OK: u32 = 0;
    pub const PROTOCOL_ERROR: u32 = 1;
    pub const INTERNAL_ERROR: u32 = 2;
}
