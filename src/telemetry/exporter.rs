//! Where spans go: a JSON-lines file (one OTLP request per line) or an OTLP/HTTP endpoint.

use super::otlp_json;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use std::fs::File;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

#[derive(Debug)]
enum Sink {
    File {
        file: Mutex<File>,
        path: PathBuf,
    },
    Http {
        host: String,
        port: u16,
        path: String,
    },
}

/// A span exporter speaking OTLP's JSON encoding.
#[derive(Debug)]
pub struct OtlpJsonExporter {
    sink: Sink,
}

#[derive(Debug, thiserror::Error)]
pub enum ExporterError {
    #[error("cannot write trace file {}: {source}", path.display())]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("OTLP endpoint `{0}` is not supported: give http://HOST:PORT (for https, run a local collector)")]
    Endpoint(String),
}

impl OtlpJsonExporter {
    /// Appends to `path` (created, with its folder, if missing).
    pub fn file(path: &Path) -> Result<Self, ExporterError> {
        let err = |source| ExporterError::File {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(err)?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(err)?;
        Ok(OtlpJsonExporter {
            sink: Sink::File {
                file: Mutex::new(file),
                path: path.to_path_buf(),
            },
        })
    }

    /// Posts to `endpoint` (`http://host:port`, `/v1/traces` added unless a path is given).
    pub fn http(endpoint: &str) -> Result<Self, ExporterError> {
        let rest = endpoint
            .strip_prefix("http://")
            .ok_or_else(|| ExporterError::Endpoint(endpoint.into()))?;
        let (authority, path) = match rest.find('/') {
            Some(i) if i + 1 < rest.len() => (&rest[..i], rest[i..].to_string()),
            Some(i) => (&rest[..i], "/v1/traces".to_string()),
            None => (rest, "/v1/traces".to_string()),
        };
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) => (
                h.to_string(),
                p.parse()
                    .map_err(|_| ExporterError::Endpoint(endpoint.into()))?,
            ),
            None => (authority.to_string(), 4318),
        };
        Ok(OtlpJsonExporter {
            sink: Sink::Http { host, port, path },
        })
    }

    fn write(&self, body: &str) -> Result<(), String> {
        match &self.sink {
            Sink::File { file, path } => {
                let mut f = file
                    .lock()
                    .map_err(|_| "trace file lock poisoned".to_string())?;
                writeln!(f, "{body}").map_err(|e| format!("{}: {e}", path.display()))
            }
            Sink::Http { host, port, path } => post(host, *port, path, body),
        }
    }
}

/// A minimal HTTP/1.1 POST with timeouts; an OTLP collector answers 200 with a small body.
fn post(host: &str, port: u16, path: &str, body: &str) -> Result<(), String> {
    let addr = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("{host}:{port}: {e}"))?
        .next()
        .ok_or("no address")?;
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .map_err(|e| format!("{addr}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    s.set_write_timeout(Some(Duration::from_secs(10))).ok();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes())
        .and_then(|_| s.write_all(body.as_bytes()))
        .map_err(|e| e.to_string())?;
    let mut reply = String::new();
    let _ = s.take(64 * 1024).read_to_string(&mut reply);
    let status = reply.split_whitespace().nth(1).unwrap_or("");
    if status.starts_with('2') {
        Ok(())
    } else {
        Err(format!(
            "OTLP endpoint answered `{}`",
            reply.lines().next().unwrap_or("nothing")
        ))
    }
}

impl SpanExporter for OtlpJsonExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let body = otlp_json::encode("vistaflow", &batch).to_string();
        self.write(&body).map_err(OTelSdkError::InternalFailure)
    }
}
