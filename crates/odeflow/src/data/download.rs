//! Downloading the standard data sets, every file checked against a built-in SHA-256.
//!
//! The [`CATALOGUE`] lists MNIST, Fashion-MNIST and CIFAR-10: the files of each, their byte
//! sizes and SHA-256 digests (as published in TensorFlow Datasets' `url_checksums`; the two
//! MNIST `t10k` values were also recomputed from the files themselves), and the mirrors to
//! fetch them from, in the fallback order torchvision uses.
//!
//! [`download`] fetches the files of one data set into a folder:
//!
//! * a file already there with the right size and SHA-256 is kept and not fetched again;
//! * a file is streamed into `<dir>/.<name>.<pid>.part`, hashed while it is written, checked
//!   (size, then SHA-256) and only then renamed to its final name — on any failure the
//!   `.part` file is removed, so a final name only ever holds a verified file, and running
//!   the download again completes it;
//! * CIFAR-10's tarball is unpacked all-or-nothing: into a temporary folder first, whose
//!   `cifar-10-batches-bin` subfolder is renamed into place once every batch file is there
//!   with its expected size; the tarball is then deleted.
//!
//! The library never prints: progress goes to a [`Progress`] implementation the caller
//! passes ([`NoProgress`] ignores it). Failures are [`DownloadError`]s whose messages are
//! one line naming the URL or file and what to do.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;
use sha2::{Digest, Sha256};
use thiserror::Error;

/// One file of a data set as it is published.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RemoteFile {
    /// The file name, both on the mirror and on disk.
    pub name: &'static str,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 digest, lowercase hex.
    pub sha256: &'static str,
}

/// The files a downloaded archive unpacks to (CIFAR-10's tarball).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Unpacked {
    /// The folder the archive holds its files in (and that is created next to it).
    pub subdir: &'static str,
    /// The files that must be in that folder after unpacking, with their sizes in bytes.
    pub files: &'static [(&'static str, u64)],
}

/// A data set that can be downloaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DatasetSpec {
    /// The name used on the command line and as the folder name (`mnist`).
    pub name: &'static str,
    /// The name for people (`MNIST`).
    pub title: &'static str,
    /// Base URLs, in the order they are tried; a file is fetched as `<base>/<file name>`.
    pub mirrors: &'static [&'static str],
    /// The files to fetch, in the order they are fetched.
    pub files: &'static [RemoteFile],
    /// Set when the (single) downloaded file is an archive to unpack.
    pub unpack: Option<Unpacked>,
}

impl DatasetSpec {
    /// The names of the files that make the data set complete on disk: the unpacked files
    /// (relative to the data-set folder) for an archive, else the downloaded files.
    pub fn final_files(&self) -> Vec<String> {
        match &self.unpack {
            Some(u) => u
                .files
                .iter()
                .map(|(n, _)| format!("{}/{n}", u.subdir))
                .collect(),
            None => self.files.iter().map(|f| f.name.to_string()).collect(),
        }
    }
}

/// Bytes of one CIFAR-10 batch file: 10 000 records of 3 073 bytes.
const CIFAR_BATCH_BYTES: u64 = 10_000 * 3_073;

