//! SPDY/3.1 frames and their byte form.
//!
//! Control frame: `1 | version(15) | type(16) | flags(8) | length(24) | data`.
//! Data frame: `0 | stream-id(31) | flags(8) | length(24) | data`.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::headers::HeaderBlock;
use crate::zlib::{Deflater, Inflater};

/// The SPDY version this codec speaks (SPDY/3.1 frames carry version 3).
pub const VERSION: u16 = 3;
/// Largest payload a frame can carry (24-bit length).
pub const MAX_FRAME_LENGTH: usize = (1 << 24) - 1;

const HEADER_LEN: usize = 8;
const FLAG_FIN: u8 = 0x01;
const FLAG_UNIDIRECTIONAL: u8 = 0x02;
const FLAG_CLEAR_SETTINGS: u8 = 0x01;

const SYN_STREAM: u16 = 1;
const SYN_REPLY: u16 = 2;
const RST_STREAM: u16 = 3;
const SETTINGS: u16 = 4;
const PING: u16 = 6;
const GOAWAY: u16 = 7;
const HEADERS: u16 = 8;
const WINDOW_UPDATE: u16 = 9;

/// One SPDY/3.1 frame. Stream ids are 31-bit: clients open odd ids, servers even ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// Opens a stream. `fin`: the sender sends nothing more on it; `unidirectional`: the
    /// receiver must not send on it.
    SynStream {
        stream_id: u32,
        associated_to: u32,
        /// 0 (highest) to 7.
        priority: u8,
        fin: bool,
        unidirectional: bool,
        headers: HeaderBlock,
    },
    /// Accepts a stream the peer opened.
    SynReply {
        stream_id: u32,
        fin: bool,
        headers: HeaderBlock,
    },
    /// Ends a stream abnormally; `status` is one of [`crate::rst`].
    RstStream { stream_id: u32, status: u32 },
    /// Connection settings (spdystream reads and ignores them).
    Settings { clear: bool, entries: Vec<Setting> },
    /// A ping: the receiver echoes a ping whose id parity is not its own.
    Ping { id: u32 },
    /// The sender accepts no streams after `last_good_stream_id`; `status` is one of
    /// [`crate::goaway`].
    GoAway {
        last_good_stream_id: u32,
        status: u32,
    },
    /// More headers on an open stream.
    Headers {
        stream_id: u32,
        fin: bool,
        headers: HeaderBlock,
    },
    /// Grants the sender `delta` more bytes on a stream (0: the whole connection).
    WindowUpdate { stream_id: u32, delta: u32 },
    /// Stream bytes; `fin` half-closes the sender's side.
    Data {
        stream_id: u32,
        fin: bool,
        data: Bytes,
    },
    /// A control frame of a type this codec does not know (e.g. SPDY/3's CREDENTIAL): SPDY
    /// says to ignore it; its payload is skipped.
    Unknown { frame_type: u16, flags: u8 },
}

/// One SETTINGS entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setting {
    pub flags: u8,
    /// 24-bit id, e.g. 7 for SETTINGS_INITIAL_WINDOW_SIZE.
    pub id: u32,
    pub value: u32,
}

/// Why bytes could not be read as SPDY/3.1. Every error is fatal for the connection: the
/// header compression context may be out of step with the peer's after one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("SPDY version {0} is not supported (only 3)")]
    UnsupportedVersion(u16),
    #[error("a SPDY frame of type {frame_type} has an invalid length of {length} bytes")]
    InvalidLength { frame_type: u16, length: usize },
    #[error("a SPDY frame of type {0} names stream 0")]
    ZeroStreamId(u16),
    #[error("a SPDY frame is {length} bytes long, more than the {limit} accepted")]
    TooLarge { length: usize, limit: usize },
    #[error("SPDY header block could not be decompressed: {0}")]
    Compression(String),
    #[error("SPDY header block is malformed: {0}")]
    HeaderBlock(&'static str),
}

