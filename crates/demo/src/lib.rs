//! `deconflict demo`: the real service (the same code path as `deconflict
//! serve`) on a fresh data directory, the bundled scenario loaded over its
//! HTTP API by the parties themselves (so every receipt and audit leaf is
//! real), then the day's script played against the API on an accelerated
//! clock.
//!
//! Time: the scenario's `origin` (the planning hour) is placed at the
//! moment the demo starts, and every window keeps its real length, so the
//! map shows a plausible day on today's calendar. The script then plays at
//! `speed` times real time: a step `Δ` after the origin runs `Δ / speed`
//! after the start. Positions are stamped with the real time and report the
//! speed at which they move on the map (the real speed times `speed`), so
//! dead reckoning agrees with what the map shows.
//!
//! Endpoints still being wired into the service (`/v1/messages`,
//! `/v1/tracks`, `/v1/incidents`) are used when the server answers them;
//! when it answers 404 or 405 the step is skipped and the narration says so.

pub mod scenario;
pub mod script;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use deconflict_server::routes::demo::{DemoParties, DemoParty};
use deconflict_server::{AppState, ServerConfig};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

pub use scenario::{Scenario, ScenarioError};
pub use script::{run_script, ScriptOutcome};

/// Why the demo stopped.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("the bundled scenario: {0}")]
    Scenario(#[from] ScenarioError),
    #[error("cannot start the service: {0}")]
    Open(#[from] deconflict_server::OpenError),
    #[error("cannot listen on {address}: {source}")]
    Listen {
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error("{what}: cannot reach the service: {source}")]
    Http { what: String, source: reqwest::Error },
    #[error("{what}: the service answered {status}: {body}")]
    Refused {
        what: String,
        status: StatusCode,
        body: String,
    },
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// How to run the demo.
#[derive(Debug, Clone)]
pub struct DemoConfig {
    /// A fresh directory for the store, the admin token and the log key.
    pub data_dir: PathBuf,
    /// Where to serve (port 0: any free port).
    pub listen: SocketAddr,
    /// Scenario seconds per real second.
    pub speed: f64,
}

/// The answer of one API call.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: StatusCode,
    pub body: Value,
}

/// A client of the demo's own service, as one party.
#[derive(Debug, Clone)]
pub struct Client {
    pub base: String,
    http: reqwest::Client,
}

impl Client {
    /// One request; any status comes back (the caller decides).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<&Value>,
    ) -> Result<Answer, DemoError> {
        self.call_with(method, path, token, body, None).await
    }

    pub async fn call_with(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<&Value>,
        if_match: Option<u64>,
    ) -> Result<Answer, DemoError> {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(body);
        }
        if let Some(version) = if_match {
            request = request.header("If-Match", format!("\"{version}\""));
        }
        let response = request.send().await.map_err(|source| DemoError::Http {
            what: format!("{method} {path}"),
            source,
        })?;
        let status = response.status();
        let text = response.text().await.map_err(|source| DemoError::Http {
            what: format!("{method} {path}"),
            source,
        })?;
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok(Answer { status, body })
    }

    /// A call that must succeed.
    pub async fn expect(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<&Value>,
    ) -> Result<Value, DemoError> {
        let answer = self.call(method.clone(), path, token, body).await?;
        if answer.status.is_success() {
            Ok(answer.body)
        } else {
            Err(refused(&format!("{method} {path}"), &answer))
        }
    }
}

fn refused(what: &str, answer: &Answer) -> DemoError {
    DemoError::Refused {
        what: what.to_owned(),
        status: answer.status,
        body: answer.body.to_string(),
    }
}

/// An endpoint the server does not have (yet): the route is unknown.
pub fn absent(answer: &Answer) -> bool {
    answer.status == StatusCode::METHOD_NOT_ALLOWED
        || (answer.status == StatusCode::NOT_FOUND && answer.body["detail"] == "no such route")
}

/// A party of the running demo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Party {
    pub key: String,
    pub id: u64,
    pub name: String,
    pub kind: String,
    pub token: String,
}

