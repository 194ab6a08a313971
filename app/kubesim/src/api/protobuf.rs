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

/// The entries of a `map<string, string>` (or bytes) field: repeated `{1: key, 2: value}`.
fn map_entries(data: &[u8], number: u64) -> Vec<(String, Vec<u8>)> {
    fields(data)
        .unwrap_or_default()
        .into_iter()
        .filter(|f| f.number == number)
        .map(|f| {
            (
                string(f.bytes, 1),
                field(f.bytes, 2).unwrap_or_default().to_vec(),
            )
        })
        .collect()
}

fn string_map(data: &[u8], number: u64) -> Option<serde_json::Value> {
    let entries = map_entries(data, number);
    (!entries.is_empty()).then(|| {
        entries
            .into_iter()
            .map(|(k, v)| {
                (
                    k,
                    serde_json::Value::String(String::from_utf8_lossy(&v).into_owned()),
                )
            })
            .collect::<serde_json::Map<_, _>>()
            .into()
    })
}

fn bytes_map(data: &[u8], number: u64) -> Option<serde_json::Value> {
    use base64::Engine;
    let entries = map_entries(data, number);
    (!entries.is_empty()).then(|| {
        entries
            .into_iter()
            .map(|(k, v)| {
                let encoded = base64::engine::general_purpose::STANDARD.encode(v);
                (k, serde_json::Value::String(encoded))
            })
            .collect::<serde_json::Map<_, _>>()
            .into()
    })
}

/// `ObjectMeta`: the fields a client sets on create.
fn object_meta(data: &[u8]) -> serde_json::Value {
    let mut meta = serde_json::Map::new();
    for (name, number) in [("name", 1), ("generateName", 2), ("namespace", 3)] {
        let v = string(data, number);
        if !v.is_empty() {
            meta.insert(name.into(), v.into());
        }
    }
    if let Some(labels) = string_map(data, 11) {
        meta.insert("labels".into(), labels);
    }
    if let Some(annotations) = string_map(data, 12) {
        meta.insert("annotations".into(), annotations);
    }
    meta.into()
}

/// The JSON form of a protobuf-encoded object of the few kinds kubectl's generators create
/// with typed clients (`kubectl create namespace|configmap|secret`). `None` for other kinds
/// or malformed bytes.
pub fn object_to_json(body: &[u8]) -> Option<serde_json::Value> {
    let inner = body.strip_prefix(MAGIC)?;
    let type_meta = field(inner, 1).unwrap_or_default();
    let (api_version, kind) = (string(type_meta, 1), string(type_meta, 2));
    let raw = field(inner, 2)?;
    let mut object = serde_json::json!({
        "apiVersion": api_version,
        "kind": kind,
        "metadata": object_meta(field(raw, 1).unwrap_or_default()),
    });
    match kind.as_str() {
        "Namespace" => {}
        "ConfigMap" => {
            if let Some(data) = string_map(raw, 2) {
                object["data"] = data;
            }
            if let Some(binary) = bytes_map(raw, 3) {
                object["binaryData"] = binary;
            }
        }
        "Secret" => {
            if let Some(data) = bytes_map(raw, 2) {
                object["data"] = data;
            }
            let ty = string(raw, 3);
            if !ty.is_empty() {
                object["type"] = ty.into();
            }
            if let Some(string_data) = string_map(raw, 4) {
                object["stringData"] = string_data;
            }
        }
        _ => return None,
    }
    Some(object)
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
    fn a_configmap_decodes_to_json() {
        let entry = |k: &[u8], v: &[u8]| [ld(1, k), ld(2, v)].concat();
        let meta = [ld(1, b"settings"), ld(11, &entry(b"app", b"web"))].concat();
        let raw = [
            ld(1, &meta),
            ld(2, &entry(b"a", b"1")),
            ld(2, &entry(b"b", b"2")),
        ]
        .concat();
        let type_meta = [ld(1, b"v1"), ld(2, b"ConfigMap")].concat();
        let body = [MAGIC, &ld(1, &type_meta), &ld(2, &raw)].concat();
        let obj = object_to_json(&body).unwrap();
        assert_eq!(obj["metadata"]["name"], "settings");
        assert_eq!(obj["metadata"]["labels"]["app"], "web");
        assert_eq!(obj["data"], serde_json::json!({"a": "1", "b": "2"}));
        let pod_type = [ld(1, b"v1"), ld(2, b"Pod")].concat();
        assert!(object_to_json(&[MAGIC, &ld(1, &pod_type), &ld(2, &raw)].concat()).is_none());
    }

    #[test]
    fn malformed_bytes_are_none() {
        assert!(fields(&[0x0a, 0x05, 1]).is_none());
        assert!(fields(&[0xff]).is_none());
        assert!(unwrap_envelope(b"nope").is_none());
    }
}
