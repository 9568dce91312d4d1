//! Server options, with redis-server's names, defaults and syntax.
//!
//! One table, [`PARAMS`], describes every option: its name, how to read it and how
//! to set it. The command line, a `redis.conf`-style file, the embedding builder and
//! `CONFIG GET`/`CONFIG SET` all go through it, so an option behaves the same
//! wherever it is given. Persistence options are accepted and ignored (latchkey
//! keeps data in memory only); an unknown option is refused.

use std::path::PathBuf;

/// All options of a running server.
#[derive(Debug, Clone)]
pub struct Config {
    /// Addresses to listen on (`bind`).
    pub bind: Vec<String>,
    /// TCP port (`port`); 0 means no TCP listener for the binary, a free port for
    /// the embedding API.
    pub port: u16,
    /// Unix socket path (`unixsocket`).
    pub unixsocket: Option<PathBuf>,
    /// Unix socket permissions, octal (`unixsocketperm`).
    pub unixsocketperm: u32,
    /// Password clients must give with AUTH (`requirepass`).
    pub requirepass: Option<String>,
    /// Number of databases (`databases`).
    pub databases: usize,
    /// Most clients connected at once (`maxclients`).
    pub maxclients: usize,
    /// Seconds a client may stay idle before it is closed; 0 = never (`timeout`).
    pub timeout: u64,
    /// Longest argument accepted (`proto-max-bulk-len`).
    pub proto_max_bulk_len: i64,
    /// Largest query buffer of one client before it is closed
    /// (`client-query-buffer-limit`).
    pub client_query_buffer_limit: usize,
    /// `debug`, `verbose`, `notice` or `warning` (`loglevel`).
    pub loglevel: String,
    /// Log file; empty for standard output (`logfile`).
    pub logfile: String,
    /// Working directory (`dir`); kept for compatibility, nothing is written there.
    pub dir: PathBuf,
    /// Accepted for compatibility, no effect (`save`).
    pub save: String,
    /// Accepted for compatibility, no effect (`appendonly`).
    pub appendonly: bool,
    /// Milliseconds before a running script makes other clients get `BUSY`
    /// (`busy-reply-threshold`, alias `lua-time-limit`).
    pub busy_reply_threshold: u64,
    /// Threads serving connections (`io-threads`; the binary's tokio worker count).
    /// Default 1, as in Redis: on a small machine shared with clients one thread
    /// serves fastest; raise it on larger machines.
    pub io_threads: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            bind: vec!["127.0.0.1".into()],
            port: 6379,
            unixsocket: None,
            unixsocketperm: 0,
            requirepass: None,
            databases: 16,
            maxclients: 10000,
            timeout: 0,
            proto_max_bulk_len: 512 * 1024 * 1024,
            client_query_buffer_limit: 1024 * 1024 * 1024,
            loglevel: "notice".into(),
            logfile: String::new(),
            dir: PathBuf::from("."),
            save: String::new(),
            appendonly: false,
            busy_reply_threshold: 5000,
            io_threads: 1,
        }
    }
}

/// One option: its name, and how to read and change it.
pub struct Param {
    /// The name, as in redis.conf and CONFIG GET.
    pub name: &'static str,
    /// Other accepted names.
    pub aliases: &'static [&'static str],
    /// Whether CONFIG SET may change it on a running server.
    pub mutable: bool,
    /// Persistence options that are accepted and ignored, with a warning.
    pub ignored: bool,
    get: fn(&Config) -> String,
    set: fn(&mut Config, &[String]) -> Result<(), String>,
}

fn one(values: &[String]) -> Result<&str, String> {
    match values {
        [v] => Ok(v),
        _ => Err("wrong number of arguments".into()),
    }
}

fn int<T: std::str::FromStr>(values: &[String]) -> Result<T, String> {
    let v = one(values)?;
    v.parse()
        .map_err(|_| "argument couldn't be parsed into an integer".to_string())
}

fn boolean(values: &[String]) -> Result<bool, String> {
    match one(values)?.to_ascii_lowercase().as_str() {
        "yes" => Ok(true),
        "no" => Ok(false),
        _ => Err("argument must be 'yes' or 'no'".into()),
    }
}

/// Parses a memory size as redis.conf does: `1gb`, `512mb`, `100k`, or bytes.
pub fn memory(values: &[String]) -> Result<u64, String> {
    let v = one(values)?.to_ascii_lowercase();
    let (num, mul) = [
        ("gb", 1u64 << 30),
        ("mb", 1 << 20),
        ("kb", 1 << 10),
        ("g", 1_000_000_000),
        ("m", 1_000_000),
        ("k", 1_000),
        ("b", 1),
    ]
    .iter()
    .find_map(|(suffix, mul)| v.strip_suffix(suffix).map(|n| (n.to_string(), *mul)))
    .unwrap_or((v.clone(), 1));
    num.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mul))
        .ok_or_else(|| "argument must be a memory value".to_string())
}

