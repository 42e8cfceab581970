//! Where data sets live on disk: one lookup rule for every command.
//!
//! **Root folder** ([`data_root`]), first match wins:
//! 1. the folder given explicitly (the CLI's `--data-dir` / `--dir`);
//! 2. the environment variable `ODEFLOW_DATA` ([`DATA_ENV`]), when set and not empty;
//! 3. the platform cache folder: `$XDG_CACHE_HOME/odeflow/data`, else
//!    `$HOME/.cache/odeflow/data` (on Windows `%LOCALAPPDATA%\odeflow\data`);
//! 4. `.odeflow/data` in the current folder when none of those variables is set.
//!
//! **Data-set folder** ([`dataset_dir`]): `<root>/<name>` (`mnist`, `fashion-mnist`,
//! `cifar10`) — which is where `odeflow data download <name>` puts the files — or the
//! explicit folder itself when it directly holds the data set's files. A folder "holds" a
//! data set when the loaders can read it: for MNIST and Fashion-MNIST the two `t10k` IDX
//! files (raw or `.gz`; the training files are optional, see [`super::idx`]), for CIFAR-10
//! at least one binary batch file, directly or in `cifar-10-batches-bin/`. When no folder
//! holds it, the error is one line saying where it looked and naming the command
//! `odeflow data download <name>`.
//!
//! [`status`] reports, for every data set of the catalogue, which files are present under
//! a root and whether they match their published checksums (`odeflow data list`).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::download::{is_unpacked, is_valid, DatasetSpec, CATALOGUE};

/// The environment variable that sets the data root when no folder is given explicitly.
pub const DATA_ENV: &str = "ODEFLOW_DATA";

/// The data root: the explicit folder, else `$ODEFLOW_DATA`, else the platform cache
/// folder (see the module docs).
pub fn data_root(explicit: Option<&Path>) -> PathBuf {
    data_root_with(explicit, &|key| std::env::var_os(key))
}

/// [`data_root`] reading environment variables through `env` instead of the process
/// environment (so that the rule can be tested without changing the environment).
pub fn data_root_with(explicit: Option<&Path>, env: &dyn Fn(&str) -> Option<OsString>) -> PathBuf {
    if let Some(dir) = explicit {
        return dir.to_path_buf();
    }
    let var = |key: &str| env(key).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(dir) = var(DATA_ENV) {
        return dir;
    }
    let cache = if cfg!(windows) {
        var("LOCALAPPDATA")
    } else {
        // The XDG specification ignores relative values.
        var("XDG_CACHE_HOME")
            .filter(|p| p.is_absolute())
            .or_else(|| var("HOME").map(|h| h.join(".cache")))
    };
    match cache {
        Some(cache) => cache.join("odeflow").join("data"),
        None => PathBuf::from(".odeflow").join("data"),
    }
}

fn catalogue_spec(name: &str) -> Result<&'static DatasetSpec, String> {
    super::download::spec(name).ok_or_else(|| {
        format!(
            "unknown data set '{name}': the known ones are {}",
            super::download::known_names()
        )
    })
}

/// The folder that holds the data set `name` (`mnist`, `fashion-mnist`, `cifar10`):
/// `explicit` itself when it directly holds the files, else `<root>/<name>` (see the module
/// docs). When neither holds them, the error is one line naming where it looked and the
/// command that downloads the data set.
pub fn dataset_dir(name: &str, explicit: Option<&Path>) -> Result<PathBuf, String> {
    dataset_dir_with(name, explicit, &|key| std::env::var_os(key))
}

