//! The library's errors, typed by what the user has to fix. Each prints as the one-line message
//! the command line shows (exit status 2); `anyhow` is only the binary's.

use std::io;

/// What stopped an analysis.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A capture cannot be read at all (empty, not a capture, a directory, unreadable).
    #[error(transparent)]
    Capture(#[from] crate::capture::CaptureError),
    /// A `--trust` file or folder, or the system's trust store (`--trust-store system`).
    #[error("{0}")]
    Trust(String),
    /// A `--keylog` file.
    #[error("{0}")]
    KeyLog(String),
    /// A `--client`, `--server` or `--sni` value.
    #[error("{0}")]
    Filter(String),
    /// `--export-certs`: the folder or a file in it cannot be written.
    #[error("{0}")]
    Export(String),
    /// A partial analysis (`analyze --partial`, `merge`): cannot be written, is not one, is of
    /// another format version, or was read with other options than the others.
    #[error("{0}")]
    Partial(String),
    /// The temporary file the finished handshakes wait in (`$TMPDIR`).
    #[error("{0}")]
    Storage(#[from] io::Error),
}

/// The library's result.
pub type Result<T> = std::result::Result<T, Error>;
