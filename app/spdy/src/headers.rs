//! SPDY/3 header blocks (name/value pairs, before compression).

use crate::frame::DecodeError;

/// The headers of a SYN_STREAM, SYN_REPLY or HEADERS frame, in wire order. SPDY/3 puts names
/// on the wire in lowercase; [`HeaderBlock::insert`] lowercases and lookups ignore case, so
/// client-go's `streamType` and the wire's `streamtype` are the same header. Several values of
/// one name travel as one value joined by NUL bytes; they are kept joined here.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderBlock {
    pairs: Vec<(String, String)>,
}

impl HeaderBlock {
    /// An empty block.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `name: value` (name lowercased); a repeated name is joined to the first with NUL.
    pub fn insert(&mut self, name: &str, value: &str) -> &mut Self {
        let name = name.to_ascii_lowercase();
        match self.pairs.iter_mut().find(|(n, _)| *n == name) {
            Some((_, v)) => {
                v.push('\0');
                v.push_str(value);
            }
            None => self.pairs.push((name, value.to_string())),
        }
        self
    }

    /// Builder form of [`HeaderBlock::insert`].
    pub fn with(mut self, name: &str, value: &str) -> Self {
        self.insert(name, value);
        self
    }

    /// The first value of `name` (any case), as Go's `http.Header.Get` returns it.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.get_all(name).next()
    }

    /// Every value of `name` (any case).
    pub fn get_all<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a str> + 'a {
        let name = name.to_ascii_lowercase();
        self.pairs
            .iter()
            .filter(move |(n, _)| *n == name)
            .flat_map(|(_, v)| v.split('\0'))
    }

    /// The pairs in wire order (values of one name joined by NUL).
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// Number of distinct names.
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// Whether the block has no headers.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// The uncompressed wire form: a 32-bit count, then length-prefixed names and values.
    pub(crate) fn serialize(&self) -> Vec<u8> {
        let size = 4 + self
            .pairs
            .iter()
            .map(|(n, v)| 8 + n.len() + v.len())
            .sum::<usize>();
        let mut out = Vec::with_capacity(size);
        out.extend_from_slice(&len32(self.pairs.len()).to_be_bytes());
        for (name, value) in &self.pairs {
            out.extend_from_slice(&len32(name.len()).to_be_bytes());
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(&len32(value.len()).to_be_bytes());
            out.extend_from_slice(value.as_bytes());
        }
        out
    }

    /// Parses the uncompressed wire form. Rejects truncated blocks, trailing bytes, empty or
    /// non-UTF-8 names and values that are not UTF-8, like spdystream's reader (which also
    /// fails on a repeated name).
    pub(crate) fn parse(raw: &[u8]) -> Result<Self, DecodeError> {
        let mut rest = raw;
        let count = take_u32(&mut rest)?;
        // Each pair needs at least 8 bytes: a count larger than that is a lie, not an
        // allocation to make.
        if u64::from(count) * 8 > rest.len() as u64 {
            return Err(DecodeError::HeaderBlock(
                "more pairs announced than the block holds",
            ));
        }
        let mut block = HeaderBlock::default();
        for _ in 0..count {
            let name = take_str(&mut rest)?;
            let value = take_str(&mut rest)?;
            if name.is_empty() {
                return Err(DecodeError::HeaderBlock("empty header name"));
            }
            let name = name.to_ascii_lowercase();
            if block.pairs.iter().any(|(n, _)| *n == name) {
                return Err(DecodeError::HeaderBlock("a header name appears twice"));
            }
            block.pairs.push((name, value.to_string()));
        }
        if !rest.is_empty() {
            return Err(DecodeError::HeaderBlock("bytes after the last header"));
        }
        Ok(block)
    }
}

impl<'a> FromIterator<(&'a str, &'a str)> for HeaderBlock {
    fn from_iter<I: IntoIterator<Item = (&'a str, &'a str)>>(iter: I) -> Self {
        let mut block = HeaderBlock::new();
        for (n, v) in iter {
            block.insert(n, v);
        }
        block
    }
}

fn len32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn take_u32(rest: &mut &[u8]) -> Result<u32, DecodeError> {
    let Some((head, tail)) = rest.split_first_chunk::<4>() else {
        return Err(DecodeError::HeaderBlock(
            "header block ends inside a length",
        ));
    };
    *rest = tail;
    Ok(u32::from_be_bytes(*head))
}

fn take_str<'a>(rest: &mut &'a [u8]) -> Result<&'a str, DecodeError> {
    let len = take_u32(rest)? as usize;
    if len > rest.len() {
        return Err(DecodeError::HeaderBlock(
            "header block ends inside a name or value",
        ));
    }
    let (s, tail) = rest.split_at(len);
    *rest = tail;
    std::str::from_utf8(s).map_err(|_| DecodeError::HeaderBlock("a header is not UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_lowercased_and_lookups_ignore_case() {
        let h = HeaderBlock::new()
            .with("streamType", "data")
            .with("Port", "80")
            .with("port", "81");
        assert_eq!(h.get("STREAMTYPE"), Some("data"));
        assert_eq!(h.get_all("port").collect::<Vec<_>>(), ["80", "81"]);
        let round = HeaderBlock::parse(&h.serialize()).expect("parses");
        assert_eq!(round, h);
        assert_eq!(round.iter().next(), Some(("streamtype", "data")));
    }

    #[test]
    fn truncated_or_lying_blocks_are_refused() {
        let raw = HeaderBlock::new().with("a", "b").serialize();
        for cut in 0..raw.len() {
            assert!(HeaderBlock::parse(&raw[..cut]).is_err(), "cut at {cut}");
        }
        assert!(HeaderBlock::parse(&[0xff, 0xff, 0xff, 0xff]).is_err());
        let mut trailing = raw.clone();
        trailing.push(0);
        assert!(HeaderBlock::parse(&trailing).is_err());
    }
}
