//! Errors a command can return, each printing the exact line Redis sends.
//!
//! A handler never formats an error string by hand: it returns a [`CommandError`]
//! variant, and `Display` produces Redis's text (without the leading `-`).
//! This keeps every command failing the same way as Redis does, and keeps the
//! texts in one place where they can be checked against a real redis-server.

use std::fmt;

/// An error reply. `Display` gives the text after the `-` of a RESP error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandError {
    /// `ERR unknown command '<name>', with args beginning with: '<a>' ...`
    UnknownCommand { name: String, args: Vec<String> },
    /// `ERR unknown subcommand '<sub>'. Try <CMD> HELP.`
    UnknownSubcommand { command: String, sub: String },
    /// `ERR wrong number of arguments for '<cmd>' command`
    WrongArity(String),
    /// `ERR syntax error`
    Syntax,
    /// `ERR value is not an integer or out of range`
    NotInteger,
    /// `ERR value is not a valid float`
    NotFloat,
    /// `WRONGTYPE Operation against a key holding the wrong kind of value`
    WrongType,
    /// `ERR invalid expire time in '<cmd>' command`
    InvalidExpire(&'static str),
    /// `ERR increment or decrement would overflow`
    Overflow,
    /// `ERR no such key`
    NoSuchKey,
    /// `NOAUTH Authentication required.`
    NoAuth,
    /// `WRONGPASS invalid username-password pair or user is disabled.`
    WrongPass,
    /// `ERR DB index is out of range`
    DbIndexOutOfRange,
    /// `ERR <message>`: any other `ERR` line whose text is fixed by the caller.
    Err(String),
    /// A full error line with its own prefix (`EXECABORT ...`, `NOPROTO ...`, `BUSY ...`).
    Raw(String),
}

impl CommandError {
    /// `ERR <message>`.
    pub fn err(message: impl Into<String>) -> Self {
        CommandError::Err(message.into())
    }

    /// A full error line, prefix included.
    pub fn raw(line: impl Into<String>) -> Self {
        CommandError::Raw(line.into())
    }

    /// Builds Redis's unknown-command error from the raw request.
    pub fn unknown_command(args: &[bytes::Bytes]) -> Self {
        let name = args.first().map(|a| printable(a, 128)).unwrap_or_default();
        let args = args.iter().skip(1).map(|a| printable(a, 128)).collect();
        CommandError::UnknownCommand { name, args }
    }

    /// Builds Redis's unknown-subcommand error (`Try CONFIG HELP.`).
    pub fn unknown_subcommand(command: &str, sub: &[u8]) -> Self {
        CommandError::UnknownSubcommand {
            command: command.to_ascii_uppercase(),
            sub: printable(sub, 128),
        }
    }
}

/// Text of an argument as Redis quotes it in error messages: at most `max` bytes,
/// lossy UTF-8, new lines replaced by spaces so the error stays one line.
fn printable(arg: &[u8], max: usize) -> String {
    let cut = &arg[..arg.len().min(max)];
    String::from_utf8_lossy(cut)
        .chars()
        .map(|c| if c == '\r' || c == '\n' { ' ' } else { c })
        .collect()
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CommandError::UnknownCommand { name, args } => {
                write!(
                    f,
                    "ERR unknown command '{name}', with args beginning with: "
                )?;
                for a in args.iter().take(16) {
                    write!(f, "'{a}' ")?;
                }
                Ok(())
            }
            CommandError::UnknownSubcommand { command, sub } => {
                write!(f, "ERR unknown subcommand '{sub}'. Try {command} HELP.")
            }
            CommandError::WrongArity(cmd) => {
                write!(f, "ERR wrong number of arguments for '{cmd}' command")
            }
            CommandError::Syntax => f.write_str("ERR syntax error"),
            CommandError::NotInteger => f.write_str("ERR value is not an integer or out of range"),
            CommandError::NotFloat => f.write_str("ERR value is not a valid float"),
            CommandError::WrongType => {
                f.write_str("WRONGTYPE Operation against a key holding the wrong kind of value")
            }
            CommandError::InvalidExpire(cmd) => {
                write!(f, "ERR invalid expire time in '{cmd}' command")
            }
            CommandError::Overflow => f.write_str("ERR increment or decrement would overflow"),
            CommandError::NoSuchKey => f.write_str("ERR no such key"),
            CommandError::NoAuth => f.write_str("NOAUTH Authentication required."),
            CommandError::WrongPass => {
                f.write_str("WRONGPASS invalid username-password pair or user is disabled.")
            }
            CommandError::DbIndexOutOfRange => f.write_str("ERR DB index is out of range"),
            CommandError::Err(m) => write!(f, "ERR {m}"),
            CommandError::Raw(line) => f.write_str(line),
        }
    }
}

impl std::error::Error for CommandError {}

/// The result every command handler returns.
pub type CommandResult = Result<crate::reply::Reply, CommandError>;
