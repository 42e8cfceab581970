//! End-to-end tests of `odeflow data download` and `odeflow data list` against a minimal
//! HTTP/1.1 server on 127.0.0.1 that the tests start themselves (never the real mirrors).
//!
//! The real MNIST test files come from the folder named by `ODEFLOW_TEST_MNIST` (CI sets it
//! to the shared MNIST folder); the tests that need them are skipped with a message when
//! it is unset. The failure cases (checksum mismatch, truncated body, refused connection,
//! bad input) use made-up bytes and always run.

mod common;

use std::collections::HashMap;
use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::{odeflow, one_line_failure, stderr, stdout, stdout_json};

const T10K_IMAGES: &str = "t10k-images-idx3-ubyte.gz";
const T10K_LABELS: &str = "t10k-labels-idx1-ubyte.gz";
const T10K_IMAGES_SIZE: usize = 1_648_877;

/// How the server answers a request for a file it has.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// The whole file with its length.
    Whole,
    /// `Content-Length` of the whole file, then half of it, then the connection closes.
    Truncated,
}

/// A minimal HTTP/1.1 server: `GET /<name>` answers the bytes of `files[name]` or 404.
/// It stops when dropped, after 200 connections, or after 60 seconds, whichever is first.
struct Server {
    port: u16,
    requests: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    fn start(files: HashMap<String, Vec<u8>>, mode: Mode) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (log, flag) = (requests.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(60);
            let mut served = 0;
            while served < 200 && Instant::now() < deadline && !flag.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        served += 1;
                        let _ = answer(stream, &files, mode, &log);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Server {
            port,
            requests,
            stop,
            thread: Some(thread),
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    /// The paths requested so far.
    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn answer(
    mut stream: TcpStream,
    files: &HashMap<String, Vec<u8>>,
    mode: Mode,
    log: &Mutex<Vec<String>>,
) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 16 * 1024 {
        if stream.read(&mut byte)? == 0 {
            return Ok(());
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
    log.lock().unwrap().push(path.clone());
    match files.get(path.trim_start_matches('/')) {
        Some(body) => {
            let sent = match mode {
                Mode::Whole => &body[..],
                Mode::Truncated => &body[..body.len() / 2],
            };
            write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            )?;
            stream.write_all(sent)?;
        }
        None => {
            let msg = b"not found";
            write!(
                stream,
                "HTTP/1.1 404 Not Found\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                msg.len()
            )?;
            stream.write_all(msg)?;
        }
    }
    stream.flush()?;
    let _ = stream.shutdown(std::net::Shutdown::Both);
    Ok(())
}

/// The folder `ODEFLOW_TEST_MNIST` names, or `None` when it is unset. A relative value is
/// taken relative to the current folder or, failing that, to the workspace root (cargo runs
/// tests in the package folder); a value that names no folder is an error, not a skip.
fn mnist_env() -> Option<PathBuf> {
    let value = PathBuf::from(std::env::var_os("ODEFLOW_TEST_MNIST").filter(|v| !v.is_empty())?);
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let tried = [value.clone(), workspace.join(&value)];
    match tried.iter().find(|p| p.join(T10K_IMAGES).is_file()) {
        Some(p) => Some(p.clone()),
        None => panic!(
            "ODEFLOW_TEST_MNIST={}: no {T10K_IMAGES} in {} or {}",
            value.display(),
            tried[0].display(),
            tried[1].display()
        ),
    }
}

/// The shared MNIST test folder, or `None` (with a message) when `ODEFLOW_TEST_MNIST` is
/// unset.
fn mnist_source(test: &str) -> Option<PathBuf> {
    let dir = mnist_env();
    if dir.is_none() {
        eprintln!("skipping {test}: set ODEFLOW_TEST_MNIST to a folder holding {T10K_IMAGES} and {T10K_LABELS}");
    }
    dir
}

/// The names in `dir`, sorted (empty when it does not exist).
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = match fs::read_dir(dir) {
        Ok(rd) => rd
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect(),
        Err(_) => Vec::new(),
    };
    v.sort();
    v
}

fn run(dir: &Path, args: &[&str]) -> std::process::Output {
    odeflow(dir, &args.join(" "))
}

#[test]
fn mnist_fetches_the_test_files_then_names_the_missing_training_url() {
    let Some(src) =
        mnist_source("mnist_fetches_the_test_files_then_names_the_missing_training_url")
    else {
        return;
    };
    let files: HashMap<String, Vec<u8>> = [T10K_IMAGES, T10K_LABELS]
        .iter()
        .map(|n| (n.to_string(), fs::read(src.join(n)).unwrap()))
        .collect();
    let server = Server::start(files.clone(), Mode::Whole);
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("data");
    let root_s = root.to_str().unwrap();
    let mirror = server.url();

    let out = run(
        tmp.path(),
        &[
            "data", "download", "mnist", "--dir", root_s, "--mirror", &mirror,
        ],
    );
    let missing_url = format!(
        "http://127.0.0.1:{}/train-images-idx3-ubyte.gz",
        server.port
    );
    one_line_failure(&out, 1, "first download", &[&missing_url, "404"]);
    // The two test files were fetched and verified; nothing else is there.
    let dir = root.join("mnist");
    assert_eq!(names(&dir), vec![T10K_IMAGES, T10K_LABELS]);
    for (name, bytes) in &files {
        assert_eq!(&fs::read(dir.join(name)).unwrap(), bytes, "{name}");
    }
    assert_eq!(
        server.requests(),
        vec![
            format!("/{T10K_IMAGES}"),
            format!("/{T10K_LABELS}"),
            "/train-images-idx3-ubyte.gz".to_string()
        ]
    );

    // A second run skips the valid files and asks only for what is missing.
    let out = run(
        tmp.path(),
        &[
            "data", "download", "mnist", "--dir", root_s, "--mirror", &mirror,
        ],
    );
    one_line_failure(&out, 1, "second download", &[&missing_url]);
    assert_eq!(server.requests().len(), 4, "{:?}", server.requests());
    assert_eq!(
        server.requests()[3],
        "/train-images-idx3-ubyte.gz",
        "the test files were not fetched again"
    );
    assert_eq!(names(&dir), vec![T10K_IMAGES, T10K_LABELS]);

    // `data list` shows what is present.
    let out = run(tmp.path(), &["data", "list", "--dir", root_s, "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let j = stdout_json(&out);
    assert_eq!(j["root"], root_s);
    let mnist = &j["datasets"][0];
    assert_eq!(mnist["name"], "mnist");
    assert_eq!(
        mnist["present"],
        serde_json::json!([T10K_IMAGES, T10K_LABELS])
    );
    assert_eq!(mnist["missing"].as_array().unwrap().len(), 2);
    assert_eq!(mnist["usable"], true);
    assert_eq!(mnist["verified"], false);
    assert_eq!(j["datasets"][1]["present"], serde_json::json!([]));

    let out = run(tmp.path(), &["data", "list", "--dir", root_s]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let line = text.lines().find(|l| l.starts_with("mnist")).unwrap();
    assert!(line.contains("2/4 files"), "{text}");
    assert!(text.contains("fashion-mnist  0/4 files  missing"), "{text}");
}

/// A made-up file with the size of the real MNIST test images (so that only the checksum
/// can tell it apart).
fn fake_images() -> Vec<u8> {
    (0..T10K_IMAGES_SIZE).map(|i| (i * 7 % 251) as u8).collect()
}

#[test]
fn a_corrupted_file_is_a_checksum_mismatch_and_is_discarded() {
    let mut body = fake_images();
    if let Some(src) = mnist_env() {
        // With the real file at hand, corrupt one byte of it.
        body = fs::read(src.join(T10K_IMAGES)).unwrap();
        body[1000] ^= 0xff;
    }
    let server = Server::start(
        HashMap::from([(T10K_IMAGES.to_string(), body)]),
        Mode::Whole,
    );
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("data");
    let out = run(
        tmp.path(),
        &[
            "data",
            "download",
            "mnist",
            "--dir",
            root.to_str().unwrap(),
            "--mirror",
            &server.url(),
        ],
    );
    let url = format!("{}{T10K_IMAGES}", server.url());
    one_line_failure(
        &out,
        1,
        "corrupted",
        &[
            &url,
            "checksum mismatch",
            "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        ],
    );
    assert!(
        names(&root.join("mnist")).is_empty(),
        "{:?}",
        names(&root.join("mnist"))
    );
}

#[test]
fn a_truncated_body_is_one_line_and_leaves_nothing() {
    let server = Server::start(
        HashMap::from([(T10K_IMAGES.to_string(), fake_images())]),
        Mode::Truncated,
    );
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("data");
    let out = run(
        tmp.path(),
        &[
            "data",
            "download",
            "mnist",
            "--dir",
            root.to_str().unwrap(),
            "--mirror",
            &server.url(),
        ],
    );
    let url = format!("{}{T10K_IMAGES}", server.url());
    let err = one_line_failure(&out, 1, "truncated", &[&url, "stopped after"]);
    assert!(
        err.contains(&format!("of {T10K_IMAGES_SIZE} bytes")),
        "{err}"
    );
    assert!(
        names(&root.join("mnist")).is_empty(),
        "{:?}",
        names(&root.join("mnist"))
    );
}

#[test]
fn a_refused_connection_is_one_line() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("data");
    let mirror = format!("http://127.0.0.1:{port}");
    let out = run(
        tmp.path(),
        &[
            "data",
            "download",
            "mnist",
            "--dir",
            root.to_str().unwrap(),
            "--mirror",
            &mirror,
        ],
    );
    one_line_failure(
        &out,
        1,
        "refused",
        &[
            &format!("http://127.0.0.1:{port}/{T10K_IMAGES}"),
            "cannot connect",
        ],
    );
    assert!(names(&root.join("mnist")).is_empty());
}

#[test]
fn a_file_in_place_of_the_folder_and_unknown_names_are_bad_input() {
    let tmp = tempfile::tempdir().unwrap();
    let blocker = tmp.path().join("data");
    fs::write(&blocker, "not a folder").unwrap();
    let out = run(
        tmp.path(),
        &[
            "data",
            "download",
            "mnist",
            "--dir",
            blocker.to_str().unwrap(),
            "--mirror",
            "http://127.0.0.1:9/",
        ],
    );
    one_line_failure(
        &out,
        2,
        "blocked",
        &[blocker.to_str().unwrap(), "is a file"],
    );

    let out = run(tmp.path(), &["data", "download", "imagenet"]);
    one_line_failure(&out, 2, "unknown", &["imagenet", "mnist"]);
}

#[test]
fn list_of_an_empty_root_and_json_to_a_file() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("empty");
    let out_file = tmp.path().join("list.json");
    let out = run(
        tmp.path(),
        &[
            "data",
            "list",
            "--dir",
            root.to_str().unwrap(),
            "--out",
            out_file.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("odeflow data download cifar10"), "{text}");
    let j: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&out_file).unwrap()).unwrap();
    assert_eq!(j["datasets"].as_array().unwrap().len(), 3);
    assert_eq!(j["datasets"][2]["missing"].as_array().unwrap().len(), 6);
}
