//! The synchronous half of the one pass: a hashing stage (which also fills the cache) and an unpacking stage
//! (gunzip, tar, entry checks, staged files), each on its own blocking thread so hashing and inflating overlap.

use bytes::{Buf, Bytes};
use sha2::{Digest, Sha256, Sha512};
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender};

/// No node binary comes close (kubelet is ~120 MB); a larger entry is a bug or an attack on the disk.
pub const MAX_ENTRY_SIZE: u64 = 1 << 30;
/// Where the node binaries live inside the archive.
pub const BIN_PREFIX: &str = "kubernetes/node/bin/";
/// The release's version file, present in some archives.
pub const VERSION_ENTRY: &str = "kubernetes/version";

#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("it is an HTML page, not a gzip archive")]
    Html,
    #[error("it is not a gzip archive (it starts with {start})")]
    NotGzip { start: String },
    #[error("the archive is damaged: {0}")]
    Corrupt(io::Error),
    #[error("refusing archive entry `{entry}`: {reason}")]
    Unsafe { entry: String, reason: String },
    #[error("the archive has no {entry}")]
    Missing { entry: String },
    #[error("cannot {op} {}: {source}", path.display())]
    Io { op: &'static str, path: PathBuf, source: io::Error },
}

/// Reads a channel of chunks as one byte stream; the sender hanging up is the end of the stream.
pub struct ChunkReader {
    rx: Receiver<Bytes>,
    current: Bytes,
}

impl ChunkReader {
    pub fn new(rx: Receiver<Bytes>) -> Self {
        ChunkReader { rx, current: Bytes::new() }
    }
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.recv() {
                Ok(chunk) => self.current = chunk,
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        self.current.advance(n);
        Ok(n)
    }
}

/// Digests of a whole archive.
#[derive(Debug, Clone)]
pub struct Digests {
    pub sha512: String,
    pub sha256: Option<String>,
    pub bytes: u64,
}

/// Stage one: hashes every byte, writes it to `tee` (the cache's temporary file) and passes it on. It keeps
/// hashing after the unpacker stops reading, so a damaged archive is reported as the checksum mismatch it is.
pub fn verify(
    mut rx: tokio::sync::mpsc::Receiver<Bytes>,
    tx: SyncSender<Bytes>,
    want_sha256: bool,
    mut tee: Option<(File, PathBuf)>,
) -> Result<Digests, UnpackError> {
    let mut sha512 = Sha512::new();
    let mut sha256 = want_sha256.then(Sha256::new);
    let mut bytes = 0u64;
    let mut downstream = Some(tx);
    while let Some(chunk) = rx.blocking_recv() {
        sha512.update(&chunk);
        if let Some(h) = sha256.as_mut() {
            h.update(&chunk);
        }
        bytes += chunk.len() as u64;
        if let Some((file, path)) = tee.as_mut() {
            file.write_all(&chunk).map_err(|source| UnpackError::Io { op: "write", path: path.clone(), source })?;
        }
        if downstream.as_ref().is_some_and(|tx| tx.send(chunk).is_err()) {
            downstream = None;
        }
    }
    drop(downstream);
    if let Some((file, path)) = tee {
        file.sync_all().map_err(|source| UnpackError::Io { op: "write", path, source })?;
    }
    Ok(Digests { sha512: hex::encode(sha512.finalize()), sha256: sha256.map(|h| hex::encode(h.finalize())), bytes })
}

/// A binary extracted into the staging directory.
#[derive(Debug, Clone)]
pub struct Staged {
    pub name: String,
    pub path: PathBuf,
    pub size: u64,
    pub sha256: String,
}

#[derive(Debug, Clone)]
pub struct Unpacked {
    pub files: Vec<Staged>,
    /// The content of `kubernetes/version`, when the archive has one.
    pub archive_version: Option<String>,
}

/// Which files to extract, and the directory of the archive they are in.
#[derive(Debug, Clone)]
pub struct Wanted {
    pub required: Vec<String>,
    pub optional: Vec<String>,
    /// `kubernetes/node/bin/` in a node archive; empty for an archive of plugins at its top level.
    pub prefix: &'static str,
}