/// The IDX file names shared by MNIST and Fashion-MNIST, test files first (they are small
/// and useful on their own).
const MNIST_FILES: [RemoteFile; 4] = [
    RemoteFile {
        name: "t10k-images-idx3-ubyte.gz",
        size: 1_648_877,
        sha256: "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    },
    RemoteFile {
        name: "t10k-labels-idx1-ubyte.gz",
        size: 4_542,
        sha256: "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    },
    RemoteFile {
        name: "train-images-idx3-ubyte.gz",
        size: 9_912_422,
        sha256: "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    },
    RemoteFile {
        name: "train-labels-idx1-ubyte.gz",
        size: 28_881,
        sha256: "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    },
];

const FASHION_FILES: [RemoteFile; 4] = [
    RemoteFile {
        name: "t10k-images-idx3-ubyte.gz",
        size: 4_422_102,
        sha256: "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
    },
    RemoteFile {
        name: "t10k-labels-idx1-ubyte.gz",
        size: 5_148,
        sha256: "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
    },
    RemoteFile {
        name: "train-images-idx3-ubyte.gz",
        size: 26_421_880,
        sha256: "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
    },
    RemoteFile {
        name: "train-labels-idx1-ubyte.gz",
        size: 29_515,
        sha256: "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
    },
];

const CIFAR_FILES: [RemoteFile; 1] = [RemoteFile {
    name: "cifar-10-binary.tar.gz",
    size: 170_052_171,
    sha256: "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd",
}];

/// The data sets [`download`] knows.
pub const CATALOGUE: &[DatasetSpec] = &[
    DatasetSpec {
        name: "mnist",
        title: "MNIST",
        mirrors: &[
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "http://yann.lecun.com/exdb/mnist/",
        ],
        files: &MNIST_FILES,
        unpack: None,
    },
    DatasetSpec {
        name: "fashion-mnist",
        title: "Fashion-MNIST",
        mirrors: &["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"],
        files: &FASHION_FILES,
        unpack: None,
    },
    DatasetSpec {
        name: "cifar10",
        title: "CIFAR-10",
        mirrors: &["https://www.cs.toronto.edu/~kriz/"],
        files: &CIFAR_FILES,
        unpack: Some(Unpacked {
            subdir: "cifar-10-batches-bin",
            files: &[
                ("data_batch_1.bin", CIFAR_BATCH_BYTES),
                ("data_batch_2.bin", CIFAR_BATCH_BYTES),
                ("data_batch_3.bin", CIFAR_BATCH_BYTES),
                ("data_batch_4.bin", CIFAR_BATCH_BYTES),
                ("data_batch_5.bin", CIFAR_BATCH_BYTES),
                ("test_batch.bin", CIFAR_BATCH_BYTES),
            ],
        }),
    },
];

/// The catalogue entry called `name` (`mnist`, `fashion-mnist`, `cifar10`).
pub fn spec(name: &str) -> Option<&'static DatasetSpec> {
    CATALOGUE.iter().find(|s| s.name == name)
}

/// The names of the data sets in the catalogue, comma-separated (for messages).
pub fn known_names() -> String {
    CATALOGUE
        .iter()
        .map(|s| s.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// `<base>/<file>` with exactly one slash between them.
pub fn join_url(base: &str, file: &str) -> String {
    format!(
        "{}/{}",
        base.trim_end_matches('/'),
        file.trim_start_matches('/')
    )
}

/// Receives progress reports from [`download`]. Implementations draw bars, log, or ignore.
pub trait Progress {
    /// A file starts downloading; `total` is its size in bytes when known.
    fn start(&self, file: &str, total: Option<u64>);
    /// `bytes` more bytes of the current file have arrived.
    fn advance(&self, bytes: u64);
    /// The current file is finished (downloaded and verified, or abandoned after an error).
    fn done(&self, file: &str);
}

/// A [`Progress`] that ignores every report.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn start(&self, _file: &str, _total: Option<u64>) {}
    fn advance(&self, _bytes: u64) {}
    fn done(&self, _file: &str) {}
}

/// What a downloaded archive's target folder looks like when something is wrong with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathKind {
    /// The path is a regular file (or something else that is not a folder).
    File,
    /// The path is a folder.
    Directory,
    /// Nothing exists at the path.
    Missing,
}

impl std::fmt::Display for PathKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PathKind::File => "a file",
            PathKind::Directory => "a directory",
            PathKind::Missing => "does not exist",
        })
    }
}

fn path_kind(path: &Path) -> PathKind {
    match fs::metadata(path) {
        Ok(m) if m.is_dir() => PathKind::Directory,
        Ok(_) => PathKind::File,
        Err(_) => PathKind::Missing,
    }
}

