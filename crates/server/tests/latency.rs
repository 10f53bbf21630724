//! Every alert a position report raises reaches the parties it concerns,
//! on every stream they read: SSE (`/v1/events`), WebSocket (`/v1/ws`) and
//! their TAK connection (CoT over TLS), each matched to the report that
//! raised it, whether that report came over HTTP or CoT.
//!
//! The client side is the report → event harness (`common/latency.rs`,
//! shared with `benches/latency.rs`, which times the same traffic): 1,000
//! entities of two parties at 1 Hz for 2 s, one in ten over CoT. Nothing
//! here is timed: the harness waits until the streams go quiet (bounded)
//! and checks what users need: no alert lost (the streams carry all the
//! server published), none read twice, none unmatched, the same on SSE
//! and WebSocket, each as a CoT alarm of the same time on the TAK side.
//! The figures are `cargo bench -p deconflict-server --bench latency`.

mod common;
#[path = "common/latency.rs"]
mod harness;

use std::time::Duration;

use harness::{Shape, Target, Via};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_alert_reaches_both_parties_sse_websocket_and_tak_matched_to_its_report() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path(), harness::configure).await;
    let cot = server
        .state
        .live
        .listen_cot("127.0.0.1:0".parse().unwrap(), None, &[])
        .await
        .unwrap();
    let target = Target {
        url: server.url.clone(),
        admin: server.admin.clone(),
        cot_address: Some(cot.local_addr()),
        process: None,
    };
    let shape = Shape {
        entities: 1_000,
        parties: 2,
        warm_up_s: 1,
        seconds: 1,
        cot_one_in: 10,
    };
    let outcome = tokio::time::timeout(Duration::from_secs(120), harness::run(&target, shape))
        .await
        .expect("the run ends within 120 s");
    for line in &outcome.report {
        println!("{line}");
    }
    assert_eq!(outcome.refused_batches, 0, "every batch is taken");
    assert!(
        outcome.problems.is_empty(),
        "delivery problems: {:#?}",
        outcome.problems
    );
    // Not vacuous: the fleet's density raises alerts from both ways in.
    for via in [Via::Http, Via::Cot] {
        assert!(
            outcome.caused_by.get(&via).copied().unwrap_or(0) > 0,
            "no alert raised by a {via:?} report among {} ({:?})",
            outcome.alerts,
            outcome.caused_by
        );
    }
    cot.shutdown().await;
    server.stop().await;
}