/// [`dataset_dir`] reading environment variables through `env`.
pub fn dataset_dir_with(
    name: &str,
    explicit: Option<&Path>,
    env: &dyn Fn(&str) -> Option<OsString>,
) -> Result<PathBuf, String> {
    let spec = catalogue_spec(name)?;
    let mut looked = Vec::new();
    if let Some(dir) = explicit {
        if holds(spec, dir) {
            return Ok(dir.to_path_buf());
        }
        looked.push(dir.to_path_buf());
    }
    let dir = data_root_with(explicit, env).join(spec.name);
    if holds(spec, &dir) {
        return Ok(dir);
    }
    looked.push(dir);
    let looked: Vec<String> = looked.iter().map(|p| p.display().to_string()).collect();
    let command = match explicit {
        Some(dir) => format!(
            "odeflow data download {} --dir {}",
            spec.name,
            dir.display()
        ),
        None => format!("odeflow data download {}", spec.name),
    };
    Err(format!(
        "no {} files in {} (looked for {}); run `{command}`, or pass --data-dir with a folder holding them",
        spec.title,
        looked.join(" or "),
        required_description(spec),
    ))
}

/// What a folder must hold for the loaders to read the data set, for messages.
fn required_description(spec: &DatasetSpec) -> String {
    match &spec.unpack {
        Some(u) => format!(
            "{} in the folder or in {}/",
            u.files
                .iter()
                .map(|(n, _)| *n)
                .collect::<Vec<_>>()
                .join(", "),
            u.subdir
        ),
        None => required_idx(spec).join(", "),
    }
}

/// The files an IDX data set cannot do without: the `t10k` pair.
fn required_idx(spec: &DatasetSpec) -> Vec<&'static str> {
    spec.files
        .iter()
        .map(|f| f.name)
        .filter(|n| n.starts_with("t10k"))
        .collect()
}

/// `dir/name`, or `dir/name` without `.gz` (the loaders read both).
fn present(dir: &Path, name: &str) -> bool {
    dir.join(name).is_file()
        || name
            .strip_suffix(".gz")
            .is_some_and(|raw| dir.join(raw).is_file())
}

/// True when the loaders can read `spec`'s data set from `dir` (see the module docs).
pub fn holds(spec: &DatasetSpec, dir: &Path) -> bool {
    match &spec.unpack {
        Some(u) => [dir.to_path_buf(), dir.join(u.subdir)]
            .iter()
            .any(|d| u.files.iter().any(|(n, _)| d.join(n).is_file())),
        // The names the MNIST loader accepts: raw or gzip, `-idx` or `.idx`.
        None => [("images", 3), ("labels", 1)].iter().all(|(kind, ndim)| {
            super::idx::find_file(dir, &super::idx::candidates("t10k", kind, *ndim)).is_some()
        }),
    }
}

/// What is on disk of one data set (`odeflow data list`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DatasetStatus {
    /// The data set (`mnist`).
    pub name: String,
    /// The folder looked in: `<root>/<name>`.
    pub dir: PathBuf,
    /// The data set's files found there (relative to `dir`).
    pub present: Vec<String>,
    /// The data set's files not found there.
    pub missing: Vec<String>,
    /// True when the loaders can read the folder (possibly with only the test files).
    pub usable: bool,
    /// True when every file is present and matches its published SHA-256 (for the
    /// unpacked CIFAR-10 batches: its published size).
    pub verified: bool,
}

