//! The Kubernetes "channel" WebSocket framing used by pods/portforward and pods/exec, and the
//! query strings those endpoints take. Pure functions, no I/O, so that they can be fuzzed.
//!
//! Every binary message starts with one channel byte (`v4.channel.k8s.io`,
//! `v5.channel.k8s.io`); in the base64 variant (`v4.base64.channel.k8s.io`) a text message starts
//! with the channel as an ASCII digit followed by base64 data. Facts from the kubelet's
//! `wsstream` package and kube-rs' `portforward.rs` / `remote_command.rs`.

use base64::Engine as _;
use bytes::{BufMut, Bytes, BytesMut};

/// The subprotocol kube-rs and the kubelet use for port-forward (binary frames).
pub const V4_BINARY: &str = "v4.channel.k8s.io";
/// The base64 text variant the kubelet also accepts for port-forward.
pub const V4_BASE64: &str = "v4.base64.channel.k8s.io";
/// Exec's current subprotocol: like v4 plus the `[255, channel]` close message.
pub const V5_BINARY: &str = "v5.channel.k8s.io";

/// Exec channels (`k8s.io/apimachinery/pkg/util/remotecommand`).
pub const STDIN: u8 = 0;
pub const STDOUT: u8 = 1;
pub const STDERR: u8 = 2;
pub const STATUS: u8 = 3;
pub const RESIZE: u8 = 4;
/// v5 only: `[255, n]` means "the client finished writing channel n".
pub const CLOSE: u8 = 255;

/// How messages of a negotiated subprotocol are framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// Binary messages, first byte is the channel.
    Binary,
    /// Text messages, first character is the channel digit, the rest base64.
    Base64,
}

/// One decoded message: the channel and its payload (possibly empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub channel: u8,
    pub payload: Bytes,
}

/// Builds a binary message for `channel`. One copy of `payload`, which is unavoidable because
/// the channel byte must precede it in the same WebSocket message.
pub fn encode(channel: u8, payload: &[u8]) -> Bytes {
    let mut buf = BytesMut::with_capacity(payload.len() + 1);
    buf.put_u8(channel);
    buf.put_slice(payload);
    buf.freeze()
}

/// Decodes a binary message. `None` for an empty message (it names no channel).
pub fn decode(message: Bytes) -> Option<Frame> {
    if message.is_empty() {
        return None;
    }
    let mut payload = message;
    let channel = payload.split_to(1)[0];
    Some(Frame { channel, payload })
}

/// Builds a base64 text message for `channel` (channels 0–9 only, as in the kubelet).
pub fn encode_base64(channel: u8, payload: &[u8]) -> String {
    let mut text = String::with_capacity(1 + payload.len().div_ceil(3) * 4);
    text.push(char::from(b'0' + channel % 10));
    base64::engine::general_purpose::STANDARD.encode_string(payload, &mut text);
    text
}

/// Decodes a base64 text message. `None` for an empty message or invalid base64.
pub fn decode_base64(text: &str) -> Option<Frame> {
    let (first, rest) = text.as_bytes().split_first()?;
    let channel = first.checked_sub(b'0').filter(|c| *c <= 9)?;
    let payload = base64::engine::general_purpose::STANDARD
        .decode(rest)
        .ok()?;
    Some(Frame {
        channel,
        payload: Bytes::from(payload),
    })
}

/// The first message the server sends on both channels of port-forward port `port`: the port
/// number as a little-endian u16 after the channel byte. kube-rs rejects a stream without it.
pub fn port_prefix(channel: u8, port: u16) -> Bytes {
    encode(channel, &port.to_le_bytes())
}

/// Why a port-forward query was refused (the kubelet's wording).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PortsError {
    #[error("query parameter \"port\" is required")]
    Missing,
    #[error("query parameter \"port\" cannot be empty")]
    Empty,
    #[error("unable to parse \"{0}\" as a port")]
    Unparsable(String),
    #[error("port \"{0}\" must be > 0")]
    Zero(String),
}

/// The ports of a port-forward request, in query order: `ports=` (what the apiserver takes)
/// or `port=` (what the kubelet takes), comma lists or repeated, percent-encoding allowed.
pub fn parse_ports(query: &str) -> Result<Vec<u16>, PortsError> {
    let values: Vec<String> = form_pairs(query)
        .filter(|(k, _)| k == "ports" || k == "port")
        .map(|(_, v)| v)
        .collect();
    if values.is_empty() {
        return Err(PortsError::Missing);
    }
    let mut ports = Vec::new();
    for value in values {
        if value.is_empty() {
            return Err(PortsError::Empty);
        }
        for part in value.split(',') {
            let port: u16 = part
                .trim()
                .parse()
                .map_err(|_| PortsError::Unparsable(value.clone()))?;
            if port == 0 {
                return Err(PortsError::Zero(value.clone()));
            }
            ports.push(port);
        }
    }
    Ok(ports)
}

/// What an exec request asks for (`PodExecOptions`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecOptions {
    pub command: Vec<String>,
    pub container: Option<String>,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

/// Why an exec query was refused (apiserver / kubelet wording).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExecOptionsError {
    #[error("you must specify at least one command for the container")]
    NoCommand,
    #[error("you must specify at least 1 of stdin, stdout, stderr")]
    NoStreams,
    #[error("invalid value {value:?} for query parameter {name:?}: expected true or false")]
    BadBool { name: String, value: String },
}

