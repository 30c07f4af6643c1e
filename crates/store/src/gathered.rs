//! Reads that concurrent requests ask for at the same moment, gathered into one, the way the committer
//! gathers writes: a read asked when none is out goes at once; those asked while one is out wait for it to
//! come back, then go together, one statement for all their keys. One read out at a time: measured on
//! PostgreSQL at 64 writers (BENCHMARKS.md, session 17), one did at least as well as two, and four worse. Every statement
//! costs PostgreSQL its plan's start-up whatever its rows, and every SQLite query is a hop to a
//! connection's thread (BENCHMARKS.md): under load, one read for a dozen projects instead of a dozen.
//! A read never answers an ask made after it started, so a caller sees whatever it committed before asking.
//!
//! Written here rather than taken from a data-loader crate: those gather by waiting a fixed number of
//! scheduler turns before reading, which every lone request would pay; this one waits only when reads are
//! already out, so a lone request reads as it would alone.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::panic::AssertUnwindSafe;

use futures_util::FutureExt;
use tokio::sync::{mpsc, oneshot};

use crate::error::{StoreError, StoreResult};

/// Most keys one read carries.
const MAX_KEYS: usize = 128;

/// What one key's read answers: its value, none when nothing has that key, or its own error.
type Answer<V> = StoreResult<Option<V>>;

/// A read of many keys at once: each key found maps to its value or to its own error; a key left out was
/// not found. An error of the whole read is every asker's.
pub(crate) type Read<K, V> = HashMap<K, StoreResult<V>>;

/// Gathers the reads of one kind; clones share the same task.
pub(crate) struct Gathered<K, V> {
    asks: mpsc::Sender<(K, oneshot::Sender<Answer<V>>)>,
}

impl<K, V> Clone for Gathered<K, V> {
    fn clone(&self) -> Self {
        Self {
            asks: self.asks.clone(),
        }
    }
}

impl<K, V> fmt::Debug for Gathered<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gathered").finish_non_exhaustive()
    }
}

