//! The `deconflict` command. Glue only: parsing is `deconflict-formats`,
//! the rules are `deconflict-engine`.
//!
//! Exit status: 0 success, 1 a user error (one line saying what to fix),
//! 2 a usage error (from clap).

mod check;
mod client;
mod demo;
mod export;
mod log;
mod receipt;
mod serve;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// mimalloc instead of glibc's malloc: the service allocates and frees many
/// small values per request on several threads, and glibc spent a fifth of
/// the driver thread's time consolidating its free chunks
/// (crates/server/NOTES.md). Its settings: `deconflict_server::allocator`.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(
    name = "deconflict",
    version,
    about = "Find conflicts between parties' plans before they happen"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum PartyCommand {
    /// Create a party; prints its id and token (shown once).
    Add {
        name: String,
        /// military, humanitarian, civil or broker.
        #[arg(long)]
        kind: String,
        #[command(flatten)]
        server: client::ServerArgs,
        /// Also issue the party's TAK client certificate and write its PEM
        /// files (certificate, key, CA) into this directory.
        #[arg(long, value_name = "DIR")]
        tak_dir: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum LogCommand {
    /// Verify the audit log: signatures, growth since --checkpoint, every
    /// entry against the signed root; then save the latest checkpoint.
    Verify(log::LogVerifyArgs),
}

#[derive(Debug, Subcommand)]
enum ReceiptCommand {
    /// Verify a receipt offline: checkpoint signature, inclusion proof, leaf.
    Verify(receipt::ReceiptVerifyArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    /// An aligned table for people.
    Table,
    /// `{"conflicts": [Conflict]}` as in the contract.
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the service (HTTP API, embedded SQLite under --data).
    Serve(Box<serve::ServeArgs>),
    /// Manage parties on a server (admin token).
    Party {
        #[command(subcommand)]
        command: PartyCommand,
    },
    /// Notify each Feature of FILE to a server as an activity; print conflicts.
    Submit {
        /// GeoJSON: a Feature or a FeatureCollection.
        file: PathBuf,
        #[command(flatten)]
        server: client::ServerArgs,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Check each activity of FILE against a server, storing nothing; or,
    /// with --against, against another party's file, offline.
    ///
    /// Offline, FILE and OTHER are GeoJSON (a Feature or a FeatureCollection),
    /// each the plans of one party; the parties are named after the files'
    /// stems. Every conflict between an activity of FILE and one of OTHER is
    /// listed.
    Check {
        /// The activities to check (GeoJSON).
        file: PathBuf,
        /// The other party's activities (GeoJSON): check offline, no server.
        #[arg(long, value_name = "OTHER")]
        against: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
        #[command(flatten)]
        server: client::ServerArgs,
    },
    /// The signed audit log (against a server).
    Log {
        #[command(subcommand)]
        command: LogCommand,
    },
    /// Receipts the server returned (offline).
    Receipt {
        #[command(subcommand)]
        command: ReceiptCommand,
    },
    /// The service with the web map and a day in north-east Syria
    /// (illustrative): prints the address and each demo party's token.
    Demo(demo::DemoArgs),
    /// What your party may see (activities, zones, conflicts) as GeoJSON or KML.
    Export(Box<export::ExportArgs>),
}

fn main() -> ExitCode {
    deconflict_server::allocator::settle();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve::run(*args),
        Command::Party {
            command:
                PartyCommand::Add {
                    name,
                    kind,
                    server,
                    tak_dir: None,
                },
        } => client::party_add(&name, &kind, &server),
        Command::Party {
            command:
                PartyCommand::Add {
                    name,
                    kind,
                    server,
                    tak_dir: Some(dir),
                },
        } => client::party_add_with_tak(&name, &kind, &server, &dir),
        Command::Submit { file, server, format } => {
            client::send(&file, &server, true, format == Format::Json)
        }
        Command::Check {
            file,
            against: None,
            format,
            server,
        } => client::send(&file, &server, false, format == Format::Json),
        Command::Check {
            file,
            against: Some(against),
            format,
            ..
        } => check::run(&file, &against, format == Format::Json),
        Command::Demo(args) => demo::run(args),
        Command::Log {
            command: LogCommand::Verify(args),
        } => log::verify(&args),
        Command::Receipt {
            command: ReceiptCommand::Verify(args),
        } => receipt::verify(&args),
        Command::Export(args) => export::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // One line that says what to fix.
            eprintln!("deconflict: {error:#}");
            ExitCode::from(1)
        }
    }
}
