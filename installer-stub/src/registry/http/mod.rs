//! A minimal HTTP/1.1 server for a read-only API: request heads only (GET and HEAD carry no
//! body), keep-alive and pipelining, HTTP/1.0, byte ranges, and bodies sent straight from one
//! file.
//!
//! Bounded by construction: one thread per connection with a small stack, at most
//! [`Limits::max_connections`] of them, one fixed buffer of [`Limits::max_head`] bytes per
//! connection (a larger head gets 431). Request bodies are never read: a request that announces
//! one is answered and the connection closed, so its bytes can never be taken for a next request.
//!
//! No client can hold a connection slot for long without using it (issue 12), so slow or idle
//! clients cannot lock out new ones:
//! - Head deadline: a whole request head must arrive within [`Limits::timeout`] of the accept,
//!   or of the end of the previous response on a keep-alive connection, however it trickles;
//!   then 408 (if part of one came) and close.
//! - Minimum rate: while a response is sent, every half timeout must carry at least
//!   [`Limits::min_rate`] per second of it to the client (bytes the client's kernel acknowledged,
//!   so data parked in socket buffers does not count twice), or the connection is reset. A
//!   client that stops reading is dropped within one timeout: the first half may all have gone
//!   into socket buffers, the next moves nothing. (Before, the send timeout bounded each write
//!   call and a call that moved one byte restarted it: a client that never read held its slot
//!   about three timeouts.)
//! - Slots per address: one client address holds at most [`Limits::max_per_address`]
//!   connections (a quarter of all by default).
//! - Making room: a new connection that finds no slot (of all, or of its address) closes the
//!   connection (of its address) that has waited longest for a request head: idle keep-alive
//!   connections, silent or trickling clients. When every slot of the server is sending a
//!   response, the address holding the most connections, if that is at least two more than the
//!   newcomer's address holds, gives up its longest-running response. Otherwise: 503.
//!
//! So what an address holds is bounded by the per-address cap, and what it holds idle is taken
//! back the moment someone else needs it; responses that crawl end within a timeout, and the
//! heaviest address makes room for a new one.
//!
//! File bodies go out through a fixed pool of [`Limits::copy_buffers`] buffers (pread, then
//! write), and with sendfile(2) while every buffer is in use. Copying looks like the slower way,
//! but sendfile hands the socket one reference per 4 KiB page cache page, and when the reader is
//! on the same machine (loopback, the registry host's own containerd) every one of those pages is
//! taken and released again on the receiving side, by every client pulling the same blob: with
//! the clients of `tests/bench/registry.sh` the copy was about 1.3 times faster (2 cores, 8
//! clients, the pool switched off for comparison). The pool keeps memory bounded whatever the
//! number of clients.
//! Grammar: RFC 9112 (messages) and RFC 9110 §14 (ranges).
//!
//! Files: request heads in [`request`], `Range` headers in [`range`], responses in
//! [`response`], the accept loop and one connection's requests in [`server`], who holds the
//! connection slots in [`slots`], and how response bytes leave (minimum rate, buffer pool,
//! sendfile, closing) in [`send`].

use std::time::Duration;

mod range;
mod request;
mod response;
mod send;
mod server;
mod slots;

pub use range::{parse_range, ByteRange};
pub use request::Request;
// The property tests and fuzz targets drive the head parser directly.
#[cfg(any(test, feature = "fuzzing"))]
pub use request::{head_end, parse_head};
pub use response::{Body, Response};
pub use server::Server;

/// What one server may use.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Request line plus headers, in bytes.
    pub max_head: usize,
    pub max_headers: usize,
    /// For a whole request head to arrive (from the accept, or from the end of the previous
    /// response); and the longest a client that stops reading keeps a response open.
    pub timeout: Duration,
    /// Bytes per second each response must reach the client at, over every half timeout.
    pub min_rate: u64,
    pub max_connections: usize,
    /// Connections from one client address; `None`: a quarter of `max_connections`.
    pub max_per_address: Option<usize>,
    pub stack_size: usize,
    /// Buffers file bodies are copied through, at most; allocated when first needed.
    pub copy_buffers: usize,
    /// Bytes in each, and in each read of the file.
    pub copy_buffer_size: usize,
}

impl Limits {
    /// Connections one client address may hold.
    pub fn per_address(&self) -> usize {
        self.max_per_address.unwrap_or(self.max_connections / 4).max(1)
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_head: 16 << 10,
            max_headers: 100,
            timeout: Duration::from_secs(30),
            min_rate: 16 << 10,
            max_connections: 256,
            max_per_address: None,
            stack_size: 256 << 10,
            copy_buffers: 16,
            copy_buffer_size: 1 << 20,
        }
    }
}

/// What answers requests. `error` builds the responses the server itself must give (malformed
/// requests, overload), so they look like the handler's own errors.
pub trait Handler: Send + Sync + 'static {
    fn handle(&self, request: &Request<'_>) -> Response;
    fn error(&self, status: u16, message: &str) -> Response;
}
