//! CoT ingest throughput (issue 4's W3 target: ≥ 100k events/s over TLS).
//!
//! - `parse_only`: framer + parser over an in-memory stream cut into 16 KiB
//!   reads, as the listener sees it: the cost of the codec alone.
//! - `tls_loopback`: a tokio-rustls client with an issued certificate writes
//!   the same stream to the listener on 127.0.0.1; the clock runs until the
//!   driver's channel has received every event. Client encryption runs on
//!   the same two cores, so this is a lower bound for the server alone.
//! - `…_cpu`: the same work, but each batch is charged the CPU time the
//!   process used (all threads: client and server together), from the
//!   scheduler's per-thread accounting. Its throughput reads as events per CPU-second, and does
//!   not change when other programs load the machine, which wall-clock
//!   figures on a shared two-core machine do.
//!
//! Run: `cargo bench -p deconflict-tak --bench cot_ingest`

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use deconflict_engine::{PartyId, Timestamp};
use deconflict_formats::{parse_cot_with, write_cot_event, CotEvent, CotFramer, CotLimits, CotMessage};
use deconflict_tak::{CertificateAuthority, TakConfig, TakLimits, TakListener, TakTransport};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

const EVENTS: usize = 20_000;

/// CPU time used so far by all threads of this process, in nanoseconds of
/// the scheduler's accounting (`/proc/self/task/*/schedstat`, Linux). The
/// runtime's threads live as long as the benchmark, so none is lost between
/// two readings.
fn process_cpu_time() -> Duration {
    let tasks = std::fs::read_dir("/proc/self/task").expect("Linux /proc for CPU time");
    let nanos: u64 = tasks
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok())
        .filter_map(|stat| stat.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    Duration::from_nanos(nanos)
}

/// Which clock a batch is charged on.
#[derive(Clone, Copy)]
enum Clock {
    Wall,
    ProcessCpu,
}

impl Clock {
    fn name(self, bench: &str) -> String {
        match self {
            Clock::Wall => bench.to_owned(),
            Clock::ProcessCpu => format!("{bench}_cpu"),
        }
    }

    fn now(self) -> Duration {
        match self {
            Clock::Wall => START.with(|start| start.elapsed()),
            Clock::ProcessCpu => process_cpu_time(),
        }
    }
}

thread_local! {
    static START: Instant = Instant::now();
}
const READ_BYTES: usize = 16 * 1024;

/// What ATAK sends for a moving unit: declaration, position, track,
/// contact, group, and a few detail elements the parser skips.
fn stream() -> Vec<u8> {
    let mut bytes = Vec::new();
    for index in 0..EVENTS {
        let event = CotEvent {
            uid: format!("ANDROID-{index:016x}"),
            event_type: "a-f-G-U-C".to_owned(),
            how: Some("m-g".to_owned()),
            time: Timestamp(1_772_359_200_000 + index as i64),
            start: Timestamp(1_772_359_200_000 + index as i64),
            stale: Timestamp(1_772_359_500_000 + index as i64),
            lat_deg: 48.0 + (index % 1000) as f64 * 1e-4,
            lon_deg: 11.0 + (index % 777) as f64 * 1e-4,
            hae_m: Some(520.5),
            ce_m: Some(4.9),
            le_m: None,
            speed_mps: Some(13.2),
            course_deg: Some(271.0),
            callsign: Some(format!("VIPER {index}")),
            group: Some("Cyan".to_owned()),
            remarks: None,
        };
        let xml = write_cot_event(&event).replace(
            "<detail>",
            r#"<detail><takv os="34" version="5.2.0" device="PIXEL 8" platform="ATAK-CIV"/><status battery="81"/><precisionlocation geopointsrc="GPS" altsrc="GPS"/>"#,
        );
        bytes.extend_from_slice(b"<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n");
        bytes.extend_from_slice(xml.as_bytes());
    }
    bytes
}

fn parse_stream(bytes: &[u8], limits: &CotLimits) -> usize {
    let mut framer = CotFramer::new(limits.max_event_bytes);
    let mut events = 0;
    for read in bytes.chunks(READ_BYTES) {
        framer.push(read);
        while let Ok(Some(frame)) = framer.next_frame() {
            if let Ok(CotMessage::Event(_)) = parse_cot_with(frame, limits) {
                events += 1;
            }
        }
    }
    events
}

fn bench_parse_only(c: &mut Criterion) {
    let bytes = stream();
    let limits = CotLimits::default();
    assert_eq!(parse_stream(&bytes, &limits), EVENTS);
    let mut group = c.benchmark_group("cot_ingest");
    group.throughput(Throughput::Elements(EVENTS as u64));
    group.sample_size(20);
    for clock in [Clock::Wall, Clock::ProcessCpu] {
        group.bench_function(clock.name("parse_only"), |b| {
            b.iter_custom(|iterations| {
                let started = clock.now();
                for _ in 0..iterations {
                    criterion::black_box(parse_stream(&bytes, &limits));
                }
                clock.now() - started
            })
        });
    }
    group.finish();
}

fn bench_tls_loopback(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let bytes = Arc::new(stream());
    let ca = CertificateAuthority::ephemeral().unwrap();
    let server_credentials = ca.issue_server(&[]).unwrap();
    let client = ca.issue_client(PartyId(1), "Bench").unwrap();
    let (events, mut received) = mpsc::channel(8192);
    let (listener, mut tls) = runtime.block_on(async {
        let listener = TakListener::bind(
            TakConfig {
                listen_addr: "127.0.0.1:0".parse().unwrap(),
                transport: TakTransport::Tls(ca.tls_server_config(&server_credentials).unwrap()),
                limits: TakLimits::default(),
                revocations: Default::default(),
            },
            events,
        )
        .await
        .unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca.ca_der().clone()).unwrap();
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_slice(client.cert_pem.as_bytes()).unwrap()],
                PrivateKeyDer::from_pem_slice(client.key_pem.as_bytes()).unwrap(),
            )
            .unwrap();
        let tcp = tokio::net::TcpStream::connect(listener.local_addr())
            .await
            .unwrap();
        tcp.set_nodelay(true).unwrap();
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .unwrap();
        (listener, tls)
    });

    let mut group = c.benchmark_group("cot_ingest");
    group.throughput(Throughput::Elements(EVENTS as u64));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    for clock in [Clock::Wall, Clock::ProcessCpu] {
        group.bench_function(clock.name("tls_loopback"), |b| {
            b.iter_custom(|iterations| {
                runtime.block_on(async {
                    let mut total = Duration::ZERO;
                    for _ in 0..iterations {
                        let started = clock.now();
                        tokio::join!(
                            async {
                                tls.write_all(&bytes).await.unwrap();
                                tls.flush().await.unwrap();
                            },
                            async {
                                for _ in 0..EVENTS {
                                    received.recv().await.expect("listener alive");
                                }
                            }
                        );
                        total += clock.now() - started;
                    }
                    total
                })
            })
        });
    }
    group.finish();
    runtime.block_on(listener.shutdown());
}

criterion_group!(benches, bench_parse_only, bench_tls_loopback);
criterion_main!(benches);
