//! `ferry profile …`: list, show, add to, remove, export and import saved tunnel sets.
//!
//! Every change goes through the same store the app uses (`profiles.toml` in the config
//! directory, or `$FERRY_CONFIG_DIR`), so the CLI and a running app never overwrite each other.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::Subcommand;
use ferry_core::clients::ClientPool;
use ferry_core::profiles::import::{self, ImportDefaults, ImportReport};
use ferry_core::profiles::{OnConflict, Profile, ProfileStore, export_profiles, write_export};
use ferry_core::spec::{ListenAddress, PortSpec, Spread, Target, TunnelSpec};
use ferry_core::validate;

/// Manage saved profiles (named sets of tunnels).
#[derive(Debug, clap::Args)]
pub struct ProfileArgs {
    #[command(subcommand)]
    pub command: ProfileCommand,
}

#[derive(Debug, Subcommand)]
pub enum ProfileCommand {
    /// List saved profiles.
    List,
    /// Show the tunnels of one profile.
    Show { name: String },
    /// Add a tunnel to a profile (the profile is created if it does not exist).
    Add(AddArgs),
    /// Remove a profile.
    Rm { name: String },
    /// Write profiles to a file a teammate can import (no secrets are written).
    Export {
        #[arg(required = true)]
        names: Vec<String>,
        /// The file to write. An existing file is not replaced unless --force is given; the
        /// profile store itself never is.
        #[arg(short, long)]
        output: PathBuf,
        /// Overwrite the output file if it exists.
        #[arg(long)]
        force: bool,
    },
    /// Import profiles from a Ferry file, a kftray JSON export, or `kubectl port-forward` lines.
    Import(ImportArgs),
    /// Put the backup (`profiles.toml.bak`) back; the current file is kept beside it.
    RestoreBackup,
}

#[derive(Debug, clap::Args)]
pub struct AddArgs {
    /// The profile to add the tunnel to.
    pub name: String,
    /// pod/NAME, svc/NAME, deploy/NAME, or a label selector like app=web.
    pub target: String,
    /// Ports as kubectl takes them: LOCAL:REMOTE, :REMOTE or REMOTE.
    #[arg(required = true)]
    pub ports: Vec<String>,
    /// The kubeconfig context (default: the current context).
    #[arg(long)]
    pub context: Option<String>,
    /// The namespace (default: the context's namespace).
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
    /// Local address to listen on (repeatable): an IP address, or localhost for 127.0.0.1 and
    /// ::1. Default: localhost.
    #[arg(long = "address", value_name = "ADDRESS")]
    pub addresses: Vec<ListenAddress>,
    /// A short name for the tunnel ("api").
    #[arg(long)]
    pub alias: Option<String>,
    /// Start this profile when Ferry starts and on `ferry up` without names.
    #[arg(long)]
    pub autostart: bool,
}

#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// The file to import; `-` reads standard input (handy for pasted kubectl lines).
    pub file: PathBuf,
    /// The file is a kftray JSON export (detected without this flag when the file is JSON).
    #[arg(long, conflicts_with = "kubectl")]
    pub kftray: bool,
    /// The file holds `kubectl port-forward …` command lines, one tunnel per line (detected
    /// without this flag when the first line starts with `kubectl`).
    #[arg(long)]
    pub kubectl: bool,
    /// Profile name for --kftray / --kubectl imports (default: the file name without extension).
    #[arg(long)]
    pub name: Option<String>,
    /// Replace existing profiles with the same name.
    #[arg(long, conflicts_with = "rename")]
    pub replace: bool,
    /// Give imported profiles a free name ("staging (2)") when theirs is taken.
    #[arg(long)]
    pub rename: bool,
}

pub fn run(args: ProfileArgs) -> anyhow::Result<ExitCode> {
    let mut store = ProfileStore::open_default()?;
    warn_problems(&store);
    match args.command {
        ProfileCommand::List => {
            let damaged = matches!(
                store.check_writable(),
                Err(ferry_core::profiles::StoreError::Damaged { .. })
            );
            if damaged {
                // The problems (file:line:col) were printed above; an empty list would lie.
                list_readable(&store);
                eprintln!(
                    "error: {} could not be read; nothing was changed",
                    store.path().display()
                );
                return Ok(ExitCode::FAILURE);
            }
            list(&store)
        }
        ProfileCommand::Show { name } => show(&store, &name)?,
        ProfileCommand::Add(add_args) => add(&mut store, add_args)?,
        ProfileCommand::Rm { name } => {
            store.remove_profile(&name)?;
            println!("removed profile \"{name}\"");
        }
        ProfileCommand::Export {
            names,
            output,
            force,
        } => export(&store, &names, &output, force)?,
        ProfileCommand::Import(import_args) => import_file(&mut store, import_args)?,
        ProfileCommand::RestoreBackup => match store.restore_backup()? {
            Some(kept) => println!(
                "restored the backup; the previous file is kept as {}",
                kept.display()
            ),
            None => println!("restored the backup"),
        },
    }
    Ok(ExitCode::SUCCESS)
}

