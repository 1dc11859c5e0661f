use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = opsdash::cli::Args::parse();
    match opsdash::cli::run(args) {
        Ok(code) => code,
        Err(e) => {
            // One clear line (with its causes), never a panic or a backtrace.
            eprintln!("opsdash: {e:#}");
            ExitCode::FAILURE
        }
    }
}
