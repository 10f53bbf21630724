//! Commands against a running server: `party add`, `submit`, `check`.

use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use deconflict_engine::PartyId;
use deconflict_formats::activities_from_geojson;
use serde_json::{json, Value};

/// Where the server is and who we are there.
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// The service's base URL.
    #[arg(long, env = "DECONFLICT_SERVER", default_value = "http://127.0.0.1:8080")]
    server: String,
    /// A party's token (for `party add`: the admin token).
    #[arg(long, env = "DECONFLICT_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

pub(crate) struct Client {
    base: String,
    token: String,
    http: reqwest::blocking::Client,
}

impl Client {
    pub(crate) fn new(args: &ServerArgs) -> Result<Client> {
        let Some(token) = args.token.clone() else {
            bail!("no token: pass --token or set DECONFLICT_TOKEN");
        };
        Ok(Client {
            base: args.server.trim_end_matches('/').to_owned(),
            token,
            http: reqwest::blocking::Client::new(),
        })
    }

    /// GETs `path`: the status and the body as text. A transport failure
    /// is an error; the caller decides what each status means.
    pub(crate) fn get(&self, path: &str) -> Result<(reqwest::StatusCode, String)> {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .with_context(|| format!("cannot reach {}", self.base))?;
        let status = response.status();
        let body = response
            .text()
            .with_context(|| format!("reading the answer to GET {path}"))?;
        Ok((status, body))
    }

    /// GETs `path` and parses its 2xx JSON answer; anything else is an
    /// error naming `what` and the server's detail.
    pub(crate) fn get_json(&self, path: &str, what: &str) -> Result<Value> {
        let (status, body) = self.get(path)?;
        let answer: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        if !status.is_success() {
            let detail = answer["errors"][0]["message"]
                .as_str()
                .or(answer["detail"].as_str())
                .unwrap_or("no detail");
            bail!("{what}: the server answered {status}: {detail}");
        }
        if answer.is_null() {
            bail!("{what}: the server's answer is not JSON");
        }
        Ok(answer)
    }

    /// POSTs JSON; a problem answer becomes one line naming the first field.
    fn post(&self, path: &str, body: &Value, what: &str) -> Result<Value> {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .with_context(|| format!("cannot reach {}", self.base))?;
        let status = response.status();
        let answer: Value = response.json().unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(answer);
        }
        Err(problem(what, status, &answer))
    }

    /// GETs `path` (with its query) as bytes; a problem answer becomes one
    /// line naming the first field, as for `post`.
    pub(crate) fn get_bytes(&self, path: &str, query: &[(&str, &str)], what: &str) -> Result<Vec<u8>> {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .query(query)
            .bearer_auth(&self.token)
            .send()
            .with_context(|| format!("cannot reach {}", self.base))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .with_context(|| format!("{what}: the answer was cut short"))?;
        if status.is_success() {
            return Ok(bytes.to_vec());
        }
        let answer: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Err(problem(what, status, &answer))
    }
}

/// A problem+json answer as one line naming the first bad field.
fn problem(what: &str, status: reqwest::StatusCode, answer: &Value) -> anyhow::Error {
    let first = answer["errors"].as_array().and_then(|e| e.first()).map(|e| {
        let pointer = e["pointer"].as_str().unwrap_or("");
        let pointer = if pointer.is_empty() { "(document)" } else { pointer };
        format!("{pointer}: {}", e["message"].as_str().unwrap_or(""))
    });
    let more = answer["errors"].as_array().map_or(0, Vec::len).saturating_sub(1);
    let more = if more > 0 {
        format!(" (and {more} more)")
    } else {
        String::new()
    };
    match first {
        Some(field) => anyhow!("{what}: {field}{more}"),
        None => anyhow!(
            "{what}: the server answered {status}: {}",
            answer["detail"].as_str().unwrap_or("no detail")
        ),
    }
}

pub fn party_add(name: &str, kind: &str, server: &ServerArgs) -> Result<()> {
    let client = Client::new(server)?;
    let party = client.post("/v1/parties", &json!({"name": name, "kind": kind}), "party add")?;
    println!("id: {}", party["id"]);
    println!("name: {}", party["name"].as_str().unwrap_or(name));
    println!("kind: {}", party["kind"].as_str().unwrap_or(kind));
    println!("token: {}", party["token"].as_str().unwrap_or(""));
    Ok(())
}

