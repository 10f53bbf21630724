//! Starts the real service on 127.0.0.1:0 over a directory, and talks to it
//! with reqwest as a client would.
//!
//! Tests written with [`on_both_backends!`] run twice: on SQLite, and on
//! PostgreSQL in a fresh database of the server `DECONFLICT_TEST_DATABASE_URL`
//! names (`.ci/run` starts one). Without that variable the PostgreSQL run
//! skips with a printed reason, or fails when `DECONFLICT_REQUIRE_CLIENTS=1`.
#![allow(dead_code)] // each test binary uses a different part

pub mod child;
pub mod sse;

use std::path::Path;

use deconflict_server::{AppState, Database, ServerConfig};
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

/// The database a test's servers use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

tokio::task_local! {
    static BACKEND: Backend;
}

/// Runs `test` with `start` using `backend`.
pub async fn with_backend<F: std::future::Future>(backend: Backend, test: F) -> F::Output {
    BACKEND.scope(backend, test).await
}

/// Whether the PostgreSQL run of `test` can go ahead: a server is
/// configured; else it is skipped with a printed reason, or fails when
/// clients are required (CI).
pub fn postgres_available(test: &str) -> bool {
    deconflict_store::testing::test_database_url_or_skip(test).is_some()
}

/// The database of the servers started on `dir` under the current backend:
/// SQLite in the directory, or a PostgreSQL database created for the
/// directory at its first start and reused by the restarts.
pub fn database_for(dir: &Path) -> Database {
    let backend = BACKEND.try_with(|b| *b).unwrap_or(Backend::Sqlite);
    match backend {
        Backend::Sqlite => Database::Sqlite(dir.join("deconflict.sqlite")),
        Backend::Postgres => {
            let remembered = dir.join("test-database-url");
            if let Ok(url) = std::fs::read_to_string(&remembered) {
                return Database::Postgres(url);
            }
            let admin = deconflict_store::testing::test_database_url().expect("a PostgreSQL test server");
            let label = dir.file_name().and_then(|n| n.to_str()).unwrap_or("test");
            let url = deconflict_store::testing::create_test_database(&admin, label)
                .expect("a fresh test database");
            std::fs::create_dir_all(dir).unwrap();
            std::fs::write(&remembered, &url).unwrap();
            Database::Postgres(url)
        }
    }
}

/// One test body, run once per backend: `mod NAME { fn sqlite, fn postgres }`.
#[macro_export]
macro_rules! on_both_backends {
    ($(#[$meta:meta])* async fn $name:ident() $body:block) => {
        $(#[$meta])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                common::with_backend(common::Backend::Sqlite, async $body).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if common::postgres_available(concat!(module_path!(), "::postgres")) {
                    common::with_backend(common::Backend::Postgres, async $body).await
                }
            }
        }
    };
}

pub async fn start(dir: &Path, tweak: impl FnOnce(&mut ServerConfig)) -> Server {
    let mut config = ServerConfig::new(dir);
    config.listen = "127.0.0.1:0".parse().unwrap();
    // The PostgreSQL client blocks (creating the test database, and the
    // store's connections): never on a runtime thread.
    config.database = tokio::task::block_in_place(|| database_for(dir));
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

/// A client's end of `/v1/ws`.
pub type WebSocket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

impl Server {
    /// Opens `/v1/ws` with `token`, as a browser or integration would.
    pub async fn websocket(&self, token: &str) -> WebSocket {
        websocket_at(&self.url, token).await
    }

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

/// Opens `/v1/ws` of the server at `url` (`http://…`) with `token`.
pub async fn websocket_at(url: &str, token: &str) -> WebSocket {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = format!("{}/v1/ws", url.replace("http://", "ws://"))
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    tokio_tungstenite::connect_async(request).await.unwrap().0
}

/// The TLS client configuration a TAK client builds from the credentials
/// `POST /v1/parties/{id}/tak-certificate` answers (`ca_pem`, `cert_pem`,
/// `key_pem`): the server's CA as the only root, the party's certificate as
/// the client certificate.
pub fn tak_client_config(credentials: &Value) -> rustls::ClientConfig {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let pem = |key: &str| credentials[key].as_str().unwrap().as_bytes().to_vec();
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(&pem("ca_pem")).unwrap())
        .unwrap();
    rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(
            vec![CertificateDer::from_pem_slice(&pem("cert_pem")).unwrap()],
            PrivateKeyDer::from_pem_slice(&pem("key_pem")).unwrap(),
        )
        .unwrap()
}
