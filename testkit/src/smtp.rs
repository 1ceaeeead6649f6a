//! A small SMTP sink for tests and the benchmark: speaks just enough SMTP for
//! lettre, keeps what it accepted, and can be told to fail, hang or stall.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// A message the sink accepted.
#[derive(Debug, Clone)]
pub struct Received {
    pub rcpt: Vec<String>,
    /// The raw DATA, dot-unstuffed.
    pub data: String,
}

impl Received {
    /// The DATA with quoted-printable soft breaks and escapes undone (good enough
    /// to search bodies in assertions).
    pub fn decoded(&self) -> String {
        decode_qp(&self.data)
    }
}

#[derive(Default)]
struct State {
    accepted: Mutex<Vec<Received>>,
    /// The time of every complete DATA, accepted or not.
    data_seen: Mutex<Vec<Instant>>,
    count: AtomicUsize,
    fail_next: AtomicUsize,
    hang_next: AtomicUsize,
    delay_ms: AtomicU64,
    /// Keep only a count (benchmarks).
    count_only: std::sync::atomic::AtomicBool,
}

/// The sink; stops accepting when dropped.
pub struct SmtpSink {
    pub addr: SocketAddr,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[allow(dead_code)]
impl SmtpSink {
    pub async fn start() -> SmtpSink {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind sink");
        let addr = listener.local_addr().expect("sink addr");
        let state = Arc::new(State::default());
        let accept_state = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let state = accept_state.clone();
                tokio::spawn(async move {
                    let _ = session(stream, state).await;
                });
            }
        });
        SmtpSink { addr, state, task }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Answer the next `n` messages with `451` (a temporary failure).
    pub fn fail_next(&self, n: usize) {
        self.state.fail_next.store(n, Ordering::SeqCst);
    }

    /// Receive the next `n` messages but never answer (a server that dies mid-way);
    /// they are not counted as accepted.
    pub fn hang_next(&self, n: usize) {
        self.state.hang_next.store(n, Ordering::SeqCst);
    }

    /// Wait this long before answering each DATA.
    pub fn delay(&self, d: Duration) {
        self.state.delay_ms.store(u64::try_from(d.as_millis()).unwrap_or(u64::MAX), Ordering::SeqCst);
    }

    /// Count accepted messages without keeping them.
    pub fn count_only(&self) {
        self.state.count_only.store(true, Ordering::SeqCst);
    }

    pub fn accepted_count(&self) -> usize {
        self.state.count.load(Ordering::SeqCst)
    }

    pub fn messages(&self) -> Vec<Received> {
        self.state.accepted.lock().expect("lock").clone()
    }

    pub fn data_seen(&self) -> Vec<Instant> {
        self.state.data_seen.lock().expect("lock").clone()
    }

    /// Polls until at least `n` messages were accepted, or panics at the deadline.
    pub async fn wait_for(&self, n: usize, within: Duration) -> Vec<Received> {
        let deadline = Instant::now() + within;
        loop {
            let messages = self.messages();
            if messages.len() >= n {
                return messages;
            }
            assert!(Instant::now() < deadline, "expected {n} emails, got {} after {within:?}", messages.len());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn session(stream: TcpStream, state: Arc<State>) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    write.write_all(b"220 sink ESMTP ready\r\n").await?;
    let mut line = String::new();
    let mut rcpt = Vec::new();
    loop {
        line.clear();
        if read.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let upper = line.trim_end().to_ascii_uppercase();
        let reply: &[u8] = if upper.starts_with("EHLO") {
            b"250-sink\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n"
        } else if upper.starts_with("HELO") || upper.starts_with("MAIL FROM") || upper.starts_with("NOOP") {
            b"250 OK\r\n"
        } else if upper.starts_with("RSET") {
            rcpt.clear();
            b"250 OK\r\n"
        } else if upper.starts_with("RCPT TO") {
            rcpt.push(line.trim_end()[8..].trim().to_owned());
            b"250 OK\r\n"
        } else if upper.starts_with("QUIT") {
            write.write_all(b"221 bye\r\n").await?;
            return Ok(());
        } else if upper == "DATA" {
            write.write_all(b"354 go ahead\r\n").await?;
            let mut data = String::new();
            loop {
                line.clear();
                if read.read_line(&mut line).await? == 0 {
                    return Ok(());
                }
                if line == ".\r\n" || line == ".\n" {
                    break;
                }
                let unstuffed = line.strip_prefix('.').unwrap_or(&line);
                if !state.count_only.load(Ordering::Relaxed) {
                    data.push_str(unstuffed);
                }
            }
            state.data_seen.lock().expect("lock").push(Instant::now());
            let delay = state.delay_ms.load(Ordering::SeqCst);
            if delay > 0 {
                tokio::time::sleep(Duration::from_millis(delay)).await;
            }
            if take(&state.hang_next) {
                // Never answer; wait for the client to go away.
                let mut rest = Vec::new();
                let _ = tokio::io::AsyncReadExt::read_to_end(&mut read, &mut rest).await;
                return Ok(());
            }
            if take(&state.fail_next) {
                rcpt.clear();
                b"451 4.3.0 sink told to fail\r\n"
            } else {
                state.count.fetch_add(1, Ordering::SeqCst);
                if !state.count_only.load(Ordering::Relaxed) {
                    state.accepted.lock().expect("lock").push(Received { rcpt: std::mem::take(&mut rcpt), data });
                }
                rcpt.clear();
                b"250 OK queued\r\n"
            }
        } else {
            b"502 not implemented\r\n"
        };
        write.write_all(reply).await?;
    }
}

/// Decrements `counter` if positive; whether it did.
fn take(counter: &AtomicUsize) -> bool {
    counter.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok()
}

/// Undoes quoted-printable soft line breaks and `=XX` escapes.
pub fn decode_qp(text: &str) -> String {
    let joined = text.replace("=\r\n", "").replace("=\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'=' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok());
            if let Some(b) = hex {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
