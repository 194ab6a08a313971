//! Examples for every subcommand's `--help` (clap's `after_help`) and for the man pages.
//!
//! They live in one table, keyed by the subcommand's path, instead of in each subcommand's
//! file, so that all of them can be read and checked together: a test below fails when a
//! visible subcommand has none, which is how a new subcommand is reminded to bring its own.

use clap::{Command, CommandFactory as _, FromArgMatches as _};

use super::Cli;

/// One subcommand's examples: its path (`[]` is `ferry` itself) and `command — what it does`.
struct Examples {
    path: &'static [&'static str],
    lines: &'static [(&'static str, &'static str)],
}

const EXAMPLES: &[Examples] = &[
    Examples {
        path: &[],
        lines: &[
            (
                "ferry",
                "open the window on the contexts of your kubeconfig",
            ),
            (
                "ferry --demo",
                "open the window on a built-in simulated cluster",
            ),
            (
                "ferry forward svc/web 8080:80",
                "a tunnel from the terminal",
            ),
            ("ferry forward --help", "help on one subcommand"),
        ],
    },
    Examples {
        path: &["forward"],
        lines: &[
            (
                "ferry forward svc/kubia 8080:80",
                "local port 8080 to the service's port 80, following its Ready pods",
            ),
            (
                "ferry forward deploy/api :http -n backend",
                "any free local port to the named port http of a deployment's pods",
            ),
            (
                "ferry forward app=web 9090:8080 --context staging",
                "pods matching a label selector, in another context",
            ),
            (
                "ferry forward svc/api 8080:80 --spread",
                "spread connections over all Ready pods instead of one",
            ),
            (
                "ferry forward svc/kubia 8080:80 --detach",
                "hand the tunnel to the running instance (starting a daemon if none runs)",
            ),
        ],
    },
    Examples {
        path: &["contexts"],
        lines: &[
            ("ferry contexts", "the contexts, * marking the current one"),
            (
                "ferry contexts --check",
                "also sign in to each and report which ones fail",
            ),
            ("ferry contexts -o name", "names only, for scripts"),
            ("ferry contexts -o json", "everything as JSON"),
        ],
    },
    Examples {
        path: &["profile"],
        lines: &[
            ("ferry profile list", "the saved profiles"),
            (
                "ferry profile add staging svc/api 8080:80",
                "save a tunnel in profile staging",
            ),
            (
                "ferry profile import team.toml",
                "profiles a teammate exported",
            ),
        ],
    },
    Examples {
        path: &["profile", "list"],
        lines: &[(
            "ferry profile list",
            "the saved profiles and how many tunnels each has",
        )],
    },
    Examples {
        path: &["profile", "show"],
        lines: &[(
            "ferry profile show staging",
            "the tunnels of profile staging",
        )],
    },
    Examples {
        path: &["profile", "add"],
        lines: &[
            (
                "ferry profile add staging svc/api 8080:80 -n backend --alias api",
                "add a tunnel named api to profile staging (created if new)",
            ),
            (
                "ferry profile add dev deploy/db 5432:5432 --autostart",
                "and start profile dev whenever Ferry starts",
            ),
        ],
    },
    Examples {
        path: &["profile", "rm"],
        lines: &[("ferry profile rm staging", "remove profile staging")],
    },
    Examples {
        path: &["profile", "export"],
        lines: &[(
            "ferry profile export staging dev -o team.toml",
            "write two profiles to a file to share (no secrets in it)",
        )],
    },
    Examples {
        path: &["profile", "import"],
        lines: &[
            (
                "ferry profile import team.toml",
                "profiles exported by Ferry",
            ),
            (
                "ferry profile import --kftray configs.json --name kftray",
                "a kftray JSON export, as profile kftray",
            ),
            (
                "ferry profile import --kubectl - < forwards.sh",
                "kubectl port-forward command lines from standard input",
            ),
        ],
    },
    Examples {
        path: &["profile", "restore-backup"],
        lines: &[(
            "ferry profile restore-backup",
            "go back to profiles.toml.bak, keeping the current file beside it",
        )],
    },
    Examples {
        path: &["up"],
        lines: &[
            ("ferry up", "start the autostart profiles until Ctrl-C"),
            (
                "ferry up staging dev",
                "start profiles staging and dev until Ctrl-C",
            ),
        ],
    },
    Examples {
        path: &["down"],
        lines: &[
            (
                "ferry down staging",
                "stop profile staging's tunnels on the running instance",
            ),
            (
                "ferry down --all",
                "stop every tunnel of the running instance",
            ),
        ],
    },
    Examples {
        path: &["status"],
        lines: &[
            ("ferry status", "the running instance's tunnels as a table"),
            ("ferry status --json", "the same as JSON, for scripts"),
            (
                "ferry status --demo",
                "the tunnels of ferry --demo's instance",
            ),
        ],
    },
    Examples {
        path: &["exec"],
        lines: &[
            (
                "ferry exec kubia-7d4b9c6f5-2xkqp -- cat /etc/resolv.conf",
                "run one command in the pod's default container and print its output",
            ),
            (
                "ferry exec -it postgres-0 -n shop -- sh",
                "an interactive shell in a terminal (exit code passed on)",
            ),
            (
                "ferry exec -c sidecar pod/web -- env",
                "a chosen container of the pod",
            ),
        ],
    },
    Examples {
        path: &["daemon"],
        lines: &[(
            "ferry daemon",
            "keep the tunnels running without a window, until SIGTERM, Ctrl-C or ferry quit",
        )],
    },
    Examples {
        path: &["quit"],
        lines: &[
            (
                "ferry quit",
                "stop every tunnel and end the running instance",
            ),
            ("ferry quit --demo", "end ferry --demo's instance"),
        ],
    },
];