/// The demo service, serving, with the scenario loaded.
#[derive(Debug)]
pub struct RunningDemo {
    pub url: String,
    pub address: SocketAddr,
    pub client: Client,
    pub scenario: Scenario,
    /// By the scenario's party key.
    pub parties: HashMap<String, Party>,
    /// Activity ids by the scenario's activity key.
    pub activities: HashMap<String, u64>,
    /// Zone ids by the scenario's zone key.
    pub zones: HashMap<String, u64>,
    /// The conflicts found as the plans were notified (the notifiers' view).
    pub planning_conflicts: Vec<Value>,
    /// Every receipt the loading got back.
    pub receipts: Vec<Value>,
    /// Scenario time → real time: add this many milliseconds.
    pub shift_ms: i64,
    pub state: AppState,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    serving: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl RunningDemo {
    pub fn party(&self, key: &str) -> &Party {
        &self.parties[key]
    }

    /// The party that sees everything (the scenario's broker).
    pub fn broker(&self) -> &Party {
        self.parties
            .values()
            .find(|p| p.kind == "broker")
            .unwrap_or_else(|| self.parties.values().next().expect("the scenario has parties"))
    }

    /// Stops serving, then waits until everything accepted is committed.
    pub async fn stop(mut self) -> Result<(), DemoError> {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(serving) = self.serving.take() {
            if let Ok(result) = serving.await {
                result?;
            }
        }
        let state = self.state.clone();
        tokio::task::spawn_blocking(move || state.driver.stop())
            .await
            .map_err(std::io::Error::other)?;
        Ok(())
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Starts the service on `config.data_dir`, creates the scenario's parties
/// over its API, and has each notify its zones and activities.
pub async fn start(
    config: DemoConfig,
    narrate: &mut (dyn FnMut(String) + Send),
) -> Result<RunningDemo, DemoError> {
    let scenario = Scenario::bundled()?;
    let mut server_config = ServerConfig::new(&config.data_dir);
    server_config.listen = config.listen;
    let (state, opened) = tokio::task::spawn_blocking(move || AppState::open(server_config))
        .await
        .map_err(std::io::Error::other)??;
    let admin = std::fs::read_to_string(&opened.admin_token_path)?
        .trim()
        .to_owned();
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| DemoError::Listen {
            address: config.listen,
            source,
        })?;
    let address = listener.local_addr()?;
    let url = format!("http://{address}");
    let demo_parties = DemoParties::default();
    let router = deconflict_server::app(state.clone())
        .merge(deconflict_server::routes::demo::router(demo_parties.clone()));
    let (shutdown, stop) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(deconflict_server::serve_router(
        listener,
        state.clone(),
        router,
        async {
            let _ = stop.await;
        },
    ));
    let client = Client {
        base: url.clone(),
        http: reqwest::Client::new(),
    };
    let shift_ms = (now_ms() - scenario.origin.unix_ms()).div_euclid(60_000) * 60_000;
    narrate(format!("{} — {}", scenario.name, scenario.illustrative));

    let mut parties = HashMap::new();
    for party in &scenario.parties {
        let body = json!({"name": party.name, "kind": party.kind});
        let made = client
            .expect(Method::POST, "/v1/parties", &admin, Some(&body))
            .await?;
        parties.insert(
            party.key.clone(),
            Party {
                key: party.key.clone(),
                id: made["id"].as_u64().unwrap_or(0),
                name: party.name.clone(),
                kind: party.kind.clone(),
                token: made["token"].as_str().unwrap_or("").to_owned(),
            },
        );
    }
    // Each armed party's liaison cell escalates as deconfliction lines do:
    // a missed deadline goes at once to its TAK clients, and a minute of the
    // scenario's clock later (60 s / speed, at least 1 s) to the neutral
    // cell, so the day's unanswered flash message escalates.
    let broker_id = scenario
        .parties
        .iter()
        .find(|p| p.kind == "broker")
        .map(|p| parties[&p.key].id);
    for party in scenario.parties.iter().filter(|p| p.kind == "military") {
        let made = &parties[&party.key];
        let mut ladder = vec![json!({"delay_s": 0, "kind": "tak"})];
        if let Some(broker) = broker_id {
            let delay_s = (60.0 / config.speed.max(f64::MIN_POSITIVE)).round().max(1.0) as u64;
            ladder.push(json!({"delay_s": delay_s, "kind": "party", "party": broker}));
        }
        client
            .expect(
                Method::PUT,
                &format!("/v1/parties/{}/escalation", made.id),
                &admin,
                Some(&json!({ "escalation": ladder })),
            )
            .await?;
    }
    let mut listed: Vec<DemoParty> = scenario
        .parties
        .iter()
        .map(|p| {
            let made = &parties[&p.key];
            DemoParty {
                id: made.id,
                name: made.name.clone(),
                kind: made.kind.clone(),
                token: made.token.clone(),
            }
        })
        .collect();
    listed.sort_by_key(|p| p.id);
    demo_parties.set(listed);

    let mut receipts = Vec::new();
    let mut zones = HashMap::new();
    for zone in &scenario.zones {
        let owner = &parties[&zone.party];
        let ids: Vec<u64> = zone.parties.iter().map(|key| parties[key].id).collect();
        let feature = scenario::shifted(&zone.feature, shift_ms, Some(&ids))?;
        let made = client
            .expect(Method::POST, "/v1/zones", &owner.token, Some(&feature))
            .await?;
        zones.insert(zone.key.clone(), made["id"].as_u64().unwrap_or(0));
        receipts.push(made["receipt"].clone());
        narrate(format!(
            "{} declares zone {:?}",
            owner.name,
            zone.feature["properties"]["name"].as_str().unwrap_or(&zone.key)
        ));
    }
    let mut activities = HashMap::new();
    let mut planning_conflicts = Vec::new();
    for activity in &scenario.activities {
        let owner = &parties[&activity.party];
        let feature = scenario::shifted(&activity.feature, shift_ms, None)?;
        let made = client
            .expect(Method::POST, "/v1/activities", &owner.token, Some(&feature))
            .await?;
        let id = made["id"].as_u64().unwrap_or(0);
        activities.insert(activity.key.clone(), id);
        receipts.push(made["receipt"].clone());
        let conflicts = made["conflicts"].as_array().cloned().unwrap_or_default();
        narrate(format!(
            "{} notifies activity {id} {:?}: receipt at log index {}, {} conflict(s)",
            owner.name,
            activity.feature["properties"]["name"]
                .as_str()
                .unwrap_or(&activity.key),
            made["receipt"]["log_index"],
            conflicts.len()
        ));
        for conflict in &conflicts {
            narrate(format!("    {}", script::describe_conflict(conflict)));
        }
        planning_conflicts.extend(conflicts);
    }
    Ok(RunningDemo {
        url,
        address,
        client,
        scenario,
        parties,
        activities,
        zones,
        planning_conflicts,
        receipts,
        shift_ms,
        state,
        shutdown: Some(shutdown),
        serving: Some(serving),
    })
}
