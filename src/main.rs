//! The `agentgate` binary: parse the command line, start logging, run the command.

use std::process::ExitCode;

use clap::Parser;

use agentgate::cli::{self, Cli};

/// mimalloc: the proxy allocates small, short-lived buffers on worker threads and frees
/// some on the request log writer's thread, which glibc's allocator handles poorly.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The main thread runs the command (for `serve`: the background work; requests are
/// served by worker threads with runtimes of their own).
fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(error) = agentgate::telemetry::init(cli.log_filter(), cli.log_format) {
        eprintln!("agentgate: invalid --log filter: {error}");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("agentgate: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) if is_broken_pipe(&error) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("agentgate: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Whether the command stopped because its output's reader went away (`... | head`): that
/// ends the command as a success, like other command-line tools.
fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