/// Parses `command=…&command=…&stdin=true&stdout=true&stderr=true&tty=false&container=c`.
pub fn parse_exec_options(query: &str) -> Result<ExecOptions, ExecOptionsError> {
    let mut opts = ExecOptions::default();
    for (name, value) in form_pairs(query) {
        match name.as_str() {
            "command" => opts.command.push(value),
            "container" if !value.is_empty() => opts.container = Some(value),
            "stdin" => opts.stdin = parse_bool(&name, &value)?,
            "stdout" => opts.stdout = parse_bool(&name, &value)?,
            "stderr" => opts.stderr = parse_bool(&name, &value)?,
            "tty" => opts.tty = parse_bool(&name, &value)?,
            _ => {}
        }
    }
    if opts.command.is_empty() {
        return Err(ExecOptionsError::NoCommand);
    }
    if !(opts.stdin || opts.stdout || opts.stderr) {
        return Err(ExecOptionsError::NoStreams);
    }
    Ok(opts)
}

/// Go's `strconv.ParseBool`, which the apiserver's query decoding uses.
fn parse_bool(name: &str, value: &str) -> Result<bool, ExecOptionsError> {
    match value {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(ExecOptionsError::BadBool {
            name: name.to_string(),
            value: value.to_string(),
        }),
    }
}

/// A terminal size from the resize channel: `{"Width":80,"Height":24}`, kubectl adds a
/// trailing newline. `None` for anything else.
pub fn parse_resize(payload: &[u8]) -> Option<(u16, u16)> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Size {
        width: u16,
        height: u16,
    }
    let size: Size = serde_json::from_slice(payload).ok()?;
    Some((size.width, size.height))
}

/// `application/x-www-form-urlencoded` pairs of a query string, decoded.
pub fn form_pairs(query: &str) -> impl Iterator<Item = (String, String)> + '_ {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((k, v)) => (percent_decode(k), percent_decode(v)),
            None => (percent_decode(pair), String::new()),
        })
}

/// Decodes `+` and `%XX`; an invalid escape stays as it is, so that the caller reports the
/// value the client sent instead of a decoding error.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn kube_rs_port_query_parses() {
        assert_eq!(parse_ports("&ports=8080%2C9090"), Ok(vec![8080, 9090]));
        assert_eq!(parse_ports("ports=1&ports=2,3"), Ok(vec![1, 2, 3]));
        assert_eq!(parse_ports("port=80"), Ok(vec![80]));
        assert_eq!(parse_ports(""), Err(PortsError::Missing));
        assert_eq!(parse_ports("ports="), Err(PortsError::Empty));
        assert_eq!(parse_ports("ports=0"), Err(PortsError::Zero("0".into())));
        assert!(matches!(
            parse_ports("ports=70000"),
            Err(PortsError::Unparsable(_))
        ));
    }

    #[test]
    fn exec_query_parses_like_kubectl_sends_it() {
        let q = "command=sh&command=-c&command=echo%20%24HOSTNAME&container=second&stdin=true&stdout=true&tty=false";
        let o = parse_exec_options(q).unwrap();
        assert_eq!(o.command, vec!["sh", "-c", "echo $HOSTNAME"]);
        assert_eq!(o.container.as_deref(), Some("second"));
        assert!(o.stdin && o.stdout && !o.stderr && !o.tty);
        assert_eq!(
            parse_exec_options("stdout=true"),
            Err(ExecOptionsError::NoCommand)
        );
        assert_eq!(
            parse_exec_options("command=ls"),
            Err(ExecOptionsError::NoStreams)
        );
    }

    #[test]
    fn resize_accepts_kubectl_trailing_newline() {
        assert_eq!(
            parse_resize(b"{\"Width\":80,\"Height\":24}\n"),
            Some((80, 24))
        );
        assert_eq!(parse_resize(b"{\"Width\":-1}"), None);
    }

    #[test]
    fn port_prefix_is_little_endian() {
        assert_eq!(&port_prefix(3, 8080)[..], &[3, 0x90, 0x1f]);
    }

    proptest! {
        #[test]
        fn binary_frames_round_trip(channel: u8, payload: Vec<u8>) {
            let frame = decode(encode(channel, &payload)).unwrap();
            prop_assert_eq!(frame.channel, channel);
            prop_assert_eq!(&frame.payload[..], &payload[..]);
        }

        #[test]
        fn base64_frames_round_trip(channel in 0u8..10, payload: Vec<u8>) {
            let frame = decode_base64(&encode_base64(channel, &payload)).unwrap();
            prop_assert_eq!(frame.channel, channel);
            prop_assert_eq!(&frame.payload[..], &payload[..]);
        }

        #[test]
        fn decoders_never_panic(bytes: Vec<u8>, text in ".*") {
            let _ = decode(Bytes::from(bytes.clone()));
            let _ = decode_base64(&text);
            let _ = parse_resize(&bytes);
        }

        #[test]
        fn query_parsers_never_panic(query in "[a-z=&%,0-9A-Fa-f+]{0,64}", raw in ".*") {
            let _ = parse_ports(&query);
            let _ = parse_ports(&raw);
            let _ = parse_exec_options(&query);
            let _ = parse_exec_options(&raw);
        }

        #[test]
        fn parsed_ports_are_never_zero(query in "(ports?=[0-9,]{0,12}&?){0,4}") {
            if let Ok(ports) = parse_ports(&query) {
                prop_assert!(!ports.is_empty());
                prop_assert!(ports.iter().all(|p| *p > 0));
            }
        }
    }
}
