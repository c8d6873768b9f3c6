//! The `teleconsult` command: the broker (`serve`) and the tools its operators use.

mod cli;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let arguments = cli::Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("building the tokio runtime");
    match runtime.block_on(cli::run(arguments)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