/// Every option latchkey knows, in the order `CONFIG GET *` lists them.
pub static PARAMS: &[Param] = &[
    Param {
        name: "bind",
        aliases: &[],
        mutable: false,
        ignored: false,
        get: |c| c.bind.join(" "),
        set: |c, v| {
            c.bind = v
                .iter()
                .flat_map(|s| s.split_whitespace())
                .map(String::from)
                .collect();
            Ok(())
        },
    },
    Param {
        name: "port",
        aliases: &[],
        mutable: false,
        ignored: false,
        get: |c| c.port.to_string(),
        set: |c, v| {
            c.port = int(v)?;
            Ok(())
        },
    },
    Param {
        name: "unixsocket",
        aliases: &[],
        mutable: false,
        ignored: false,
        get: |c| {
            c.unixsocket
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        },
        set: |c, v| {
            let p = one(v)?;
            c.unixsocket = (!p.is_empty()).then(|| PathBuf::from(p));
            Ok(())
        },
    },
    Param {
        name: "unixsocketperm",
        aliases: &[],
        mutable: false,
        ignored: false,
        get: |c| format!("{:o}", c.unixsocketperm),
        set: |c, v| {
            c.unixsocketperm = u32::from_str_radix(one(v)?, 8)
                .map_err(|_| "argument couldn't be parsed into an integer".to_string())?;
            Ok(())
        },
    },
    Param {
        name: "requirepass",
        aliases: &[],
        mutable: true,
        ignored: false,
        get: |c| c.requirepass.clone().unwrap_or_default(),
        set: |c, v| {
            let p = one(v)?;
            c.requirepass = (!p.is_empty()).then(|| p.to_string());
            Ok(())
        },
    },
    Param {
        name: "databases",
        aliases: &[],
        mutable: false,
        ignored: false,
        get: |c| c.databases.to_string(),
        set: |c, v| {
            let n: usize = int(v)?;
            if n == 0 {
                return Err("argument must be between 1 and 2147483647 inclusive".into());
            }
            c.databases = n;
            Ok(())
        },
    },
    Param {
        name: "maxclients",
        aliases: &[],
        mutable: true,
        ignored: false,
        get: |c| c.maxclients.to_string(),
        set: |c, v| {
            c.maxclients = int(v)?;
            Ok(())
        },
    },
    Param {
        name: "timeout",
        aliases: &[],
        mutable: true,
        ignored: false,
        get: |c| c.timeout.to_string(),
        set: |c, v| {
            c.timeout = int(v)?;
            Ok(())
        },
    },
    Param {
        name: "proto-max-bulk-len",
        aliases: &[],
        mutable: true,
        ignored: false,
        get: |c| c.proto_max_bulk_len.to_string(),
        set: |c, v| {
            let n = memory(v)?;
            if n < 1024 * 1024 {
                return Err("argument must be a memory value at least 1mb".into());
            }
            c.proto_max_bulk_len = n.min(i64::MAX as u64) as i64;
            Ok(())
        },
    },
    Param {
        name: "client-query-buffer-limit",
        aliases: &[],
        mutable: true,
        ignored: false,
        get: |c| c.client_query_buffer_limit.to_string(),
        set: |c, v| {
            c.client_query_buffer_limit = memory(v)? as usize;
            Ok(())
        },
    },
    Param {
        name: "loglevel",
        aliases: &[],
        mutable: true,
        ignored: false,
        get: |c| c.loglevel.clone(),
        set: |c, v| {
            let l = one(v)?.to_ascii_lowercase();
            if !["debug", "verbose", "notice", "warning", "nothing"].contains(&l.as_str()) {
                return Err("argument(s) must be one of the following: debug, verbose, notice, warning, nothing".into());
            }
            c.loglevel = l;
            Ok(())
        },
    },
    Param {
        name: "logfile",
        aliases: &[],
        mutable: false,
        ignored: false,
        get: |c| c.logfile.clone(),
        set: |c, v| {
            c.logfile = one(v)?.to_string();
            Ok(())
        },
    },
    Param {
        name: "dir",
        aliases: &[],
        mutable: true,
        ignored: false,
        get: |c| c.dir.display().to_string(),
        set: |c, v| {
            c.dir = PathBuf::from(one(v)?);
            Ok(())
        },
    },
    Param {
        name: "busy-reply-threshold",
        aliases: &["lua-time-limit"],
        mutable: true,
        ignored: false,
        get: |c| c.busy_reply_threshold.to_string(),
        set: |c, v| {
            c.busy_reply_threshold = int(v)?;
            Ok(())
        },
    },
    Param {
        name: "io-threads",
        aliases: &[],
        mutable: false,
        ignored: false,
        get: |c| c.io_threads.to_string(),
        set: |c, v| {
            let n: usize = int(v)?;
            if !(1..=128).contains(&n) {
                return Err("argument must be between 1 and 128 inclusive".into());
            }
            c.io_threads = n;
            Ok(())
        },
    },
    Param {
        name: "save",
        aliases: &[],
        mutable: true,
        ignored: true,
        get: |c| c.save.clone(),
        set: |c, v| {
            c.save = v.join(" ");
            Ok(())
        },
    },
    Param {
        name: "appendonly",
        aliases: &[],
        mutable: true,
        ignored: true,
        get: |c| if c.appendonly { "yes" } else { "no" }.into(),
        set: |c, v| {
            c.appendonly = boolean(v)?;
            Ok(())
        },
    },
    Param {
        name: "daemonize",
        aliases: &[],
        mutable: false,
        ignored: true,
        get: |_| "no".into(),
        set: |_, v| boolean(v).map(drop),
    },
    Param {
        name: "maxmemory",
        aliases: &[],
        mutable: true,
        ignored: true,
        get: |_| "0".into(),
        set: |_, v| memory(v).map(drop),
    },
    Param {
        name: "replica-read-only",
        aliases: &["slave-read-only"],
        mutable: true,
        ignored: true,
        get: |_| "yes".into(),
        set: |_, v| boolean(v).map(drop),
    },
    Param {
        name: "appendfsync",
        aliases: &[],
        mutable: true,
        ignored: true,
        get: |_| "everysec".into(),
        set: |_, v| one(v).map(drop),
    },
    Param {
        name: "dbfilename",
        aliases: &[],
        mutable: true,
        ignored: true,
        get: |_| "dump.rdb".into(),
        set: |_, v| one(v).map(drop),
    },
    Param {
        name: "appendfilename",
        aliases: &[],
        mutable: false,
        ignored: true,
        get: |_| "appendonly.aof".into(),
        set: |_, v| one(v).map(drop),
    },
];

