//! The deconflict service: the driver that runs the engine behind axum,
//! with the store and the audit log.
//!
//! Map:
//! - [`config`]: flags as a struct, with every limit explicit.
//! - [`state`]: opening the data directory (admin token, log key, store).
//! - [`auth`]: tokens, constant-time checks, the caller extractors.
//! - [`limits`]: per-token request rate.
//! - [`connections`]: the limit on open HTTP connections.
//! - [`problem`]: RFC 9457 errors.
//! - [`driver`]: the one thread that owns the engine, the tree and the
//!   signer, and commits batches in order (the write path).
//! - [`ledger`]: every SQL statement.
//! - [`model`]: records and need-to-know rendering.
//! - [`hub`]: events fanned out to SSE subscribers.
//! - [`zones`]: zone Features.
//! - [`hotline`]: messages, deadlines, escalation and incidents (issue 5);
//!   its records share the driver's batch, its actions run after commit.
//! - [`live`]: live tracks: the track thread, its alerts, the TAK CA and
//!   CoT listeners.
//! - [`routes`]: the HTTP surface, one module per resource, and the
//!   security headers and CORS every answer gets.
//! - [`tls`]: optional HTTPS on the listening port.
//!
//! **Architecture invariant:** the audit tree's append order is the stored
//! order, every acknowledged change is committed with its leaf in the same
//! transaction, and a failed commit leaves the service as if the batch
//! never happened (see [`driver`]).

pub mod allocator;
pub mod auth;
pub mod config;
pub mod connections;
pub mod driver;
pub mod hotline;
pub mod hub;
mod jcs;
pub mod ledger;
pub mod limits;
pub mod live;
pub mod model;
pub mod multinode;
pub mod problem;
pub mod routes;
pub mod state;
pub mod tls;
pub mod zones;

pub use config::{ServerConfig, ServiceLimits};
pub use deconflict_store::Database;
pub use routes::app;
pub use state::{AppState, OpenError, Opened};

use std::future::Future;

/// Serves `state` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let router = app(state.clone());
    serve_router(listener, state, router, shutdown).await
}

/// Serves `router` (the [`app`] of `state` with routes merged in, e.g. the
/// demo's `/demo/parties`) on `listener` until `shutdown` completes, with
/// the hotline's performer running. With `config.tls` set the port speaks
/// HTTPS only; unreadable or mismatched TLS files are an `InvalidInput`
/// error naming the file, before anything is served.
pub async fn serve_router(
    listener: tokio::net::TcpListener,
    state: AppState,
    router: axum::Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let tls = state
        .config
        .tls
        .as_ref()
        .map(tls::server_config)
        .transpose()
        .map_err(|error| std::io::Error::new(std::io::ErrorKind::InvalidInput, error))?;
    routes::ops::prometheus();
    hotline::start_performer(&state);
    multinode::spawn_directory_reload(&state);
    let hub = std::sync::Arc::clone(&state.hub);
    let shutdown = async move {
        shutdown.await;
        // Event streams never end by themselves: end them, or the
        // graceful shutdown would wait for their clients forever.
        hub.close();
    };
    // A connection gets a clone of the router (an `Arc`): serving the
    // `Router` itself would rebuild every route for each connection
    // (`Router::with_state`, about 50 KiB), and each held event stream
    // holds its connection.
    let router = router.into_make_service();
    match tls {
        Some(config) => {
            let listener = tls::TlsListener::new(listener, config, state.config.tls_limits)?;
            axum::serve(listener, router)
                .with_graceful_shutdown(shutdown)
                .await
        }
        None => {
            // The connection limit answers over plain HTTP; on the TLS port
            // the handshake limit (`TlsLimits`) bounds connections instead.
            let listener = connections::LimitedListener::new(listener, state.config.limits.max_connections);
            axum::serve(listener, router)
                .with_graceful_shutdown(shutdown)
                .await
        }
    }
}
