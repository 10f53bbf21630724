//! The listener end to end over real sockets on loopback, with a tokio-rustls
//! client playing the TAK client.

use std::sync::Arc;
use std::time::Duration;

use deconflict_engine::{PartyId, Timestamp};
use deconflict_formats::{
    parse_cot, write_cot_event, CotAlert, CotAlertKind, CotEvent, CotLimits, CotMessage,
};
use deconflict_tak::{
    CertificateAuthority, ClientCredentials, TakConfig, TakError, TakInbound, TakLimits, TakListener,
    TakTransport,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// Generous bound for anything that should happen at once on loopback.
const PROMPTLY: Duration = Duration::from_secs(5);

struct Server {
    ca: CertificateAuthority,
    listener: TakListener,
    received: mpsc::Receiver<TakInbound>,
}

async fn start(limits: TakLimits) -> Server {
    start_with_channel(limits, 1024).await
}

async fn start_with_channel(limits: TakLimits, channel_len: usize) -> Server {
    let ca = CertificateAuthority::ephemeral().unwrap();
    let server_credentials = ca.issue_server(&[]).unwrap();
    let (events, received) = mpsc::channel(channel_len);
    let listener = TakListener::bind(
        TakConfig {
            listen_addr: "127.0.0.1:0".parse().unwrap(),
            transport: TakTransport::Tls(ca.tls_server_config(&server_credentials).unwrap()),
            limits,
            revocations: Default::default(),
        },
        events,
    )
    .await
    .unwrap();
    Server {
        ca,
        listener,
        received,
    }
}

fn connector(ca_pem: &str, client: Option<&ClientCredentials>) -> TlsConnector {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap())
        .unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match client {
        Some(credentials) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_slice(credentials.cert_pem.as_bytes()).unwrap()],
                PrivateKeyDer::from_pem_slice(credentials.key_pem.as_bytes()).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    TlsConnector::from(Arc::new(config))
}

async fn connect(server: &Server, client: &ClientCredentials) -> TlsStream<TcpStream> {
    try_connect(server, server.ca.ca_pem(), Some(client))
        .await
        .expect("TLS handshake")
}

async fn try_connect(
    server: &Server,
    ca_pem: &str,
    client: Option<&ClientCredentials>,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(server.listener.local_addr()).await?;
    connector(ca_pem, client)
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
}

fn position(uid: &str, lat_deg: f64) -> CotEvent {
    CotEvent {
        uid: uid.to_owned(),
        event_type: "a-f-G-U-C".to_owned(),
        how: Some("m-g".to_owned()),
        time: Timestamp(1_772_359_200_000),
        start: Timestamp(1_772_359_200_000),
        stale: Timestamp(1_772_359_500_000),
        lat_deg,
        lon_deg: 30.5,
        hae_m: Some(150.0),
        ce_m: None,
        le_m: None,
        speed_mps: Some(12.5),
        course_deg: Some(90.0),
        callsign: Some(uid.to_uppercase()),
        group: None,
        remarks: None,
    }
}

const PING: &str = r#"<event version="2.0" uid="ping-1" type="t-x-c-t" how="h-g-i-g-o" time="2026-03-01T10:00:00Z" start="2026-03-01T10:00:00Z" stale="2026-03-01T10:00:10Z"><point lat="0.0" lon="0.0" hae="0.0" ce="9999999" le="9999999"/><detail/></event>"#;

async fn next_event(server: &mut Server) -> TakInbound {
    tokio::time::timeout(PROMPTLY, server.received.recv())
        .await
        .expect("an event in time")
        .expect("listener alive")
}

