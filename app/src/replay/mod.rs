//! `gateway replay`: recorded signals fed through the real pipeline on a simulated clock, to see
//! what a configuration would do with them — storms, aggregates, RemediationRequests, API
//! writes — before it is deployed. Nothing is written anywhere: the sink only counts
//! ([`sink::CountingWriter`]), the state is in memory, and there is no network.
//!
//! - [`input`]: files → recorded bodies, each with its time;
//! - [`run`]: one replay through a `Gateway` over the in-memory adapters;
//! - [`report`]: the numbers, as JSON or a table, one configuration or two side by side.

pub mod clock;
pub mod input;
pub mod report;
pub mod run;
pub mod sink;

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;

use gateway_adapter_file_config::Loaded;

use crate::cli::ReplayArgs;
use input::Recorded;
use report::Report;
use run::Options;

/// Bodies past which a terminal sees a progress line.
const PROGRESS_FROM: usize = 1000;

/// Exit status for bad input or a bad config directory.
const BAD_INPUT: u8 = 2;

/// Runs `gateway replay`: 0 with the report on stdout, 2 for bad input or config (each problem
/// on stderr), 1 if the replay itself failed.
pub async fn command(args: &ReplayArgs) -> ExitCode {
    let Some(first) = load_config(&args.config) else {
        return ExitCode::from(BAD_INPUT);
    };
    let second = match &args.compare {
        Some(dir) => match load_config(dir) {
            Some(loaded) => Some(loaded),
            None => return ExitCode::from(BAD_INPUT),
        },
        None => None,
    };
    let mut recorded = match input::read(&args.inputs) {
        Ok(recorded) => recorded,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(BAD_INPUT);
        }
    };
    // In recorded time; bodies of the same instant keep the order they were read in.
    recorded.sort_by_key(|r| r.at);
    let options = args.options();
    let a = match one(&args.config, &first, &options, &recorded, "A").await {
        Ok(report) => report,
        Err(code) => return code,
    };
    let output = match (&args.compare, &second) {
        (Some(dir), Some(loaded)) => {
            let b = match one(dir, loaded, &options, &recorded, "B").await {
                Ok(report) => report,
                Err(code) => return code,
            };
            if args.json || !std::io::stdout().is_terminal() {
                json(&report::comparison(&a, &b))
            } else {
                report::comparison_table(&a, &b)
            }
        }
        _ => {
            if args.json || !std::io::stdout().is_terminal() {
                json(&a)
            } else {
                report::table(&a)
            }
        }
    };
    let mut stdout = std::io::stdout().lock();
    if stdout
        .write_all(output.as_bytes())
        .and_then(|()| stdout.flush())
        .is_err()
    {
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

fn json<T: serde::Serialize>(value: &T) -> String {
    let mut text = serde_json::to_string_pretty(value).unwrap_or_default();
    text.push('\n');
    text
}

/// A config directory loaded and validated as `gateway config check` does; `None` after
/// printing every problem.
fn load_config(dir: &Path) -> Option<Loaded> {
    match gateway_adapter_file_config::load_dir(dir) {
        Ok(loaded) => {
            for warning in &loaded.warnings {
                eprintln!("warning: {}: {warning}", dir.display());
            }
            Some(loaded)
        }
        Err(errors) => {
            for problem in errors.0 {
                eprintln!("error: {problem}");
            }
            None
        }
    }
}

/// One replay and its report; progress on stderr when it is a terminal and the input long.
async fn one(
    dir: &Path,
    settings: &Loaded,
    options: &Options,
    recorded: &[Recorded],
    label: &str,
) -> Result<Report, ExitCode> {
    let total = recorded.len();
    let show = total >= PROGRESS_FROM && std::io::stderr().is_terminal();
    let step = (total / 100).max(1);
    let mut progress = |done: usize| {
        if show && (done.is_multiple_of(step) || done == total) {
            eprint!(
                "\rreplay {label}: {done}/{total} bodies ({}%)",
                done * 100 / total
            );
            if done == total {
                eprintln!();
            }
        }
    };
    match run::replay(settings, options, recorded, &mut progress).await {
        Ok(tally) => Ok(Report::new(&dir.display().to_string(), settings, &tally)),
        Err(e @ run::RunError::Option(_)) => {
            eprintln!("error: {e}");
            Err(ExitCode::from(BAD_INPUT))
        }
        Err(e) => {
            eprintln!("error: {e}");
            Err(ExitCode::FAILURE)
        }
    }
}
