//! Starts the real service on 127.0.0.1:0 over a directory, and talks to it
//! with reqwest as a client would.
#![allow(dead_code)] // each test binary uses a different part

pub mod sse;

use std::path::Path;

use deconflict_server::{AppState, ServerConfig};
use reqwest::{Client, Method, StatusCode};
use serde_json::{json, Value};

pub struct Server {
    pub url: String,
    pub admin: String,
    pub state: AppState,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    pub client: Client,
}

pub async fn start(dir: &Path, tweak: impl FnOnce(&mut ServerConfig)) -> Server {
    let mut config = ServerConfig::new(dir);
    config.listen = "127.0.0.1:0".parse().unwrap();
    tweak(&mut config);
    let (state, opened) = tokio::task::block_in_place(|| AppState::open(config)).expect("the service opens");
    let admin = std::fs::read_to_string(&opened.admin_token_path)
        .unwrap()
        .trim()
        .to_owned();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (shutdown, stop) = tokio::sync::oneshot::channel::<()>();
    let serving = state.clone();
    let task = tokio::spawn(async move {
        deconflict_server::serve(listener, serving, async {
            let _ = stop.await;
        })
        .await
        .unwrap();
    });
    Server {
        url,
        admin,
        state,
        shutdown: Some(shutdown),
        task: Some(task),
        client: Client::new(),
    }
}

impl Server {
    /// Stops serving and waits until everything accepted is committed.
    pub async fn stop(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        let state = self.state.clone();
        tokio::task::block_in_place(|| state.driver.stop());
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self.client.request(method, format!("{}{path}", self.url));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("the server answers");
        let status = response.status();
        let text = response.text().await.unwrap();
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, value)
    }

    pub async fn party(&self, name: &str, kind: &str) -> (u64, String) {
        let (status, body) = self
            .call(
                Method::POST,
                "/v1/parties",
                Some(&self.admin),
                Some(json!({"name": name, "kind": kind})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        (
            body["id"].as_u64().unwrap(),
            body["token"].as_str().unwrap().to_owned(),
        )
    }

    pub async fn notify(&self, token: &str, feature: Value) -> Value {
        let (status, body) = self
            .call(Method::POST, "/v1/activities", Some(token), Some(feature))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body
    }
}

/// A patrol along a meridian, on 2030-01-01 from `start_h` to `end_h`.
pub fn patrol(lon: f64, sharing: &str, start_h: u32, end_h: u32) -> Value {
    json!({
        "type": "Feature",
        "geometry": {"type": "LineString", "coordinates": [[lon, 37.0], [lon, 37.1]]},
        "properties": {
            "kind": "patrol", "name": format!("patrol at {lon}"),
            "start": format!("2030-01-01T{start_h:02}:00:00Z"), "end": format!("2030-01-01T{end_h:02}:00:00Z"),
            "corridor_m": 500, "sharing": sharing
        }
    })
}
