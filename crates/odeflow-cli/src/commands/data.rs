//! `odeflow data`: download the standard data sets (checked against built-in SHA-256
//! digests) and list what is on disk.
//!
//! ```text
//! odeflow data download mnist                 # into $ODEFLOW_DATA or ~/.cache/odeflow/data
//! odeflow data download cifar10 --dir ~/data  # into ~/data/cifar10
//! odeflow data download mnist --mirror http://host/mnist/
//! odeflow data list [--dir DIR] [--json]
//! ```
//!
//! `--dir` names the data root; each data set goes into `<root>/<name>` (see
//! [`odeflow::data::store`] for the lookup rule when `--dir` is not given). A progress bar
//! goes to stderr, a short summary to stdout; `--json` prints the result as JSON instead,
//! `--out FILE` writes the JSON to a file. A failed download exits with code 1 (network,
//! checksum or disk) or 2 (unknown name, unusable folder) and leaves no partial file under
//! a final name; running it again completes it.

use std::cell::RefCell;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use indicatif::ProgressBar;
use odeflow::data::download::{self, DownloadError, DownloadReport, FileAction, Progress};
use odeflow::data::store::{self, DatasetStatus};
use serde::Serialize;

use crate::error::CliError;
use crate::progress::Reporter;

/// Flags of `odeflow data`.
#[derive(Debug, Args)]
pub struct DataArgs {
    /// What to do.
    #[command(subcommand)]
    action: DataAction,
}

/// The `odeflow data` subcommands.
#[derive(Debug, Subcommand)]
enum DataAction {
    /// Download a data set into <root>/<name>, verifying every file's size and SHA-256.
    Download(DownloadArgs),
    /// List the data sets under the data root: files present or missing, verified or not.
    List(ListArgs),
}

/// Flags shared by the `data` subcommands.
#[derive(Debug, Args)]
struct OutputArgs {
    /// The data root (default: $ODEFLOW_DATA, else ~/.cache/odeflow/data).
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

/// Flags of `odeflow data download`.
#[derive(Debug, Args)]
struct DownloadArgs {
    /// The data set.
    #[arg(value_name = "NAME", value_parser = clap::builder::PossibleValuesParser::new(
        download::CATALOGUE.iter().map(|s| s.name)))]
    name: String,

    /// Fetch every file from <URL>/<file name> instead of the built-in mirrors.
    #[arg(long, value_name = "URL")]
    mirror: Option<String>,

    #[command(flatten)]
    output: OutputArgs,
}

/// Flags of `odeflow data list`.
#[derive(Debug, Args)]
struct ListArgs {
    #[command(flatten)]
    output: OutputArgs,
}

/// Runs `odeflow data`.
pub fn run(args: DataArgs, reporter: &Reporter) -> Result<(), CliError> {
    match args.action {
        DataAction::Download(a) => run_download(a, reporter),
        DataAction::List(a) => run_list(a, reporter),
    }
}

/// Draws one progress bar per file on stderr.
struct Bars<'a> {
    reporter: &'a Reporter,
    bar: RefCell<Option<ProgressBar>>,
}

impl Progress for Bars<'_> {
    fn start(&self, file: &str, total: Option<u64>) {
        let bar = self.reporter.bar(total.unwrap_or(0), file.to_string());
        *self.bar.borrow_mut() = Some(bar);
    }

    fn advance(&self, bytes: u64) {
        if let Some(bar) = self.bar.borrow().as_ref() {
            bar.inc(bytes);
        }
    }

    fn done(&self, _file: &str) {
        if let Some(bar) = self.bar.borrow_mut().take() {
            bar.finish_and_clear();
        }
    }
}

fn download_error(e: DownloadError) -> CliError {
    if e.is_input() {
        CliError::input(e.to_string())
    } else {
        CliError::runtime(e.to_string())
    }
}

fn run_download(args: DownloadArgs, reporter: &Reporter) -> Result<(), CliError> {
    let root = store::data_root(args.output.dir.as_deref());
    let dir = root.join(&args.name);
    let bars = Bars {
        reporter,
        bar: RefCell::new(None),
    };
    let report = download::download(&args.name, &dir, args.mirror.as_deref(), &bars)
        .map_err(download_error)?;
    reporter.result(&report, || download_summary(&report))
}

fn download_summary(r: &DownloadReport) -> String {
    let mut s = String::new();
    for f in &r.files {
        let what = match f.action {
            FileAction::Downloaded => "downloaded",
            FileAction::AlreadyPresent => "present   ",
            FileAction::AlreadyUnpacked => "unpacked  ",
        };
        s += &format!("{what} {} ({} bytes, sha256 ok)\n", f.name, f.bytes);
    }
    if !r.unpacked.is_empty() {
        s += &format!("unpacked   {} files\n", r.unpacked.len());
    }
    s += &format!(
        "{} is complete in {} ({} bytes downloaded)\n",
        r.dataset,
        r.dir.display(),
        r.bytes_downloaded
    );
    s
}

/// The JSON of `odeflow data list`.
#[derive(Debug, Serialize)]
struct Listing {
    root: PathBuf,
    datasets: Vec<DatasetStatus>,
}

fn run_list(args: ListArgs, reporter: &Reporter) -> Result<(), CliError> {
    // A root that does not exist yet lists every data set as missing; one that is not a
    // folder is a mistake.
    if let Some(dir) = &args.output.dir {
        if dir.exists() && !dir.is_dir() {
            return Err(CliError::input(format!(
                "--dir {} is {}, not a folder; give the data root (the folder odeflow data download --dir wrote to)",
                dir.display(),
                odeflow::fsutil::describe_path(dir)
            )));
        }
    }
    let root = store::data_root(args.output.dir.as_deref());
    let listing = Listing {
        datasets: store::status(&root),
        root,
    };
    reporter.result(&listing, || list_table(&listing))
}

fn list_table(l: &Listing) -> String {
    let mut s = format!("data root: {}\n", l.root.display());
    for d in &l.datasets {
        let total = d.present.len() + d.missing.len();
        let state = if d.verified {
            "verified".to_string()
        } else if d.present.is_empty() {
            format!("missing (odeflow data download {})", d.name)
        } else if d.usable {
            format!(
                "usable, not complete or not verified (odeflow data download {})",
                d.name
            )
        } else {
            format!("incomplete (odeflow data download {})", d.name)
        };
        s += &format!(
            "{:<14} {}/{} files  {}  {}\n",
            d.name,
            d.present.len(),
            total,
            state,
            d.dir.display()
        );
    }
    s
}