/// Reads CoT documents from `stream` until one of type `event_type`.
async fn read_until_type<S: AsyncRead + Unpin>(stream: &mut S, event_type: &str) -> String {
    let mut framer = deconflict_formats::CotFramer::new(64 * 1024);
    let mut chunk = [0u8; 4096];
    tokio::time::timeout(PROMPTLY, async {
        loop {
            let n = stream.read(&mut chunk).await.expect("read");
            assert!(n > 0, "connection closed before a {event_type} event");
            framer.push(&chunk[..n]);
            while let Ok(Some(frame)) = framer.next_frame() {
                let text = String::from_utf8(frame.to_vec()).unwrap();
                if text.contains(&format!(r#"type="{event_type}""#)) {
                    return text;
                }
            }
        }
    })
    .await
    .expect("the event in time")
}

/// True if the server closes the stream (EOF or a TLS alert) in time.
async fn closed_by_server<S: AsyncRead + Unpin>(stream: &mut S) -> bool {
    let mut chunk = [0u8; 1024];
    matches!(
        tokio::time::timeout(PROMPTLY, stream.read(&mut chunk)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

/// Waits until `stats` satisfies `check`: counters are bumped by the
/// server's tasks, a moment after the client sees the effect.
async fn stats_reach(server: &Server, check: impl Fn(&deconflict_tak::TakStats) -> bool) {
    let waited = tokio::time::timeout(PROMPTLY, async {
        while !check(&server.listener.stats()) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert!(
        waited.is_ok(),
        "stats never matched: {:?}",
        server.listener.stats()
    );
}

async fn wait_for_connections(server: &Server, party: PartyId, count: usize) {
    let outbound = server.listener.outbound();
    tokio::time::timeout(PROMPTLY, async {
        while outbound.connections_of(party) != count {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("connections registered in time");
}

#[tokio::test]
async fn events_arrive_tagged_with_the_certificates_party() {
    let mut server = start(TakLimits::default()).await;
    let blue = server.ca.issue_client(PartyId(1), "Blue").unwrap();
    let red = server.ca.issue_client(PartyId(2), "Red").unwrap();
    let mut blue_stream = connect(&server, &blue).await;
    let mut red_stream = connect(&server, &red).await;

    // Blue writes as ATAK does: a declaration before each event, split
    // across writes at awkward places, a ping, and one broken event that
    // must be rejected without closing the stream.
    let stream = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{}\n{PING}<event uid=\"broken\"><point lat=\"x\"/></event>{}",
        write_cot_event(&position("blue-1", 50.0)),
        write_cot_event(&position("blue-2", 50.1)),
    );
    for piece in stream.as_bytes().chunks(37) {
        blue_stream.write_all(piece).await.unwrap();
        blue_stream.flush().await.unwrap();
    }
    red_stream
        .write_all(write_cot_event(&position("red-1", 49.0)).as_bytes())
        .await
        .unwrap();
    red_stream.flush().await.unwrap();

    let mut got = Vec::new();
    for _ in 0..3 {
        let inbound = next_event(&mut server).await;
        got.push((inbound.party, inbound.event.uid.clone(), inbound.event));
    }
    got.sort_by(|a, b| a.1.cmp(&b.1));
    assert_eq!(got[0].0, PartyId(1));
    assert_eq!(got[0].2, position("blue-1", 50.0));
    assert_eq!((got[1].0, got[1].1.as_str()), (PartyId(1), "blue-2"));
    assert_eq!((got[2].0, got[2].1.as_str()), (PartyId(2), "red-1"));

    // The ping was answered.
    let pong = read_until_type(&mut blue_stream, "t-x-c-t-r").await;
    assert!(matches!(parse_cot(pong.as_bytes()), Ok(CotMessage::Control(_))));
    stats_reach(&server, |s| {
        (s.events_received, s.events_rejected, s.connections_accepted) == (3, 1, 2)
    })
    .await;
    server.listener.shutdown().await;
}

#[tokio::test]
async fn alerts_reach_every_connection_of_the_party_and_no_other() {
    let server = start(TakLimits::default()).await;
    let blue = server.ca.issue_client(PartyId(1), "Blue").unwrap();
    let red = server.ca.issue_client(PartyId(2), "Red").unwrap();
    let mut blue_phone = connect(&server, &blue).await;
    let mut blue_tablet = connect(&server, &blue).await;
    let mut red_phone = connect(&server, &red).await;
    wait_for_connections(&server, PartyId(1), 2).await;
    wait_for_connections(&server, PartyId(2), 1).await;

    let alert = CotAlert {
        uid: "deconflict-alert-1".to_owned(),
        kind: CotAlertKind::GeofenceBreach,
        title: "ZONE ALPHA".to_owned(),
        text: "BLUE-1 entered exclusion zone Alpha".to_owned(),
        lat_deg: 50.0,
        lon_deg: 30.5,
        hae_m: None,
        time: Timestamp(1_772_359_200_000),
        stale: Timestamp(1_772_359_260_000),
        subject_uid: Some("blue-1".to_owned()),
    };
    let delivery = server
        .listener
        .outbound()
        .send_to_party(PartyId(1), alert.to_xml().into_bytes().into());
    assert_eq!((delivery.queued, delivery.dropped), (2, 0));
    for stream in [&mut blue_phone, &mut blue_tablet] {
        let received = read_until_type(stream, "b-a-g").await;
        assert_eq!(received, alert.to_xml());
    }
    let mut chunk = [0u8; 256];
    assert!(
        tokio::time::timeout(Duration::from_millis(200), red_phone.read(&mut chunk))
            .await
            .is_err(),
        "red received something"
    );
    server.listener.shutdown().await;
}

#[tokio::test]
async fn a_certificate_from_another_ca_is_refused() {
    let mut server = start(TakLimits::default()).await;
    let other_ca = CertificateAuthority::ephemeral().unwrap();
    let intruder = other_ca.issue_client(PartyId(1), "Blue").unwrap();
    // With TLS 1.3 the client may finish its side of the handshake before
    // the server has checked its certificate; either way nothing gets in.
    if let Ok(mut stream) = try_connect(&server, server.ca.ca_pem(), Some(&intruder)).await {
        let _ = stream
            .write_all(write_cot_event(&position("spoof", 1.0)).as_bytes())
            .await;
        let _ = stream.flush().await;
        assert!(closed_by_server(&mut stream).await);
    }
    // No certificate at all is refused too.
    if let Ok(mut stream) = try_connect(&server, server.ca.ca_pem(), None).await {
        let _ = stream
            .write_all(write_cot_event(&position("anon", 1.0)).as_bytes())
            .await;
        let _ = stream.flush().await;
        assert!(closed_by_server(&mut stream).await);
    }
    stats_reach(&server, |s| s.handshakes_failed == 2).await;
    assert!(server.received.try_recv().is_err());
    assert_eq!(server.listener.stats().connections_accepted, 0);
}

#[tokio::test]
async fn plain_tcp_is_refused_off_loopback_and_bound_to_its_party_on_it() {
    let (events, mut received) = mpsc::channel(16);
    let off_loopback = TakListener::bind(
        TakConfig {
            listen_addr: "0.0.0.0:0".parse().unwrap(),
            transport: TakTransport::PlainLoopback { party: PartyId(9) },
            limits: TakLimits::default(),
            revocations: Default::default(),
        },
        events.clone(),
    )
    .await;
    assert!(matches!(off_loopback, Err(TakError::PlainTcpNotLoopback(_))));

    let listener = TakListener::bind(
        TakConfig {
            listen_addr: "127.0.0.1:0".parse().unwrap(),
            transport: TakTransport::PlainLoopback { party: PartyId(9) },
            limits: TakLimits::default(),
            revocations: Default::default(),
        },
        events,
    )
    .await
    .unwrap();
    let mut tcp = TcpStream::connect(listener.local_addr()).await.unwrap();
    tcp.write_all(write_cot_event(&position("gateway-1", 10.0)).as_bytes())
        .await
        .unwrap();
    let inbound = tokio::time::timeout(PROMPTLY, received.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (inbound.party, inbound.event.uid.as_str()),
        (PartyId(9), "gateway-1")
    );
    listener.shutdown().await;
    assert!(closed_by_server(&mut tcp).await);
}

#[tokio::test]
async fn connection_limits_close_the_extra_connection() {
    let limits = TakLimits {
        max_connections: 2,
        max_connections_per_party: 1,
        ..TakLimits::default()
    };
    let server = start(limits).await;
    let blue = server.ca.issue_client(PartyId(1), "Blue").unwrap();
    let red = server.ca.issue_client(PartyId(2), "Red").unwrap();
    let green = server.ca.issue_client(PartyId(3), "Green").unwrap();
    let _first = connect(&server, &blue).await;
    wait_for_connections(&server, PartyId(1), 1).await;
    let mut second_blue = connect(&server, &blue).await;
    assert!(
        closed_by_server(&mut second_blue).await,
        "over the per-party limit"
    );
    let _red = connect(&server, &red).await;
    wait_for_connections(&server, PartyId(2), 1).await;
    // Two connections open: a third party is over the total.
    // The server closes it right after accepting, so the handshake itself
    // may fail; if it does not, the connection must be closed.
    if let Ok(mut stream) = try_connect(&server, server.ca.ca_pem(), Some(&green)).await {
        assert!(closed_by_server(&mut stream).await, "over the total limit");
    }
    stats_reach(&server, |s| s.connections_refused == 2).await;
    assert_eq!(server.listener.outbound().connections_of(PartyId(3)), 0);
}

#[tokio::test]
async fn an_idle_connection_is_closed_and_an_oversize_event_skipped() {
    let limits = TakLimits {
        read_idle_timeout: Duration::from_millis(300),
        cot: CotLimits {
            max_event_bytes: 1024,
            ..CotLimits::default()
        },
        ..TakLimits::default()
    };
    let mut server = start(limits).await;
    let blue = server.ca.issue_client(PartyId(1), "Blue").unwrap();
    let mut stream = connect(&server, &blue).await;
    let oversize = write_cot_event(&CotEvent {
        remarks: Some("r".repeat(2000)),
        ..position("big", 1.0)
    });
    let stream_bytes = format!("{oversize}{}", write_cot_event(&position("small", 2.0)));
    stream.write_all(stream_bytes.as_bytes()).await.unwrap();
    stream.flush().await.unwrap();
    assert_eq!(next_event(&mut server).await.event.uid, "small");
    assert_eq!(server.listener.stats().frames_skipped, 1);
    let started = std::time::Instant::now();
    assert!(closed_by_server(&mut stream).await);
    assert!(
        started.elapsed() >= Duration::from_millis(200),
        "closed for idleness, not at once"
    );
}

#[tokio::test]
async fn a_slow_driver_slows_the_clients_and_loses_nothing() {
    // A channel of one: the connection must wait for the driver, not drop.
    let mut server = start_with_channel(TakLimits::default(), 1).await;
    let blue = server.ca.issue_client(PartyId(1), "Blue").unwrap();
    let mut stream = connect(&server, &blue).await;
    let burst: String = (0..200)
        .map(|i| write_cot_event(&position(&format!("unit-{i}"), 1.0)))
        .collect();
    let writer = tokio::spawn(async move {
        stream.write_all(burst.as_bytes()).await.unwrap();
        stream.flush().await.unwrap();
        stream
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    for i in 0..200 {
        assert_eq!(next_event(&mut server).await.event.uid, format!("unit-{i}"));
    }
    let _stream = writer.await.unwrap();
    stats_reach(&server, |s| s.events_received == 200).await;
}
