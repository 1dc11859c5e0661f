use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = opsdash::cli::Args::parse();
    match opsdash::cli::run(args) {
        Ok(code) => code,
        // The reader of our output left (`opsdash export | head`): end as `ls | head` does,
        // quietly (see src/cli/out.rs for why this, and not SIGPIPE's default, everywhere).
        Err(e) if opsdash::cli::out::is_broken_pipe(&e) => opsdash::cli::out::reader_gone(),
        Err(e) => {
            // One clear line (with its causes), never a panic or a backtrace.
            eprintln!("opsdash: {e:#}");
            ExitCode::FAILURE
        }
    }
}