impl<K, V> Gathered<K, V>
where
    K: Eq + Hash + Clone + Send + 'static,
    V: Clone + Send + 'static,
{
    /// Starts the task that runs `read` over the keys asked together (each key once).
    pub(crate) fn start<R, F>(read: R) -> Self
    where
        R: Fn(Vec<K>) -> F + Send + Sync + 'static,
        F: Future<Output = StoreResult<Read<K, V>>> + Send + 'static,
    {
        let (asks, mut queue) = mpsc::channel(4 * MAX_KEYS);
        tokio::spawn(async move {
            let mut asked = Vec::with_capacity(MAX_KEYS);
            // One read out at a time: what is asked while it is out waits in the queue, to go together.
            while queue.recv_many(&mut asked, MAX_KEYS).await > 0 {
                answer(&read, std::mem::take(&mut asked)).await;
            }
        });
        Self { asks }
    }

    /// The value of `key`, read alone or with others asked at the same time.
    pub(crate) async fn get(&self, key: K) -> Answer<V> {
        let (reply, answer) = oneshot::channel();
        self.asks.send((key, reply)).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

async fn answer<K, V, R, F>(read: &R, asked: Vec<(K, oneshot::Sender<Answer<V>>)>)
where
    K: Eq + Hash + Clone,
    V: Clone,
    R: Fn(Vec<K>) -> F,
    F: Future<Output = StoreResult<Read<K, V>>>,
{
    let mut keys: Vec<K> = Vec::with_capacity(asked.len());
    for (key, _) in &asked {
        if !keys.contains(key) {
            keys.push(key.clone());
        }
    }
    // A panic in the read fails its askers, not the gatherer: the asks after it are read as usual.
    let result = match AssertUnwindSafe(read(keys)).catch_unwind().await {
        Ok(result) => result,
        Err(_) => Err(StoreError::Db(sea_orm::DbErr::Custom(
            "a gathered read panicked".into(),
        ))),
    };
    match result {
        Ok(found) => {
            for (key, reply) in asked {
                let answer = match found.get(&key) {
                    Some(Ok(value)) => Ok(Some(value.clone())),
                    Some(Err(e)) => Err(shared(e)),
                    None => Ok(None),
                };
                // The asker may have gone away (request cancelled).
                let _ = reply.send(answer);
            }
        }
        Err(e) => {
            for (_, reply) in asked {
                let _ = reply.send(Err(shared(&e)));
            }
        }
    }
}

/// An error as each of the askers it concerns gets it (errors are not `Clone`: their sources are not).
fn shared(e: &StoreError) -> StoreError {
    match e {
        StoreError::Db(db) if crate::db::is_unreachable(db) => {
            StoreError::Unavailable(e.to_string())
        }
        StoreError::Unavailable(message) => StoreError::Unavailable(message.clone()),
        other => StoreError::Db(sea_orm::DbErr::Custom(other.to_string())),
    }
}

fn stopped() -> StoreError {
    StoreError::Unavailable("the store's reader has stopped".into())
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use tokio::sync::Semaphore;

    use super::*;

    /// Reads that wait until released, recording the keys each was asked.
    fn held_reads(calls: Arc<Mutex<Vec<Vec<u32>>>>, gate: Arc<Semaphore>) -> Gathered<u32, String> {
        Gathered::start(move |keys: Vec<u32>| {
            let (calls, gate) = (calls.clone(), gate.clone());
            async move {
                calls.lock().unwrap().push(keys.clone());
                gate.acquire().await.unwrap().forget();
                Ok(keys
                    .into_iter()
                    .filter(|k| *k != 404)
                    .map(|k| {
                        let value = match k {
                            500 => Err(StoreError::Corrupt("key 500".into())),
                            k => Ok(format!("v{k}")),
                        };
                        (k, value)
                    })
                    .collect())
            }
        })
    }

    #[tokio::test]
    async fn asks_made_while_a_read_is_out_go_together_and_each_gets_its_own_answer() {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let gate = Arc::new(Semaphore::new(0));
        let reads = held_reads(calls.clone(), gate.clone());
        // A lone ask goes at once; six more queue while it is out, then go as one read. Key 1 asked again
        // is read again: an ask is never answered by a read that started before it (what its caller
        // committed before asking is seen); key 3, asked twice while waiting, is read once.
        let mut waiting = Vec::new();
        for key in [1, 2, 1, 3, 404, 500, 3] {
            let reads = reads.clone();
            waiting.push(tokio::spawn(async move { reads.get(key).await }));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        gate.add_permits(2);
        let mut answers = Vec::new();
        for asked in waiting {
            answers.push(match asked.await.unwrap() {
                Ok(value) => format!("{value:?}"),
                Err(e) if e.to_string().contains("key 500") => "its own error".into(),
                Err(e) => e.to_string(),
            });
        }
        assert_eq!(
            answers,
            [
                r#"Some("v1")"#,
                r#"Some("v2")"#,
                r#"Some("v1")"#,
                r#"Some("v3")"#,
                "None",
                "its own error",
                r#"Some("v3")"#,
            ]
        );
        assert_eq!(*calls.lock().unwrap(), [vec![1], vec![2, 1, 3, 404, 500]]);
    }

    #[tokio::test]
    async fn a_read_that_panics_fails_its_askers_and_the_next_asks_are_read() {
        let reads: Gathered<u32, u32> = Gathered::start(|keys: Vec<u32>| async move {
            assert!(!keys.contains(&13), "a read that panics");
            Ok(keys.into_iter().map(|k| (k, Ok(k))).collect())
        });
        assert!(reads.get(13).await.is_err());
        assert_eq!(reads.get(7).await.unwrap(), Some(7));
    }

    #[tokio::test]
    async fn a_failed_read_fails_each_of_its_askers() {
        let reads: Gathered<u32, u32> = Gathered::start(|_keys| async {
            Err(StoreError::Db(sea_orm::DbErr::Custom("no table".into())))
        });
        let (a, b) = tokio::join!(reads.get(1), reads.get(2));
        for answer in [a, b] {
            assert!(answer.unwrap_err().to_string().contains("no table"));
        }
    }
}
