//! Operations: health, Prometheus metrics, the OpenAPI document.

use std::sync::OnceLock;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde_json::json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::problem::ApiError;
use crate::routes;
use crate::state::AppState;

static PROMETHEUS: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process-wide Prometheus recorder once (several services in
/// one test process share it).
pub fn prometheus() -> Option<&'static PrometheusHandle> {
    PROMETHEUS
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(&[
                    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                    1.0, 2.5,
                ])
                .ok()?
                .build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok()?;
            Some(handle)
        })
        .as_ref()
}

/// Liveness and the driver's state.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "`{status, activities, subscribers}`")))]
pub async fn healthz(State(state): State<AppState>) -> Response {
    let reconciling = state
        .driver
        .reconciling
        .load(std::sync::atomic::Ordering::Acquire);
    let activities = state.driver.world().activities.len();
    Json(json!({
        "status": if reconciling { "reconciling" } else { "ok" },
        "activities": activities,
        "subscribers": state.hub.subscriber_count(),
    }))
    .into_response()
}

/// Prometheus text format: `deconflict_request_seconds` (by route),
/// `deconflict_activities`, `deconflict_open_conflicts`,
/// `deconflict_events_sent_total`, commit times and batch sizes.
#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, description = "Prometheus text format")))]
pub async fn metrics() -> Response {
    let body = prometheus().map_or_else(String::new, PrometheusHandle::render);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "deconflict", description = "Deconfliction between parties that distrust each other. Errors are RFC 9457 problem+json."),
    paths(
        routes::parties::create, routes::parties::rotate_token, routes::parties::revoke_token,
        routes::messages::send, routes::messages::list, routes::messages::ack,
        routes::incidents::report, routes::incidents::list, routes::incidents::evidence, routes::escalation::set,
        routes::activities::create, routes::activities::check, routes::activities::list,
        routes::activities::get_one, routes::activities::update, routes::activities::cancel,
        routes::conflicts::list, routes::conflicts::get_one, routes::conflicts::ack, routes::conflicts::resolve,
        routes::zones::create, routes::zones::list,
        routes::events::stream,
        routes::ws::upgrade, routes::tracks::report, routes::tracks::list, routes::tracks::tak_certificate,
        routes::log::checkpoint, routes::log::public_key, routes::log::entries,
        routes::log::inclusion, routes::log::consistency,
        healthz, metrics,
        routes::me::get,
        routes::export::export, routes::history::history,
    ),
    components(schemas(crate::problem::Problem, crate::problem::FieldProblem, crate::model::PartyKind)),
    modifiers(&BearerAuth)
)]
#[derive(Debug)]
pub struct ApiDoc;

/// The OpenAPI 3.1 document, generated from the handlers.
pub async fn openapi() -> Response {
    Json(ApiDoc::openapi()).into_response()
}

pub async fn not_found() -> ApiError {
    ApiError::not_found("route")
}
