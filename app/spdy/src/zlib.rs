//! One direction's header compression context: zlib with the SPDY/3 dictionary, one stream for
//! the life of the connection, each header block ending in a sync flush so the peer can
//! decompress it on its own.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use crate::dictionary::DICTIONARY;

/// Largest decompressed header block accepted (a compressed block can expand ~1000-fold).
pub const MAX_HEADER_BLOCK: usize = 256 * 1024;

/// The sending side's zlib stream.
pub struct Deflater {
    inner: Compress,
}

impl Deflater {
    pub fn new() -> Result<Self, String> {
        let mut inner = Compress::new(Compression::default(), true);
        inner
            .set_dictionary(DICTIONARY)
            .map_err(|e| e.to_string())?;
        Ok(Self { inner })
    }

    /// Compresses one header block, appending to `out`, ending with a sync flush.
    pub fn compress(&mut self, raw: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
        let mut consumed = 0usize;
        loop {
            if out.capacity() - out.len() < 64 {
                out.reserve(raw.len() - consumed + 128);
            }
            let before = self.inner.total_in();
            self.inner
                .compress_vec(&raw[consumed..], out, FlushCompress::Sync)
                .map_err(|e| e.to_string())?;
            consumed += (self.inner.total_in() - before) as usize;
            // Done when all input is taken and zlib did not fill the buffer (nothing pending).
            if consumed == raw.len() && out.len() < out.capacity() {
                return Ok(());
            }
        }
    }
}

/// The receiving side's zlib stream.
pub struct Inflater {
    inner: Decompress,
}

impl Inflater {
    pub fn new() -> Self {
        Self {
            inner: Decompress::new(true),
        }
    }

    /// Decompresses one header block (all of `compressed`). The first block of a connection
    /// asks for the dictionary, which is supplied here.
    pub fn decompress(&mut self, compressed: &[u8]) -> Result<Vec<u8>, String> {
        let mut out = Vec::with_capacity((compressed.len() * 4).clamp(64, MAX_HEADER_BLOCK));
        let mut consumed = 0usize;
        loop {
            if out.len() == out.capacity() {
                if out.len() >= MAX_HEADER_BLOCK {
                    return Err(format!(
                        "header block expands beyond {MAX_HEADER_BLOCK} bytes"
                    ));
                }
                out.reserve(out.len().min(MAX_HEADER_BLOCK - out.len()).max(64));
            }
            let (in_before, out_before) = (self.inner.total_in(), self.inner.total_out());
            let status =
                self.inner
                    .decompress_vec(&compressed[consumed..], &mut out, FlushDecompress::Sync);
            consumed += (self.inner.total_in() - in_before) as usize;
            let progressed =
                self.inner.total_in() != in_before || self.inner.total_out() != out_before;
            match status {
                Ok(Status::Ok) | Ok(Status::BufError) => {}
                Ok(Status::StreamEnd) => {
                    return Err("the peer ended its header compression stream".into());
                }
                Err(e) if e.needs_dictionary().is_some() => {
                    self.inner
                        .set_dictionary(DICTIONARY)
                        .map_err(|e| format!("the peer's dictionary is not SPDY/3's: {e}"))?;
                    continue;
                }
                Err(e) => return Err(e.to_string()),
            }
            if consumed == compressed.len() && out.len() < out.capacity() {
                return Ok(out);
            }
            if !progressed && out.len() < out.capacity() {
                return Err("compressed header block is truncated".into());
            }
        }
    }
}