impl Wanted {
    /// Binaries of a Kubernetes node archive (`kubernetes/node/bin/`).
    pub fn node(required: Vec<String>, optional: Vec<String>) -> Wanted {
        Wanted { required, optional, prefix: BIN_PREFIX }
    }
}

/// Why an entry name is unsafe to use, if it is: every component must be a plain name.
pub fn check_entry_path(raw: &[u8]) -> Result<(), &'static str> {
    if raw.is_empty() {
        return Err("it has an empty name");
    }
    if raw[0] == b'/' {
        return Err("it is an absolute path");
    }
    if raw.contains(&b'\\') {
        return Err("it contains a backslash, a path separator on Windows");
    }
    let trimmed = raw.strip_suffix(b"/").unwrap_or(raw);
    for component in trimmed.split(|b| *b == b'/') {
        match component {
            b"" => return Err("it has an empty path component"),
            b"." => return Err("it has a `.` path component"),
            b".." => return Err("it has a `..` path component, which would escape the target directory"),
            c if c.contains(&b':') => return Err("it contains `:`, a drive or stream name on Windows"),
            _ => {}
        }
    }
    // Whatever the host's own path rules add (prefixes, roots) is refused too.
    let lossy = String::from_utf8_lossy(trimmed);
    if !Path::new(lossy.as_ref()).components().all(|c| matches!(c, std::path::Component::Normal(_))) {
        return Err("it is not a plain relative path");
    }
    Ok(())
}

fn entry_kind_problem(kind: tar::EntryType) -> Option<&'static str> {
    if kind.is_file() || kind.is_dir() || kind.is_pax_global_extensions() {
        None
    } else if kind.is_symlink() {
        Some("it is a symbolic link")
    } else if kind.is_hard_link() {
        Some("it is a hard link")
    } else if kind.is_character_special() || kind.is_block_special() {
        Some("it is a device file")
    } else if kind.is_fifo() {
        Some("it is a FIFO")
    } else {
        Some("its entry type is not a regular file or directory")
    }
}

/// Shows the first bytes of a non-gzip body so the user can tell what was served instead.
fn describe_start(buf: &[u8]) -> String {
    let head = &buf[..buf.len().min(16)];
    if head.iter().all(|b| b.is_ascii_graphic() || *b == b' ') {
        format!("`{}`", String::from_utf8_lossy(head))
    } else {
        head.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" ")
    }
}

/// What the unpacker hands the writer: one file at a time, in order.
enum ToWriter {
    Open { name: String, path: PathBuf },
    Data(Vec<u8>),
    Close,
}

/// Chunks of file data in flight to the writer.
const WRITES_IN_FLIGHT: usize = 8;
const WRITE_CHUNK: usize = 256 * 1024;

/// The writer's thread: it hashes and writes what the unpacker inflated, so inflating (the slowest stage)
/// does nothing else. Its sender dropping is the end; dropping it joins the thread, so no file handle
/// outlives the staging directory.
struct Writer {
    tx: Option<SyncSender<ToWriter>>,
    thread: Option<std::thread::JoinHandle<Result<Vec<Staged>, UnpackError>>>,
}

impl Writer {
    fn start() -> Writer {
        let (tx, rx) = std::sync::mpsc::sync_channel(WRITES_IN_FLIGHT);
        Writer { tx: Some(tx), thread: Some(std::thread::spawn(move || write_files(rx))) }
    }

    /// `false` when the writer stopped (its error comes from `finish`).
    fn send(&self, msg: ToWriter) -> bool {
        self.tx.as_ref().is_some_and(|tx| tx.send(msg).is_ok())
    }

