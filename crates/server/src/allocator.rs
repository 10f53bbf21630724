//! The allocator's settings for a process that runs the service (the
//! `deconflict` command and the benches, whose global allocator is
//! mimalloc: crates/cli/src/main.rs).

/// mimalloc's settings the service runs with, each unless the environment
/// sets it. `MIMALLOC_PURGE_DELAY` (milliseconds; mimalloc's default 1,000)
/// is how long freed pages stay before they go back to the OS: handed back
/// sooner, they come back as fresh pages the kernel zeroes again, 2 MiB at a
/// time (mimalloc's arenas are transparent huge pages). Kept 10 s, the W1
/// bench at 100k took a third of the page faults (136k → 41k) and a few %
/// less CPU, its peak memory ~9 % more (crates/server/NOTES.md,
/// `workers-s21`). `-1` (never hand back) saved about as much CPU and held
/// ~10 % more memory for good.
pub const ENV: [(&str, &str); 1] = [("MIMALLOC_PURGE_DELAY", "10000")];

/// mimalloc reads its settings from the environment when the process starts,
/// before `main`; setting them in code would take `unsafe` (an FFI call). So
/// when one of [`ENV`] is unset, the command runs itself again,
/// in place (`exec`: the same process id, arguments and descriptors), with it
/// set. Returns only when there is nothing to set or the `exec` failed (the
/// command then runs with mimalloc's defaults).
pub fn settle() {
    use std::os::unix::process::CommandExt;
    let missing: Vec<_> = ENV
        .iter()
        .filter(|(name, _)| std::env::var_os(name).is_none())
        .collect();
    if missing.is_empty() {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let mut args = std::env::args_os();
    let mut command = std::process::Command::new(exe);
    if let Some(arg0) = args.next() {
        command.arg0(arg0);
    }
    command.args(args);
    for (name, value) in missing {
        command.env(name, value);
    }
    let _failed = command.exec();
}
