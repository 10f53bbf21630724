//! `deconflict log verify`: a party checks the whole audit log against the
//! server's signed head and, with a saved checkpoint, that the log only
//! grew since the last run. Run on a schedule, the party is a witness.
//!
//! What it proves, in order: the verifier key is the pinned one (or the one
//! trusted on first use); the latest checkpoint is signed by it; the saved
//! checkpoint is too, and the consistency proof leads from it to the
//! latest; every entry up to the latest size, re-hashed where the caller
//! gets its bytes, rebuilds exactly the saved root at the saved size and
//! the latest root at the latest size (which proves the inclusion of every
//! entry, the caller's own among them); the caller's own entries are full,
//! canonical leaves. Only then is the new checkpoint saved.

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use clap::Args;
use deconflict_audit::{
    canonical_json, check_growth, leaf_hash, verify_checkpoint, Checkpoint, Hash, NoteVerifier, Tree,
};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;

use crate::client::{Client, ServerArgs};

#[derive(Debug, Args)]
pub struct LogVerifyArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// The checkpoint saved by the previous run: checked, then replaced by
    /// the latest one. Its verifier key is kept in FILE.key.
    #[arg(long, value_name = "FILE")]
    checkpoint: Option<PathBuf>,
    /// The log's verifier key `NAME+HASH+BASE64`, or a file holding it.
    /// Without it, the key saved next to the checkpoint (trusted on first use).
    #[arg(long, value_name = "KEY")]
    public_key: Option<String>,
    /// Entries per request (at most the server's --max-log-entries).
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(1..))]
    page_size: u64,
}

/// A key given as text or as a file holding it.
pub fn parse_key(key: &str) -> Result<NoteVerifier> {
    let text = match NoteVerifier::parse(key.trim()) {
        Ok(verifier) => return Ok(verifier),
        Err(_) if Path::new(key).is_file() => {
            std::fs::read_to_string(key).with_context(|| format!("cannot read the public key file {key}"))?
        }
        Err(e) => bail!("--public-key: {e} (give `NAME+HASH+BASE64` or a file holding it)"),
    };
    NoteVerifier::parse(text.trim()).map_err(|e| anyhow!("--public-key {key}: {e}"))
}

/// Where the key trusted on first use is kept: beside the checkpoint.
fn key_path(checkpoint: &Path) -> PathBuf {
    let mut name = checkpoint.as_os_str().to_owned();
    name.push(".key");
    PathBuf::from(name)
}

/// Writes `text` to `path` atomically: a temporary file in the same
/// directory, synced, then renamed over the old one.
fn save_atomically(path: &Path, text: &str) -> Result<()> {
    use std::io::Write as _;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut file = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("cannot write into {}", dir.display()))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.as_file().sync_all())
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.persist(path)
        .map_err(|e| anyhow!("cannot save {}: {}", path.display(), e.error))?;
    Ok(())
}

/// Which key to verify with, and whether it must be saved (first use).
fn choose_key(args: &LogVerifyArgs, served: &str) -> Result<(NoteVerifier, Option<PathBuf>)> {
    let served_key =
        NoteVerifier::parse(served).map_err(|e| anyhow!("the server's public key does not parse: {e}"))?;
    if let Some(pinned) = &args.public_key {
        let pinned = parse_key(pinned)?;
        if pinned != served_key {
            bail!("key check: the server serves the log key {served_key}, not the pinned {pinned}");
        }
        return Ok((pinned, None));
    }
    let Some(checkpoint) = &args.checkpoint else {
        return Ok((served_key, None));
    };
    let saved_path = key_path(checkpoint);
    match std::fs::read_to_string(&saved_path) {
        Ok(saved) => {
            let saved = NoteVerifier::parse(saved.trim())
                .map_err(|e| anyhow!("{}: the saved key does not parse: {e}", saved_path.display()))?;
            if saved != served_key {
                bail!(
                    "key check: the log key changed: {} holds {saved}, the server now serves {served_key}",
                    saved_path.display()
                );
            }
            Ok((saved, None))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if checkpoint.exists() {
                bail!(
                    "key check: {} exists but its key file {} is missing; pass --public-key",
                    checkpoint.display(),
                    saved_path.display()
                );
            }
            Ok((served_key, Some(saved_path)))
        }
        Err(e) => Err(anyhow!("cannot read {}: {e}", saved_path.display())),
    }
}

/// What a full leaf says about who it concerns: `payload.party` or one of
/// `payload.parties`. Fails when the bytes are not a canonical v1 leaf.
fn leaf_parties(bytes: &[u8]) -> std::result::Result<Vec<u64>, String> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| format!("not JSON: {e}"))?;
    let canonical = canonical_json(&value).map_err(|e| e.to_string())?;
    if canonical != bytes {
        return Err("not in RFC 8785 canonical form".into());
    }
    if value["v"].as_u64() != Some(1) {
        return Err("`v` is not 1".into());
    }
    if value["kind"].as_str().is_none_or(str::is_empty) {
        return Err("no `kind`".into());
    }
    if value["at_ms"].as_i64().is_none() {
        return Err("no integer `at_ms`".into());
    }
    let payload = value.get("payload").ok_or("no `payload`")?;
    let mut parties: Vec<u64> = payload["party"].as_u64().into_iter().collect();
    if let Some(list) = payload["parties"].as_array() {
        parties.extend(list.iter().filter_map(Value::as_u64));
    }
    Ok(parties)
}