    fn finish(mut self) -> Result<Vec<Staged>, UnpackError> {
        self.tx = None;
        let thread = self.thread.take().expect("joined once");
        thread.join().unwrap_or_else(|e| std::panic::resume_unwind(e))
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn write_files(rx: Receiver<ToWriter>) -> Result<Vec<Staged>, UnpackError> {
    struct Open {
        name: String,
        path: PathBuf,
        file: File,
        hasher: Sha256,
        size: u64,
    }
    let mut done = Vec::new();
    let mut current: Option<Open> = None;
    let mut syncs: Vec<(PathBuf, std::thread::JoinHandle<io::Result<()>>)> = Vec::new();
    let result = (|| {
        for msg in &rx {
            match msg {
                ToWriter::Open { name, path } => {
                    let file = File::create_new(&path).map_err(|source| UnpackError::Io {
                        op: "create",
                        path: path.clone(),
                        source,
                    })?;
                    current = Some(Open { name, path, file, hasher: Sha256::new(), size: 0 });
                }
                ToWriter::Data(chunk) => {
                    let Some(f) = current.as_mut() else { continue };
                    f.hasher.update(&chunk);
                    f.file.write_all(&chunk).map_err(|source| UnpackError::Io {
                        op: "write",
                        path: f.path.clone(),
                        source,
                    })?;
                    f.size += chunk.len() as u64;
                }
                ToWriter::Close => {
                    let Some(f) = current.take() else { continue };
                    crate::host::set_executable(&f.path).map_err(|e| match e {
                        crate::host::HostError::Io { op, path, source } => UnpackError::Io { op, path, source },
                        other => UnpackError::Io {
                            op: "make executable",
                            path: f.path.clone(),
                            source: io::Error::other(other.to_string()),
                        },
                    })?;
                    // On disk before it gets its final name, so a crash never leaves a half-written kubelet;
                    // synced on its own thread while the next file is written.
                    let file = f.file;
                    syncs.push((f.path.clone(), std::thread::spawn(move || file.sync_all())));
                    let sha256 = hex::encode(f.hasher.finalize());
                    done.push(Staged { name: f.name, path: f.path, size: f.size, sha256 });
                }
            }
        }
        Ok(())
    })();
    let mut synced = Ok(());
    for (path, sync) in syncs {
        let r = sync.join().unwrap_or_else(|e| std::panic::resume_unwind(e));
        if let (Err(source), true) = (r, synced.is_ok()) {
            synced = Err(UnpackError::Io { op: "write", path, source });
        }
    }
    result.and(synced).map(|()| done)
}

/// Fills `buf` from `r` as far as it goes; fewer bytes only at the end of the stream.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Stage two: gunzips and reads the tar stream, checks every entry, and has the wanted binaries (prefix
/// stripped) written into `staging` by a writer thread.
pub fn unpack(input: impl Read, staging: &Path, wanted: &Wanted) -> Result<Unpacked, UnpackError> {
    let mut input = BufReader::with_capacity(256 * 1024, input);
    let head = input.fill_buf().map_err(UnpackError::Corrupt)?;
    if !head.starts_with(&[0x1f, 0x8b]) {
        let text = String::from_utf8_lossy(&head[..head.len().min(512)]).trim_start().to_ascii_lowercase();
        if text.starts_with("<!doctype html") || text.starts_with("<html") || text.starts_with('<') {
            return Err(UnpackError::Html);
        }
        if head.is_empty() {
            return Err(UnpackError::NotGzip { start: "nothing: it is empty".into() });
        }
        return Err(UnpackError::NotGzip { start: describe_start(head) });
    }
    let mut archive = tar::Archive::new(flate2::bufread::GzDecoder::new(input));
    let mut seen: Vec<String> = Vec::new();
    let mut archive_version = None;
    let writer = Writer::start();
    for entry in archive.entries().map_err(UnpackError::Corrupt)? {
        let mut entry = entry.map_err(UnpackError::Corrupt)?;
        let mut raw = entry.path_bytes().into_owned();
        let name = String::from_utf8_lossy(&raw).into_owned();
        // A top-level archive made with `tar -C dir .` (the CNI plugins release) names its entries `./name`.
        if wanted.prefix.is_empty()
            && let Some(rest) = raw.strip_prefix(b"./")
        {
            if rest.is_empty() {
                continue;
            }
            raw = rest.to_vec();
        }
        let unsafe_entry = |reason: String| UnpackError::Unsafe { entry: name.clone(), reason };
        check_entry_path(&raw).map_err(|r| unsafe_entry(r.to_string()))?;
        let kind = entry.header().entry_type();
        if let Some(problem) = entry_kind_problem(kind) {
            let target = entry.link_name_bytes().map(|t| format!(" to `{}`", String::from_utf8_lossy(&t)));
            return Err(unsafe_entry(format!("{problem}{}", target.unwrap_or_default())));
        }
        let size = entry.size();
        if size > MAX_ENTRY_SIZE {
            return Err(unsafe_entry(format!(
                "it is {size} bytes, more than the {} MiB limit for a file in a node archive",
                MAX_ENTRY_SIZE >> 20
            )));
        }
        if !kind.is_file() {
            continue;
        }
        let relative = String::from_utf8_lossy(&raw).into_owned();
        let path = relative.trim_end_matches('/');
        if path == VERSION_ENTRY && size <= 128 {
            let mut text = String::new();
            entry.read_to_string(&mut text).map_err(UnpackError::Corrupt)?;
            archive_version = Some(text.trim().to_string());
            continue;
        }
        let Some(file_name) = path.strip_prefix(wanted.prefix) else { continue };
        if !wanted.required.iter().chain(&wanted.optional).any(|w| w == file_name) {
            continue;
        }
        if seen.iter().any(|f| f == file_name) {
            return Err(unsafe_entry("it appears twice in the archive".to_string()));
        }
        seen.push(file_name.to_string());
        let mut alive = writer.send(ToWriter::Open { name: file_name.to_string(), path: staging.join(file_name) });
        let mut read = 0u64;
        while alive {
            let mut chunk = vec![0u8; WRITE_CHUNK];
            let n = read_full(&mut entry, &mut chunk).map_err(UnpackError::Corrupt)?;
            if n == 0 {
                break;
            }
            chunk.truncate(n);
            read += n as u64;
            alive = writer.send(ToWriter::Data(chunk));
        }
        if !alive || !writer.send(ToWriter::Close) {
            break;
        }
        if read != size {
            return Err(UnpackError::Corrupt(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{name} ends after {read} of its {size} bytes"),
            )));
        }
    }
    let mut files = writer.finish()?;
    if let Some(missing) = wanted.required.iter().find(|r| !files.iter().any(|f| &f.name == *r)) {
        return Err(UnpackError::Missing { entry: format!("{}{missing}", wanted.prefix) });
    }
    // Archive order is not ours to expose: install in the order the plan names the binaries.
    let order = |n: &str| wanted.required.iter().chain(&wanted.optional).position(|w| w == n);
    files.sort_by_key(|f| order(&f.name));
    Ok(Unpacked { files, archive_version })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_paths_must_be_plain_relative_names() {
        for ok in ["kubernetes/node/bin/kubelet", "kubernetes/", "kubernetes/node/bin/kubelet.exe"] {
            assert_eq!(check_entry_path(ok.as_bytes()), Ok(()), "{ok}");
        }
        for (bad, why) in [
            ("/etc/passwd", "absolute"),
            ("kubernetes/../../evil", "`..`"),
            ("./kubernetes/node/bin/kubelet", "`.`"),
            ("kubernetes//kubelet", "empty path component"),
            ("kubernetes\\..\\evil", "backslash"),
            ("C:evil", "`:`"),
            ("", "empty name"),
        ] {
            let err = check_entry_path(bad.as_bytes()).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn non_gzip_starts_are_shown_readably() {
        assert_eq!(describe_start(b"PK\x03\x04abc"), "50 4b 03 04 61 62 63");
        assert_eq!(describe_start(b"Not Found"), "`Not Found`");
    }

    #[test]
    fn chunk_reader_joins_chunks_and_ends_when_the_sender_hangs_up() {
        let (tx, rx) = std::sync::mpsc::sync_channel(4);
        tx.send(Bytes::from_static(b"ab")).unwrap();
        tx.send(Bytes::new()).unwrap();
        tx.send(Bytes::from_static(b"cde")).unwrap();
        drop(tx);
        let mut s = String::new();
        ChunkReader::new(rx).read_to_string(&mut s).unwrap();
        assert_eq!(s, "abcde");
    }
}
