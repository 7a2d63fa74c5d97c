//! The load generator's hand-rolled HTTP/1.1 client: fixed request bytes on a keep-alive
//! connection, `Content-Length` or chunked responses, so that a call costs it far less than the
//! server.

use std::io::Write as _;
use std::net::SocketAddr;

use anyhow::{Context as _, bail};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

const WHOAMI: &str =
    r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"whoami","arguments":{}}}"#;

#[derive(Clone)]
pub struct Target {
    pub addr: SocketAddr,
    pub host: String,
    pub path: String,
}

impl Target {
    pub fn request(&self, out: &mut Vec<u8>, token: &str) {
        out.clear();
        // Writing into a Vec cannot fail.
        let _ = write!(
            out,
            "POST {} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n\
             MCP-Protocol-Version: 2025-06-18\r\nContent-Length: {}\r\n\r\n{WHOAMI}",
            self.path,
            self.host,
            WHOAMI.len()
        );
    }
}

/// A keep-alive HTTP/1.1 connection; one request in flight at a time.
pub struct Conn {
    stream: TcpStream,
    pub buf: Vec<u8>,
}

pub struct Response {
    pub status: u16,
    pub body: std::ops::Range<usize>,
    /// A JSON-RPC error or a tool result with `isError: true`.
    pub error: bool,
    pub close: bool,
}

impl Conn {
    pub async fn connect(addr: SocketAddr) -> anyhow::Result<Conn> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream,
            buf: Vec::with_capacity(8192),
        })
    }

    pub async fn call(&mut self, request: &[u8]) -> anyhow::Result<Response> {
        self.stream.write_all(request).await?;
        self.buf.clear();
        loop {
            if self.buf.capacity() - self.buf.len() < 4096 {
                self.buf.reserve(8192);
            }
            if self.stream.read_buf(&mut self.buf).await? == 0 {
                bail!("connection closed mid-response");
            }
            if let Some(head) = parse_head(&self.buf)?
                && let Some(end) = head.complete(&self.buf)?
            {
                let body = &self.buf[head.body_start..end];
                let error = head.status == 200
                    && (contains(body, b"\"isError\":true") || contains(body, b"\"error\":"));
                return Ok(Response {
                    status: head.status,
                    body: head.body_start..end,
                    error,
                    close: head.close,
                });
            }
        }
    }
}

struct Head {
    status: u16,
    body_start: usize,
    length: Option<usize>,
    chunked: bool,
    close: bool,
}

impl Head {
    /// Where the response ends, once all of it is in `buf`.
    fn complete(&self, buf: &[u8]) -> anyhow::Result<Option<usize>> {
        if let Some(len) = self.length {
            let end = self.body_start + len;
            return Ok((buf.len() >= end).then_some(end));
        }
        if !self.chunked {
            bail!("response without Content-Length or chunked encoding");
        }
        let mut pos = self.body_start;
        loop {
            let Some(line_end) = find(&buf[pos..], b"\r\n").map(|i| pos + i) else {
                return Ok(None);
            };
            let size_text = std::str::from_utf8(&buf[pos..line_end])?;
            let size_text = size_text.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size_text, 16)
                .with_context(|| format!("bad chunk size `{size_text}`"))?;
            let next = line_end + 2 + size + 2;
            if buf.len() < next {
                return Ok(None);
            }
            if size == 0 {
                return Ok(Some(next));
            }
            pos = next;
        }
    }
}

fn parse_head(buf: &[u8]) -> anyhow::Result<Option<Head>> {
    let Some(end) = find(buf, b"\r\n\r\n") else {
        return Ok(None);
    };
    let text = std::str::from_utf8(&buf[..end])?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("bad status line `{status_line}`"))?;
    let mut head = Head {
        status,
        body_start: end + 4,
        length: None,
        chunked: false,
        close: false,
    };
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            head.length = Some(value.parse()?);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            head.chunked = value.eq_ignore_ascii_case("chunked");
        } else if name.eq_ignore_ascii_case("connection") {
            head.close = value.eq_ignore_ascii_case("close");
        }
    }
    Ok(Some(head))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    find(haystack, needle).is_some()
}
