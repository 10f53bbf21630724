//! Reading `/v1/events` (Server-Sent Events) as a client: one parser for
//! every test, fed by a reqwest response or by a raw socket.
//!
//! The raw socket is for the load tests: it costs one descriptor and a
//! buffer per stream (10,000 streams), and a client that never reads its
//! socket is exactly what a slow consumer is.

use std::io;
use std::pin::Pin;
use std::time::Duration;

use axum::body::Bytes;
use futures_util::{Stream, StreamExt};
use reqwest::StatusCode;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use super::Server;

/// One event of the stream.
#[derive(Debug, Clone, PartialEq)]
pub struct SseEvent {
    pub kind: String,
    /// The SSE id: the log index of a conflict event.
    pub id: Option<String>,
    /// `data`, as JSON (`Null` when it is not JSON).
    pub data: Value,
}

/// Cuts a byte stream into events (blocks ending in a blank line).
/// Comment-only blocks (the keep-alives) are skipped.
#[derive(Debug, Default)]
pub struct SseParser {
    buffer: Vec<u8>,
}

impl SseParser {
    pub fn push(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    pub fn next_event(&mut self) -> Option<SseEvent> {
        loop {
            let end = self.buffer.windows(2).position(|w| w == b"\n\n")?;
            let block: Vec<u8> = self.buffer.drain(..end + 2).collect();
            let block = String::from_utf8_lossy(&block);
            let (mut kind, mut id, mut data) = (String::new(), None, String::new());
            for line in block.lines() {
                if let Some(rest) = line.strip_prefix("event:") {
                    rest.trim().clone_into(&mut kind);
                } else if let Some(rest) = line.strip_prefix("id:") {
                    id = Some(rest.trim().to_owned());
                } else if let Some(rest) = line.strip_prefix("data:") {
                    data.push_str(rest.trim());
                }
            }
            if kind.is_empty() {
                continue;
            }
            let data = serde_json::from_str(&data).unwrap_or(Value::Null);
            return Some(SseEvent { kind, id, data });
        }
    }
}

type ByteStream = Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>;

/// An open event stream, read event by event.
pub struct Events {
    source: ByteStream,
    parser: SseParser,
}

impl Events {
    /// `GET /v1/events` as `token` with the server's reqwest client.
    pub async fn open(server: &Server, token: &str) -> Events {
        Events::open_at(&server.client, &server.url, token).await
    }

    /// `GET /v1/events` of the server at `url` as `token` with `client`.
    pub async fn open_at(client: &reqwest::Client, url: &str, token: &str) -> Events {
        let response = client
            .get(format!("{url}/v1/events"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        Events::from_response(response)
    }

    pub fn from_response(response: reqwest::Response) -> Events {
        Events {
            source: Box::pin(
                response
                    .bytes_stream()
                    .map(|chunk| chunk.map_err(io::Error::other)),
            ),
            parser: SseParser::default(),
        }
    }

    /// The next event; `None` when the stream ended.
    pub async fn try_next(&mut self) -> io::Result<Option<SseEvent>> {
        loop {
            if let Some(event) = self.parser.next_event() {
                return Ok(Some(event));
            }
            match self.source.next().await {
                Some(chunk) => self.parser.push(&chunk?),
                None => return Ok(None),
            }
        }
    }

    /// The next event; the stream must stay open.
    pub async fn next(&mut self) -> SseEvent {
        self.try_next()
            .await
            .expect("the stream reads")
            .expect("the stream stays open")
    }

    /// The data of the first event of `kind` within `within` (others are
    /// skipped).
    pub async fn expect(&mut self, kind: &str, within: Duration) -> Value {
        tokio::time::timeout(within, async {
            loop {
                let event = self.next().await;
                if event.kind == kind {
                    return event.data;
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no {kind} event within {within:?}"))
    }
}

/// Connects to `address` (`host:port`) and sends `GET /v1/events` as
/// `token`, reading nothing. A `receive_buffer_bytes` makes the socket's
/// receive buffer small, so that a client that does not read fills it soon
/// (the kernel doubles the value and keeps a floor).
pub async fn request_raw(
    address: &str,
    token: &str,
    receive_buffer_bytes: Option<u32>,
) -> io::Result<TcpStream> {
    let addr: std::net::SocketAddr = address.parse().map_err(io::Error::other)?;
    let socket = TcpSocket::new_v4()?;
    if let Some(bytes) = receive_buffer_bytes {
        socket.set_recv_buffer_size(bytes)?;
    }
    let mut stream = socket.connect(addr).await?;
    let request = format!(
        "GET /v1/events HTTP/1.1\r\nhost: {address}\r\nauthorization: Bearer {token}\r\naccept: text/event-stream\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await?;
    Ok(stream)
}

/// What a raw request was answered, when it was not a stream.
#[derive(Debug)]
pub struct Refused {
    pub status: u16,
    pub headers: String,
    pub body: String,
}

/// Reads the answer to [`request_raw`]: the event stream, or the refusal.
pub async fn raw_events(mut stream: TcpStream) -> io::Result<Result<Events, Refused>> {
    let mut buffer = Vec::new();
    let head_end = loop {
        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        if read_more(&mut stream, &mut buffer).await? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "closed before the answer",
            ));
        }
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).to_ascii_lowercase();
    buffer.drain(..head_end + 4);
    let status: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| io::Error::other(format!("no status line in {head:?}")))?;
    if status != 200 {
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        while buffer.len() < length {
            if read_more(&mut stream, &mut buffer).await? == 0 {
                break;
            }
        }
        return Ok(Err(Refused {
            status,
            headers: head,
            body: String::from_utf8_lossy(&buffer).into_owned(),
        }));
    }
    if !head.contains("transfer-encoding: chunked") {
        return Err(io::Error::other(format!("an event stream is chunked: {head:?}")));
    }
    let chunks = futures_util::stream::unfold((stream, buffer), |(mut stream, mut buffer)| async move {
        match next_chunk(&mut stream, &mut buffer).await {
            Ok(Some(chunk)) => Some((Ok(chunk), (stream, buffer))),
            Ok(None) => None,
            Err(error) => Some((Err(error), (stream, buffer))),
        }
    });
    Ok(Ok(Events {
        source: Box::pin(chunks),
        parser: SseParser::default(),
    }))
}

async fn read_more(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> io::Result<usize> {
    let mut chunk = [0u8; 8192];
    let n = stream.read(&mut chunk).await?;
    buffer.extend_from_slice(&chunk[..n]);
    Ok(n)
}

/// One chunk of an HTTP/1.1 chunked body; `None` at its end.
async fn next_chunk(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> io::Result<Option<Bytes>> {
    loop {
        if let Some(line_end) = buffer.windows(2).position(|w| w == b"\r\n") {
            let line = String::from_utf8_lossy(&buffer[..line_end]);
            let size_text = line.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size_text, 16)
                .map_err(|_| io::Error::other(format!("bad chunk size {line:?}")))?;
            if size == 0 {
                return Ok(None);
            }
            let total = line_end + 2 + size + 2;
            if buffer.len() >= total {
                let chunk = Bytes::copy_from_slice(&buffer[line_end + 2..line_end + 2 + size]);
                buffer.drain(..total);
                return Ok(Some(chunk));
            }
        }
        if read_more(stream, buffer).await? == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the stream was cut"));
        }
    }
}
