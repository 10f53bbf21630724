//! Optional TLS for HTTP (`serve --tls-cert PEM --tls-key PEM`): the same
//! rustls with the ring provider as the TAK listener.
//!
//! With TLS on, the port speaks only TLS: a plain-HTTP request fails its
//! handshake and the connection is closed (there is no redirect, which
//! would invite a client to send its bearer token in the clear first).
//! Handshakes run on their own tasks, so a client that stalls in its
//! handshake never holds up the others; at most
//! [`TlsLimits::max_handshakes`] run at once and each has
//! [`TlsLimits::handshake_timeout`].

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// The certificate chain and private key files, PEM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The server's certificate first, then any intermediates.
    pub cert: PathBuf,
    /// Its private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// Limits of the TLS accept path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TlsLimits {
    /// Handshakes in progress at once; further connections wait in the
    /// kernel's accept queue.
    pub max_handshakes: usize,
    /// A client that has not finished its handshake by then is dropped.
    pub handshake_timeout: Duration,
}

impl Default for TlsLimits {
    fn default() -> Self {
        Self {
            max_handshakes: 256,
            handshake_timeout: Duration::from_secs(10),
        }
    }
}

/// Why the TLS files cannot be used; each names the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path}: no PEM certificate in it (--tls-cert)")]
    NoCertificate { path: PathBuf },
    #[error("{path}: not a PEM private key: {message} (--tls-key)")]
    BadKey { path: PathBuf, message: String },
    #[error("--tls-cert {cert} and --tls-key {key} cannot be used together: {message}")]
    Unusable {
        cert: PathBuf,
        key: PathBuf,
        message: String,
    },
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

/// The rustls configuration for `files`: TLS 1.2 and 1.3 with ring's
/// defaults, HTTP/1.1 by ALPN, no client certificates (HTTP callers
/// authenticate with bearer tokens).
pub fn server_config(files: &TlsFiles) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let cert_pem = read(&files.cert)?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .filter_map(Result::ok)
        .collect();
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: files.cert.clone(),
        });
    }
    let key_pem = read(&files.key)?;
    // The key's bytes never reach an error message or the log.
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|error| TlsError::BadKey {
        path: files.key.clone(),
        message: error.to_string(),
    })?;
    let unusable = |message: String| TlsError::Unusable {
        cert: files.cert.clone(),
        key: files.key.clone(),
        message,
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| unusable(e.to_string()))?
        .with_no_client_auth()
        // Checks that the key is the certificate's.
        .with_single_cert(chain, key)
        .map_err(|e| unusable(e.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A TCP listener whose connections come out after their TLS handshake,
/// for `axum::serve`. Dropping it stops accepting.
#[derive(Debug)]
pub struct TlsListener {
    local_addr: SocketAddr,
    handshaken: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    accept_task: tokio::task::JoinHandle<()>,
}

impl TlsListener {
    pub fn new(tcp: TcpListener, config: Arc<rustls::ServerConfig>, limits: TlsLimits) -> io::Result<Self> {
        let local_addr = tcp.local_addr()?;
        // A few finished handshakes may wait for axum to take them; beyond
        // that, handshakes wait for room (and hold their permits).
        let (sender, handshaken) = mpsc::channel(limits.max_handshakes.max(1));
        let accept_task = tokio::spawn(accept_loop(tcp, TlsAcceptor::from(config), limits, sender));
        Ok(Self {
            local_addr,
            handshaken,
            accept_task,
        })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.accept_task.abort();
    }
}

async fn accept_loop(
    tcp: TcpListener,
    acceptor: TlsAcceptor,
    limits: TlsLimits,
    handshaken: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
) {
    let permits = Arc::new(Semaphore::new(limits.max_handshakes.max(1)));
    loop {
        let Ok(permit) = Arc::clone(&permits).acquire_owned().await else {
            return;
        };
        let (stream, peer) = match tcp.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors and the like: wait a moment
                // instead of spinning.
                tracing::warn!(%error, "HTTPS accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let handshaken = handshaken.clone();
        tokio::spawn(async move {
            let _permit = permit;
            match tokio::time::timeout(limits.handshake_timeout, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => {
                    let _ = handshaken.send((tls, peer)).await;
                }
                Ok(Err(error)) => {
                    // A plain-HTTP request on the TLS port ends here.
                    metrics::counter!("deconflict_tls_handshakes_failed_total").increment(1);
                    tracing::debug!(%peer, %error, "HTTPS handshake failed");
                }
                Err(_) => {
                    metrics::counter!("deconflict_tls_handshakes_failed_total").increment(1);
                    tracing::debug!(%peer, "HTTPS handshake timed out");
                }
            }
        });
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.handshaken.recv().await {
            Some(accepted) => accepted,
            // The accept task only ends when the listener is dropped; never
            // hand out a connection then.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local_addr)
    }
}