/// Why a download failed. Every message is one line that names the URL or file and says
/// what to do.
#[derive(Debug, Error)]
pub enum DownloadError {
    /// The data set name is not in the [`CATALOGUE`].
    #[error("unknown data set '{name}': the known ones are {known}")]
    UnknownDataset {
        /// The name asked for.
        name: String,
        /// The known names, comma-separated.
        known: String,
    },
    /// `--mirror` is not an http(s) URL with a host.
    #[error("--mirror '{mirror}' is not a URL odeflow can fetch from: give a base URL with http:// or https:// and a host, e.g. https://example.org/mnist/")]
    BadMirror {
        /// The mirror as given.
        mirror: String,
    },
    /// The server answered with an HTTP error status (404, 500, …).
    #[error(
        "{url}: the server answered HTTP {status}; check the URL (or --mirror) and try again later"
    )]
    HttpStatus {
        /// The URL requested.
        url: String,
        /// The status code.
        status: u16,
    },
    /// No connection could be made (refused, unreachable host, name not resolved, TLS).
    #[error("{url}: cannot connect ({reason}); check the network connection or pass --mirror with a reachable URL")]
    Connect {
        /// The URL requested.
        url: String,
        /// What the operating system or the HTTP client said.
        reason: String,
    },
    /// The connection broke or timed out while the body was arriving.
    #[error("{url}: the download stopped after {got} of {expected} bytes ({reason}); run the command again to retry")]
    Truncated {
        /// The URL requested.
        url: String,
        /// The size the file should have.
        expected: u64,
        /// The bytes received.
        got: u64,
        /// Why it stopped.
        reason: String,
    },
    /// The server sent (or announced) a body of the wrong size.
    #[error("{url}: the server sends {got} bytes but {file} has {expected}; the mirror holds a different file, try another --mirror")]
    SizeMismatch {
        /// The URL requested.
        url: String,
        /// The file name.
        file: String,
        /// The published size.
        expected: u64,
        /// What the server sent or announced.
        got: u64,
    },
    /// The file arrived complete but its SHA-256 is not the published one.
    #[error("{url}: checksum mismatch for {file}: expected SHA-256 {expected}, got {got}; the file was discarded, try again or use another --mirror")]
    ChecksumMismatch {
        /// The URL requested.
        url: String,
        /// The file name.
        file: String,
        /// The published SHA-256.
        expected: String,
        /// The SHA-256 of what arrived.
        got: String,
    },
    /// Some other failure of the HTTP exchange.
    #[error("{url}: {reason}; run the command again, or pass --mirror with another URL")]
    Network {
        /// The URL requested.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The target folder cannot be used.
    #[error("cannot write into {} ({kind}): {reason}; pass --dir with a writable directory", path.display())]
    Directory {
        /// The path that is in the way or cannot be written.
        path: PathBuf,
        /// What the path is.
        kind: PathKind,
        /// What went wrong.
        reason: String,
    },
    /// The disk filled up while a file was written.
    #[error("no space left on the device while writing {}; free some space or pass --dir on another disk", path.display())]
    DiskFull {
        /// The file being written.
        path: PathBuf,
    },
    /// Another file-system error while writing or reading a file.
    #[error("{}: {reason}; check the folder's permissions and free space", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The downloaded archive cannot be unpacked.
    #[error("cannot unpack {}: {reason}; delete it and run the download again", path.display())]
    Archive {
        /// The archive.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// Every mirror failed; the error of the first (primary) mirror is shown.
    #[error("{first} (the {others} fallback mirror(s) failed too)")]
    AllMirrors {
        /// The failure at the primary mirror.
        first: Box<DownloadError>,
        /// How many further mirrors were tried.
        others: usize,
    },
}

impl DownloadError {
    /// True for failures of the network or the server (as opposed to the local disk or the
    /// caller's input): exit code 1 rather than 2 in the CLI.
    pub fn is_network(&self) -> bool {
        match self {
            DownloadError::HttpStatus { .. }
            | DownloadError::Connect { .. }
            | DownloadError::Truncated { .. }
            | DownloadError::SizeMismatch { .. }
            | DownloadError::ChecksumMismatch { .. }
            | DownloadError::Network { .. } => true,
            DownloadError::AllMirrors { first, .. } => first.is_network(),
            _ => false,
        }
    }

    /// True when the caller's input is at fault (unknown name, unusable folder).
    pub fn is_input(&self) -> bool {
        matches!(
            self,
            DownloadError::UnknownDataset { .. }
                | DownloadError::Directory { .. }
                | DownloadError::BadMirror { .. }
        )
    }

    /// Errors after which the next mirror may do better.
    fn try_next_mirror(&self) -> bool {
        self.is_network()
    }

    fn io(path: &Path, e: &io::Error) -> Self {
        if is_disk_full(e) {
            DownloadError::DiskFull { path: path.into() }
        } else {
            DownloadError::Io {
                path: path.into(),
                reason: e.to_string(),
            }
        }
    }
}

fn is_disk_full(e: &io::Error) -> bool {
    // ENOSPC (28) and EDQUOT (122 on Linux) are both "the disk is full" to the user.
    e.kind() == io::ErrorKind::StorageFull
        || e.kind() == io::ErrorKind::QuotaExceeded
        || e.raw_os_error() == Some(28)
}

/// What happened to one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FileAction {
    /// Fetched and verified in this run.
    Downloaded,
    /// Already there with the right size and SHA-256; not fetched.
    AlreadyPresent,
    /// An archive whose unpacked files are already complete; not fetched.
    AlreadyUnpacked,
}

/// One file in a [`DownloadReport`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileReport {
    /// The file name.
    pub name: String,
    /// What was done.
    pub action: FileAction,
    /// The URL it was fetched from (downloaded files only).
    pub url: Option<String>,
    /// Its size in bytes.
    pub bytes: u64,
    /// Its SHA-256 (the published value, which the file matches).
    pub sha256: String,
}

/// The result of [`download`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DownloadReport {
    /// The data set.
    pub dataset: String,
    /// The folder holding it.
    pub dir: PathBuf,
    /// Each downloaded file, in catalogue order.
    pub files: Vec<FileReport>,
    /// Files unpacked from an archive in this run, relative to `dir`.
    pub unpacked: Vec<String>,
    /// Bytes fetched over the network in this run.
    pub bytes_downloaded: u64,
}

