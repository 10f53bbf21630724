//! The service in a child process, for the tests that measure the server's
//! own resident memory and CPU time (load, latency): in the test's process
//! those would include the clients.
//!
//! The child is the test binary itself, started again to run one ignored
//! test (`child_test`) whose body is [`serve_until_stdin_closes`] (or a
//! bench binary started again with its data directory in the environment:
//! [`ChildProcess::start_self`]); it prints a ready line with its address,
//! its admin token path and, when it listens for CoT, the TAK listener's
//! address, and stops when its standard input closes (the test ended, or
//! died).

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

use deconflict_server::{AppState, ServerConfig};

/// The body of a child test: the service over `dir`, with `configure`
/// applied to its configuration, until standard input closes.
pub async fn serve_until_stdin_closes(dir: &str, ready: &str, configure: impl FnOnce(&mut ServerConfig)) {
    serve_until_stdin_closes_with(dir, ready, configure, false).await;
}

/// [`serve_until_stdin_closes`], and with `cot` a TAK listener (TLS, the
/// CA's party certificates) on 127.0.0.1 port 0 too, as `deconflict serve
/// --cot-listen` runs it.
pub async fn serve_until_stdin_closes_with(
    dir: &str,
    ready: &str,
    configure: impl FnOnce(&mut ServerConfig),
    cot: bool,
) {
    let mut config = ServerConfig::new(dir);
    configure(&mut config);
    let (state, opened) = tokio::task::block_in_place(|| AppState::open(config)).expect("the service opens");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let cot_listener = if cot {
        Some(
            state
                .live
                .listen_cot("127.0.0.1:0".parse().unwrap(), None, &[])
                .await
                .expect("the CoT listener starts"),
        )
    } else {
        None
    };
    let cot_address = cot_listener
        .as_ref()
        .map(|l| format!(" {}", l.local_addr()))
        .unwrap_or_default();
    println!(
        "{ready} {} {}{cot_address}",
        listener.local_addr().unwrap(),
        opened.admin_token_path.display()
    );
    let stdin_closed = tokio::task::spawn_blocking(|| {
        let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut Vec::new());
    });
    deconflict_server::serve(listener, state.clone(), async {
        let _ = stdin_closed.await;
    })
    .await
    .unwrap();
    if let Some(cot_listener) = cot_listener {
        cot_listener.shutdown().await;
    }
    tokio::task::block_in_place(|| state.driver.stop());
}

/// A running child server; stopped (then killed if need be) on drop.
pub struct ChildProcess {
    child: Child,
    stdin: Option<ChildStdin>,
    /// `127.0.0.1:port`.
    pub address: String,
    pub url: String,
    pub admin: String,
    /// The TAK listener's `127.0.0.1:port`, when the child listens for CoT.
    pub cot_address: Option<String>,
    _dir: tempfile::TempDir,
}

impl ChildProcess {
    /// Runs this test binary's ignored test `child_test` with a fresh data
    /// directory in the environment variable `dir_var` (and `envs`), and
    /// waits (at most 60 s) for the line starting with `ready`.
    pub fn start(child_test: &str, dir_var: &str, ready: &str, envs: &[(&str, String)]) -> ChildProcess {
        let mut command = Command::new(std::env::current_exe().unwrap());
        command.args([
            child_test,
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ]);
        ChildProcess::spawn(command, dir_var, ready, envs)
    }

    /// Runs this binary again without arguments (a `harness = false`
    /// bench, whose `main` serves when it finds `dir_var` set), as
    /// [`Self::start`] does.
    pub fn start_self(dir_var: &str, ready: &str, envs: &[(&str, String)]) -> ChildProcess {
        ChildProcess::spawn(
            Command::new(std::env::current_exe().unwrap()),
            dir_var,
            ready,
            envs,
        )
    }

    fn spawn(mut command: Command, dir_var: &str, ready: &str, envs: &[(&str, String)]) -> ChildProcess {
        let dir = tempfile::tempdir().unwrap();
        let mut child = command
            .env(dir_var, dir.path())
            .envs(envs.iter().map(|(name, value)| (*name, value.as_str())))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the test binary starts again as the server");
        let stdin = child.stdin.take();
        // Its output is read on a thread (kept draining to the end), so
        // that waiting for the address is bounded.
        let stdout = child.stdout.take().unwrap();
        let (ready_tx, ready_rx) = std_mpsc::channel();
        let ready = ready.to_owned();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                // The harness prints `test <name> ... ` on the same line.
                if let Some((_, rest)) = line.split_once(ready.as_str()) {
                    let _ = ready_tx.send(rest.trim().to_owned());
                }
            }
        });
        let ready = ready_rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the child server prints its address within 60 s");
        let mut fields = ready.split(' ');
        let address = fields.next().unwrap();
        let admin_path = fields.next().expect("the admin token path on the ready line");
        ChildProcess {
            child,
            stdin,
            address: address.to_owned(),
            url: format!("http://{address}"),
            admin: std::fs::read_to_string(admin_path).unwrap().trim().to_owned(),
            cot_address: fields.next().map(str::to_owned),
            _dir: dir,
        }
    }

    /// The server's resident memory (`VmRSS` of /proc/PID/status), KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/PID/status")
    }

    /// The server's CPU time so far (user + system, /proc/PID/stat).
    pub fn cpu(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap();
        // Fields after the command name (which may hold spaces): state is
        // the first, utime the 12th, stime the 13th.
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        let fields: Vec<&str> = rest.split(' ').collect();
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        // /proc counts in USER_HZ, 100 on every Linux.
        Duration::from_millis(ticks * 10)
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        // End of input: the child stops gracefully; killed if it does not
        // within a few seconds (a failed test must not leave it behind).
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
