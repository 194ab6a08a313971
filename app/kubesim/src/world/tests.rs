use super::*;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn demo_world_parses_and_has_both_clusters() {
    let world = World::try_demo().unwrap();
    let names: Vec<&str> = world.clusters.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, CLUSTER_NAMES);
    let demo = world.manifests(PRIMARY_CLUSTER);
    let kinds = |kind: &str| demo.iter().filter(|m| m["kind"] == kind).count();
    assert_eq!(kinds("Deployment"), 3, "kubia, postgres, web");
    assert!(kinds("Service") >= 8);
    assert_eq!(kinds("Ingress"), 1);
    assert!(!world.manifests(SECOND_CLUSTER).is_empty());
}

#[test]
fn multi_document_files_and_directories_load_in_order() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "b.yaml",
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: two\n",
    );
    write(
        dir.path(),
        "a.yml",
        "# leading comment\n---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: one\n---\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: s\n  namespace: one\nspec:\n  ports: [{port: 80}]\n",
    );
    write(dir.path(), "notes.txt", "not a manifest");
    let world = World::load(&[dir.path().to_path_buf()]).unwrap();
    let names: Vec<&str> = world
        .manifests(PRIMARY_CLUSTER)
        .iter()
        .map(|m| m["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["one", "s", "two"]);
    assert!(world.manifests(SECOND_CLUSTER).is_empty());
}

#[test]
fn cluster_prefix_puts_manifests_in_that_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "ns.yaml",
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: qa\n",
    );
    let arg = PathBuf::from(format!("staging={}", file.display()));
    let world = World::load(&[arg]).unwrap();
    assert_eq!(world.manifests(SECOND_CLUSTER).len(), 1);
    assert!(world.manifests(PRIMARY_CLUSTER).is_empty());
    let bad = PathBuf::from(format!("Bad_Name={}", file.display()));
    assert!(
        World::load(&[bad])
            .unwrap_err()
            .to_string()
            .contains("not a valid cluster name")
    );
}

#[test]
fn loader_errors_name_the_file_and_the_document() {
    let dir = tempfile::tempdir().unwrap();
    let ok = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: fine\n";
    let cases = [
        ("syntax.yaml", format!("{ok}---\nkind: [unclosed\n"), "document 2", "not valid YAML"),
        ("kind.yaml", format!("{ok}---\napiVersion: v1\nkind: ConfigMapX\nmetadata: {{name: x}}\n"), "document 2", "ConfigMapX"),
        ("noname.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {}\n".to_string(), "document 1", "no metadata.name"),
        (
            "invalid.yaml",
            format!("{ok}---\n{ok}---\napiVersion: v1\nkind: Pod\nmetadata: {{name: p, namespace: fine}}\nspec: {{containers: []}}\n"),
            "document 3",
            "spec.containers: Required value",
        ),
        (
            "missing-ns.yaml",
            "apiVersion: v1\nkind: Service\nmetadata: {name: s, namespace: nowhere}\nspec: {ports: [{port: 1}]}\n".to_string(),
            "document 1",
            "namespaces \"nowhere\" not found",
        ),
    ];
    for (file, text, document, reason) in cases {
        let path = write(dir.path(), file, &text);
        let err = World::load(&[path]).unwrap_err().to_string();
        assert!(err.contains(file), "{err}");
        assert!(err.contains(document), "{err}");
        assert!(err.contains(reason), "{err}");
    }
    let missing = World::load(&[dir.path().join("absent.yaml")])
        .unwrap_err()
        .to_string();
    assert!(missing.contains("absent.yaml"), "{missing}");
}
