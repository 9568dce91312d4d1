//! The longest common subsequence of two strings (LCS), by the classic dynamic
//! programming table, walked back the way Redis walks it so the same matches are
//! reported in the same order. Memory is O(n·m) as in Redis: the command checks
//! [`table_bytes`] against its limit before calling [`lcs`].

/// A run of consecutive common bytes: inclusive index ranges in each string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Match {
    /// `[start, end]` in the first string.
    pub a: (u32, u32),
    /// `[start, end]` in the second string.
    pub b: (u32, u32),
}

impl Match {
    /// The run's length.
    pub fn len(&self) -> u32 {
        self.a.1 - self.a.0 + 1
    }

    /// Never true: a run holds at least one byte.
    pub fn is_empty(&self) -> bool {
        false
    }
}

/// What LCS computes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lcs {
    /// The common subsequence itself.
    pub string: Vec<u8>,
    /// Its runs, from the end of the strings backwards (Redis's order).
    pub matches: Vec<Match>,
}

/// Why no answer was computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LcsError {
    /// A string is too long for 32-bit indexes.
    TooLong,
    /// The table could not be allocated.
    NoMemory,
}

/// Bytes of the table for strings of these lengths (4 per cell), or `None` past
/// `u64`.
pub fn table_bytes(alen: usize, blen: usize) -> Option<u64> {
    let side = |n: usize| u64::try_from(n).ok()?.checked_add(1);
    let cells = side(alen)?.checked_mul(side(blen)?)?;
    cells.checked_mul(4)
}

/// The LCS of `a` and `b`.
pub fn lcs(a: &[u8], b: &[u8]) -> Result<Lcs, LcsError> {
    let limit = u32::MAX as usize - 1;
    if a.len() >= limit || b.len() >= limit {
        return Err(LcsError::TooLong);
    }
    let width = b.len() + 1;
    let cells = (a.len() + 1).checked_mul(width).ok_or(LcsError::NoMemory)?;
    let mut table: Vec<u32> = Vec::new();
    table
        .try_reserve_exact(cells)
        .map_err(|_| LcsError::NoMemory)?;
    table.resize(cells, 0);
    // table[i * width + j]: the LCS length of a[..i] and b[..j].
    for (i, &x) in a.iter().enumerate() {
        let (prev, row) = table[i * width..(i + 2) * width].split_at_mut(width);
        for (j, &y) in b.iter().enumerate() {
            row[j + 1] = if x == y {
                prev[j] + 1
            } else {
                prev[j + 1].max(row[j])
            };
        }
    }
    let at = |i: usize, j: usize| table[i * width + j];
    let total = at(a.len(), b.len()) as usize;
    let mut string = vec![0u8; total];
    let mut matches = Vec::new();
    let mut run: Option<Match> = None;
    let (mut i, mut j, mut k) = (a.len(), b.len(), total);
    while i > 0 && j > 0 {
        let emit;
        if a[i - 1] == b[j - 1] {
            k -= 1;
            string[k] = a[i - 1];
            let (ai, bj) = ((i - 1) as u32, (j - 1) as u32);
            let m = match run {
                // The run grows backwards while the match stays on the diagonal.
                Some(mut m) if m.a.0 == ai + 1 && m.b.0 == bj + 1 => {
                    m.a.0 = ai;
                    m.b.0 = bj;
                    m
                }
                _ => Match {
                    a: (ai, ai),
                    b: (bj, bj),
                },
            };
            run = Some(m);
            emit = ai == 0 || bj == 0;
            i -= 1;
            j -= 1;
        } else {
            if at(i - 1, j) > at(i, j - 1) {
                i -= 1;
            } else {
                j -= 1;
            }
            emit = run.is_some();
        }
        if emit {
            if let Some(m) = run.take() {
                matches.push(m);
            }
        }
    }
    Ok(Lcs { string, matches })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_redis_documented_example() {
        let r = lcs(b"ohmytext", b"mynewtext").unwrap();
        assert_eq!(r.string, b"mytext");
        assert_eq!(
            r.matches,
            [
                Match {
                    a: (4, 7),
                    b: (5, 8)
                },
                Match {
                    a: (2, 3),
                    b: (0, 1)
                },
            ]
        );
        assert_eq!(r.matches[0].len(), 4);
    }

    #[test]
    fn empty_and_disjoint_strings_have_no_matches() {
        assert_eq!(
            lcs(b"", b"abc").unwrap(),
            Lcs {
                string: vec![],
                matches: vec![]
            }
        );
        assert_eq!(lcs(b"abc", b"xyz").unwrap().matches, []);
        assert_eq!(table_bytes(0, 0), Some(4));
        assert_eq!(table_bytes(usize::MAX, usize::MAX), None);
    }

    /// The length agrees with a brute-force LCS on small random strings, and every
    /// reported run is a common substring.
    #[test]
    fn agrees_with_brute_force() {
        fn brute(a: &[u8], b: &[u8]) -> usize {
            if a.is_empty() || b.is_empty() {
                return 0;
            }
            if a[0] == b[0] {
                return 1 + brute(&a[1..], &b[1..]);
            }
            brute(&a[1..], b).max(brute(a, &b[1..]))
        }
        let mut rng = fastrand::Rng::with_seed(3);
        for _ in 0..300 {
            let a: Vec<u8> = (0..rng.usize(0..9)).map(|_| rng.u8(b'a'..b'd')).collect();
            let b: Vec<u8> = (0..rng.usize(0..9)).map(|_| rng.u8(b'a'..b'd')).collect();
            let r = lcs(&a, &b).unwrap();
            assert_eq!(r.string.len(), brute(&a, &b));
            let covered: u32 = r.matches.iter().map(Match::len).sum();
            assert_eq!(covered as usize, r.string.len());
            for m in &r.matches {
                assert_eq!(
                    a[m.a.0 as usize..=m.a.1 as usize],
                    b[m.b.0 as usize..=m.b.1 as usize]
                );
            }
        }
    }
}
