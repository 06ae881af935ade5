//! A minimal HTTP client for the tests of `strata serve`: raw HTTP/1.1 over a TCP stream,
//! so that the tests see exactly what the server sends.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// An HTTP answer: the status (0 when none came), the head in lower case, the body.
pub struct Reply {
    pub status: u16,
    /// The connection was refused: nothing was sent.
    pub refused: bool,
    pub headers: String,
    pub body: String,
}

/// One HTTP/1.1 request to 127.0.0.1:`port` (`Connection: close`, 30 s read timeout),
/// read to the end; status 0 when the server cannot be reached or sent no answer.
pub fn request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Reply {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return Reply {
            status: 0,
            refused: true,
            headers: String::new(),
            body: String::new(),
        };
    };
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let _ = stream.write_all(head.as_bytes());
    // A server may answer (413) and close before reading a large body: that is fine.
    let _ = stream.write_all(body);
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Reply {
        status,
        refused: false,
        headers: head.to_lowercase(),
        body: body.to_string(),
    }
}

/// `POST /sql` with `text`.
pub fn sql(port: u16, text: &str) -> Reply {
    request(port, "POST", "/sql", &[], text.as_bytes())
}

/// A running `strata serve`; killed (SIGKILL) when dropped.
pub struct Server {
    pub child: Child,
    pub port: u16,
    /// The PostgreSQL protocol's port, when `--pg-listen` was given.
    pub pg_port: Option<u16>,
    /// Its stderr after the `listening on` line.
    pub stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Spawns `cmd` (a `strata … serve` command) and waits for its "listening on" line.
pub fn serve(mut cmd: Command) -> Server {
    let mut child = cmd
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn strata serve");
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    let mut before = String::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut pg_port = None;
    let port = loop {
        before.push_str(&line);
        line.clear();
        assert!(
            Instant::now() < deadline,
            "no `listening on` line within 30 s; stderr:\n{before}"
        );
        if stderr.read_line(&mut line).unwrap() == 0 {
            let _ = child.kill();
            panic!("strata serve exited before listening; stderr:\n{before}");
        }
        if let Some(rest) = line.trim().strip_prefix("listening on postgres://") {
            let addr = rest.split_whitespace().next().unwrap();
            pg_port = Some(addr.rsplit(':').next().unwrap().parse().unwrap());
        }
        if let Some(addr) = line.trim().strip_prefix("listening on http://") {
            break addr.rsplit(':').next().unwrap().parse().unwrap();
        }
    };
    // Keep draining stderr so the server never blocks on a full pipe.
    let collected = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let sink = collected.clone();
    std::thread::spawn(move || {
        let mut line = String::new();
        while stderr.read_line(&mut line).is_ok_and(|n| n > 0) {
            sink.lock().unwrap().push_str(&line);
            line.clear();
        }
    });
    Server {
        child,
        port,
        pg_port,
        stderr: collected,
    }
}

/// Opens `GET /views/<view>/changes` and returns the stream, past the response headers.
pub fn subscribe(port: u16, view: &str) -> BufReader<TcpStream> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        stream,
        "GET /views/{view}/changes HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n"
    )
    .unwrap();
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert!(line.starts_with("HTTP/1.1 200"), "{line}");
    loop {
        line.clear();
        reader.read_line(&mut line).unwrap();
        if line == "\r\n" {
            return reader;
        }
    }
}

/// The next SSE event `(event, data)`, skipping keep-alive comments and chunk framing.
pub fn next_event(reader: &mut BufReader<TcpStream>) -> (String, String) {
    let (mut event, mut data) = (String::new(), String::new());
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).unwrap() == 0 {
            panic!("the stream ended");
        }
        let l = line.trim_end();
        if let Some(e) = l.strip_prefix("event: ") {
            event = e.to_string();
        } else if let Some(d) = l.strip_prefix("data: ") {
            data = d.to_string();
        } else if l.is_empty() && !event.is_empty() {
            return (event, data);
        }
    }
}
