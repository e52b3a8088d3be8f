//! Who holds the server's connection slots and what each is doing, and the policy that makes
//! room for a new connection (the module doc of [`super`]): the longest-waiting idle connection
//! of its address or of all goes first, then the longest response of the heaviest address.

use std::collections::BTreeMap;
use std::net::{IpAddr, TcpStream};
use std::os::fd::RawFd;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use super::send::reset_on_close;
use super::Limits;

/// Who holds the connection slots and what each is doing; [`Slots::admit`] applies the policy
/// of the module doc.
pub(super) struct Slots {
    pub(super) max: usize,
    pub(super) per_address: usize,
    table: Mutex<Table>,
}

#[derive(Default)]
struct Table {
    next_id: u64,
    held: Vec<Holder>,
}

/// A connection in a slot.
struct Holder {
    id: u64,
    ip: IpAddr,
    /// Only ever shut down through this, never closed; and the connection's [`Held`] gives the
    /// slot back before its socket closes, so this number cannot be a newer connection's.
    fd: RawFd,
    /// Sending a response; otherwise waiting for a request head (or closing).
    serving: bool,
    /// Since when it has been doing that.
    since: Instant,
    /// Shut down to make room: its thread is on its way out, its slot counts as free.
    evicted: bool,
}

impl Holder {
    /// Wake the connection's thread out of its read or write, to close. A response in flight
    /// is reset, so the kernel drops what is queued for it at once.
    fn evict(&mut self) {
        if self.serving {
            reset_on_close(self.fd);
        }
        // SAFETY: plain shutdown(2) of a descriptor that is open (see `fd`).
        unsafe { libc::shutdown(self.fd, libc::SHUT_RDWR) };
        self.evicted = true;
    }
}

/// Why a new connection gets 503.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refused {
    /// Its address holds its share, and every one of those sends a response.
    Address,
    /// Every slot sends a response, and no address holds two more than the newcomer's.
    Full,
}

impl Slots {
    pub(super) fn new(limits: &Limits) -> Self {
        Slots {
            max: limits.max_connections.max(1),
            per_address: limits.per_address(),
            table: Mutex::new(Table::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A slot for a new connection from `ip`, made by closing another one if need be.
    pub(super) fn admit(&self, ip: IpAddr, fd: RawFd) -> Result<u64, Refused> {
        let mut table = self.lock();
        let (total, mine) = table
            .held
            .iter()
            .filter(|h| !h.evicted)
            .fold((0, 0), |(total, mine), h| (total + 1, mine + usize::from(h.ip == ip)));
        let victim = if mine >= self.per_address {
            Some(longest_waiting(&table.held, Some(ip)).ok_or(Refused::Address)?)
        } else if total >= self.max {
            let victim = longest_waiting(&table.held, None).or_else(|| heaviest_address_response(&table.held, mine));
            Some(victim.ok_or(Refused::Full)?)
        } else {
            None
        };
        if let Some(i) = victim {
            table.held[i].evict();
        }
        let id = table.next_id;
        table.next_id += 1;
        table.held.push(Holder {
            id,
            ip,
            fd,
            serving: false,
            since: Instant::now(),
            evicted: false,
        });
        Ok(id)
    }

    /// Connection `id` now sends a response (`true`), or waits for a request head.
    fn set_serving(&self, id: u64, serving: bool) {
        let mut table = self.lock();
        if let Some(h) = table.held.iter_mut().find(|h| h.id == id) {
            h.serving = serving;
            h.since = Instant::now();
        }
    }

    fn release(&self, id: u64) {
        let mut table = self.lock();
        if let Some(i) = table.held.iter().position(|h| h.id == id) {
            table.held.swap_remove(i);
        }
    }
}

/// The connection (from `ip`, or from anywhere) that has waited longest for a request head.
fn longest_waiting(held: &[Holder], ip: Option<IpAddr>) -> Option<usize> {
    held.iter()
        .enumerate()
        .filter(|(_, h)| !h.evicted && !h.serving && ip.is_none_or(|ip| h.ip == ip))
        .min_by_key(|(_, h)| h.since)
        .map(|(i, _)| i)
}

/// The longest-running response of the address holding the most connections, if that is at
/// least two more than the newcomer's address holds (`mine`): then the exchange leaves the two
/// no further apart than before.
fn heaviest_address_response(held: &[Holder], mine: usize) -> Option<usize> {
    let mut counts = BTreeMap::new();
    for h in held.iter().filter(|h| !h.evicted) {
        *counts.entry(h.ip).or_insert(0usize) += 1;
    }
    let (&ip, &most) = counts.iter().max_by_key(|(_, n)| **n)?;
    if most < mine + 2 {
        return None;
    }
    held.iter()
        .enumerate()
        .filter(|(_, h)| !h.evicted && h.ip == ip)
        .min_by_key(|(_, h)| h.since)
        .map(|(i, _)| i)
}

/// A connection in its slot. `Drop` gives the slot back, and only then do the fields drop and
/// the socket close, so [`Slots::admit`] never shuts down a descriptor that a newer connection
/// was given.
pub(super) struct Held {
    pub(super) stream: TcpStream,
    pub(super) id: u64,
    pub(super) slots: Arc<Slots>,
}

impl Held {
    pub(super) fn serving(&self, serving: bool) {
        self.slots.set_serving(self.id, serving);
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.slots.release(self.id);
    }
}
