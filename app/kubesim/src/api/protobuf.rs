//! Just enough of the Kubernetes protobuf wire format to read request bodies that kubectl's
//! typed clients always send as protobuf (`kubectl auth can-i` posts a
//! `SelfSubjectAccessReview` that way). Bodies start with the magic `k8s\0`, then a
//! `runtime.Unknown` message whose field 2 holds the object's own encoding.
//! Responses are always JSON, which those clients accept too.

/// The envelope's magic prefix.
const MAGIC: &[u8] = b"k8s\0";

/// Whether a `Content-Type` names the protobuf encoding.
pub fn is_protobuf(content_type: &str) -> bool {
    content_type
        .split(';')
        .next()
        .is_some_and(|m| m.trim() == "application/vnd.kubernetes.protobuf")
}

/// One decoded field: number and, for length-delimited fields, the bytes (varints as their
/// value's little-endian bytes are not needed here and are skipped).
#[derive(Debug, Clone, PartialEq)]
pub struct Field<'a> {
    pub number: u64,
    pub bytes: &'a [u8],
}

fn varint(data: &[u8], pos: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *data.get(*pos)?;
        *pos += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// The length-delimited fields of one message, in order. `None` if the bytes are malformed.
pub fn fields(data: &[u8]) -> Option<Vec<Field<'_>>> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < data.len() {
        let key = varint(data, &mut pos)?;
        let (number, wire) = (key >> 3, key & 7);
        match wire {
            0 => {
                varint(data, &mut pos)?;
            }
            1 => pos = pos.checked_add(8).filter(|p| *p <= data.len())?,
            5 => pos = pos.checked_add(4).filter(|p| *p <= data.len())?,
            2 => {
                let len = usize::try_from(varint(data, &mut pos)?).ok()?;
                let end = pos.checked_add(len).filter(|e| *e <= data.len())?;
                out.push(Field {
                    number,
                    bytes: &data[pos..end],
                });
                pos = end;
            }
            _ => return None,
        }
    }
    Some(out)
}

/// The first length-delimited field `number` of a message.
pub fn field(data: &[u8], number: u64) -> Option<&[u8]> {
    fields(data)?
        .into_iter()
        .find(|f| f.number == number)
        .map(|f| f.bytes)
}

/// The object bytes inside a `k8s\0` envelope.
pub fn unwrap_envelope(body: &[u8]) -> Option<&[u8]> {
    let inner = body.strip_prefix(MAGIC)?;
    field(inner, 2)
}

/// A string field (empty when absent or not UTF-8).
pub fn string(data: &[u8], number: u64) -> String {
    field(data, number)
        .and_then(|b| std::str::from_utf8(b).ok())
        .unwrap_or_default()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ld(number: u64, bytes: &[u8]) -> Vec<u8> {
        let mut out = vec![((number << 3) | 2) as u8, bytes.len() as u8];
        out.extend_from_slice(bytes);
        out
    }

    #[test]
    fn reads_nested_strings_through_the_envelope() {
        let attrs = [
            ld(1, b"default"),
            ld(2, b"create"),
            ld(5, b"pods"),
            ld(6, b"portforward"),
        ]
        .concat();
        let spec = ld(1, &attrs);
        let object = ld(2, &spec);
        let unknown = [
            ld(
                1,
                &[
                    ld(1, b"authorization.k8s.io/v1"),
                    ld(2, b"SelfSubjectAccessReview"),
                ]
                .concat(),
            ),
            ld(2, &object),
        ]
        .concat();
        let body = [MAGIC, &unknown].concat();
        let obj = unwrap_envelope(&body).unwrap();
        let attrs = field(field(obj, 2).unwrap(), 1).unwrap();
        assert_eq!(string(attrs, 2), "create");
        assert_eq!(string(attrs, 6), "portforward");
        assert_eq!(string(attrs, 4), "");
    }

    #[test]
    fn malformed_bytes_are_none() {
        assert!(fields(&[0x0a, 0x05, 1]).is_none());
        assert!(fields(&[0xff]).is_none());
        assert!(unwrap_envelope(b"nope").is_none());
    }
}