/// The SHA-256 of a file, lowercase hex.
pub fn sha256_file(path: &Path) -> io::Result<String> {
    let mut f = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// True when `path` is a file with exactly `file`'s size and SHA-256.
pub fn is_valid(path: &Path, file: &RemoteFile) -> bool {
    match fs::metadata(path) {
        Ok(m) if m.is_file() && m.len() == file.size => {
            sha256_file(path).is_ok_and(|h| h == file.sha256)
        }
        _ => false,
    }
}

/// True when every file an archive unpacks to is in `dir` with its expected size.
pub fn is_unpacked(dir: &Path, unpacked: &Unpacked) -> bool {
    let sub = dir.join(unpacked.subdir);
    unpacked.files.iter().all(|(name, size)| {
        fs::metadata(sub.join(name)).is_ok_and(|m| m.is_file() && m.len() == *size)
    })
}

/// Downloads the catalogue data set `name` into `dir` (created if needed), fetching from
/// `mirror` instead of the catalogue's mirrors when given. See the module docs.
pub fn download(
    name: &str,
    dir: &Path,
    mirror: Option<&str>,
    progress: &dyn Progress,
) -> Result<DownloadReport, DownloadError> {
    let spec = spec(name).ok_or_else(|| DownloadError::UnknownDataset {
        name: name.into(),
        known: known_names(),
    })?;
    download_spec(spec, dir, mirror, progress)
}

/// A mirror must be an absolute `http://` or `https://` URL with a host; anything else is
/// refused before a directory is made or a connection tried.
fn check_mirror(mirror: &str) -> Result<(), DownloadError> {
    let ok = mirror
        .parse::<ureq::http::Uri>()
        .ok()
        .filter(|u| matches!(u.scheme_str(), Some("http" | "https")))
        .and_then(|u| u.host().map(|h| !h.is_empty()))
        .unwrap_or(false);
    if ok {
        Ok(())
    } else {
        Err(DownloadError::BadMirror {
            mirror: mirror.into(),
        })
    }
}

/// [`download`] for any [`DatasetSpec`], including ones that are not in the catalogue.
pub fn download_spec(
    spec: &DatasetSpec,
    dir: &Path,
    mirror: Option<&str>,
    progress: &dyn Progress,
) -> Result<DownloadReport, DownloadError> {
    if let Some(m) = mirror {
        check_mirror(m)?;
    }
    prepare_dir(dir)?;
    let mirrors: Vec<&str> = match mirror {
        Some(m) => vec![m],
        None => spec.mirrors.to_vec(),
    };
    let mut report = DownloadReport {
        dataset: spec.name.into(),
        dir: dir.into(),
        files: Vec::new(),
        unpacked: Vec::new(),
        bytes_downloaded: 0,
    };
    if let Some(unpack) = &spec.unpack {
        if is_unpacked(dir, unpack) {
            for f in spec.files {
                report.files.push(FileReport {
                    name: f.name.into(),
                    action: FileAction::AlreadyUnpacked,
                    url: None,
                    bytes: f.size,
                    sha256: f.sha256.into(),
                });
            }
            return Ok(report);
        }
    }
    let agent = agent();
    for file in spec.files {
        let target = dir.join(file.name);
        if is_valid(&target, file) {
            report.files.push(FileReport {
                name: file.name.into(),
                action: FileAction::AlreadyPresent,
                url: None,
                bytes: file.size,
                sha256: file.sha256.into(),
            });
            continue;
        }
        let url = fetch_from_mirrors(&agent, &mirrors, file, &target, progress)?;
        report.bytes_downloaded += file.size;
        report.files.push(FileReport {
            name: file.name.into(),
            action: FileAction::Downloaded,
            url: Some(url),
            bytes: file.size,
            sha256: file.sha256.into(),
        });
    }
    if let Some(unpack) = &spec.unpack {
        for file in spec.files {
            let archive = dir.join(file.name);
            report.unpacked = unpack_tar_gz(&archive, dir, unpack)?;
            // The unpacked files are what the loaders read; the tarball is not needed now.
            let _ = fs::remove_file(&archive);
        }
    }
    Ok(report)
}

/// Makes sure `dir` is a folder that can be written to, creating it (and its parents).
fn prepare_dir(dir: &Path) -> Result<(), DownloadError> {
    match path_kind(dir) {
        PathKind::Directory => {}
        PathKind::File => {
            return Err(DownloadError::Directory {
                path: dir.into(),
                kind: PathKind::File,
                reason: "it is a file, not a directory".into(),
            })
        }
        PathKind::Missing => {
            // A file somewhere above the folder makes it impossible to create; name it.
            if let Some(blocker) = dir
                .ancestors()
                .skip(1)
                .find(|a| !a.as_os_str().is_empty() && path_kind(a) == PathKind::File)
            {
                return Err(DownloadError::Directory {
                    path: blocker.into(),
                    kind: PathKind::File,
                    reason: format!(
                        "it is a file, so the directory {} cannot be created",
                        dir.display()
                    ),
                });
            }
            fs::create_dir_all(dir).map_err(|e| DownloadError::Directory {
                path: dir.into(),
                kind: PathKind::Missing,
                reason: format!("the directory cannot be created: {e}"),
            })?;
        }
    }
    Ok(())
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(Duration::from_secs(30)))
        .timeout_recv_response(Some(Duration::from_secs(60)))
        .timeout_per_read(Some(Duration::from_secs(60)))
        .user_agent(concat!("odeflow/", env!("CARGO_PKG_VERSION")))
        .build()
        .new_agent()
}