/// Problems in the file are shown on every command, with the way out.
pub fn warn_problems(store: &ProfileStore) {
    for problem in store.problems() {
        eprintln!("warning: {problem}");
    }
    if !store.problems().is_empty() {
        let hint = if store.has_backup() {
            "fix the file, or run `ferry profile restore-backup`"
        } else {
            "fix the file by hand"
        };
        eprintln!(
            "warning: profiles that could not be read are left out; Ferry will not change the file until then ({hint})"
        );
    }
}

fn list(store: &ProfileStore) {
    if store.profiles().is_empty() {
        println!("no profiles yet: add one with `ferry profile add NAME TARGET PORT...`");
        return;
    }
    list_readable(store);
}

/// The profiles that could be read, one per line.
fn list_readable(store: &ProfileStore) {
    for p in store.profiles() {
        let auto = if p.autostart { "  [autostart]" } else { "" };
        let note = p
            .note
            .as_deref()
            .map(|n| format!("  {}", first_line(n)))
            .unwrap_or_default();
        println!(
            "{}  ({} tunnel{}){auto}{note}",
            p.name,
            p.tunnels.len(),
            plural(p.tunnels.len())
        );
    }
}

fn show(store: &ProfileStore, name: &str) -> anyhow::Result<()> {
    let profile = find(store, name)?;
    println!(
        "{}{}",
        profile.name,
        if profile.autostart {
            "  [autostart]"
        } else {
            ""
        }
    );
    if let Some(note) = &profile.note {
        println!("  {note}");
    }
    for t in profile.specs() {
        println!("  {}", describe(t));
    }
    Ok(())
}

/// One tunnel as a person reads it: `api: svc/api 8080:80 (context kind, namespace backend)`.
pub fn describe(t: &TunnelSpec) -> String {
    let alias = t
        .alias
        .as_deref()
        .map(|a| format!("{a}: "))
        .unwrap_or_default();
    let ports: Vec<String> = t.ports.iter().map(ToString::to_string).collect();
    let bind = if t.bind.is_empty() {
        String::new()
    } else {
        let addrs: Vec<String> = t.bind.iter().map(ToString::to_string).collect();
        format!(", on {}", addrs.join(", "))
    };
    format!(
        "{alias}{} {} (context {}, namespace {}{bind})",
        t.target,
        ports.join(" "),
        t.context,
        t.namespace
    )
}

fn find<'a>(store: &'a ProfileStore, name: &str) -> anyhow::Result<&'a Profile> {
    store.profile(name).with_context(|| {
        let known: Vec<&str> = store.profiles().iter().map(|p| p.name.as_str()).collect();
        format!(
            "no profile named \"{name}\"; saved profiles: {}",
            if known.is_empty() {
                "none".into()
            } else {
                known.join(", ")
            }
        )
    })
}

fn add(store: &mut ProfileStore, args: AddArgs) -> anyhow::Result<()> {
    let target: Target = args.target.parse()?;
    let ports = args
        .ports
        .iter()
        .map(|p| p.parse::<PortSpec>())
        .collect::<Result<Vec<_>, _>>()?;
    let pool = ClientPool::from_env().ok();
    let context = match args
        .context
        .or_else(|| pool.as_ref().and_then(ClientPool::current_context))
    {
        Some(c) => c,
        None => bail!("no --context given and the kubeconfig has no current-context"),
    };
    let namespace = args.namespace.unwrap_or_else(|| match &pool {
        Some(pool) => pool.default_namespace(&context),
        None => "default".into(),
    });
    let spec = TunnelSpec {
        context,
        namespace,
        target,
        ports,
        bind: ListenAddress::to_bind(&args.addresses),
        spread: Spread::default(),
        alias: args.alias,
        note: None,
    };
    validate::tunnel(&spec)?;
    let (name, autostart) = (args.name, args.autostart);
    let existing = store
        .profile(&name)
        .map(|p| p.specs().cloned().collect::<Vec<_>>());
    validate::port_clash(&name, existing.iter().flatten().chain([&spec]))?;
    warn_unknown_context(store, pool.as_ref(), &spec.context);
    let line = describe(&spec);
    store.modify(|doc| {
        match doc.profiles.iter_mut().find(|p| p.name == name) {
            Some(p) => {
                p.tunnels.push(spec.into());
                p.autostart |= autostart;
            }
            None => {
                let mut p = Profile::new(name.clone(), [spec]);
                p.autostart = autostart;
                doc.profiles.push(p);
            }
        }
        Ok(())
    })?;
    println!("added to profile \"{name}\": {line}");
    Ok(())
}

