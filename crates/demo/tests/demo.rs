//! The demo service run in-process on port 0, checked over HTTP as the web
//! map and the parties see it.

use deconflict_demo::{run_script, start, DemoConfig};
use reqwest::{Method, StatusCode};
use serde_json::Value;

fn ids(conflict: &Value) -> Vec<u64> {
    conflict["activities"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_u64)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_day_on_the_real_service() {
    let dir = tempfile::tempdir().unwrap();
    let mut lines = Vec::new();
    let mut say = |line: String| lines.push(line);
    let demo = start(
        DemoConfig {
            data_dir: dir.path().to_path_buf(),
            listen: "127.0.0.1:0".parse().unwrap(),
            speed: 50_000.0,
        },
        &mut say,
    )
    .await
    .expect("the demo starts");
    let (us, ru, broker) = (
        demo.party("us").clone(),
        demo.party("ru").clone(),
        demo.broker().clone(),
    );
    let us_patrol = demo.activities["us-patrol"];
    let ru_patrol = demo.activities["ru-patrol"];

    // Planning time: the US and Russian patrols cross at al-Qahtaniyah.
    let broker_view = demo
        .client
        .expect(Method::GET, "/v1/conflicts?state=open", &broker.token, None)
        .await
        .unwrap();
    let crossing = broker_view["conflicts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| {
            let pair = ids(c);
            pair.contains(&us_patrol) && pair.contains(&ru_patrol)
        })
        .cloned()
        .expect("the patrols conflict at planning time");
    let at = &crossing["location"]["coordinates"];
    let (lon, lat) = (at[0].as_f64().unwrap(), at[1].as_f64().unwrap());
    assert!(
        (lon - 41.41).abs() < 0.05 && (lat - 37.03).abs() < 0.05,
        "{crossing}"
    );
    assert_eq!(crossing["parties"].as_array().unwrap().len(), 2);

    // Need-to-know: the Russian patrol is a 404 for the US...
    let hidden = demo
        .client
        .call(
            Method::GET,
            &format!("/v1/activities/{ru_patrol}"),
            &us.token,
            None,
        )
        .await
        .unwrap();
    assert_eq!(hidden.status, StatusCode::NOT_FOUND);
    // ...but the US sees the conflict with it, without its id or party.
    let us_view = demo
        .client
        .expect(Method::GET, "/v1/conflicts?state=open", &us.token, None)
        .await
        .unwrap();
    let seen = us_view["conflicts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == crossing["id"])
        .expect("the US sees its conflict");
    assert!(ids(seen).contains(&us_patrol));
    assert!(!ids(seen).contains(&ru_patrol), "{seen}");
    // The aid convoy is shared in full: the Russian side may read it.
    let convoy = demo.activities["aid-convoy"];
    let shared = demo
        .client
        .call(Method::GET, &format!("/v1/activities/{convoy}"), &ru.token, None)
        .await
        .unwrap();
    assert_eq!(shared.status, StatusCode::OK);

    // The web map and who we are.
    let page = reqwest::get(format!("{}/", demo.url)).await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert_eq!(page.headers()["cache-control"], "no-cache");
    assert_eq!(page.headers()["x-content-type-options"], "nosniff");
    assert!(page.text().await.unwrap().contains("<title>deconflict"));
    let me = demo
        .client
        .expect(Method::GET, "/v1/me", &us.token, None)
        .await
        .unwrap();
    assert_eq!(me["name"], "US Forces");
    assert_eq!(me["kind"], "military");
    assert_eq!(me["id"].as_u64(), Some(us.id));
    let listed: Value = reqwest::get(format!("{}/demo/parties", demo.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 4);
    assert!(listed
        .iter()
        .any(|p| p["name"] == "US Forces" && p["token"] == us.token.as_str()));
    assert!(listed.iter().any(|p| p["kind"] == "broker"));

    // The day: the US delays its patrol and the crossing resolves.
    let outcome = run_script(&demo, 50_000.0, &mut |line| lines.push(line))
        .await
        .expect("the script plays");
    let (delayed, resolved) = &outcome.resolved_by_delay[0];
    assert_eq!(delayed, "us-patrol");
    assert!(
        resolved.contains(&crossing["id"].as_u64().unwrap()),
        "{outcome:?}"
    );
    let after = demo
        .client
        .expect(
            Method::GET,
            &format!("/v1/conflicts/{}", crossing["id"]),
            &broker.token,
            None,
        )
        .await
        .unwrap();
    assert_eq!(after["state"], "resolved", "{after}");
    // The convoy and the patrol near al-Malikiyah still conflict: the live part.
    let still_open = demo
        .client
        .expect(Method::GET, "/v1/conflicts?state=open", &us.token, None)
        .await
        .unwrap();
    assert!(still_open["conflicts"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| ids(c).contains(&demo.activities["us-convoy"])));
    // The incident keeps both units' tracks as evidence (listed by uid).
    assert_eq!(outcome.incidents, 1, "{lines:#?}");
    assert!(outcome.evidence_positions >= 2, "{outcome:?}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("evidence:") && l.contains("US-CONVOY-1") && l.contains("RU-PATROL-1")),
        "{lines:#?}"
    );
    // Every receipt of the loading verifies offline against the log key.
    assert_eq!(outcome.receipts_verified, demo.receipts.len());
    assert!(outcome.receipts_verified >= 9);
    assert!(
        outcome.checkpoint.starts_with("deconflict.local/log\n"),
        "{}",
        outcome.checkpoint
    );
    demo.stop().await.unwrap();
    assert!(lines.iter().any(|l| l.contains("ILLUSTRATIVE")));
}