/// Tries each mirror in turn; returns the URL the verified file came from.
fn fetch_from_mirrors(
    agent: &ureq::Agent,
    mirrors: &[&str],
    file: &RemoteFile,
    target: &Path,
    progress: &dyn Progress,
) -> Result<String, DownloadError> {
    let mut first: Option<DownloadError> = None;
    for (i, base) in mirrors.iter().enumerate() {
        let url = join_url(base, file.name);
        match fetch_one(agent, &url, file, target, progress) {
            Ok(()) => return Ok(url),
            Err(e) if !e.try_next_mirror() => return Err(e),
            Err(e) if i + 1 < mirrors.len() => {
                first.get_or_insert(e);
            }
            Err(e) => {
                return Err(match first {
                    Some(first) => DownloadError::AllMirrors {
                        first: Box::new(first),
                        others: i,
                    },
                    None => e,
                })
            }
        }
    }
    unreachable!("at least one mirror is always tried")
}

/// Removes the `.part` file when dropped, unless it has been renamed into place.
struct PartFile {
    path: PathBuf,
    keep: bool,
}

impl Drop for PartFile {
    fn drop(&mut self) {
        if !self.keep {
            let _ = fs::remove_file(&self.path);
        }
    }
}

fn part_path(target: &Path, name: &str) -> PathBuf {
    target.with_file_name(format!(".{name}.{}.part", std::process::id()))
}

/// Fetches `url` into `target` through a `.part` file; `target` is only ever replaced by a
/// file of the right size and SHA-256.
fn fetch_one(
    agent: &ureq::Agent,
    url: &str,
    file: &RemoteFile,
    target: &Path,
    progress: &dyn Progress,
) -> Result<(), DownloadError> {
    let response = agent.get(url).call().map_err(|e| call_error(url, e))?;
    let status = response.status().as_u16();
    if !(200..300).contains(&status) {
        return Err(DownloadError::HttpStatus {
            url: url.into(),
            status,
        });
    }
    let announced = response.body().content_length();
    if let Some(len) = announced {
        if len != file.size {
            return Err(DownloadError::SizeMismatch {
                url: url.into(),
                file: file.name.into(),
                expected: file.size,
                got: len,
            });
        }
    }
    let part = PartFile {
        path: part_path(target, file.name),
        keep: false,
    };
    let mut out = File::create(&part.path).map_err(|e| match e.kind() {
        io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem => {
            DownloadError::Directory {
                path: target.parent().unwrap_or(target).into(),
                kind: PathKind::Directory,
                reason: format!("cannot create {}: {e}", part.path.display()),
            }
        }
        _ => DownloadError::io(&part.path, &e),
    })?;
    progress.start(file.name, Some(file.size));
    let result = (|| {
        let mut body = response.into_body().into_reader();
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 16];
        let mut got: u64 = 0;
        loop {
            let n = match body.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(DownloadError::Truncated {
                        url: url.into(),
                        expected: file.size,
                        got,
                        reason: read_reason(&e),
                    })
                }
            };
            got += n as u64;
            if got > file.size {
                return Err(DownloadError::SizeMismatch {
                    url: url.into(),
                    file: file.name.into(),
                    expected: file.size,
                    got,
                });
            }
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n])
                .map_err(|e| DownloadError::io(&part.path, &e))?;
            progress.advance(n as u64);
        }
        if got < file.size {
            return Err(DownloadError::Truncated {
                url: url.into(),
                expected: file.size,
                got,
                reason: "the connection closed early".into(),
            });
        }
        out.sync_all()
            .map_err(|e| DownloadError::io(&part.path, &e))?;
        let digest = hex(&hasher.finalize());
        if digest != file.sha256 {
            return Err(DownloadError::ChecksumMismatch {
                url: url.into(),
                file: file.name.into(),
                expected: file.sha256.into(),
                got: digest,
            });
        }
        Ok(())
    })();
    drop(out);
    progress.done(file.name);
    result?;
    fs::rename(&part.path, target).map_err(|e| DownloadError::io(target, &e))?;
    let mut part = part;
    part.keep = true;
    Ok(())
}

fn read_reason(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::UnexpectedEof => "the connection closed early".into(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => "timed out".into(),
        _ => e.to_string(),
    }
}

