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
    /// `ERR source and destination objects are the same` (MOVE, COPY).
    SameObject,
    /// `MISCONF Redis is configured to save RDB snapshots, ...`: writes are
    /// refused after a failed background save (`stop-writes-on-bgsave-error`).
    Misconf,
    /// `ERR <message>`: any other `ERR` line whose text is fixed by the caller.
    Err(String),
    /// A full error line with its own prefix (`EXECABORT ...`, `NOPROTO ...`, `BUSY ...`).
    Raw(String),
}

impl CommandError {
    /// `ERR <message>`. New lines become spaces, as Redis does to every error
    /// it formats: a message may quote client bytes, and a CR or LF inside it
    /// would end the error line early and desynchronise the protocol.
    pub fn err(message: impl Into<String>) -> Self {
        CommandError::Err(one_line(message.into()))
    }

    /// A full error line, prefix included; new lines become spaces (see `err`).
    pub fn raw(line: impl Into<String>) -> Self {
        CommandError::Raw(one_line(line.into()))
    }

    /// Builds Redis's unknown-command error from the raw request: the name and each
    /// argument are read as C strings (cut at a NUL byte) and the quoted arguments
    /// stop once they fill 128 bytes, as Redis's `'%.*s' ` loop does.
    pub fn unknown_command(args: &[bytes::Bytes]) -> Self {
        let name = args.first().map(|a| printable(a, 128)).unwrap_or_default();
        let mut shown = Vec::new();
        let mut used = 0;
        for a in args.iter().skip(1) {
            if used >= 128 {
                break;
            }
            let a = until_nul(a);
            let a = &a[..a.len().min(128 - used)];
            used += a.len() + 3;
            shown.push(printable(a, 128));
        }
        CommandError::UnknownCommand { name, args: shown }
    }

    /// Builds Redis's unknown-subcommand error (`Try CONFIG HELP.`).
    pub fn unknown_subcommand(command: &str, sub: &[u8]) -> Self {
        CommandError::UnknownSubcommand {
            command: command.to_ascii_uppercase(),
            sub: printable(sub, 128),
        }
    }

    /// Redis's `addReplySubcommandSyntaxError`: a known subcommand with
    /// arguments it does not take, named as the client typed it.
    pub fn subcommand_syntax(container: &str, sub: &[u8]) -> Self {
        CommandError::err(format!(
            "unknown subcommand or wrong number of arguments for '{}'. Try {} HELP.",
            String::from_utf8_lossy(sub),
            container.to_ascii_uppercase()
        ))
    }
}

/// `arg` up to its first NUL byte: Redis prints names with `%s`.
fn until_nul(arg: &[u8]) -> &[u8] {
    arg.iter().position(|&b| b == 0).map_or(arg, |n| &arg[..n])
}

/// Text of an argument as Redis quotes it in error messages: up to a NUL byte and
/// at most `max` bytes, lossy UTF-8, new lines replaced by spaces so the error
/// stays one line.
fn printable(arg: &[u8], max: usize) -> String {
    let arg = until_nul(arg);
    let cut = &arg[..arg.len().min(max)];
    one_line(String::from_utf8_lossy(cut).into_owned())
}

/// `text` with every CR and LF replaced by a space.
fn one_line(text: String) -> String {
    if text.contains(['\r', '\n']) {
        text.replace(['\r', '\n'], " ")
    } else {
        text
    }
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CommandError::UnknownCommand { name, args } => {
                write!(
                    f,
                    "ERR unknown command '{name}', with args beginning with: "
                )?;
                for a in args {
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
            CommandError::SameObject => {
                f.write_str("ERR source and destination objects are the same")
            }
            CommandError::Misconf => f.write_str(
                "MISCONF Redis is configured to save RDB snapshots, but it's currently unable to persist to disk. Commands that may modify the data set are disabled, because this instance is configured to report errors during writes if RDB snapshotting fails (stop-writes-on-bgsave-error option). Please check the Redis logs for details about the RDB error.",
            ),
            CommandError::Err(m) => write!(f, "ERR {m}"),
            CommandError::Raw(line) => f.write_str(line),
        }
    }
}

impl std::error::Error for CommandError {}

impl From<crate::types::WrongType> for CommandError {
    fn from(_: crate::types::WrongType) -> Self {
        CommandError::WrongType
    }
}
