//! Hardening of the HTTP surface (issue 9, item 8): HTTPS with a test CA
//! and plain HTTP refused on that port, the security headers of the API
//! and of the web page, and CORS off by default with an allow-list.

mod common;

use std::path::Path;

use common::start;
use deconflict_server::routes::security::{
    parse_origin, API_CONTENT_SECURITY_POLICY, STRICT_TRANSPORT_SECURITY,
};
use deconflict_server::routes::web::CONTENT_SECURITY_POLICY as PAGE_CONTENT_SECURITY_POLICY;
use deconflict_server::tls::{server_config, TlsError, TlsFiles};
use deconflict_tak::CertificateAuthority;
use reqwest::{Client, Method, StatusCode};

/// A test CA and a server certificate for localhost and 127.0.0.1, as PEM
/// files in `dir`; returns the files and the CA's PEM.
fn test_certificate(dir: &Path) -> (TlsFiles, String) {
    let ca = CertificateAuthority::ephemeral().unwrap();
    let server = ca.issue_server(&[]).unwrap();
    let files = TlsFiles {
        cert: dir.join("server.pem"),
        key: dir.join("server.key"),
    };
    std::fs::write(&files.cert, &server.cert_pem).unwrap();
    std::fs::write(&files.key, &server.key_pem).unwrap();
    (files, ca.ca_pem().to_owned())
}

