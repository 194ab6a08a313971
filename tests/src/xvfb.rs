//! A private X server (Xvfb) for tests that open Ferry's real window, and `xdotool` to see
//! which windows are visible on it. Missing `Xvfb` or `xdotool`: the test fails under
//! `CI=true` and is skipped (saying why) otherwise.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running Xvfb on its own display; killed on drop.
pub struct Xvfb {
    child: Child,
    display: String,
}

impl Xvfb {
    /// Starts Xvfb on the first free display from :90 and waits until it accepts clients.
    /// `Ok(None)`: Xvfb or xdotool is missing outside CI (the test is skipped).
    pub fn start() -> anyhow::Result<Option<Self>> {
        for tool in ["Xvfb", "xdotool"] {
            if !on_path(tool) {
                let why = format!("{tool} is not installed (apt install xvfb xdotool)");
                if crate::is_ci() {
                    anyhow::bail!("{why}; CI=true requires it");
                }
                eprintln!("skipped: {why}");
                return Ok(None);
            }
        }
        for number in 90..140 {
            let socket = format!("/tmp/.X11-unix/X{number}");
            let lock = format!("/tmp/.X{number}-lock");
            if Path::new(&socket).exists() || Path::new(&lock).exists() {
                continue;
            }
            let display = format!(":{number}");
            let mut child = Command::new("Xvfb")
                .args([&display, "-screen", "0", "1400x900x24", "-nolisten", "tcp"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()?;
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Some(status) = child.try_wait()? {
                    // Lost a race for this display number to another test: try the next.
                    eprintln!(
                        "Xvfb on {} exited ({status}); trying the next display",
                        &display
                    );
                    break;
                }
                if Path::new(&socket).exists() {
                    return Ok(Some(Xvfb { child, display }));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        anyhow::bail!("could not start Xvfb on any display from :90 to :139")
    }

    /// The `DISPLAY` value.
    pub fn display(&self) -> &str {
        &self.display
    }

    /// Ids of the visible windows whose title matches `title_regex` (`xdotool search
    /// --onlyvisible --name`).
    pub fn visible_windows(&self, title_regex: &str) -> anyhow::Result<Vec<String>> {
        let out = Command::new("xdotool")
            .args(["search", "--onlyvisible", "--name", title_regex])
            .env("DISPLAY", &self.display)
            .output()?;
        // xdotool exits 1 when nothing matches.
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect())
    }
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
}
