//! Shells and one-shot commands through the real window (egui_kittest) on the demo cluster
//! (kubesim, which runs exec commands as local processes, with a PTY for a TTY): open a shell
//! from a pod's details, type into it as a keyboard does, resize it, interrupt it, exit it and
//! reconnect; fall back to sh where the image has no bash; run one command and see its streams
//! apart; read the logs of a pod with two containers.

mod support;

use std::sync::Arc;
use std::time::Duration;

use egui::{Event, Key};
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use ferry::ui::FerryApp;
use ferry::ui::theme::icon;
use ferry_core::exec::{TerminalStatus, TerminalView};
use support::{DemoCluster, click, wait_for, wait_for_label};

const PATIENCE: Duration = Duration::from_secs(30);

/// The view of the only shell the instance has.
fn terminal(app: &Harness<'_, FerryApp>) -> Arc<TerminalView> {
    let terminals = &app.state().model().terminals;
    assert_eq!(terminals.len(), 1, "one shell is open");
    terminals[0].view()
}

/// The shell's visible lines, trimmed.
fn lines(app: &Harness<'_, FerryApp>) -> Vec<String> {
    let model = app.state().model();
    model
        .terminals
        .first()
        .map(|t| {
            t.view()
                .screen
                .text()
                .lines()
                .map(|l| l.trim().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// Types a line into the focused terminal and presses Enter, as a keyboard would.
fn type_line(app: &mut Harness<'_, FerryApp>, line: &str) {
    app.event(Event::Text(line.into()));
    app.key_press(Key::Enter);
    app.step();
}

/// Waits until some visible line of the shell is exactly `line`.
fn wait_for_line(app: &mut Harness<'_, FerryApp>, line: &str) {
    wait_for(
        app,
        &format!("a line \u{201c}{line}\u{201d}"),
        PATIENCE,
        |h| lines(h).iter().any(|l| l == line),
    );
}

/// Chooses the demo context and opens the details of the pod whose name starts with `prefix`.
fn open_pod(app: &mut Harness<'_, FerryApp>, prefix: &str) -> String {
    wait_for_label(app, "demo", PATIENCE);
    click(app, "demo");
    wait_for(app, &format!("a running pod {prefix}…"), PATIENCE, |h| {
        h.state()
            .model()
            .objects
            .pods
            .iter()
            .any(|p| p.name.starts_with(prefix) && p.status == "Running")
    });
    let name = app
        .state()
        .model()
        .objects
        .pods
        .iter()
        .find(|p| p.name.starts_with(prefix) && p.status == "Running")
        .map(|p| p.name.clone())
        .expect("the pod");
    click(app, &name);
    wait_for_label(app, "SHELL AND COMMANDS", PATIENCE);
    name
}

/// Opens a shell from the pod's details and waits for it to run and show a prompt.
fn open_shell(app: &mut Harness<'_, FerryApp>) {
    click(app, &format!("{} Open shell", icon::SHELL));
    wait_for(app, "the shell to run and print a prompt", PATIENCE, |h| {
        let model = h.state().model();
        model.terminals.first().is_some_and(|t| {
            let v = t.view();
            v.status == TerminalStatus::Running && !v.screen.text().trim().is_empty()
        })
    });
    assert!(
        app.state().dock().terminal_focused,
        "a new shell takes the keyboard"
    );
}

/// Whether a process with exactly this command line runs on this machine (kubesim runs exec
/// commands as local processes).
fn process_running(argv: &[&str]) -> bool {
    let wanted: Vec<u8> = argv
        .iter()
        .flat_map(|a| [a.as_bytes(), b"\0"].concat())
        .collect();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return false;
    };
    entries
        .flatten()
        .any(|e| std::fs::read(e.path().join("cmdline")).is_ok_and(|cmdline| cmdline == wanted))
}

#[test]
fn a_shell_in_a_kubia_pod_types_resizes_interrupts_exits_and_reconnects() {
    let cluster = DemoCluster::start();
    let mut app = cluster.open_app();
    let pod = open_pod(&mut app, "kubia-");
    open_shell(&mut app);
    assert_eq!(terminal(&app).title, format!("{pod}/kubia (bash)"));

    // Typing runs a command; its output lands in the grid.
    type_line(&mut app, "echo hi");
    wait_for_line(&mut app, "hi");

    // A smaller window gives the terminal fewer columns; the program is told the new size.
    let before = terminal(&app).screen.cols;
    app.set_size(egui::vec2(900.0, 800.0));
    wait_for(&mut app, "the grid to take the new width", PATIENCE, |h| {
        let cols = terminal(h).screen.cols;
        cols < before && cols > 20
    });
    let screen = terminal(&app).screen.clone();
    type_line(&mut app, "clear; stty size");
    wait_for_line(&mut app, &format!("{} {}", screen.rows, screen.cols));

    // Ctrl-C (which egui hands over as a Copy event) interrupts a running command.
    type_line(&mut app, "sleep 317");
    wait_for(&mut app, "sleep 317 to run", PATIENCE, |_| {
        process_running(&["sleep", "317"])
    });
    app.event(Event::Copy);
    app.step();
    wait_for(&mut app, "sleep 317 to be interrupted", PATIENCE, |_| {
        !process_running(&["sleep", "317"])
    });
    type_line(&mut app, "echo after-$((40+2))");
    wait_for_line(&mut app, "after-42");

    // Exiting shows the code; Enter reconnects.
    type_line(&mut app, "exit 3");
    wait_for(&mut app, "the shell to exit with code 3", PATIENCE, |h| {
        terminal(h).status == TerminalStatus::Exited(3)
            && h.query_all_by_label_contains("code 3").next().is_some()
    });
    app.key_press(Key::Enter);
    wait_for(&mut app, "the shell to reconnect", PATIENCE, |h| {
        terminal(h).status == TerminalStatus::Running
    });
    type_line(&mut app, "echo again-$((1+1))");
    wait_for_line(&mut app, "again-2");

    // Closing the tab ends the shell.
    click(&mut app, "✖");
    wait_for(&mut app, "the tab to close", PATIENCE, |h| {
        h.state().model().terminals.is_empty()
    });
}

#[test]
fn a_container_without_bash_falls_back_to_sh() {
    let cluster = DemoCluster::start();
    let mut app = cluster.open_app();
    // fortune's default container is nginx on alpine, which has no bash.
    open_pod(&mut app, "fortune");
    open_shell(&mut app);
    assert_eq!(terminal(&app).title, "fortune/web-server (sh)");
    // The tab says which shell ran.
    wait_for(&mut app, "the tab titled with sh", PATIENCE, |h| {
        h.query_all_by_label_contains("fortune/web-server (sh)")
            .next()
            .is_some()
    });
    type_line(&mut app, "echo sh-$((2*3))");
    wait_for_line(&mut app, "sh-6");
}

#[test]
fn the_logs_of_a_pod_with_two_containers_are_its_default_containers_lines() {
    let cluster = DemoCluster::start();
    let mut app = cluster.open_app();
    open_pod(&mut app, "fortune");
    wait_for_label(&mut app, "RECENT LOG LINES OF WEB-SERVER", PATIENCE);
    wait_for(&mut app, "web-server's log lines", PATIENCE, |h| {
        h.query_all_by_label_contains("Starting web-server (image nginx:1.27-alpine)")
            .next()
            .is_some()
    });
    for bad in [
        "ApiError",
        "BadRequest",
        "Status {",
        "container name must be specified",
    ] {
        assert!(
            app.query_all_by_label_contains(bad).next().is_none(),
            "the log view shows {bad:?}"
        );
    }
}

#[test]
fn a_one_shot_command_shows_stdout_stderr_and_the_exit_code_apart() {
    let cluster = DemoCluster::start();
    let mut app = cluster.open_app();
    let pod = open_pod(&mut app, "kubia-");
    click(&mut app, "Run command…");
    wait_for_label(&mut app, "Run in", PATIENCE);

    // Without "sh -c" the line is argv: no shell expands $HOME.
    app.event(Event::Text("echo '$HOME' two  spaces".into()));
    click(&mut app, &format!("{} Run", icon::FORWARD));
    wait_for(&mut app, "the first run to end", PATIENCE, |h| {
        h.state()
            .dock()
            .runner
            .run
            .as_ref()
            .is_some_and(|r| r.ended.is_some())
    });
    {
        let run = app.state().dock().runner.run.clone().expect("a run");
        assert_eq!(run.pod, pod);
        assert_eq!(run.argv, ["echo", "$HOME", "two", "spaces"]);
        assert_eq!(
            String::from_utf8_lossy(run.stdout.bytes()),
            "$HOME two spaces\n"
        );
        assert!(matches!(run.ended, Some((Ok(0), _))), "{:?}", run.ended);
    }
    wait_for_label(&mut app, "exit code 0", PATIENCE);

    // With "sh -c" the shell runs it; the streams stay apart and the code is shown.
    click(&mut app, "sh -c");
    app.query_all_by_role(egui::accesskit::Role::TextInput)
        .find(|n| n.value().as_deref() == Some("echo '$HOME' two  spaces"))
        .expect("the command field")
        .focus();
    app.step();
    app.key_press_modifiers(egui::Modifiers::COMMAND, Key::A);
    app.event(Event::Text("echo out; echo err >&2; exit 4".into()));
    click(&mut app, &format!("{} Run", icon::FORWARD));
    wait_for(&mut app, "the second run to end", PATIENCE, |h| {
        h.state()
            .dock()
            .runner
            .run
            .as_ref()
            .is_some_and(|r| r.ended.is_some() && r.argv[0] == "sh")
    });
    let run = app.state().dock().runner.run.clone().expect("a run");
    assert_eq!(run.argv, ["sh", "-c", "echo out; echo err >&2; exit 4"]);
    assert_eq!(String::from_utf8_lossy(run.stdout.bytes()), "out\n");
    assert_eq!(String::from_utf8_lossy(run.stderr.bytes()), "err\n");
    assert!(matches!(run.ended, Some((Ok(4), _))), "{:?}", run.ended);
    wait_for_label(&mut app, "exit code 4", PATIENCE);
    assert!(app.query_all_by_label("out").next().is_some());
    assert!(app.query_all_by_label("err").next().is_some());
}