/// Maps an error of the request (before any body byte) to a [`DownloadError`].
fn call_error(url: &str, e: ureq::Error) -> DownloadError {
    let url = url.to_string();
    match e {
        ureq::Error::StatusCode(status) => DownloadError::HttpStatus { url, status },
        ureq::Error::Io(io) => match io.kind() {
            io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::NotConnected
            | io::ErrorKind::AddrNotAvailable
            | io::ErrorKind::HostUnreachable
            | io::ErrorKind::NetworkUnreachable
            | io::ErrorKind::TimedOut => DownloadError::Connect {
                url,
                reason: io.to_string(),
            },
            _ => DownloadError::Network {
                url,
                reason: io.to_string(),
            },
        },
        ureq::Error::HostNotFound => DownloadError::Connect {
            url,
            reason: "host not found".into(),
        },
        ureq::Error::ConnectionFailed => DownloadError::Connect {
            url,
            reason: "connection failed".into(),
        },
        ureq::Error::Timeout(t) => DownloadError::Connect {
            url,
            reason: format!("timed out ({t})"),
        },
        ureq::Error::BadUri(reason) => DownloadError::Network {
            url,
            reason: format!("not a usable URL ({reason})"),
        },
        other => DownloadError::Network {
            url,
            reason: other.to_string(),
        },
    }
}

/// Unpacks the gzip-compressed tarball `archive` into `dir`, all or nothing: the archive is
/// extracted into a temporary folder in `dir`, its `unpacked.subdir` checked to hold every
/// expected file with its size, then renamed to `dir/<subdir>` (replacing an incomplete
/// one). Returns the unpacked files, relative to `dir`.
pub fn unpack_tar_gz(
    archive: &Path,
    dir: &Path,
    unpacked: &Unpacked,
) -> Result<Vec<String>, DownloadError> {
    let tmp = dir.join(format!(
        ".{}.{}.unpack",
        unpacked.subdir,
        std::process::id()
    ));
    let _ = fs::remove_dir_all(&tmp);
    let cleanup = TempDir(tmp.clone());
    fs::create_dir_all(&tmp).map_err(|e| DownloadError::io(&tmp, &e))?;
    let archive_error = |reason: String| DownloadError::Archive {
        path: archive.into(),
        reason,
    };
    let f = File::open(archive).map_err(|e| DownloadError::io(archive, &e))?;
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(io::BufReader::new(f)));
    tar.set_preserve_permissions(false);
    tar.set_overwrite(true);
    tar.unpack(&tmp).map_err(|e| {
        if is_disk_full(&e) {
            DownloadError::DiskFull { path: tmp.clone() }
        } else {
            archive_error(e.to_string())
        }
    })?;
    let staged = tmp.join(unpacked.subdir);
    let mut names = Vec::new();
    for (name, size) in unpacked.files {
        let p = staged.join(name);
        match fs::metadata(&p) {
            Ok(m) if m.is_file() && m.len() == *size => {}
            Ok(m) => {
                return Err(archive_error(format!(
                    "{}/{name} has {} bytes, expected {size}",
                    unpacked.subdir,
                    m.len()
                )))
            }
            Err(_) => {
                return Err(archive_error(format!(
                    "it holds no {}/{name}",
                    unpacked.subdir
                )))
            }
        }
        names.push(format!("{}/{name}", unpacked.subdir));
    }
    let dest = dir.join(unpacked.subdir);
    if dest.exists() {
        fs::remove_dir_all(&dest).map_err(|e| DownloadError::io(&dest, &e))?;
    }
    fs::rename(&staged, &dest).map_err(|e| DownloadError::io(&dest, &e))?;
    drop(cleanup);
    Ok(names)
}