/// Why a frame could not be written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("a SPDY frame payload of {0} bytes exceeds the 16 MiB limit")]
    TooLarge(usize),
    #[error("SPDY stream id {0} does not fit in 31 bits")]
    InvalidStreamId(u32),
    #[error("SPDY header compression failed: {0}")]
    Compression(String),
}

/// What [`Decoder`] reads from: a growing buffer or bytes received whole.
trait Input: Buf + std::ops::Deref<Target = [u8]> {
    /// Takes the next `n` bytes (all there) without copying.
    fn take(&mut self, n: usize) -> Bytes;
    /// `n` more bytes are needed for the frame at the front.
    fn expect(&mut self, _n: usize) {}
}

impl Input for BytesMut {
    fn take(&mut self, n: usize) -> Bytes {
        self.split_to(n).freeze()
    }

    fn expect(&mut self, n: usize) {
        self.reserve(n);
    }
}

impl Input for Bytes {
    fn take(&mut self, n: usize) -> Bytes {
        self.split_to(n)
    }
}

/// Reads frames from the bytes of one direction of a connection, which may arrive split
/// anywhere (TCP reads, WebSocket messages). Holds that direction's zlib context.
pub struct Decoder {
    inflater: Inflater,
    max_length: usize,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Decoder {
    /// A decoder accepting frames up to [`MAX_FRAME_LENGTH`].
    pub fn new() -> Self {
        Self {
            inflater: Inflater::new(),
            max_length: MAX_FRAME_LENGTH,
        }
    }

    /// A decoder refusing frames longer than `max_length` bytes (bounds buffering).
    pub fn with_max_length(max_length: usize) -> Self {
        Self {
            inflater: Inflater::new(),
            max_length: max_length.min(MAX_FRAME_LENGTH),
        }
    }

    /// Takes one complete frame off the front of `buf`, or returns `Ok(None)` (consuming
    /// nothing) when `buf` does not hold a whole frame yet. Append more bytes and call again.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, DecodeError> {
        self.decode_from(buf)
    }

    /// [`Decoder::decode`] on bytes already received whole, such as a WebSocket message:
    /// payloads are slices of `buf`, nothing is copied. When `buf` ends inside a frame,
    /// `Ok(None)` leaves that rest in `buf`, for the caller to prepend to what comes next.
    pub fn decode_bytes(&mut self, buf: &mut Bytes) -> Result<Option<Frame>, DecodeError> {
        self.decode_from(buf)
    }

    fn decode_from<B: Input>(&mut self, buf: &mut B) -> Result<Option<Frame>, DecodeError> {
        if buf.len() < HEADER_LEN {
            return Ok(None);
        }
        let word = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
        let flags = buf[4];
        let length = usize::from(buf[5]) << 16 | usize::from(buf[6]) << 8 | usize::from(buf[7]);
        if length > self.max_length {
            return Err(DecodeError::TooLarge {
                length,
                limit: self.max_length,
            });
        }
        if buf.len() < HEADER_LEN + length {
            buf.expect(HEADER_LEN + length - buf.len());
            return Ok(None);
        }
        buf.advance(HEADER_LEN);
        let payload = buf.take(length);
        if word & 0x8000_0000 == 0 {
            return Ok(Some(Frame::Data {
                stream_id: word & 0x7fff_ffff,
                fin: flags & FLAG_FIN != 0,
                data: payload,
            }));
        }
        let version = ((word >> 16) & 0x7fff) as u16;
        if version != VERSION {
            return Err(DecodeError::UnsupportedVersion(version));
        }
        let frame_type = (word & 0xffff) as u16;
        self.control(frame_type, flags, payload).map(Some)
    }

