//! `deconflict serve` as a child process, shared by the CLI's integration
//! tests: each starts the real binary on port 0 and learns its address from
//! the line it prints, as an operator's scripts would.
#![allow(dead_code)] // each test binary uses a different part

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// The binary under test.
pub fn deconflict_command() -> Command {
    Command::new(env!("CARGO_BIN_EXE_deconflict"))
}

/// A running server, killed when dropped so a failing test leaves none.
pub struct Served {
    pub child: Child,
    pub url: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Served {
    /// Spawns `command` (a `deconflict serve … --listen 127.0.0.1:0`) and
    /// waits until it says where it listens.
    pub fn start(command: Command) -> Served {
        let (child, lines) = spawn_until(command, |line| line.starts_with("listening on "))
            .unwrap_or_else(|_| panic!("the server says where it listens"));
        let url = listening_url(&lines).expect("the server says where it listens");
        Served { child, url }
    }
}

/// Spawns `command` with stdout piped and reads its lines up to the first
/// for which `last` holds: the child and the lines read, or the child alone
/// when its output ended first (it refused to start).
pub fn spawn_until(mut command: Command, last: impl Fn(&str) -> bool) -> Result<(Child, Vec<String>), Child> {
    let mut child = command.stdout(Stdio::piped()).spawn().expect("the binary runs");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        let done = last(&line);
        lines.push(line);
        if done {
            return Ok((child, lines));
        }
    }
    Err(child)
}

/// The HTTP address in a server's `listening on URL` line.
pub fn listening_url(lines: &[String]) -> Option<String> {
    lines
        .iter()
        .find_map(|line| line.strip_prefix("listening on ").map(str::to_owned))
}