/// The counts a successful run reports.
#[derive(Debug, Default)]
struct Tally {
    full: u64,
    own: u64,
}

/// Fetches entries `[0, size)` page by page, re-hashes every full leaf,
/// checks `old`'s root when the rebuilt tree reaches its size, and
/// returns the rebuilt tree.
fn rebuild(
    client: &Client,
    size: u64,
    page_size: u64,
    old: Option<&Checkpoint>,
    me: Option<u64>,
    progress: &ProgressBar,
) -> Result<(Tree, Tally)> {
    let mut tree = Tree::new();
    let mut tally = Tally::default();
    let check_old = |tree: &Tree| -> Result<()> {
        if let Some(old) = old.filter(|o| o.size == tree.size()) {
            if tree.root() != old.root_hash {
                bail!(
                    "saved root check: entries 0..{} do not hash to the saved checkpoint's root",
                    old.size
                );
            }
        }
        Ok(())
    };
    check_old(&tree)?;
    while tree.size() < size {
        let from = tree.size();
        let to = size.min(from + page_size);
        let page = client.get_json(
            &format!("/v1/log/entries?from={from}&to={to}"),
            &format!("entries {from}..{to}"),
        )?;
        let entries = page["entries"]
            .as_array()
            .with_context(|| format!("entries {from}..{to}: the answer has no `entries` list"))?;
        if entries.len() as u64 != to - from {
            bail!(
                "entries {from}..{to}: the server sent {} entries for {} indices",
                entries.len(),
                to - from
            );
        }
        for entry in entries {
            let index = tree.size();
            if entry["index"].as_u64() != Some(index) {
                bail!(
                    "entry {index}: the server sent index {} in its place",
                    entry["index"]
                );
            }
            let hash: Hash = entry["leaf_hash"]
                .as_str()
                .and_then(|h| h.parse().ok())
                .with_context(|| format!("entry {index}: `leaf_hash` is not a base64 hash"))?;
            if let Some(leaf) = entry.get("leaf").filter(|l| !l.is_null()) {
                let bytes = leaf
                    .as_str()
                    .and_then(|l| STANDARD.decode(l).ok())
                    .with_context(|| format!("entry {index}: `leaf` is not base64"))?;
                if leaf_hash(&bytes) != hash {
                    bail!("entry {index}: leaf hash check: the leaf's bytes do not hash to its leaf_hash");
                }
                let parties =
                    leaf_parties(&bytes).map_err(|e| anyhow!("entry {index}: leaf format check: {e}"))?;
                tally.full += 1;
                if me.is_some_and(|me| parties.contains(&me)) {
                    tally.own += 1;
                }
            }
            tree.append_hash(hash)
                .map_err(|e| anyhow!("entry {index}: {e}"))?;
            check_old(&tree)?;
            progress.inc(1);
        }
    }
    Ok((tree, tally))
}