/// The status of every catalogue data set under `root` (each in `<root>/<name>`).
pub fn status(root: &Path) -> Vec<DatasetStatus> {
    CATALOGUE
        .iter()
        .map(|spec| {
            let dir = root.join(spec.name);
            let (present_files, missing): (Vec<String>, Vec<String>) = spec
                .final_files()
                .into_iter()
                .partition(|name| present(&dir, name));
            let verified = missing.is_empty()
                && match &spec.unpack {
                    Some(u) => is_unpacked(&dir, u),
                    None => spec.files.iter().all(|f| is_valid(&dir.join(f.name), f)),
                };
            DatasetStatus {
                name: spec.name.into(),
                usable: holds(spec, &dir),
                dir,
                present: present_files,
                missing,
                verified,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::fs;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<OsString> {
        let map: HashMap<String, OsString> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), OsString::from(v)))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    #[cfg(not(windows))]
    fn root_lookup_order() {
        let all = env_of(&[
            ("ODEFLOW_DATA", "/env/data"),
            ("XDG_CACHE_HOME", "/xdg"),
            ("HOME", "/home/u"),
        ]);
        assert_eq!(
            data_root_with(Some(Path::new("/explicit")), &all),
            PathBuf::from("/explicit")
        );
        assert_eq!(data_root_with(None, &all), PathBuf::from("/env/data"));
        let no_env = env_of(&[
            ("ODEFLOW_DATA", ""),
            ("XDG_CACHE_HOME", "/xdg"),
            ("HOME", "/home/u"),
        ]);
        assert_eq!(
            data_root_with(None, &no_env),
            PathBuf::from("/xdg/odeflow/data")
        );
        let relative_xdg = env_of(&[("XDG_CACHE_HOME", "rel"), ("HOME", "/home/u")]);
        assert_eq!(
            data_root_with(None, &relative_xdg),
            PathBuf::from("/home/u/.cache/odeflow/data")
        );
        assert_eq!(
            data_root_with(None, &env_of(&[])),
            PathBuf::from(".odeflow/data")
        );
    }

    fn touch(path: &Path) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, b"x").unwrap();
    }

    #[test]
    fn dataset_dir_prefers_a_folder_that_holds_the_files() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let none = env_of(&[]);

        // Missing: one line naming the folder and the download command.
        let e = dataset_dir_with("mnist", Some(root), &none).unwrap_err();
        assert!(!e.contains('\n'), "{e}");
        assert!(e.contains("odeflow data download mnist"), "{e}");
        assert!(e.contains(&root.join("mnist").display().to_string()), "{e}");
        assert!(e.contains("t10k-images-idx3-ubyte.gz"), "{e}");

        // <root>/<name>, the test pair suffices (raw or gzip, either name variant).
        touch(&root.join("mnist/t10k-images-idx3-ubyte.gz"));
        assert!(dataset_dir_with("mnist", Some(root), &none).is_err());
        touch(&root.join("mnist/t10k-labels.idx1-ubyte"));
        assert_eq!(
            dataset_dir_with("mnist", Some(root), &none).unwrap(),
            root.join("mnist")
        );
        // The explicit folder itself when it holds the files.
        let flat = root.join("flat");
        touch(&flat.join("t10k-images-idx3-ubyte.gz"));
        touch(&flat.join("t10k-labels-idx1-ubyte.gz"));
        assert_eq!(
            dataset_dir_with("fashion-mnist", Some(&flat), &none).unwrap(),
            flat
        );
        // The environment variable when nothing is explicit.
        let env = env_of(&[("ODEFLOW_DATA", root.to_str().unwrap())]);
        assert_eq!(
            dataset_dir_with("mnist", None, &env).unwrap(),
            root.join("mnist")
        );

        // CIFAR-10: a batch in cifar-10-batches-bin/.
        assert!(dataset_dir_with("cifar10", Some(root), &none).is_err());
        touch(&root.join("cifar10/cifar-10-batches-bin/test_batch.bin"));
        assert_eq!(
            dataset_dir_with("cifar10", Some(root), &none).unwrap(),
            root.join("cifar10")
        );

        let e = dataset_dir_with("imagenet", None, &none).unwrap_err();
        assert!(e.contains("mnist, fashion-mnist, cifar10"), "{e}");
    }

    #[test]
    fn status_lists_present_and_missing_files() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        touch(&root.join("mnist/t10k-labels-idx1-ubyte.gz"));
        let st = status(root);
        assert_eq!(
            st.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
            ["mnist", "fashion-mnist", "cifar10"]
        );
        assert_eq!(st[0].present, vec!["t10k-labels-idx1-ubyte.gz"]);
        assert_eq!(st[0].missing.len(), 3);
        assert!(!st[0].usable && !st[0].verified);
        assert_eq!(st[2].missing.len(), 6);
        assert_eq!(st[2].dir, root.join("cifar10"));
    }
}
