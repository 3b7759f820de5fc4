//! The writer pool: a few tasks that each take every request waiting in the queue (up
//! to a number of points), write them as one batch and answer each after the commit.

use super::*;
use crate::db::{self, DbPool, partitions::PartitionManager};
use crate::error::ApiError;
use std::sync::Arc;
use tokio::sync::{Mutex, mpsc, oneshot};

pub(super) type Reply = oneshot::Sender<Result<IngestOutcome, ApiError>>;

pub(super) struct Job {
    write: SessionWrite,
    reply: Reply,
}

/// The handle requests use to write; cheap to clone.
#[derive(Clone)]
pub struct Ingestor {
    tx: mpsc::Sender<Job>,
}

impl Ingestor {
    /// Starts `writers` writer tasks on the current runtime.
    /// `append_hours`: see [`write_batch`].
    pub fn start(
        pool: DbPool,
        partitions: PartitionManager,
        writers: usize,
        batch_points: usize,
        append_hours: u32,
    ) -> Self {
        let (tx, rx) = mpsc::channel::<Job>(4096);
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..writers.max(1) {
            let rx = rx.clone();
            let pool = pool.clone();
            let partitions = partitions.clone();
            actix_web::rt::spawn(async move {
                writer_loop(rx, pool, partitions, batch_points, append_hours).await;
            });
        }
        Self { tx }
    }

    /// Writes a session post; resolves once it committed (or failed).
    pub async fn submit(&self, write: SessionWrite) -> Result<IngestOutcome, ApiError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Job { write, reply })
            .await
            .map_err(|_| ApiError::Unavailable("The service is shutting down.".into()))?;
        answer
            .await
            .map_err(|_| ApiError::internal("ingest writer stopped before answering"))?
    }
}

pub(super) async fn writer_loop(
    rx: Arc<Mutex<mpsc::Receiver<Job>>>,
    pool: DbPool,
    partitions: PartitionManager,
    batch_points: usize,
    append_hours: u32,
) {
    loop {
        let mut jobs = Vec::new();
        {
            let mut rx = rx.lock().await;
            let Some(first) = rx.recv().await else {
                return;
            };
            let mut points = first.write.rows.len();
            jobs.push(first);
            while points < batch_points {
                match rx.try_recv() {
                    Ok(job) => {
                        points += job.write.rows.len();
                        jobs.push(job);
                    }
                    Err(_) => break,
                }
            }
        }
        let (writes, replies): (Vec<SessionWrite>, Vec<Reply>) =
            jobs.into_iter().map(|j| (j.write, j.reply)).unzip();
        let pool = pool.clone();
        let partitions = partitions.clone();
        let results = db::run(&pool, move |conn| {
            Ok(write_batch(conn, &partitions, &writes, append_hours))
        })
        .await
        .unwrap_or_else(|e| {
            let shared = shared_error(&e);
            (0..replies.len())
                .map(|_| Err(shared.clone_error()))
                .collect()
        });
        for (reply, result) in replies.into_iter().zip(results) {
            // The client may have gone; its points are committed either way.
            let _ = reply.send(result);
        }
    }
}

/// An error to hand to every request of a failed batch.
pub(super) struct SharedError(ApiError);

pub(super) fn shared_error(e: &ApiError) -> SharedError {
    SharedError(match e {
        ApiError::Unavailable(m) => ApiError::Unavailable(m.clone()),
        other => ApiError::Internal(other.to_string()),
    })
}

impl SharedError {
    pub(super) fn clone_error(&self) -> ApiError {
        match &self.0 {
            ApiError::Unavailable(m) => ApiError::Unavailable(m.clone()),
            other => ApiError::Internal(other.to_string()),
        }
    }
}
