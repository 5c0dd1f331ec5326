//! A mistake in what the user asked for, told apart from every other failure: the binary exits
//! with code 2 for it (clap's code for a bad command line), 1 for the rest.

/// A mistake in the command line: message and exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);
