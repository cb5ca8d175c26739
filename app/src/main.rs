use std::process::ExitCode;

use clap::Parser;
use gateway::cli::{Cli, Command, ConfigCommand};

/// mimalloc rather than the system allocator: a new alert allocates a few hundred small
/// blocks (the parsed webhook, the RemediationRequest and its YAML, the answer), and glibc's
/// malloc spent about a fifth of its CPU time on them (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Config(ConfigCommand::Check { dir })) => check_config(&dir),
        Some(Command::Serve(args)) => serve(*args).await,
        Some(Command::Replay(args)) => gateway::replay::command(&args).await,
        Some(Command::Crd) => {
            print!("{}", gateway_adapter_kube::crd::definition_yaml());
            ExitCode::SUCCESS
        }
        None => serve(cli.serve).await,
    }
}

async fn serve(args: gateway::cli::ServeArgs) -> ExitCode {
    gateway::init_logging(args.log_format);
    match gateway::serve::run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

fn check_config(dir: &std::path::Path) -> ExitCode {
    match gateway_adapter_file_config::load_dir(dir) {
        Ok(loaded) => {
            for warning in loaded.warnings {
                eprintln!("warning: {warning}");
            }
            println!("{}: configuration is valid", dir.display());
            ExitCode::SUCCESS
        }
        Err(errors) => {
            for problem in errors.0 {
                eprintln!("error: {problem}");
            }
            ExitCode::FAILURE
        }
    }
}
