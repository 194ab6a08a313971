//! What representation the client asked for in `Accept`: a plain object/list, a `Table`
//! (what `kubectl get` asks for), or `PartialObjectMetadata` (metadata-only clients).

/// The representation to answer with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Representation {
    Object,
    Table,
    /// `PartialObjectMetadata` / `PartialObjectMetadataList`.
    Metadata,
}

/// Picks the first media type in `Accept` we can serve, as the apiserver's negotiation does.
/// Anything unknown (protobuf, YAML) is skipped; with nothing usable we answer plain JSON.
pub fn representation(accept: Option<&str>) -> Representation {
    let Some(accept) = accept else {
        return Representation::Object;
    };
    for entry in accept.split(',') {
        let mut parts = entry.split(';').map(str::trim);
        let media = parts.next().unwrap_or_default();
        if !matches!(media, "application/json" | "*/*" | "application/*") {
            continue;
        }
        let mut r#as = None;
        let mut group = None;
        for p in parts {
            if let Some((k, v)) = p.split_once('=') {
                match k.trim() {
                    "as" => r#as = Some(v.trim()),
                    "g" => group = Some(v.trim()),
                    _ => {}
                }
            }
        }
        match (r#as, group) {
            (None, _) => return Representation::Object,
            (Some("Table"), Some("meta.k8s.io")) => return Representation::Table,
            (Some("PartialObjectMetadata" | "PartialObjectMetadataList"), Some("meta.k8s.io")) => {
                return Representation::Metadata;
            }
            _ => continue,
        }
    }
    Representation::Object
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubectl_get_asks_for_a_table() {
        let accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        assert_eq!(representation(Some(accept)), Representation::Table);
    }

    #[test]
    fn plain_and_protobuf_first_mean_objects() {
        assert_eq!(representation(None), Representation::Object);
        assert_eq!(
            representation(Some(
                "application/vnd.kubernetes.protobuf, application/json"
            )),
            Representation::Object
        );
        assert_eq!(
            representation(Some(
                "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"
            )),
            Representation::Object
        );
        assert_eq!(
            representation(Some(
                "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
            )),
            Representation::Metadata
        );
    }
}