impl Param {
    /// The option's current value as CONFIG GET shows it.
    pub fn get(&self, config: &Config) -> String {
        (self.get)(config)
    }

    /// Sets the option from its value words; the error says why, as CONFIG SET
    /// reports it (`argument couldn't be parsed into an integer`).
    pub fn set(&self, config: &mut Config, values: &[String]) -> Result<(), String> {
        (self.set)(config, values)
    }
}

/// The option named `name` (case-insensitive, aliases included).
pub fn find(name: &str) -> Option<&'static Param> {
    PARAMS.iter().find(|p| {
        p.name.eq_ignore_ascii_case(name) || p.aliases.iter().any(|a| a.eq_ignore_ascii_case(name))
    })
}

impl Config {
    /// Sets option `name` from its value words, as a config-file line or a
    /// `--name value ...` argument gives them. Errors say why, Redis-style.
    pub fn apply(&mut self, name: &str, values: &[String]) -> Result<&'static Param, String> {
        let param = find(name)
            .ok_or_else(|| format!("Bad directive or wrong number of arguments: '{name}'"))?;
        (param.set)(self, values).map_err(|e| format!("'{name}' {e}"))?;
        Ok(param)
    }

    /// Reads a redis.conf-style text: one `name value ...` per line, `#` comments,
    /// quoted values as in redis.conf. Returns the options it set, in order.
    pub fn apply_file(&mut self, text: &str) -> Result<Vec<&'static Param>, String> {
        let mut applied = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let words = crate::protocol::split_args(line.as_bytes())
                .ok_or_else(|| format!("line {}: unbalanced quotes", n + 1))?;
            let words: Vec<String> = words
                .into_iter()
                .map(|w| String::from_utf8_lossy(&w).into_owned())
                .collect();
            if let Some((name, values)) = words.split_first() {
                applied.push(
                    self.apply(name, values)
                        .map_err(|e| format!("line {}: {e}", n + 1))?,
                );
            }
        }
        Ok(applied)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_file_sets_options_and_ignores_persistence() {
        let mut c = Config::default();
        let applied = c
            .apply_file("# comment\nport 7000\nsave \"\"\nrequirepass \"s p\"\nappendonly no\n")
            .unwrap();
        assert_eq!(c.port, 7000);
        assert_eq!(c.requirepass.as_deref(), Some("s p"));
        assert!(applied.iter().any(|p| p.ignored));
    }

    #[test]
    fn unknown_option_is_refused() {
        assert!(Config::default()
            .apply("no-such-option", &["1".into()])
            .is_err());
    }

    #[test]
    fn memory_sizes_parse_like_redis_conf() {
        assert_eq!(memory(&["1gb".into()]), Ok(1 << 30));
        assert_eq!(memory(&["100".into()]), Ok(100));
        assert!(memory(&["x".into()]).is_err());
    }
}