    fn control(&mut self, ty: u16, flags: u8, mut p: Bytes) -> Result<Frame, DecodeError> {
        let length = p.len();
        let bad = || DecodeError::InvalidLength {
            frame_type: ty,
            length,
        };
        let fin = flags & FLAG_FIN != 0;
        let frame = match ty {
            SYN_STREAM => {
                if length < 10 {
                    return Err(bad());
                }
                let stream_id = stream(ty, p.get_u32())?;
                let associated_to = p.get_u32() & 0x7fff_ffff;
                let priority = p.get_u8() >> 5;
                let _slot = p.get_u8();
                let headers = self.headers(&p)?;
                Frame::SynStream {
                    stream_id,
                    associated_to,
                    priority,
                    fin,
                    unidirectional: flags & FLAG_UNIDIRECTIONAL != 0,
                    headers,
                }
            }
            SYN_REPLY | HEADERS => {
                if length < 4 {
                    return Err(bad());
                }
                let stream_id = stream(ty, p.get_u32())?;
                let headers = self.headers(&p)?;
                if ty == SYN_REPLY {
                    Frame::SynReply {
                        stream_id,
                        fin,
                        headers,
                    }
                } else {
                    Frame::Headers {
                        stream_id,
                        fin,
                        headers,
                    }
                }
            }
            RST_STREAM => {
                if length != 8 {
                    return Err(bad());
                }
                Frame::RstStream {
                    stream_id: stream(ty, p.get_u32())?,
                    status: p.get_u32(),
                }
            }
            SETTINGS => {
                if length < 4 {
                    return Err(bad());
                }
                let count = p.get_u32() as usize;
                if count.checked_mul(8) != Some(p.len()) {
                    return Err(bad());
                }
                let entries = (0..count)
                    .map(|_| {
                        let word = p.get_u32();
                        Setting {
                            flags: (word >> 24) as u8,
                            id: word & 0x00ff_ffff,
                            value: p.get_u32(),
                        }
                    })
                    .collect();
                Frame::Settings {
                    clear: flags & FLAG_CLEAR_SETTINGS != 0,
                    entries,
                }
            }
            PING => {
                if length != 4 {
                    return Err(bad());
                }
                Frame::Ping { id: p.get_u32() }
            }
            GOAWAY => {
                // SPDY/2 GOAWAY had no status; SPDY/3 has 8 bytes.
                if length != 8 {
                    return Err(bad());
                }
                Frame::GoAway {
                    last_good_stream_id: p.get_u32() & 0x7fff_ffff,
                    status: p.get_u32(),
                }
            }
            WINDOW_UPDATE => {
                if length != 8 {
                    return Err(bad());
                }
                Frame::WindowUpdate {
                    stream_id: p.get_u32() & 0x7fff_ffff,
                    delta: p.get_u32() & 0x7fff_ffff,
                }
            }
            _ => Frame::Unknown {
                frame_type: ty,
                flags,
            },
        };
        Ok(frame)
    }

    fn headers(&mut self, compressed: &[u8]) -> Result<HeaderBlock, DecodeError> {
        let raw = self
            .inflater
            .decompress(compressed)
            .map_err(DecodeError::Compression)?;
        HeaderBlock::parse(&raw)
    }
}

fn stream(ty: u16, word: u32) -> Result<u32, DecodeError> {
    match word & 0x7fff_ffff {
        0 => Err(DecodeError::ZeroStreamId(ty)),
        id => Ok(id),
    }
}

/// Writes frames for one direction of a connection. Holds that direction's zlib context, so
/// frames must go on the wire in the order they were encoded.
pub struct Encoder {
    deflater: Deflater,
}

impl Encoder {
    /// A fresh encoder (a new zlib stream preset with the SPDY/3 dictionary).
    pub fn new() -> Result<Self, EncodeError> {
        Ok(Self {
            deflater: Deflater::new().map_err(EncodeError::Compression)?,
        })
    }

