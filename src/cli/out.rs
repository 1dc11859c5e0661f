//! Standard output of every CLI command, and what happens when its reader goes away.
//!
//! `opsdash alerts list | head -2` closes the pipe after two lines. Rust ignores SIGPIPE, so
//! `println!` then panics ("failed printing to stdout: Broken pipe", exit 101). We do not restore
//! SIGPIPE's default disposition process-wide: the same process writes to child processes' pipes
//! (the `command` notification channel) and sockets, where a reader that left must be an error
//! to report, never the silent death of the worker. Instead every line a command prints goes
//! through `outln!`/`out!` here, and an error chain that ends in a broken pipe (export's
//! streaming writer) is caught in `main`; both end the process as `ls | head` ends: killed by
//! SIGPIPE (status 141 in the shell), with nothing on stderr.

use std::fmt;
use std::io::{self, Write};

/// Writes to stdout; a closed stdout ends the process quietly (see the module comment).
pub fn write_fmt(args: fmt::Arguments<'_>) {
    let mut o = io::stdout().lock();
    if let Err(e) = o.write_fmt(args) {
        if e.kind() == io::ErrorKind::BrokenPipe {
            reader_gone();
        }
        // Any other write error (disk full behind a redirect) is the user's to see.
        drop(o);
        eprintln!("opsdash: writing to standard output: {e}");
        std::process::exit(1);
    }
}

/// Whether an error was caused by a closed stdout (or any broken pipe we were writing to).
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
    })
}

/// Ends the process as a program with SIGPIPE's default disposition would have ended: by the
/// signal itself, so the shell and `set -o pipefail` see the conventional 128+13.
pub fn reader_gone() -> ! {
    #[cfg(unix)]
    // SAFETY: resetting a signal's disposition and raising it has no memory-safety effect; the
    // process ends here.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        libc::raise(libc::SIGPIPE);
    }
    std::process::exit(128 + 13)
}

/// `println!` for CLI output: see the module comment.
#[macro_export]
macro_rules! outln {
    () => { $crate::cli::out::write_fmt(format_args!("\n")) };
    ($($arg:tt)*) => {
        $crate::cli::out::write_fmt(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!` for CLI output.
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => { $crate::cli::out::write_fmt(format_args!($($arg)*)) };
}
