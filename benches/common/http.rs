//! `strata serve` processes for the benchmarks: spawning one, and `POST /sql` over plain
//! HTTP/1.1 (one connection per request, as a simple client does).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The server process, killed if still running when dropped (after a panic).
pub struct Server(pub Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The `strata` binary of this build, without inherited `STRATA_*` variables.
pub fn strata_command() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_strata"));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("STRATA_") {
            cmd.env_remove(&key);
        }
    }
    cmd
}

/// Spawns `cmd` (a `strata … serve --listen 127.0.0.1:0`); returns the child and its port
/// once it prints `listening on`. Its stderr is shown, prefixed `server:`.
pub fn serve(mut cmd: Command) -> (Server, u16) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn strata serve");
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    let port = loop {
        line.clear();
        if stderr.read_line(&mut line).unwrap() == 0 {
            let _ = child.kill();
            panic!("strata serve exited before listening");
        }
        eprint!("server: {line}");
        if let Some(addr) = line.trim().strip_prefix("listening on http://") {
            break addr.rsplit(':').next().unwrap().parse().unwrap();
        }
    };
    // Keep draining stderr so the server never blocks on a full pipe; show what it says.
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            eprintln!("server: {line}");
        }
    });
    (Server(child), port)
}

/// One `POST /sql` on a new connection, read to the end: (status, body), or why it failed.
pub fn post_sql(port: u16, sql: &str) -> Result<(u16, String), String> {
    let mut stream =
        TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .map_err(|e| e.to_string())?;
    let head = format!(
        "POST /sql HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        sql.len()
    );
    stream
        .write_all(head.as_bytes())
        .and_then(|()| stream.write_all(sql.as_bytes()))
        .map_err(|e| format!("write: {e}"))?;
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .map_err(|e| format!("read: {e}"))?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("no HTTP head in {} bytes: {text:?}", raw.len()))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no status in {head:?}"))?;
    Ok((status, body.to_string()))
}
