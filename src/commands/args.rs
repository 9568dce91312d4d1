//! One cursor over a command's arguments, so handlers read keys, numbers and
//! options in order instead of indexing `args[n]`: each read either returns the
//! argument or the error Redis gives for it, and [`Args::finish`] refuses what is
//! left over.
//!
//! ```ignore
//! let mut a = Args::new(args); // after the command name
//! let key = a.key()?;
//! let count = if a.keyword("COUNT") { Some(a.int()?) } else { None };
//! a.finish()?;
//! ```

use bytes::Bytes;

use super::{int_arg, is, parse_float};
use crate::error::CommandError;

/// A cursor over `args[1..]` (the name is skipped).
#[derive(Debug, Clone)]
pub struct Args<'a> {
    args: &'a [Bytes],
    pos: usize,
}

impl<'a> Args<'a> {
    /// A cursor at the first argument after the command name.
    pub fn new(args: &'a [Bytes]) -> Self {
        Args {
            args,
            pos: 1.min(args.len()),
        }
    }

    /// The next argument, if any, without consuming it.
    pub fn peek(&self) -> Option<&'a Bytes> {
        self.args.get(self.pos)
    }

    /// The next argument, if any.
    pub fn next_arg(&mut self) -> Option<&'a Bytes> {
        let arg = self.args.get(self.pos)?;
        self.pos += 1;
        Some(arg)
    }

    /// The next argument; `ERR syntax error` when there is none.
    pub fn bytes(&mut self) -> Result<&'a Bytes, CommandError> {
        self.next_arg().ok_or(CommandError::Syntax)
    }

    /// The next argument, read as a key.
    pub fn key(&mut self) -> Result<&'a Bytes, CommandError> {
        self.bytes()
    }

    /// The next argument as a 64-bit integer (`ERR value is not an integer or
    /// out of range`).
    pub fn int(&mut self) -> Result<i64, CommandError> {
        int_arg(self.bytes()?)
    }

    /// The next argument as a float, as Redis's `strtold` reads it (`ERR value
    /// is not a valid float`).
    pub fn float(&mut self) -> Result<f64, CommandError> {
        parse_float(self.bytes()?).ok_or(CommandError::NotFloat)
    }

    /// Consumes the next argument if it is the option `name` (any case).
    pub fn keyword(&mut self, name: &str) -> bool {
        match self.peek() {
            Some(arg) if is(arg, name) => {
                self.pos += 1;
                true
            }
            _ => false,
        }
    }

    /// Consumes the next argument if it is one of `names` (any case) and returns
    /// its index in `names`.
    pub fn one_of(&mut self, names: &[&str]) -> Option<usize> {
        let arg = self.peek()?;
        let found = names.iter().position(|n| is(arg, n))?;
        self.pos += 1;
        Some(found)
    }

    /// The next `n` arguments; `ERR syntax error` if fewer are left.
    pub fn take(&mut self, n: usize) -> Result<&'a [Bytes], CommandError> {
        if self.remaining() < n {
            return Err(CommandError::Syntax);
        }
        let taken = &self.args[self.pos..self.pos + n];
        self.pos += n;
        Ok(taken)
    }

    /// Everything not read yet, consumed.
    pub fn rest(&mut self) -> &'a [Bytes] {
        let rest = &self.args[self.pos..];
        self.pos = self.args.len();
        rest
    }

    /// Where the cursor is: the index in the arguments (the name is 0) of
    /// the next one.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// How many arguments are left.
    pub fn remaining(&self) -> usize {
        self.args.len() - self.pos
    }

    /// Whether every argument has been read.
    pub fn is_done(&self) -> bool {
        self.pos >= self.args.len()
    }

    /// `ERR syntax error` if any argument is left unread.
    pub fn finish(&self) -> Result<(), CommandError> {
        if self.is_done() {
            Ok(())
        } else {
            Err(CommandError::Syntax)
        }
    }
}

/// An integer of at least 1, with `message` for every failure (a
/// non-integer too), as Redis's numkeys and COUNT of LMPOP and ZMPOP.
pub fn at_least_one(arg: &[u8], message: &'static str) -> Result<usize, CommandError> {
    match int_arg(arg) {
        Ok(n) if n >= 1 => usize::try_from(n).map_err(|_| CommandError::err(message)),
        _ => Err(CommandError::err(message)),
    }
}

/// The `[COUNT count]` that ends LMPOP, ZMPOP and their blocking forms, read
/// from `args[at..]`: 1 without it; a repeated COUNT or anything else is a
/// syntax error.
pub fn mpop_count(args: &[Bytes], at: usize) -> Result<usize, CommandError> {
    let mut count = None;
    let mut j = at;
    while let Some(opt) = args.get(j) {
        match args.get(j + 1) {
            Some(n) if count.is_none() && is(opt, "count") => {
                count = Some(at_least_one(n, "count should be greater than 0")?);
                j += 2;
            }
            _ => return Err(CommandError::Syntax),
        }
    }
    Ok(count.unwrap_or(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &[&str]) -> Vec<Bytes> {
        words
            .iter()
            .map(|w| Bytes::copy_from_slice(w.as_bytes()))
            .collect()
    }

    #[test]
    fn reads_in_order_and_refuses_leftovers() {
        let v = args(&["zadd", "k", "nx", "1.5", "m", "extra"]);
        let mut a = Args::new(&v);
        assert_eq!(a.key().unwrap().as_ref(), b"k");
        assert!(!a.keyword("XX"));
        assert!(a.keyword("NX"));
        assert_eq!(a.float().unwrap(), 1.5);
        assert_eq!(a.bytes().unwrap().as_ref(), b"m");
        assert_eq!(a.finish(), Err(CommandError::Syntax));
        assert_eq!(a.rest().len(), 1);
        assert!(a.is_done());
        assert_eq!(a.bytes(), Err(CommandError::Syntax));
        a.finish().unwrap();
    }

    #[test]
    fn numbers_fail_with_redis_errors() {
        let v = args(&["x", "abc", "abc", "3"]);
        let mut a = Args::new(&v);
        assert_eq!(a.int(), Err(CommandError::NotInteger));
        assert_eq!(a.float(), Err(CommandError::NotFloat));
        assert_eq!(a.one_of(&["1", "2"]), None);
        assert_eq!(a.take(2), Err(CommandError::Syntax));
        assert_eq!(a.take(1).unwrap().len(), 1);
    }
}