    /// Appends the bytes of `frame` to `out`.
    pub fn encode(&mut self, frame: &Frame, out: &mut BytesMut) -> Result<(), EncodeError> {
        match frame {
            Frame::Data {
                stream_id,
                fin,
                data,
            } => {
                encode_data_header(*stream_id, *fin, data.len(), out)?;
                out.extend_from_slice(data);
            }
            Frame::SynStream {
                stream_id,
                associated_to,
                priority,
                fin,
                unidirectional,
                headers,
            } => {
                let mut body = Vec::with_capacity(64);
                body.extend_from_slice(&id31(*stream_id)?.to_be_bytes());
                body.extend_from_slice(&id31(*associated_to)?.to_be_bytes());
                body.push((priority & 0x07) << 5);
                body.push(0);
                self.deflater
                    .compress(&headers.serialize(), &mut body)
                    .map_err(EncodeError::Compression)?;
                let flags =
                    (u8::from(*fin) * FLAG_FIN) | (u8::from(*unidirectional) * FLAG_UNIDIRECTIONAL);
                control(SYN_STREAM, flags, &body, out)?;
            }
            Frame::SynReply {
                stream_id,
                fin,
                headers,
            }
            | Frame::Headers {
                stream_id,
                fin,
                headers,
            } => {
                let ty = if matches!(frame, Frame::SynReply { .. }) {
                    SYN_REPLY
                } else {
                    HEADERS
                };
                let mut body = Vec::with_capacity(64);
                body.extend_from_slice(&id31(*stream_id)?.to_be_bytes());
                self.deflater
                    .compress(&headers.serialize(), &mut body)
                    .map_err(EncodeError::Compression)?;
                control(ty, u8::from(*fin) * FLAG_FIN, &body, out)?;
            }
            Frame::RstStream { stream_id, status } => {
                control(RST_STREAM, 0, &words(id31(*stream_id)?, *status), out)?;
            }
            Frame::Settings { clear, entries } => {
                let mut body = Vec::with_capacity(4 + 8 * entries.len());
                body.extend_from_slice(&(entries.len() as u32).to_be_bytes());
                for s in entries {
                    let word = u32::from(s.flags) << 24 | (s.id & 0x00ff_ffff);
                    body.extend_from_slice(&word.to_be_bytes());
                    body.extend_from_slice(&s.value.to_be_bytes());
                }
                control(SETTINGS, u8::from(*clear) * FLAG_CLEAR_SETTINGS, &body, out)?;
            }
            Frame::Ping { id } => control(PING, 0, &id.to_be_bytes(), out)?,
            Frame::GoAway {
                last_good_stream_id,
                status,
            } => control(GOAWAY, 0, &words(id31(*last_good_stream_id)?, *status), out)?,
            Frame::WindowUpdate { stream_id, delta } => control(
                WINDOW_UPDATE,
                0,
                &words(id31(*stream_id)?, delta & 0x7fff_ffff),
                out,
            )?,
            Frame::Unknown { frame_type, flags } => control(*frame_type, *flags, &[], out)?,
        }
        Ok(())
    }
}

/// Appends the 8-byte header of a DATA frame whose `len` payload bytes the caller appends
/// next (lets a forwarder read straight into the outgoing buffer, with no copy).
pub fn encode_data_header(
    stream_id: u32,
    fin: bool,
    len: usize,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    if len > MAX_FRAME_LENGTH {
        return Err(EncodeError::TooLarge(len));
    }
    out.reserve(HEADER_LEN + len);
    out.put_u32(id31(stream_id)?);
    out.put_u32(u32::from(fin) << 24 | len as u32);
    Ok(())
}

fn control(ty: u16, flags: u8, body: &[u8], out: &mut BytesMut) -> Result<(), EncodeError> {
    if body.len() > MAX_FRAME_LENGTH {
        return Err(EncodeError::TooLarge(body.len()));
    }
    out.reserve(HEADER_LEN + body.len());
    out.put_u32(0x8000_0000 | u32::from(VERSION) << 16 | u32::from(ty));
    out.put_u32(u32::from(flags) << 24 | body.len() as u32);
    out.extend_from_slice(body);
    Ok(())
}

fn words(a: u32, b: u32) -> [u8; 8] {
    let mut w = [0; 8];
    w[..4].copy_from_slice(&a.to_be_bytes());
    w[4..].copy_from_slice(&b.to_be_bytes());
    w
}

fn id31(id: u32) -> Result<u32, EncodeError> {
    if id > 0x7fff_ffff {
        Err(EncodeError::InvalidStreamId(id))
    } else {
        Ok(id)
    }
}
