//! `ferry man DIR` (hidden): writes Ferry's man pages, generated from the clap definitions.
//!
//! One page per command (`ferry.1`, `ferry-forward.1`, `ferry-profile-add.1`, …) with the
//! options `--help` shows, plus an EXAMPLES section from `examples.rs` and, on `ferry.1`,
//! FILES and ENVIRONMENT. The packaging scripts run it on the freshly built binary
//! (`packaging/linux/build-deb.sh`), so the pages always match the binary they ship with; a
//! subcommand of the binary, rather than code in `build.rs`, keeps the build script free of
//! the CLI's code.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Command;
use clap_mangen::Man;
use clap_mangen::roff::{Roff, roman};

/// Options of `ferry man`.
#[derive(Debug, clap::Args)]
pub struct ManArgs {
    /// The folder to write the pages into (created if missing).
    pub dir: PathBuf,
}

pub fn run(args: ManArgs) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("could not create the folder {}", args.dir.display()))?;
    for page in write_all(&args.dir)? {
        println!("{}", page.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes every page into `dir`, returning their paths.
pub fn write_all(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut cmd = super::examples::command().disable_help_subcommand(true);
    cmd.build();
    let mut written = Vec::new();
    write_tree(&cmd, &mut Vec::new(), dir, &mut written)?;
    Ok(written)
}

fn write_tree(
    cmd: &Command,
    path: &mut Vec<String>,
    dir: &Path,
    written: &mut Vec<PathBuf>,
) -> anyhow::Result<()> {
    let file = dir.join(format!(
        "{}.1",
        cmd.get_display_name().unwrap_or(cmd.get_name())
    ));
    let mut page = Vec::new();
    render(cmd, path, &mut page)?;
    std::fs::write(&file, page).with_context(|| format!("could not write {}", file.display()))?;
    written.push(file);
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        path.push(sub.get_name().to_owned());
        write_tree(sub, path, dir, written)?;
        path.pop();
    }
    Ok(())
}

/// One page: clap_mangen's sections, but EXAMPLES laid out as examples (clap_mangen would
/// print `after_help` as one filled paragraph under EXTRA), and FILES / ENVIRONMENT on `ferry.1`.
fn render(cmd: &Command, path: &[String], out: &mut Vec<u8>) -> anyhow::Result<()> {
    // `after_help` is rendered here instead; clap_mangen would add it again.
    let man = Man::new(cmd.clone().after_help(None::<&str>))
        .manual("Ferry Manual")
        .source(format!("Ferry {}", env!("CARGO_PKG_VERSION")));
    man.render_title(out)?;
    man.render_name_section(out)?;
    man.render_synopsis_section(out)?;
    man.render_description_section(out)?;
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        man.render_options_section(out)?;
    }
    if cmd.get_subcommands().any(|s| !s.is_hide_set()) {
        man.render_subcommands_section(out)?;
    }
    let key: Vec<&str> = path.iter().map(String::as_str).collect();
    let mut roff = Roff::default();
    if let Some(text) = super::examples::for_path(&key) {
        roff.control("SH", ["EXAMPLES"]);
        // Command lines as they are typed, each with its explanation indented below it.
        for pair in text.lines().skip(1).collect::<Vec<_>>().chunks(2) {
            roff.control("TP", []);
            roff.control("B", [pair[0].trim()]);
            roff.text([roman(pair.get(1).map_or("", |l| l.trim()))]);
        }
    }
    if path.is_empty() {
        files_and_environment(&mut roff);
    }
    roff.to_writer(out)?;
    // Subcommands carry no version of their own (clap_mangen would panic on them).
    if cmd.get_version().is_some() {
        man.render_version_section(out)?;
    }
    Ok(())
}

/// Where Ferry keeps its files, as `ferry_core::config_dir` and the profile store decide.
fn files_and_environment(roff: &mut Roff) {
    roff.control("SH", ["FILES"]);
    for (file, what) in [
        (
            "$XDG_CONFIG_HOME/ferry/profiles.toml",
            "Saved profiles (default ~/.config/ferry). Written atomically, mode 0600; the \
             previous version is kept as profiles.toml.bak. Secrets are never written to it: \
             tokens of clusters added in Ferry are kept in the system keyring (Secret Service).",
        ),
        (
            "~/.kube/config",
            "The kubeconfig Ferry reads, or the files named by KUBECONFIG. Ferry never writes it.",
        ),
    ] {
        roff.control("TP", []);
        roff.control("I", [file]);
        roff.text([roman(what)]);
    }
    roff.control("SH", ["ENVIRONMENT"]);
    for (var, what) in [
        (
            "KUBECONFIG",
            "Colon-separated kubeconfig files, as kubectl reads them.",
        ),
        (
            "FERRY_CONFIG_DIR",
            "Use this folder instead of $XDG_CONFIG_HOME/ferry for profiles.toml.",
        ),
        (
            "RUST_LOG",
            "Log filter (e.g. ferry_core=debug); overrides -v. Logs go to standard error.",
        ),
    ] {
        roff.control("TP", []);
        roff.control("B", [var]);
        roff.text([roman(what)]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_a_page_per_visible_command_with_examples() {
        let dir = tempfile::tempdir().expect("temp dir");
        let pages = write_all(dir.path()).expect("pages written");
        let names: Vec<String> = pages
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        for expected in [
            "ferry.1",
            "ferry-forward.1",
            "ferry-profile-add.1",
            "ferry-up.1",
        ] {
            assert!(
                names.iter().any(|n| n == expected),
                "{expected} missing: {names:?}"
            );
        }
        assert!(
            !names.iter().any(|n| n.contains("man")),
            "the hidden man command has no page"
        );
        let forward = std::fs::read_to_string(dir.path().join("ferry-forward.1")).unwrap();
        assert!(forward.contains(".SH EXAMPLES"), "{forward}");
        assert!(
            forward.contains("ferry forward svc/kubia 8080:80"),
            "{forward}"
        );
        assert!(
            forward.contains("\\-\\-namespace"),
            "options rendered: {forward}"
        );
        let main = std::fs::read_to_string(dir.path().join("ferry.1")).unwrap();
        assert!(
            main.contains(".SH FILES") && main.contains("profiles.toml"),
            "{main}"
        );
        assert!(main.contains(ferry::VERSION), "version with commit: {main}");
    }
}
