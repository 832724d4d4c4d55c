//! A minimal HTTP/1.1 server on 127.0.0.1 for the fetch tests: real sockets, and full control over what goes
//! wrong (dropped connections, truncation, ignored ranges, 5xx, HTML bodies). Also answers proxy-style
//! requests (`GET http://host/path`), so tests can point `HTTP_PROXY` at it.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How one path is served.
#[derive(Debug, Clone)]
pub struct Route {
    pub body: Arc<Vec<u8>>,
    pub content_type: &'static str,
    /// The first GET stops after this many body bytes and the connection drops; later ones are whole.
    pub drop_first_after: Option<usize>,
    /// Every response stops at this absolute offset of the body (a mirror that cannot serve the rest).
    pub stop_at: Option<usize>,
    /// Answer 200 with the whole body even when a range is asked for.
    pub ignore_range: bool,
    /// Answer this many requests with 503 first.
    pub fail_first: u32,
    /// The first GET sends this many body bytes, then holds the connection silent for a minute (a stalled mirror).
    pub stall_after: Option<usize>,
}

impl Route {
    pub fn new(body: impl Into<Vec<u8>>) -> Self {
        Route {
            body: Arc::new(body.into()),
            content_type: "application/octet-stream",
            drop_first_after: None,
            stop_at: None,
            ignore_range: false,
            fail_first: 0,
            stall_after: None,
        }
    }
}

/// A request as the server saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub range: Option<String>,
    /// Sent in proxy form (`GET http://host/path`).
    pub proxied: bool,
}

#[derive(Default)]
struct Shared {
    routes: HashMap<String, (Route, u32)>,
    seen: Vec<Seen>,
}

pub struct Server {
    addr: SocketAddr,
    shared: Arc<Mutex<Shared>>,
    stop: Arc<AtomicBool>,
}

impl Server {
    pub fn start() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Mutex::new(Shared::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (sh, st) = (shared.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if st.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let sh = sh.clone();
                std::thread::spawn(move || serve(conn, &sh));
            }
        });
        Server { addr, shared, stop }
    }

    /// `http://127.0.0.1:PORT`, the mirror URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn route(&self, path: &str, route: Route) {
        self.shared.lock().unwrap().routes.insert(path.to_string(), (route, 0));
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.shared.lock().unwrap().seen.clone()
    }

    pub fn clear_seen(&self) {
        self.shared.lock().unwrap().seen.clear();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
    }
}

fn serve(mut conn: TcpStream, shared: &Mutex<Shared>) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 16 * 1024 {
        match conn.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let mut lines = text.lines();
    let mut first = lines.next().unwrap_or("").split_whitespace();
    let method = first.next().unwrap_or("").to_string();
    let target = first.next().unwrap_or("/").to_string();
    let (path, proxied) = match target.strip_prefix("http://") {
        Some(rest) => (rest.find('/').map_or("/".to_string(), |i| rest[i..].to_string()), true),
        None => (target, false),
    };
    let range = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("range"))
        .map(|(_, v)| v.trim().to_string());
    let route = {
        let mut sh = shared.lock().unwrap();
        sh.seen.push(Seen { method: method.clone(), path: path.clone(), range: range.clone(), proxied });
        sh.routes.get_mut(&path).map(|(route, count)| {
            *count += 1;
            (route.clone(), *count)
        })
    };
    let Some((route, count)) = route else {
        let _ = conn.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\nConnection: close\r\n\r\nnot found");
        return;
    };
    if count <= route.fail_first {
        let _ =
            conn.write_all(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\nConnection: close\r\n\r\nbusy");
        return;
    }
    let len = route.body.len();
    let start = range
        .as_deref()
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|n| n.parse::<usize>().ok())
        .filter(|s| *s < len && !route.ignore_range);
    let mut headers = match start {
        Some(s) => format!("HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {s}-{}/{len}\r\n", len - 1),
        None => "HTTP/1.1 200 OK\r\nAccept-Ranges: bytes\r\n".to_string(),
    };
    let start = start.unwrap_or(0);
    headers.push_str(&format!(
        "Content-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        route.content_type,
        len - start
    ));
    if conn.write_all(headers.as_bytes()).is_err() || method == "HEAD" {
        return;
    }
    let mut end = len;
    if let Some(stop) = route.stop_at {
        end = end.min(stop.max(start));
    }
    if let (Some(n), true) = (route.drop_first_after, count == route.fail_first + 1) {
        end = end.min(start + n);
    }
    if let (Some(n), true) = (route.stall_after, count == route.fail_first + 1) {
        let _ = conn.write_all(&route.body[start..end.min(start + n)]);
        let _ = conn.flush();
        std::thread::sleep(Duration::from_secs(60));
        return;
    }
    for chunk in route.body[start..end].chunks(16 * 1024) {
        if conn.write_all(chunk).is_err() {
            return;
        }
    }
    let _ = conn.flush();
    let _ = conn.shutdown(Shutdown::Both);
}