/// `party add --tak-dir DIR`: creates the party, then has the server issue
/// its TAK client certificate and writes `party-<id>.pem`, `party-<id>.key`
/// (mode 0600) and `party-<id>-ca.pem` into `dir`, the files a TAK client
/// (or pytak's `PYTAK_TLS_CLIENT_*`) takes.
pub fn party_add_with_tak(name: &str, kind: &str, server: &ServerArgs, tak_dir: &Path) -> Result<()> {
    let client = Client::new(server)?;
    let party = client.post("/v1/parties", &json!({"name": name, "kind": kind}), "party add")?;
    println!("id: {}", party["id"]);
    println!("name: {}", party["name"].as_str().unwrap_or(name));
    println!("kind: {}", party["kind"].as_str().unwrap_or(kind));
    println!("token: {}", party["token"].as_str().unwrap_or(""));
    let id = party["id"]
        .as_u64()
        .context("the server answered without a party id")?;
    let issued = client.post(
        &format!("/v1/parties/{id}/tak-certificate"),
        &json!({}),
        "TAK certificate",
    )?;
    let text = |field: &str| -> Result<String> {
        issued[field]
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("TAK certificate: the answer has no {field}"))
    };
    let credentials = deconflict_tak::ClientCredentials {
        party: PartyId(id),
        cert_pem: text("cert_pem")?,
        key_pem: text("key_pem")?,
        ca_pem: text("ca_pem")?,
    };
    std::fs::create_dir_all(tak_dir).with_context(|| format!("cannot create {}", tak_dir.display()))?;
    let files = credentials
        .write_pem_files(tak_dir, &format!("party-{id}"))
        .with_context(|| format!("cannot write the TAK certificate into {}", tak_dir.display()))?;
    println!("tak certificate: {}", files.cert.display());
    println!("tak key: {}", files.key.display());
    println!("tak ca: {}", files.ca.display());
    Ok(())
}

/// Each Feature of `file`, validated locally first (so the whole file is
/// refused before anything is sent if any Feature is bad).
fn features(file: &Path) -> Result<Vec<(String, Value)>> {
    let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let parsed = activities_from_geojson(&text, PartyId(0)).map_err(|errors| {
        let more = match errors.0.len() {
            1 => String::new(),
            n => format!(" (and {} more)", n - 1),
        };
        anyhow!("{}: {}{more}", file.display(), errors.0[0])
    })?;
    let document: Value = serde_json::from_str(&text)?;
    let all: Vec<Value> = match document["features"].as_array() {
        Some(features) => features.clone(),
        None => vec![document],
    };
    Ok(all
        .into_iter()
        .zip(parsed)
        .enumerate()
        .map(|(i, (feature, parsed))| {
            let label = parsed
                .id
                .map(|id| id.as_str().map_or_else(|| id.to_string(), str::to_owned))
                .unwrap_or_else(|| format!("{}#{i}", file.display()));
            (label, feature)
        })
        .collect())
}

fn describe(conflict: &Value) -> String {
    let other = match (&conflict["zone"], &conflict["activities"][1]) {
        (Value::Number(zone), _) => format!("zone {zone}"),
        (_, Value::Null) => "another party's activity (need to know)".to_owned(),
        (_, id) => format!("activity {id} of party {}", conflict["parties"][1]),
    };
    let location = &conflict["location"]["coordinates"];
    format!(
        "  conflict with {other}: {} – {}, {} m apart, {} m required, near {:.5} N {:.5} E",
        conflict["start"].as_str().unwrap_or("?"),
        conflict["end"].as_str().unwrap_or("open"),
        conflict["min_distance_m"],
        conflict["required_m"],
        location[1].as_f64().unwrap_or(f64::NAN),
        location[0].as_f64().unwrap_or(f64::NAN),
    )
}

/// `submit` (notify each Feature) or `check` (store nothing).
pub fn send(file: &Path, server: &ServerArgs, store: bool, as_json: bool) -> Result<()> {
    let features = features(file)?;
    let client = Client::new(server)?;
    let path = if store {
        "/v1/activities"
    } else {
        "/v1/activities/check"
    };
    let mut results = Vec::new();
    let mut total = 0;
    for (label, feature) in features {
        let answer = client.post(path, &feature, &format!("{}: {label}", file.display()))?;
        let conflicts = answer["conflicts"].as_array().cloned().unwrap_or_default();
        total += conflicts.len();
        if !as_json {
            match store {
                true => println!(
                    "{label}: activity {} version {}, {} conflict{}",
                    answer["id"],
                    answer["version"],
                    conflicts.len(),
                    if conflicts.len() == 1 { "" } else { "s" }
                ),
                false => println!(
                    "{label}: {} conflict{}",
                    conflicts.len(),
                    if conflicts.len() == 1 { "" } else { "s" }
                ),
            }
            for conflict in &conflicts {
                println!("{}", describe(conflict));
            }
        }
        results.push(json!({"feature": label, "result": answer}));
    }
    if as_json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({ "results": results }))?
        );
    } else {
        println!("{total} conflict{} in all.", if total == 1 { "" } else { "s" });
    }
    Ok(())
}