pub fn verify(args: &LogVerifyArgs) -> Result<()> {
    let client = Client::new(&args.server)?;
    let (status, served) = client.get("/v1/log/public-key")?;
    if !status.is_success() {
        bail!("public key: the server answered {status}");
    }
    let (verifier, save_key) = choose_key(args, served.trim())?;

    let old_note = match &args.checkpoint {
        Some(path) if path.exists() => {
            Some(std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?)
        }
        _ => None,
    };
    let old = old_note
        .map(|note| {
            verify_checkpoint(&note, &verifier).map_err(|e| {
                anyhow!(
                    "saved checkpoint signature check: {}: {e}",
                    args.checkpoint.as_deref().unwrap_or(Path::new("")).display()
                )
            })
        })
        .transpose()?;

    let (status, note) = client.get("/v1/log/checkpoint")?;
    let (new, note) = if status == reqwest::StatusCode::NOT_FOUND {
        // An empty log has no head yet.
        if let Some(old) = old.as_ref().filter(|o| o.size > 0) {
            bail!(
                "consistency check: the server has no checkpoint but the saved one has size {} (rollback)",
                old.size
            );
        }
        println!("the log is empty: nothing to verify");
        return Ok(());
    } else if status.is_success() {
        let new = verify_checkpoint(&note, &verifier)
            .map_err(|e| anyhow!("checkpoint signature check: latest checkpoint: {e}"))?;
        (new, note)
    } else {
        bail!("checkpoint: the server answered {status}");
    };

    if let Some(old) = &old {
        if new.size < old.size {
            bail!(
                "consistency check: the latest checkpoint has size {}, smaller than the saved {} (rollback)",
                new.size,
                old.size
            );
        }
        if new.size == old.size && new.root_hash != old.root_hash {
            bail!(
                "consistency check: the latest checkpoint has the saved size {} but another root (fork)",
                new.size
            );
        }
        let proof: Vec<Hash> = if old.size == 0 || old.size == new.size {
            Vec::new()
        } else {
            let answer = client.get_json(
                &format!("/v1/log/proof/consistency?from={}&to={}", old.size, new.size),
                "consistency proof",
            )?;
            answer["proof"]
                .as_array()
                .and_then(|p| p.iter().map(|h| h.as_str()?.parse().ok()).collect())
                .context("consistency proof: `proof` is not a list of base64 hashes")?
        };
        if old.size > 0 {
            check_growth(old, &new, &proof).map_err(|e| {
                anyhow!(
                    "consistency check: from the saved size {} to {}: {e}",
                    old.size,
                    new.size
                )
            })?;
        }
    }

    // Who we are, to count our own entries. The admin token is no party.
    let me = match client.get("/v1/me")? {
        (status, body) if status.is_success() => serde_json::from_str::<Value>(&body)
            .ok()
            .and_then(|v| v["id"].as_u64()),
        _ => None,
    };

    let progress = if std::io::stderr().is_terminal() && new.size > args.page_size {
        let bar = ProgressBar::new(new.size);
        if let Ok(style) = ProgressStyle::with_template("{msg} {wide_bar} {pos}/{len} entries ({eta})") {
            bar.set_style(style);
        }
        bar.set_message("verifying");
        bar
    } else {
        ProgressBar::hidden()
    };
    let rebuilt = rebuild(&client, new.size, args.page_size, old.as_ref(), me, &progress);
    progress.finish_and_clear();
    let (tree, tally) = rebuilt?;
    if tree.root() != new.root_hash {
        bail!(
            "root check: the {} entries do not hash to the latest checkpoint's root",
            new.size
        );
    }

    if let Some(path) = &args.checkpoint {
        if let Some(key_file) = &save_key {
            save_atomically(key_file, &format!("{verifier}\n"))?;
        }
        save_atomically(path, &note)?;
    }

    let from = match &old {
        Some(old) => format!("consistent with the saved size {}, ", old.size),
        None => String::new(),
    };
    let mine = match me {
        Some(_) => format!(", {} of them yours", tally.own),
        None => String::new(),
    };
    let saved = match (&args.checkpoint, &save_key) {
        (Some(path), Some(key)) => format!(
            "; saved to {} (key trusted on first use, kept in {})",
            path.display(),
            key.display()
        ),
        (Some(path), None) => format!("; saved to {}", path.display()),
        (None, _) => String::new(),
    };
    println!(
        "log verified: checkpoint of size {} signed by {}, {from}all {} entries hash to its root, \
         {} full leaves re-hashed and parsed{mine}{saved}",
        new.size,
        verifier.name(),
        new.size,
        tally.full,
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use deconflict_audit::LeafEvent;
    use serde_json::json;

    #[test]
    fn leaf_parties_reads_canonical_leaves_and_names_the_defect() {
        let payload = json!({"party": 3, "activity": 7});
        let leaf = LeafEvent {
            kind: "activity.notified",
            at_ms: 1_700_000_000_000,
            payload: &payload,
        }
        .encode()
        .unwrap();
        assert_eq!(leaf_parties(&leaf).unwrap(), vec![3]);
        let conflict = json!({"parties": [3, 4]});
        let leaf = LeafEvent {
            kind: "conflict.opened",
            at_ms: 1,
            payload: &conflict,
        }
        .encode()
        .unwrap();
        assert_eq!(leaf_parties(&leaf).unwrap(), vec![3, 4]);

        let spaced = br#"{"at_ms": 1, "kind": "k", "payload": {}, "v": 1}"#;
        assert!(leaf_parties(spaced).unwrap_err().contains("canonical"));
        assert!(leaf_parties(br#"{"at_ms":1,"kind":"k","payload":{},"v":2}"#)
            .unwrap_err()
            .contains("`v`"));
        assert!(leaf_parties(br#"{"at_ms":1,"kind":"k","v":1}"#)
            .unwrap_err()
            .contains("payload"));
        assert!(leaf_parties(b"not json").unwrap_err().contains("JSON"));
    }

    #[test]
    fn saving_replaces_the_file_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cp");
        save_atomically(&path, "first\n").unwrap();
        save_atomically(&path, "second\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "second\n");
        // Only the file itself is left: no temporary beside it.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        assert_eq!(key_path(&path), dir.path().join("cp.key"));
        assert!(save_atomically(&dir.path().join("missing/cp"), "x").is_err());
    }

    #[test]
    fn keys_are_taken_as_text_or_file() {
        let verifier = deconflict_audit::NoteSigner::from_seed("example.org/log", &[1; 32])
            .unwrap()
            .verifier();
        let text = verifier.to_string();
        assert_eq!(parse_key(&text).unwrap(), verifier);
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("key");
        std::fs::write(&file, format!("{text}\n")).unwrap();
        assert_eq!(parse_key(file.to_str().unwrap()).unwrap(), verifier);
        assert!(parse_key("example.org/log+00000000+AAAA").is_err());
    }
}