/// A context that neither the kubeconfig nor Ferry's own clusters know is saved anyway (it may
/// be added later, or exist on another machine), with a warning naming the known ones.
fn warn_unknown_context(store: &ProfileStore, pool: Option<&ClientPool>, context: &str) {
    let mut known: Vec<String> = pool
        .map(|p| p.contexts().into_iter().map(|c| c.name).collect())
        .unwrap_or_default();
    known.extend(store.clusters().iter().map(|c| c.name.clone()));
    if known.iter().any(|k| k == context) {
        return;
    }
    let listed = if known.is_empty() {
        "none".to_string()
    } else {
        known.join(", ")
    };
    eprintln!(
        "warning: there is no context named \"{context}\" in the kubeconfig or among Ferry's clusters (known: {listed}); the tunnel is saved, but it cannot start until that context exists"
    );
}

/// The context (current unless given) and its namespace, from the kubeconfig.
fn kube_defaults(context: Option<&str>) -> Option<ImportDefaults> {
    let pool = ClientPool::from_env().ok()?;
    let context = context
        .map(str::to_string)
        .or_else(|| pool.current_context())?;
    let namespace = pool.default_namespace(&context);
    Some(ImportDefaults { context, namespace })
}

fn export(
    store: &ProfileStore,
    names: &[String],
    output: &Path,
    force: bool,
) -> anyhow::Result<()> {
    let profiles = names
        .iter()
        .map(|n| find(store, n))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let text = export_profiles(profiles.iter().copied())?;
    write_export(output, &text, &store.own_files(), force)?;
    println!(
        "exported {} profile{} to {}",
        profiles.len(),
        plural(profiles.len()),
        output.display()
    );
    Ok(())
}

fn import_file(store: &mut ProfileStore, args: ImportArgs) -> anyhow::Result<()> {
    let text = read_input(&args.file)?;
    let stem = args
        .file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .filter(|s| s != "-")
        .unwrap_or_else(|| "imported".into());
    let name = args.name.clone().unwrap_or(stem);
    let format = if args.kftray {
        import::Format::Kftray
    } else if args.kubectl {
        import::Format::Kubectl
    } else {
        let detected = import::detect(&text);
        if detected != import::Format::Ferry {
            println!(
                "{} looks like {detected}; reading it as such (--kftray / --kubectl say so explicitly)",
                args.file.display()
            );
        }
        detected
    };
    let report: ImportReport = match format {
        import::Format::Ferry => import::import_ferry(&args.file, &text)?,
        import::Format::Kftray | import::Format::Kubectl => {
            let defaults = kube_defaults(None).unwrap_or(ImportDefaults {
                context: "default".into(),
                namespace: "default".into(),
            });
            if format == import::Format::Kftray {
                import::import_kftray(&text, &name, &defaults)?
            } else {
                import::import_kubectl(&text, &name, &defaults)?
            }
        }
    };
    let on_conflict = match (args.replace, args.rename) {
        (true, _) => OnConflict::Replace,
        (_, true) => OnConflict::Rename,
        _ => OnConflict::Fail,
    };
    let outcome = store
        .import_profiles(report.profiles.clone(), on_conflict)
        .map_err(|e| anyhow::anyhow!("{e} (use --replace or --rename to import anyway)"))?;
    for p in &report.profiles {
        let shown = outcome
            .renamed
            .iter()
            .find(|(old, _)| old == &p.name)
            .map(|(_, new)| new.as_str())
            .unwrap_or(&p.name);
        let verb = if outcome.replaced.contains(&p.name) {
            "replaced"
        } else {
            "imported"
        };
        println!(
            "{verb} profile \"{shown}\" ({} tunnel{})",
            p.tunnels.len(),
            plural(p.tunnels.len())
        );
        for t in p.specs() {
            println!("  {}", describe(t));
        }
    }
    for s in &report.skipped {
        println!("skipped: {s}");
    }
    Ok(())
}

fn read_input(path: &Path) -> anyhow::Result<String> {
    if path.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read standard input")?;
        return Ok(text);
    }
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
