//! Node archives in the real layout (`kubernetes/node/bin/<binary>`), built in memory, plus the hand-made
//! entries an attacker would put in one.

use flate2::Compression;
use flate2::write::GzEncoder;
use sha2::{Digest, Sha256, Sha512};
use std::io::Write;
use wkjoin::layout::Os;

/// One tar entry, written header field by header field so that unsafe names and types survive.
#[derive(Debug, Clone)]
pub struct Entry {
    pub path: Vec<u8>,
    pub kind: tar::EntryType,
    pub data: Vec<u8>,
    pub link: Option<Vec<u8>>,
    /// What the header claims, when it should not match the data.
    pub declared_size: Option<u64>,
}

impl Entry {
    pub fn file(path: &str, data: Vec<u8>) -> Entry {
        Entry { path: path.as_bytes().to_vec(), kind: tar::EntryType::Regular, data, link: None, declared_size: None }
    }

    pub fn dir(path: &str) -> Entry {
        Entry { kind: tar::EntryType::Directory, ..Entry::file(path, Vec::new()) }
    }
}

/// Deterministic bytes that do not compress much, like a binary's.
pub fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// A stand-in binary: on Linux a script that prints the version (the rest of the file is never read), and
/// `size` bytes in all.
pub fn fake_binary(name: &str, version: &str, size: usize) -> Vec<u8> {
    let mut data = format!("#!/bin/sh\necho \"{name} version: Kubernetes {version}\"\nexit 0\n").into_bytes();
    let seed = name.bytes().chain(version.bytes()).fold(7u64, |h, b| h.wrapping_mul(31).wrapping_add(b as u64));
    data.extend(noise(seed, size.saturating_sub(data.len())));
    data
}

/// The binaries of the host's node archive: kubelet, kube-proxy, kubectl (and kubeadm when asked).
pub fn node_entries(os: Os, version: &str, size: usize, kubeadm: bool) -> Vec<Entry> {
    let mut names = vec!["kubelet", "kube-proxy", "kubectl"];
    if kubeadm {
        names.push("kubeadm");
    }
    let mut entries =
        vec![Entry::dir("kubernetes/"), Entry::dir("kubernetes/node/"), Entry::dir("kubernetes/node/bin/")];
    for n in names {
        let file = format!("{n}{}", os.exe_suffix());
        entries.push(Entry::file(&format!("kubernetes/node/bin/{file}"), fake_binary(n, version, size)));
    }
    entries.push(Entry::file("kubernetes/LICENSES", b"Apache-2.0\n".to_vec()));
    entries
}

pub fn tar_gz(entries: &[Entry]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_gnu();
        {
            let gnu = h.as_gnu_mut().unwrap();
            gnu.name[..e.path.len()].copy_from_slice(&e.path);
            if let Some(link) = &e.link {
                gnu.linkname[..link.len()].copy_from_slice(link);
            }
        }
        h.set_entry_type(e.kind);
        h.set_mode(0o755);
        h.set_size(e.declared_size.unwrap_or(e.data.len() as u64));
        h.set_mtime(1_600_000_000);
        h.set_cksum();
        builder.append(&h, &e.data[..]).unwrap();
    }
    let tar = builder.into_inner().unwrap();
    let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
    gz.write_all(&tar).unwrap();
    gz.finish().unwrap()
}

pub fn node_archive(os: Os, version: &str, size: usize) -> Vec<u8> {
    tar_gz(&node_entries(os, version, size, false))
}

pub fn sha512_hex(data: &[u8]) -> String {
    hex::encode(Sha512::digest(data))
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}
