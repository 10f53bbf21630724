//! `deconflict export`: what the caller's party may see, from the server's
//! `GET /v1/export`, as GeoJSON or KML, to standard output or a file.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};

use crate::client::{Client, ServerArgs};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// A GeoJSON FeatureCollection (`properties.layer`: activity, zone, conflict).
    Geojson,
    /// KML 2.2: disks as polygons, corridors as centrelines with `corridor_m`.
    Kml,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    #[arg(long, value_enum, default_value_t = ExportFormat::Geojson)]
    format: ExportFormat,
    /// Write here (replaced whole, never half written) instead of standard output.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Only what meets this box: W,S,E,N in degrees.
    #[arg(long, value_name = "W,S,E,N")]
    bbox: Option<String>,
    /// Only what is still on at or after this instant (RFC 3339).
    #[arg(long)]
    from: Option<String>,
    /// Only what starts before this instant (RFC 3339).
    #[arg(long)]
    to: Option<String>,
    #[command(flatten)]
    server: ServerArgs,
}

pub fn run(args: &ExportArgs) -> Result<()> {
    let client = Client::new(&args.server)?;
    let format = match args.format {
        ExportFormat::Geojson => "geojson",
        ExportFormat::Kml => "kml",
    };
    let mut query = vec![("format", format)];
    for (name, value) in [("bbox", &args.bbox), ("from", &args.from), ("to", &args.to)] {
        if let Some(value) = value {
            query.push((name, value.as_str()));
        }
    }
    let bytes = client.get_bytes("/v1/export", &query, "export")?;
    match &args.out {
        None => std::io::stdout()
            .write_all(&bytes)
            .context("cannot write to standard output"),
        Some(path) => {
            // A temporary file beside the target, renamed over it: a reader
            // sees the old file or the new one, never a part.
            let dir = path
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or_else(|| std::path::Path::new("."));
            let mut file = tempfile::NamedTempFile::new_in(dir)
                .with_context(|| format!("cannot write into {}", dir.display()))?;
            file.write_all(&bytes)
                .with_context(|| format!("cannot write {}", path.display()))?;
            file.persist(path)
                .with_context(|| format!("cannot write {}", path.display()))?;
            eprintln!("wrote {} ({} bytes, {format})", path.display(), bytes.len());
            Ok(())
        }
    }
}