/// The `Examples:` block as `--help` shows it.
fn render(lines: &[(&str, &str)]) -> String {
    let mut text = String::from("Examples:\n");
    for (command, what) in lines {
        text.push_str(&format!("  {command}\n      {what}\n"));
    }
    text
}

/// The examples of the subcommand at `path` (`[]` for `ferry`), as `--help` shows them.
pub fn for_path(path: &[&str]) -> Option<String> {
    EXAMPLES
        .iter()
        .find(|e| e.path == path)
        .map(|e| render(e.lines))
}

/// Ferry's full clap command: the derived one with the examples attached.
pub fn command() -> Command {
    attach(Cli::command(), &mut Vec::new())
}

fn attach(mut cmd: Command, path: &mut Vec<String>) -> Command {
    let key: Vec<&str> = path.iter().map(String::as_str).collect();
    if let Some(text) = for_path(&key) {
        cmd = cmd.after_help(text);
    }
    let names: Vec<String> = cmd
        .get_subcommands()
        .map(|s| s.get_name().to_owned())
        .collect();
    for name in names {
        path.push(name.clone());
        cmd = cmd.mut_subcommand(&name, |sub| attach(sub, path));
        path.pop();
    }
    cmd
}

/// Parses the process's arguments with the examples in every `--help`.
pub fn parse() -> Cli {
    let matches = command().get_matches();
    Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every subcommand a user can see (`help` and hidden ones aside) has examples, and each
    /// example names a real subcommand path: a new subcommand without examples fails here.
    #[test]
    fn every_visible_subcommand_has_examples() {
        let mut missing = Vec::new();
        fn walk(cmd: &Command, path: &mut Vec<String>, missing: &mut Vec<String>) {
            let key: Vec<&str> = path.iter().map(String::as_str).collect();
            if for_path(&key).is_none() {
                missing.push(format!("ferry {}", key.join(" ")));
            }
            for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
                if sub.get_name() == "help" {
                    continue;
                }
                path.push(sub.get_name().to_owned());
                walk(sub, path, missing);
                path.pop();
            }
        }
        walk(&Cli::command(), &mut Vec::new(), &mut missing);
        assert!(
            missing.is_empty(),
            "add examples to app/ferry/src/cli/examples.rs for: {}",
            missing.join(", ")
        );
    }

    /// Each example parses with the real argument definitions (a renamed flag breaks this).
    #[test]
    fn every_example_parses() {
        for examples in EXAMPLES {
            for (line, _) in examples.lines {
                let argv: Vec<&str> = line.split_whitespace().take_while(|w| *w != "<").collect();
                let result = command().try_get_matches_from(&argv);
                match result {
                    // Targets and ports parse too, as the subcommand would parse them.
                    Ok(matches) => check_spec(line, &Cli::from_arg_matches(&matches).unwrap()),
                    // `--help` in an example "fails" by printing help: that is what it shows.
                    Err(e) if e.kind() == clap::error::ErrorKind::DisplayHelp => {}
                    Err(e) => panic!("example `{line}` does not parse: {e}"),
                }
            }
        }
    }

    fn check_spec(line: &str, cli: &Cli) {
        use ferry_core::spec::{PortSpec, Target};
        let (target, ports) = match &cli.command {
            Some(super::super::Command::Forward(a)) => (&a.target, &a.ports),
            Some(super::super::Command::Profile(p)) => match &p.command {
                super::super::profile::ProfileCommand::Add(a) => (&a.target, &a.ports),
                _ => return,
            },
            _ => return,
        };
        target
            .parse::<Target>()
            .unwrap_or_else(|e| panic!("example `{line}`: {e}"));
        for port in ports {
            port.parse::<PortSpec>()
                .unwrap_or_else(|e| panic!("example `{line}`: {e}"));
        }
    }

    #[test]
    fn help_shows_the_examples() {
        let mut cmd = command();
        let sub = cmd.find_subcommand_mut("forward").expect("forward exists");
        let help = sub.render_help().to_string();
        assert!(
            help.contains("Examples:\n  ferry forward svc/kubia 8080:80\n"),
            "{help}"
        );
    }
}
