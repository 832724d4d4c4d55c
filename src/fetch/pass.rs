//! One streaming pass over an archive: the body (downloaded, or read from a file) → hash (teeing into the
//! cache) → gunzip → tar → the staging directory, each stage on its own thread with bounded channels between
//! them; the checksum decides before anything is used.

use super::download::{Downloader, StreamError};
use super::job::Job;
use super::progress::Progress;
use super::source::Checksum;
use super::{FetchError, unpack};
use bytes::Bytes;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Chunks in flight between two stages: enough to keep both busy, few enough that memory stays flat whatever
/// the archive's size (an HTTP chunk can hold a few hundred KiB).
const IN_FLIGHT: usize = 8;
/// The size of the chunks a local archive is read in.
const READ_CHUNK: usize = 128 * 1024;

/// Where the bytes of one pass come from.
pub(super) enum Input {
    Http(String),
    File(PathBuf),
}

/// What one pass produced.
pub(super) struct Pass {
    pub(super) digests: unpack::Digests,
    pub(super) unpacked: unpack::Unpacked,
    pub(super) downloaded: u64,
}

impl Job<'_> {
    /// One pass over the archive: stream → hash (+ cache) → gunzip → tar → staging, each stage on its own
    /// thread with bounded channels between them, so memory stays flat whatever the archive's size.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn pass(
        &self,
        dl: &Downloader,
        input: &Input,
        expected: &Checksum,
        checksum_source: &str,
        staging: &Path,
        tee: Option<&Path>,
        progress: &Progress,
    ) -> Result<Pass, FetchError> {
        let url = self.url;
        let tee = match tee {
            Some(p) => Some((
                std::fs::File::create(p).map_err(|e| FetchError::io("create", p.display().to_string(), e))?,
                p.to_path_buf(),
            )),
            None => None,
        };
        let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(IN_FLIGHT);
        let (tx2, rx2) = std::sync::mpsc::sync_channel::<Bytes>(IN_FLIGHT);
        let want_sha256 = matches!(expected, Checksum::Sha256(_));
        let verifier = tokio::task::spawn_blocking(move || unpack::verify(rx, tx2, want_sha256, tee));
        let (staging_dir, wanted) = (staging.to_path_buf(), self.wanted.clone());
        let unpacker =
            tokio::task::spawn_blocking(move || unpack::unpack(unpack::ChunkReader::new(rx2), &staging_dir, &wanted));
        let streamed = match input {
            Input::Http(u) => dl.stream(u, &tx, progress).await,
            Input::File(p) => read_file(p.clone(), tx.clone(), progress.clone()).await,
        };
        drop(tx);
        let verified = joined(verifier.await);
        let unpacked = joined(unpacker.await);
        progress.finish();
        let downloaded = match streamed {
            Ok(n) => n,
            Err(StreamError::Fetch(FetchError::NotFound { .. })) => return Err(self.not_found()),
            Err(StreamError::Fetch(e)) => return Err(e),
            Err(StreamError::Aborted) => match verified {
                Err(e) => return Err(FetchError::from_unpack(url, e)),
                Ok(_) => unreachable!("the hashing stage reads until the stream ends unless it fails"),
            },
        };
        let digests = verified.map_err(|e| FetchError::from_unpack(url, e))?;
        let actual = match expected {
            Checksum::Sha512(_) => digests.sha512.clone(),
            Checksum::Sha256(_) => digests.sha256.clone().unwrap_or_default(),
        };
        if actual != expected.hex() {
            return Err(FetchError::ChecksumMismatch {
                url: url.to_string(),
                algorithm: expected.algorithm(),
                expected: expected.hex().to_string(),
                actual,
                checksum_source: checksum_source.to_string(),
            });
        }
        let unpacked = unpacked.map_err(|e| FetchError::from_unpack(url, e))?;
        let downloaded = if matches!(input, Input::Http(_)) { downloaded } else { 0 };
        Ok(Pass { digests, unpacked, downloaded })
    }
}

/// A blocking task's result; its panic, if it panicked, continues here.
pub(super) fn joined<T>(r: Result<T, tokio::task::JoinError>) -> T {
    r.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
}

/// Streams a local file into the pipeline in large chunks.
async fn read_file(
    path: PathBuf,
    tx: tokio::sync::mpsc::Sender<Bytes>,
    progress: Progress,
) -> Result<u64, StreamError> {
    let read = tokio::task::spawn_blocking(move || {
        let mut f = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StreamError::Fetch(FetchError::NotFound { url: path.display().to_string() }));
            }
            Err(e) => return Err(StreamError::Fetch(FetchError::io("read", path.display().to_string(), e))),
        };
        progress.set_total(f.metadata().ok().map(|m| m.len()));
        let mut total = 0u64;
        loop {
            let mut buf = vec![0u8; READ_CHUNK];
            let n = f
                .read(&mut buf)
                .map_err(|e| StreamError::Fetch(FetchError::io("read", path.display().to_string(), e)))?;
            if n == 0 {
                return Ok(total);
            }
            buf.truncate(n);
            total += n as u64;
            progress.advance(n as u64);
            if tx.blocking_send(Bytes::from(buf)).is_err() {
                return Err(StreamError::Aborted);
            }
        }
    })
    .await;
    joined(read)
}
