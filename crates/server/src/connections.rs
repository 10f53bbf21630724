//! The limit on open HTTP connections (`--max-connections`).
//!
//! Every connection holds a file descriptor and buffers, and an event
//! stream holds its connection for as long as the client listens: without
//! a limit, clients that connect and never leave exhaust the process's
//! descriptors and the service stops accepting anyone (`accept` fails with
//! EMFILE). With it, a connection beyond the limit is answered at once with
//! a 503 `application/problem+json` (`type` `…/connections`, `Retry-After`)
//! and closed, and the connections already open are served as before.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::http::StatusCode;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::problem::ApiError;

/// Refusals being written at once at most: beyond it a connection over the
/// limit is closed without an answer, so refusing stays bounded too.
const MAX_REFUSALS_IN_FLIGHT: usize = 64;
/// How long a refusal waits for the request before answering, and then for
/// the client to finish sending (closing a socket with unread bytes sends a
/// reset, which can destroy the answer before the client reads it).
const REFUSAL_LINGER: Duration = Duration::from_secs(1);
/// Bytes of request a refusal reads at most.
const REFUSAL_READ_BYTES: usize = 64 * 1024;

/// A [`TcpListener`] that holds at most `max_connections` connections open.
#[derive(Debug)]
pub struct LimitedListener {
    listener: TcpListener,
    open: Arc<Semaphore>,
    refusing: Arc<Semaphore>,
    max_connections: usize,
}

impl LimitedListener {
    pub fn new(listener: TcpListener, max_connections: usize) -> Self {
        Self {
            listener,
            open: Arc::new(Semaphore::new(max_connections)),
            refusing: Arc::new(Semaphore::new(MAX_REFUSALS_IN_FLIGHT)),
            max_connections,
        }
    }

    fn refuse(&self, stream: TcpStream) {
        metrics::counter!("deconflict_connections_refused_total").increment(1);
        let Ok(permit) = Arc::clone(&self.refusing).try_acquire_owned() else {
            return; // dropped: closed without an answer
        };
        let answer = refusal(self.max_connections);
        tokio::spawn(async move {
            let _permit = permit;
            let _ = write_refusal(stream, &answer).await;
        });
    }
}

/// The whole HTTP/1.1 answer to a connection over the limit.
fn refusal(max_connections: usize) -> Vec<u8> {
    let problem = ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "connections",
        format!("{max_connections} connections are open, the limit (--max-connections); try again later"),
    );
    let body = serde_json::to_string(&*problem.0).unwrap_or_default();
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/problem+json\r\nretry-after: 5\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

async fn write_refusal(mut stream: TcpStream, answer: &[u8]) -> io::Result<()> {
    let mut request = Vec::new();
    let mut buffer = [0u8; 4096];
    // The request head first, so that the client is reading when we answer.
    let _ = tokio::time::timeout(REFUSAL_LINGER, async {
        while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < REFUSAL_READ_BYTES {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => request.extend_from_slice(&buffer[..n]),
            }
        }
    })
    .await;
    stream.write_all(answer).await?;
    stream.shutdown().await?;
    // Then whatever body it still sends, until it closes (bounded).
    let mut drained = 0;
    let _ = tokio::time::timeout(REFUSAL_LINGER, async {
        while drained < REFUSAL_READ_BYTES {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => drained += n,
            }
        }
    })
    .await;
    Ok(())
}

impl axum::serve::Listener for LimitedListener {
    type Io = Connection;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let (stream, address) = match self.listener.accept().await {
                Ok(accepted) => accepted,
                Err(error) => {
                    accept_failed(error).await;
                    continue;
                }
            };
            match Arc::clone(&self.open).try_acquire_owned() {
                Ok(permit) => {
                    metrics::gauge!("deconflict_connections").increment(1.0);
                    return (
                        Connection {
                            stream,
                            _permit: permit,
                        },
                        address,
                    );
                }
                Err(_) => self.refuse(stream),
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.listener.local_addr()
    }
}

/// As axum's own listener: a failed handshake is the client's business; any
/// other failure (EMFILE: out of descriptors) is logged and retried after a
/// pause instead of spinning.
async fn accept_failed(error: io::Error) {
    if matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!(%error, "cannot accept a connection; retrying in 1 s");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// An accepted connection: its slot is freed when it is dropped.
#[derive(Debug)]
pub struct Connection {
    stream: TcpStream,
    _permit: OwnedSemaphorePermit,
}

impl Drop for Connection {
    fn drop(&mut self) {
        metrics::gauge!("deconflict_connections").decrement(1.0);
    }
}

impl AsyncRead for Connection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Connection {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refusal_is_a_complete_problem_answer() {
        let answer = String::from_utf8(refusal(7)).unwrap();
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 503 "));
        assert!(head.contains("content-type: application/problem+json"));
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let problem: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(problem["status"], 503);
        assert_eq!(problem["type"], "https://deconflict.invalid/problems/connections");
        assert!(problem["detail"].as_str().unwrap().contains("--max-connections"));
    }
}
