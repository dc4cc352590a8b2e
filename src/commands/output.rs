//! Writing results to stdout without panicking when the reader goes away (`ttfuse ... | head`).

use std::io::{ErrorKind, Write};

use anyhow::{Context, Result};

/// Writes `text` to stdout; a closed pipe ends the output quietly.
pub fn emit(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == ErrorKind::BrokenPipe => Ok(()),
        other => other.context("writing to stdout"),
    }
}

/// `print!` through [`emit`], returning its error with `?`.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::commands::output::emit(&format!($($arg)*))?
    };
}

/// `println!` through [`emit`], returning its error with `?`.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::commands::output::emit(&format!("{}\n", format_args!($($arg)*)))?
    };
}

pub(crate) use {out, outln};