fn trusting(ca_pem: &str) -> Client {
    Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap())
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_a_test_ca_and_plain_http_refused_on_its_port() {
    let dir = tempfile::tempdir().unwrap();
    let (files, ca_pem) = test_certificate(dir.path());
    let tls = files.clone();
    let server = start(&dir.path().join("data"), move |config| config.tls = Some(tls)).await;
    let port = server.url.rsplit(':').next().unwrap().to_owned();
    let https = format!("https://127.0.0.1:{port}");
    let client = trusting(&ca_pem);

    let (_, token) = {
        // The admin creates a party over HTTPS.
        let response = client
            .post(format!("{https}/v1/parties"))
            .bearer_auth(&server.admin)
            .json(&serde_json::json!({"name": "blue", "kind": "military"}))
            .send()
            .await
            .expect("an HTTPS answer");
        assert_eq!(response.status(), StatusCode::CREATED);
        let body: serde_json::Value = response.json().await.unwrap();
        (
            body["id"].as_u64().unwrap(),
            body["token"].as_str().unwrap().to_owned(),
        )
    };
    let response = client
        .get(format!("{https}/v1/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["strict-transport-security"],
        STRICT_TRANSPORT_SECURITY,
        "HSTS with TLS"
    );
    let page = client.get(format!("{https}/")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(
        page.headers()["strict-transport-security"],
        STRICT_TRANSPORT_SECURITY
    );

    // Plain HTTP on the TLS port: no HTTP answer at all, so a token sent
    // there is never answered (and the client learns it spoke in vain).
    let mut refused = 0;
    for path in ["/healthz", "/v1/me"] {
        let plain = Client::new()
            .get(format!("http://127.0.0.1:{port}{path}"))
            .bearer_auth(&token)
            .send()
            .await;
        assert!(plain.is_err(), "plain HTTP was answered: {plain:?}");
        refused += 1;
    }
    // A client that does not trust the test CA refuses the server.
    let untrusting = Client::builder().tls_built_in_root_certs(false).build().unwrap();
    assert!(untrusting.get(format!("{https}/healthz")).send().await.is_err());
    // The server still answers after the refused connections.
    let healthy = client.get(format!("{https}/healthz")).send().await.unwrap();
    assert_eq!(healthy.status(), StatusCode::OK);
    println!(
        "HTTPS: 4 requests answered over TLS with HSTS, {refused} plain-HTTP requests refused, \
         1 untrusted-CA handshake refused"
    );
    server.stop().await;
}

#[test]
fn bad_tls_files_are_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let (files, _) = test_certificate(dir.path());
    assert!(server_config(&files).is_ok());
    let missing = TlsFiles {
        cert: dir.path().join("nothing.pem"),
        key: files.key.clone(),
    };
    let error = server_config(&missing).unwrap_err();
    assert!(matches!(error, TlsError::Read { .. }), "{error}");
    assert!(error.to_string().contains("nothing.pem"), "{error}");
    let swapped = TlsFiles {
        cert: files.key.clone(),
        key: files.cert.clone(),
    };
    let error = server_config(&swapped).unwrap_err();
    assert!(matches!(error, TlsError::NoCertificate { .. }), "{error}");
    // Another key than the certificate's.
    let (other, _) = test_certificate(&{
        let other = dir.path().join("other");
        std::fs::create_dir(&other).unwrap();
        other
    });
    let mismatched = TlsFiles {
        cert: files.cert.clone(),
        key: other.key,
    };
    let error = server_config(&mismatched).unwrap_err();
    assert!(matches!(error, TlsError::Unusable { .. }), "{error}");
    assert!(
        !error.to_string().contains("PRIVATE KEY"),
        "no key material in the message: {error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_and_the_page_carry_the_security_headers() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), |_| {}).await;
    let (_, token) = server.party("blue", "military").await;
    let client = Client::new();
    let mut checked = 0;
    // (path, token, the policy it must carry)
    let cases: [(&str, Option<&str>, &str); 6] = [
        ("/healthz", None, API_CONTENT_SECURITY_POLICY),
        ("/openapi.json", None, API_CONTENT_SECURITY_POLICY),
        ("/v1/me", Some(&token), API_CONTENT_SECURITY_POLICY),
        ("/v1/me", None, API_CONTENT_SECURITY_POLICY),
        ("/no/such/route", None, API_CONTENT_SECURITY_POLICY),
        ("/", None, PAGE_CONTENT_SECURITY_POLICY),
    ];
    for (path, token, policy) in cases {
        let mut request = client.get(format!("{}{path}", server.url));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        let headers = response.headers();
        assert_eq!(headers["content-security-policy"], policy, "{path}");
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(headers["referrer-policy"], "no-referrer", "{path}");
        assert_eq!(headers["x-frame-options"], "DENY", "{path}");
        assert!(
            headers["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("frame-ancestors 'none'"),
            "{path}"
        );
        assert!(
            !headers.contains_key("strict-transport-security"),
            "{path}: HSTS only with TLS"
        );
        assert_eq!(
            headers.get_all("content-security-policy").iter().count(),
            1,
            "{path}: one policy, not two"
        );
        checked += 1;
    }
    println!("security headers: {checked} answers checked (API, 401, 404, the page), 0 missing");
    server.stop().await;
}

/// The CORS headers `origin` gets on a simple request and on a preflight.
async fn cors_answers(url: &str, token: &str, origin: &str) -> (Option<String>, Option<String>) {
    let client = Client::new();
    let simple = client
        .get(format!("{url}/v1/me"))
        .bearer_auth(token)
        .header("origin", origin)
        .send()
        .await
        .unwrap();
    assert_eq!(simple.status(), StatusCode::OK);
    let preflight = client
        .request(Method::OPTIONS, format!("{url}/v1/activities"))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "authorization, content-type")
        .send()
        .await
        .unwrap();
    let allow = |response: &reqwest::Response| {
        response
            .headers()
            .get("access-control-allow-origin")
            .map(|v| v.to_str().unwrap().to_owned())
    };
    (allow(&simple), allow(&preflight))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_is_off_by_default_and_an_allow_list_lets_only_its_origins_in() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(&dir.path().join("closed"), |_| {}).await;
    let (_, token) = server.party("blue", "military").await;
    for origin in ["https://map.example.org", "https://evil.example"] {
        let (simple, preflight) = cors_answers(&server.url, &token, origin).await;
        assert_eq!(simple, None, "no CORS by default ({origin})");
        assert_eq!(preflight, None, "no CORS preflight by default ({origin})");
    }
    server.stop().await;

    let allowed = "https://map.example.org";
    let server = start(&dir.path().join("open"), |config| {
        config.cors_origins = vec![
            parse_origin(allowed).unwrap(),
            parse_origin("http://localhost:5173").unwrap(),
        ];
    })
    .await;
    let (_, token) = server.party("blue", "military").await;
    let (simple, preflight) = cors_answers(&server.url, &token, allowed).await;
    assert_eq!(simple.as_deref(), Some(allowed));
    assert_eq!(preflight.as_deref(), Some(allowed));
    // The preflight allows the bearer token, never credentials (cookies).
    let preflight = Client::new()
        .request(Method::OPTIONS, format!("{}/v1/activities", server.url))
        .header("origin", allowed)
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "authorization")
        .send()
        .await
        .unwrap();
    let headers = preflight.headers();
    assert!(headers["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .contains("authorization"));
    assert!(headers["access-control-allow-methods"]
        .to_str()
        .unwrap()
        .contains("POST"));
    assert!(!headers.contains_key("access-control-allow-credentials"));
    let mut refused = 0;
    for other in [
        "https://evil.example",
        "https://map.example.org.evil.example",
        "http://map.example.org",
        "null",
    ] {
        let (simple, preflight) = cors_answers(&server.url, &token, other).await;
        assert_eq!(simple, None, "{other} is not allowed");
        assert_eq!(preflight, None, "{other} is not allowed");
        refused += 1;
    }
    println!(
        "CORS: default 2 origins × (request, preflight) without the header; allow-list: 1 origin allowed, \
         {refused} others refused"
    );
    server.stop().await;
}