/// Removes a temporary folder when dropped.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_joined_with_one_slash() {
        assert_eq!(join_url("http://h/a/", "f.gz"), "http://h/a/f.gz");
        for bad in ["notaurl", "ftp://h/x/", "http://", "/local/dir", ""] {
            let e = check_mirror(bad).unwrap_err();
            assert!(
                e.is_input() && e.to_string().contains(&format!("'{bad}'")),
                "{e}"
            );
        }
        for good in [
            "http://127.0.0.1:8080/",
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
        ] {
            check_mirror(good).unwrap();
        }
        assert_eq!(join_url("http://h/a", "f.gz"), "http://h/a/f.gz");
        assert_eq!(join_url("http://h/a//", "/f.gz"), "http://h/a/f.gz");
    }

    #[test]
    fn catalogue_is_well_formed() {
        assert_eq!(known_names(), "mnist, fashion-mnist, cifar10");
        for s in CATALOGUE {
            assert!(!s.mirrors.is_empty(), "{}", s.name);
            for f in s.files {
                assert_eq!(f.sha256.len(), 64, "{}", f.name);
                assert!(f.sha256.bytes().all(|b| b.is_ascii_hexdigit()));
                assert!(f.size > 0);
            }
        }
        assert_eq!(
            spec("mnist").unwrap().files[0].name,
            "t10k-images-idx3-ubyte.gz"
        );
        assert!(spec("imagenet").is_none());
        assert_eq!(
            spec("cifar10").unwrap().final_files()[5],
            "cifar-10-batches-bin/test_batch.bin"
        );
    }

    #[test]
    fn sha256_of_a_known_string() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("abc");
        fs::write(&p, b"abc").unwrap();
        assert_eq!(
            sha256_file(&p).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn unknown_names_and_unusable_folders_are_input_errors() {
        let dir = tempfile::tempdir().unwrap();
        let e = download("imagenet", dir.path(), None, &NoProgress).unwrap_err();
        assert!(e.is_input());
        assert!(
            e.to_string().contains("mnist, fashion-mnist, cifar10"),
            "{e}"
        );

        let blocker = dir.path().join("file");
        fs::write(&blocker, "x").unwrap();
        let e = download("mnist", &blocker, None, &NoProgress).unwrap_err();
        assert!(e.is_input());
        assert!(e.to_string().contains("(a file)"), "{e}");
        let e = download("mnist", &blocker.join("sub/mnist"), None, &NoProgress).unwrap_err();
        assert!(
            e.to_string().contains(&blocker.display().to_string()),
            "{e}"
        );
        assert!(e.to_string().contains("it is a file"), "{e}");
        assert!(!e.to_string().contains('\n'));
    }

    fn tar_gz(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let mut b = tar::Builder::new(gz);
        for (name, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, name, *data).unwrap();
        }
        b.into_inner().unwrap().finish().unwrap()
    }

    const SMALL: Unpacked = Unpacked {
        subdir: "batches",
        files: &[("a.bin", 3), ("b.bin", 2)],
    };

    #[test]
    fn unpacking_is_all_or_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("x.tar.gz");

        // Missing member: nothing appears under the final folder, no temporary folder stays.
        fs::write(&archive, tar_gz(&[("batches/a.bin", b"abc")])).unwrap();
        let e = unpack_tar_gz(&archive, dir.path(), &SMALL).unwrap_err();
        assert!(e.to_string().contains("batches/b.bin"), "{e}");
        assert!(!dir.path().join("batches").exists());
        assert!(!is_unpacked(dir.path(), &SMALL));

        // Not a gzip file at all.
        fs::write(&archive, b"not an archive").unwrap();
        assert!(matches!(
            unpack_tar_gz(&archive, dir.path(), &SMALL),
            Err(DownloadError::Archive { .. })
        ));

        // Complete: the folder appears at once, replacing an incomplete one.
        fs::create_dir(dir.path().join("batches")).unwrap();
        fs::write(dir.path().join("batches/stale"), b"").unwrap();
        fs::write(
            &archive,
            tar_gz(&[("batches/a.bin", b"abc"), ("batches/b.bin", b"de")]),
        )
        .unwrap();
        let names = unpack_tar_gz(&archive, dir.path(), &SMALL).unwrap();
        assert_eq!(names, vec!["batches/a.bin", "batches/b.bin"]);
        assert!(is_unpacked(dir.path(), &SMALL));
        assert!(!dir.path().join("batches/stale").exists());
        let left: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(left.len(), 2, "{left:?}");
    }

    #[test]
    fn valid_files_need_size_and_hash() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("abc");
        fs::write(&p, b"abc").unwrap();
        let good = RemoteFile {
            name: "abc",
            size: 3,
            sha256: "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        };
        assert!(is_valid(&p, &good));
        assert!(!is_valid(&p, &RemoteFile { size: 4, ..good }));
        assert!(!is_valid(
            &p,
            &RemoteFile {
                sha256: "00",
                ..good
            }
        ));
        assert!(!is_valid(&dir.path().join("none"), &good));
    }

    /// A one-shot-per-connection HTTP/1.1 server on 127.0.0.1 serving `files` (404 for
    /// anything else); it stops after `max` connections or 30 seconds.
    fn serve(
        files: Vec<(&'static str, Vec<u8>)>,
        max: usize,
    ) -> (String, std::thread::JoinHandle<usize>) {
        use std::io::BufRead;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let base = format!(
            "http://127.0.0.1:{}/",
            listener.local_addr().unwrap().port()
        );
        let handle = std::thread::spawn(move || {
            let deadline = std::time::Instant::now() + Duration::from_secs(30);
            let mut served = 0;
            while served < max && std::time::Instant::now() < deadline {
                let Ok((stream, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                served += 1;
                stream.set_nonblocking(false).unwrap();
                stream
                    .set_read_timeout(Some(Duration::from_secs(5)))
                    .unwrap();
                let mut reader = io::BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                let _ = reader.read_line(&mut line);
                let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                        break;
                    }
                }
                let mut stream = stream;
                match files.iter().find(|(n, _)| path == format!("/{n}")) {
                    Some((_, body)) => {
                        let _ = write!(
                            stream,
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                            body.len()
                        );
                        let _ = stream.write_all(body);
                    }
                    None => {
                        let _ = write!(
                            stream,
                            "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                        );
                    }
                }
            }
            served
        });
        (base, handle)
    }

    fn leak(s: String) -> &'static str {
        Box::leak(s.into_boxed_str())
    }

    /// Counts the bytes reported, to check the progress protocol.
    #[derive(Default)]
    struct Count(std::cell::Cell<u64>, std::cell::Cell<u32>);

    impl Progress for Count {
        fn start(&self, _file: &str, total: Option<u64>) {
            assert!(total.is_some());
        }
        fn advance(&self, bytes: u64) {
            self.0.set(self.0.get() + bytes);
        }
        fn done(&self, _file: &str) {
            self.1.set(self.1.get() + 1);
        }
    }

    #[test]
    fn archive_download_falls_back_to_the_next_mirror_and_unpacks() {
        let archive = tar_gz(&[("batches/a.bin", b"abc"), ("batches/b.bin", b"de")]);
        let file = RemoteFile {
            name: "small.tar.gz",
            size: archive.len() as u64,
            sha256: leak(hex(&Sha256::digest(&archive))),
        };
        let refused = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            format!("http://127.0.0.1:{}", l.local_addr().unwrap().port())
        };
        let (base, server) = serve(vec![("small.tar.gz", archive.clone())], 1);
        let spec = DatasetSpec {
            name: "small",
            title: "Small",
            mirrors: Box::leak(vec![leak(refused), leak(base)].into_boxed_slice()),
            files: Box::leak(vec![file].into_boxed_slice()),
            unpack: Some(SMALL),
        };
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("root/small");
        let count = Count::default();
        let report = download_spec(&spec, &dir, None, &count).unwrap();
        assert_eq!(server.join().unwrap(), 1);
        assert_eq!(report.files[0].action, FileAction::Downloaded);
        assert!(report.files[0]
            .url
            .as_deref()
            .unwrap()
            .ends_with("/small.tar.gz"));
        assert_eq!(report.unpacked, vec!["batches/a.bin", "batches/b.bin"]);
        assert_eq!(report.bytes_downloaded, archive.len() as u64);
        assert_eq!((count.0.get(), count.1.get()), (archive.len() as u64, 1));
        assert!(is_unpacked(&dir, &SMALL));
        // The tarball is gone, nothing temporary is left.
        let mut left: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, vec!["batches"]);
        // A second run needs no network at all.
        let again = download_spec(&spec, &dir, Some("http://127.0.0.1:1/"), &NoProgress).unwrap();
        assert_eq!(again.files[0].action, FileAction::AlreadyUnpacked);
        assert_eq!(again.bytes_downloaded, 0);
    }

    #[test]
    fn every_mirror_failing_reports_the_primary_one() {
        let (base, server) = serve(vec![], 2);
        let file = RemoteFile {
            name: "x.bin",
            size: 3,
            sha256: "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        };
        let spec = DatasetSpec {
            name: "x",
            title: "X",
            mirrors: Box::leak(
                vec![leak(format!("{base}a/")), leak(format!("{base}b"))].into_boxed_slice(),
            ),
            files: Box::leak(vec![file].into_boxed_slice()),
            unpack: None,
        };
        let tmp = tempfile::tempdir().unwrap();
        let e = download_spec(&spec, tmp.path(), None, &NoProgress).unwrap_err();
        assert_eq!(server.join().unwrap(), 2);
        let msg = e.to_string();
        assert!(msg.contains(&format!("{base}a/x.bin")), "{msg}");
        assert!(
            msg.contains("HTTP 404") && msg.contains("1 fallback"),
            "{msg}"
        );
        assert!(e.is_network() && !e.is_input());
        assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 0);
    }

    #[test]
    fn disk_full_is_named_and_every_message_is_one_line() {
        let p = Path::new("/data/mnist/.x.part");
        let e = DownloadError::io(p, &io::Error::from_raw_os_error(28));
        assert!(matches!(e, DownloadError::DiskFull { .. }), "{e:?}");
        assert!(e.to_string().contains("no space left") && e.to_string().contains("/data/mnist"));
        assert!(!e.is_network() && !e.is_input());
        let other = DownloadError::io(p, &io::Error::from_raw_os_error(5));
        assert!(matches!(other, DownloadError::Io { .. }));
        let errors = [
            e,
            other,
            DownloadError::HttpStatus {
                url: "u".into(),
                status: 404,
            },
            DownloadError::Truncated {
                url: "u".into(),
                expected: 9,
                got: 4,
                reason: "r".into(),
            },
            DownloadError::ChecksumMismatch {
                url: "u".into(),
                file: "f".into(),
                expected: "a".into(),
                got: "b".into(),
            },
        ];
        for e in errors {
            assert!(!e.to_string().contains('\n'), "{e}");
        }
    }
}
