//! Checking a batch on one thread while SQLite stores it on another.
//!
//! Reading and checking a fact costs about as much as storing it, and the two
//! hardly depend on each other: a top-level anonymous fact (nearly all of a
//! batch) needs nothing back from the store. So a batch is checked on a
//! thread of its own, with a `Remote` sink that queues such facts
//! (`define_later`) in chunks, while the writing thread, which owns the
//! connection, stores them in order (`serve`). Anything that needs an answer
//! (a nested or named fact's id, a fact's predicate, a unit's ownership, or
//! `settle`) is sent after the queued facts and waited for, so the store sees
//! every request in the order the checker made it, exactly as without threads.
//!
//! Once a queued fact fails, the store does nothing more; the checker learns
//! it at its next `settle` (at the latest at the end of the group), and
//! reports that fact, the first to fail, as the batch's error.

use super::keys::key_slot;
use super::sql_sink::SqlSink;
use crate::batch::{Deferred, DefineError, FactId, FactSink, StoreFailure};
use crate::schema::PredId;
use std::ops::Range;
use std::sync::mpsc::{Receiver, SyncSender};

/// Queued facts sent to the store at a time.
const CHUNK_FACTS: usize = 256;

/// Chunks in flight between the threads (bounds the memory the checker runs ahead with).
pub(super) const CHUNKS_IN_FLIGHT: usize = 8;

/// Facts queued by `define_later`, their text in one buffer.
#[derive(Default)]
pub(super) struct Chunk {
    text: String,
    facts: Vec<Queued>,
}

struct Queued {
    /// Its `key_slot`, computed here to take work off the writing thread.
    slot: i64,
    pred: PredId,
    tag: usize,
    key: Range<usize>,
    value: Option<Range<usize>>,
}

/// What the checking thread asks of the store.
pub(super) enum Request {
    /// Store these facts, in order.
    Later(Chunk),
    Define(PredId, String, Option<String>),
    PredicateOf(FactId),
    Own(String, Vec<FactId>),
    Settle,
}

/// The store's answer to a request that is waited for.
pub(super) enum Reply {
    Defined(Result<FactId, DefineError>),
    PredicateOf(Result<Option<PredId>, StoreFailure>),
    Owned(Result<(), StoreFailure>),
    Settled(Result<Vec<FactId>, Deferred>),
    /// A queued fact failed earlier: the request was not carried out.
    Stopped,
}

/// The answer a `Remote` method gives when the store has stopped: `settle`
/// then reports the fact that stopped it, which is the error that counts.
#[derive(Debug, thiserror::Error)]
#[error("an earlier fact of this batch could not be stored")]
struct Stopped;

/// The checking thread's sink: queues facts and forwards requests to `serve`.
pub(super) struct Remote {
    requests: SyncSender<Request>,
    replies: Receiver<Reply>,
    /// Chunks the store has emptied, for reuse.
    spare: Receiver<Chunk>,
    chunk: Chunk,
}

impl Remote {
    pub(super) fn new(requests: SyncSender<Request>, replies: Receiver<Reply>, spare: Receiver<Chunk>) -> Self {
        Remote { requests, replies, spare, chunk: Chunk::default() }
    }

    fn send(&mut self, request: Request) {
        // The store only hangs up once this thread is done, so a failed send cannot happen.
        let _ = self.requests.send(request);
    }

    fn send_chunk(&mut self) {
        if !self.chunk.facts.is_empty() {
            let fresh = self.spare.try_recv().unwrap_or_default();
            let full = std::mem::replace(&mut self.chunk, fresh);
            self.send(Request::Later(full));
        }
    }

    /// Sends the queued facts, then `request`, and waits for the answer.
    fn ask(&mut self, request: Request) -> Reply {
        self.send_chunk();
        self.send(request);
        self.replies.recv().unwrap_or(Reply::Stopped)
    }
}

fn stopped() -> StoreFailure {
    Box::new(Stopped)
}

impl FactSink for Remote {
    fn define(&mut self, pred: PredId, key: &str, value: Option<&str>) -> Result<FactId, DefineError> {
        match self.ask(Request::Define(pred, key.to_owned(), value.map(str::to_owned))) {
            Reply::Defined(result) => result,
            _ => Err(DefineError::Store(stopped())),
        }
    }

    fn define_later(&mut self, pred: PredId, key: &str, value: Option<&str>, tag: usize) -> Result<Option<FactId>, DefineError> {
        let slot = key_slot(pred, key);
        let text = &mut self.chunk.text;
        let key = push(text, key);
        let value = value.map(|v| push(text, v));
        self.chunk.facts.push(Queued { slot, pred, tag, key, value });
        if self.chunk.facts.len() >= CHUNK_FACTS {
            self.send_chunk();
        }
        Ok(None)
    }

    fn settle(&mut self) -> Result<Vec<FactId>, Deferred> {
        match self.ask(Request::Settle) {
            Reply::Settled(result) => result,
            // Not reached: the store always answers a settle with how the facts went.
            _ => Ok(Vec::new()),
        }
    }

    fn predicate_of(&mut self, id: FactId) -> Result<Option<PredId>, StoreFailure> {
        match self.ask(Request::PredicateOf(id)) {
            Reply::PredicateOf(result) => result,
            _ => Err(stopped()),
        }
    }

    fn own(&mut self, unit: &str, facts: &[FactId]) -> Result<(), StoreFailure> {
        match self.ask(Request::Own(unit.to_owned(), facts.to_vec())) {
            Reply::Owned(result) => result,
            _ => Err(stopped()),
        }
    }
}

fn push(text: &mut String, s: &str) -> Range<usize> {
    let start = text.len();
    text.push_str(s);
    start..text.len()
}

/// The writing thread's side: carries out `requests` on `sink` until the
/// checking thread hangs up, answering on `replies` and returning emptied
/// chunks on `spare`.
pub(super) fn serve(sink: &mut SqlSink<'_>, requests: Receiver<Request>, replies: SyncSender<Reply>, spare: SyncSender<Chunk>) {
    let mut stored = Vec::new();
    let mut failed: Option<Deferred> = None;
    let mut stopped = false;
    for request in requests {
        let reply = match request {
            Request::Later(mut chunk) => {
                if !stopped {
                    failed = store(sink, &chunk, &mut stored);
                    stopped = failed.is_some();
                }
                chunk.text.clear();
                chunk.facts.clear();
                let _ = spare.try_send(chunk);
                continue;
            }
            Request::Settle => Reply::Settled(match failed.take() {
                Some(f) => Err(f),
                None => Ok(std::mem::take(&mut stored)),
            }),
            _ if stopped => Reply::Stopped,
            Request::Define(pred, key, value) => Reply::Defined(sink.define(pred, &key, value.as_deref())),
            Request::PredicateOf(id) => Reply::PredicateOf(sink.predicate_of(id)),
            Request::Own(unit, facts) => Reply::Owned(sink.own(&unit, &facts)),
        };
        // The checker waits for every answer, so this cannot fail while it runs.
        let _ = replies.send(reply);
    }
}

/// Stores a chunk's facts in order, adding their ids to `stored`; the first failure stops it.
fn store(sink: &mut SqlSink<'_>, chunk: &Chunk, stored: &mut Vec<FactId>) -> Option<Deferred> {
    for q in &chunk.facts {
        let key = &chunk.text[q.key.clone()];
        let value = q.value.clone().map(|v| &chunk.text[v]);
        match sink.define_at(q.slot, q.pred, key, value) {
            Ok(id) => stored.push(id),
            Err(error) => return Some(Deferred { pred: q.pred, tag: q.tag, error }),
        }
    }
    None
}
