//! The headers every answer carries, and CORS.
//!
//! API answers get a Content-Security-Policy that allows nothing (JSON is
//! never a document to render), `nosniff`, `no-referrer` and no framing;
//! the web map's files set their own, looser policy ([`super::web`]) and
//! keep it. With TLS on, every answer carries HSTS so that a browser never
//! tries plain HTTP (and a bearer token in the clear) again.
//!
//! CORS is off unless origins are listed (`--cors-origin`): with none, no
//! `Access-Control-Allow-Origin` is ever sent and browsers refuse other
//! origins' scripts the answers. Listed origins may call with a bearer
//! token; no credentials mode (no cookies are used).

use std::time::Duration;

use axum::http::{header, HeaderName, HeaderValue, Method};
use axum::Router;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::set_header::SetResponseHeaderLayer;

use crate::config::ServerConfig;
use crate::state::AppState;

/// The Content-Security-Policy of API answers: nothing may load or frame them.
pub const API_CONTENT_SECURITY_POLICY: &str = "default-src 'none'; frame-ancestors 'none'";
/// One year, the usual HSTS lifetime; no `includeSubDomains` (the
/// operator's other hosts are not ours to decide for).
pub const STRICT_TRANSPORT_SECURITY: &str = "max-age=31536000";
/// How long a browser may cache a CORS preflight answer.
pub const CORS_MAX_AGE: Duration = Duration::from_secs(600);

/// Checks one `--cors-origin`: `http://` or `https://`, a host, an optional
/// port, nothing after (an origin has no path, and a browser's `Origin`
/// header is compared byte for byte).
pub fn parse_origin(text: &str) -> Result<HeaderValue, String> {
    let rest = text
        .strip_prefix("https://")
        .or_else(|| text.strip_prefix("http://"))
        .ok_or_else(|| format!("{text:?} is not an origin: it must start with https:// or http://"))?;
    let (host, port) = match rest.rsplit_once(':') {
        // An IPv6 literal's colons are inside its brackets.
        Some((host, port)) if !port.contains(']') => (host, Some(port)),
        _ => (rest, None),
    };
    let host_ok = !host.is_empty()
        && (host.starts_with('[') && host.ends_with(']')
            || host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.'));
    if !host_ok {
        return Err(format!(
            "{text:?} is not an origin: scheme://host[:port], no path, no trailing slash"
        ));
    }
    if let Some(port) = port {
        if port.parse::<u16>().is_err() {
            return Err(format!(
                "{text:?} is not an origin: the port must be a number up to 65535"
            ));
        }
    }
    HeaderValue::from_str(text).map_err(|_| format!("{text:?} is not an origin"))
}

/// Adds the security headers (and CORS, when origins are listed) to every
/// answer of `router`, its fallback included.
pub fn layer(router: Router<AppState>, config: &ServerConfig) -> Router<AppState> {
    let static_header = |name: HeaderName, value: &'static str| {
        SetResponseHeaderLayer::if_not_present(name, HeaderValue::from_static(value))
    };
    let mut router = router
        .layer(static_header(
            header::CONTENT_SECURITY_POLICY,
            API_CONTENT_SECURITY_POLICY,
        ))
        .layer(static_header(header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .layer(static_header(header::REFERRER_POLICY, "no-referrer"))
        // For browsers that predate `frame-ancestors`.
        .layer(static_header(header::X_FRAME_OPTIONS, "DENY"));
    if config.tls.is_some() {
        router = router.layer(static_header(
            header::STRICT_TRANSPORT_SECURITY,
            STRICT_TRANSPORT_SECURITY,
        ));
    }
    if !config.cors_origins.is_empty() {
        // Outermost, so that a preflight is answered before authentication
        // and a 401 still tells the allowed page why.
        router = router.layer(
            CorsLayer::new()
                .allow_origin(AllowOrigin::list(config.cors_origins.iter().cloned()))
                .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
                .allow_headers([
                    header::AUTHORIZATION,
                    header::CONTENT_TYPE,
                    header::IF_MATCH,
                    HeaderName::from_static("last-event-id"),
                ])
                .expose_headers([header::ETAG, header::LOCATION, header::RETRY_AFTER])
                .max_age(CORS_MAX_AGE),
        );
    }
    router
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_origin_is_a_scheme_a_host_and_maybe_a_port() {
        for good in [
            "https://map.example.org",
            "http://localhost:5173",
            "https://[::1]:8443",
            "http://10.0.0.7",
        ] {
            assert_eq!(parse_origin(good).unwrap(), good, "{good}");
        }
        for bad in [
            "map.example.org",
            "https://map.example.org/",
            "https://map.example.org/app",
            "ftp://map.example.org",
            "https://",
            "https://host:port",
            "https://host:99999",
            "*",
            "null",
        ] {
            assert!(parse_origin(bad).is_err(), "{bad}");
        }
    }
}
