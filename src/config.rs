//! Server options, with redis-server's names, defaults and syntax.
//!
//! One table, [`PARAMS`], describes every option: its name, how to read it and how
//! to set it. The command line, a `redis.conf`-style file, the embedding builder and
//! `CONFIG GET`/`CONFIG SET` all go through it, so an option behaves the same
//! wherever it is given. RDB persistence (`save`, `dir`, `dbfilename`,
//! `rdbcompression`, `rdbchecksum`) and the AOF (`appendonly`, `appendfsync`,
//! `appendfilename`, `appenddirname`, `aof-*`, `auto-aof-rewrite-*`) are
//! applied. Every other option is
//! applied, or refused when it asks for something latchkey does not do
//! (`maxmemory` above 0, `daemonize yes`); an unknown option is refused.

use std::path::PathBuf;

/// All options of a running server.
#[derive(Debug, Clone)]
pub struct Config {
    /// Addresses to listen on (`bind`).
    pub bind: Vec<String>,
    /// TCP port (`port`); 0 means no TCP listener for the binary, a free port for
    /// the embedding API.
    pub port: u16,
    /// `port auto`: the binary listens on a free port it picks itself.
    pub port_auto: bool,
    /// Written once the server is ready: one line per listener (`tcp
    /// 127.0.0.1:PORT`, `tls ...`, `unix PATH`), for wrappers that spawn the
    /// binary (`ready-file`, latchkey's own option).
    pub ready_file: Option<PathBuf>,
    /// `pidfile`: where the binary writes its process id at start and removes
    /// it at a clean exit (none by default, as Redis without `daemonize`).
    pub pidfile: Option<PathBuf>,
    /// The metrics HTTP port (`metrics-port`, latchkey's own): `GET /metrics`
    /// and the status page on the first bind address; 0 for none. While it
    /// is on, the main port also answers a connection whose first line is
    /// `GET /... HTTP/1.x`.
    pub metrics_port: u16,
    /// Unix socket path (`unixsocket`).
    pub unixsocket: Option<PathBuf>,
    /// Unix socket permissions, octal (`unixsocketperm`).
    pub unixsocketperm: u32,
    /// Password clients must give with AUTH (`requirepass`): the default
    /// user's password.
    pub requirepass: Option<String>,
    /// ACL users from `user` lines of the configuration file: each a name,
    /// then its rules.
    pub users: Vec<Vec<String>>,
    /// The ACL file (`aclfile`), empty for none: users are loaded from it at
    /// start-up and by ACL LOAD, saved to it by ACL SAVE.
    pub aclfile: String,
    /// Most entries the ACL log keeps (`acllog-max-len`).
    pub acllog_max_len: u64,
    /// Whether new users and selectors start with `allchannels` rather than
    /// `resetchannels` (`acl-pubsub-default`).
    pub acl_pubsub_allchannels: bool,
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
    /// Output buffer limits by client class (`client-output-buffer-limit`).
    pub output_limits: OutputLimits,
    /// `debug`, `verbose`, `notice` or `warning` (`loglevel`).
    pub loglevel: String,
    /// Log file; empty for standard output (`logfile`).
    pub logfile: String,
    /// Working directory (`dir`): must exist; the RDB file is written and
    /// loaded there.
    pub dir: PathBuf,
    /// Length of the queue of connections not yet accepted, on every listener
    /// (`tcp-backlog`); the kernel caps it at `net.core.somaxconn`.
    pub tcp_backlog: u32,
    /// `tcp-keepalive`: seconds a TCP client may be silent before the kernel
    /// probes it (0: no probes); set on each connection as it is accepted.
    pub tcp_keepalive: u64,
    /// Encoding thresholds (`hash-max-listpack-entries`, ...).
    pub encodings: crate::types::Thresholds,
    /// Kept and reported for clients that set it; changes nothing (no replication).
    pub replica_read_only: bool,
    /// Milliseconds before a running script makes other clients get `BUSY`
    /// (`busy-reply-threshold`, alias `lua-time-limit`).
    pub busy_reply_threshold: u64,
    /// Threads serving connections (`io-threads`; the binary's tokio worker count).
    /// Default 1, as in Redis: on a small machine shared with clients one thread
    /// serves fastest; raise it on larger machines.
    pub io_threads: usize,
    /// The most microseconds a worker of the binary's runtime watches for
    /// work before it sleeps (`idle-spin-us`; default 100, 0 never spins);
    /// how long it does, up to that, it learns: see `idle_spin`.
    pub idle_spin_us: u64,
    /// Largest sparse HyperLogLog, header included, before PFADD converts it to
    /// dense (`hll-sparse-max-bytes`).
    pub hll_sparse_max_bytes: usize,
    /// Keyspace notification classes (`notify-keyspace-events`), as
    /// `crate::notify`'s flags.
    pub notify_keyspace_events: u32,
    /// Most keys the client-side caching table holds (`tracking-table-max-keys`,
    /// 0: no limit).
    pub tracking_table_max_keys: usize,
    /// Milliseconds a lock is granted to nobody after a hold ends other than by
    /// its owner's release (`lock-delay`; 0, the default: no delay). An
    /// acquire's `LOCKDELAY` overrides it for its hold.
    pub lock_delay: u32,
    /// How long after a start a lock nobody is known to hold is granted to
    /// nobody (`lock-restart-grace`, ms); `None`: `auto`, the longest lease
    /// the loaded file's server had granted (none without a file).
    pub lock_restart_grace: Option<u64>,
    /// Refuse writes (MISCONF) while the last background save failed and
    /// save points are set (`stop-writes-on-bgsave-error`).
    pub stop_writes_on_bgsave_error: bool,
    /// RDB save points (`save`): a background save runs once `changes` writes
    /// were made and `seconds` have passed since the last save; empty: none.
    pub save_points: Vec<SavePoint>,
    /// The RDB file's name, in `dir` (`dbfilename`).
    pub dbfilename: String,
    /// LZF-compress strings in RDB files (`rdbcompression`).
    pub rdbcompression: bool,
    /// Write (and check when loading) the RDB file's CRC64 (`rdbchecksum`).
    pub rdbchecksum: bool,
    /// `maxmemory` in bytes (0: no limit).
    pub maxmemory: u64,
    /// `maxmemory-policy`.
    pub maxmemory_policy: crate::memory::Policy,
    /// `maxmemory-samples`.
    pub maxmemory_samples: u32,
    /// `maxmemory-eviction-tenacity`.
    pub maxmemory_eviction_tenacity: u32,
    /// `maxmemory-clients`: what all clients together may use before the
    /// biggest are closed.
    pub maxmemory_clients: crate::memory::ClientsLimit,
    /// `lfu-log-factor`.
    pub lfu_log_factor: u32,
    /// `lfu-decay-time` (minutes).
    pub lfu_decay_time: u32,
    /// SLOWLOG's threshold in µs (`slowlog-log-slower-than`; negative: off).
    pub slowlog_log_slower_than: i64,
    /// SLOWLOG's length (`slowlog-max-len`).
    pub slowlog_max_len: u64,
    /// The latency monitor's threshold in ms (`latency-monitor-threshold`; 0: off).
    pub latency_monitor_threshold: u64,
    /// Per-command latency histograms (`latency-tracking`).
    pub latency_tracking: bool,
    /// INFO latencystats' percentiles (`latency-tracking-info-percentiles`).
    pub latency_tracking_info_percentiles: Vec<f64>,
    /// Log writes to the append-only file (`appendonly`).
    pub appendonly: bool,
    /// `appendfsync`: always, everysec or no.
    pub appendfsync: String,
    /// The AOF files' name (`appendfilename`).
    pub appendfilename: String,
    /// The AOF's directory, in `dir` (`appenddirname`).
    pub appenddirname: String,
    /// Load an AOF whose last command is cut, cutting it (`aof-load-truncated`).
    pub aof_load_truncated: bool,
    /// Write a rewrite's base file out to the disk every 4 MB as it grows
    /// (`aof-rewrite-incremental-fsync`).
    pub aof_rewrite_incremental_fsync: bool,
    /// Write an RDB file out to the disk every 4 MB as it grows
    /// (`rdb-save-incremental-fsync`).
    pub rdb_save_incremental_fsync: bool,
    /// Growth (%) over the last rewrite's size that starts a rewrite
    /// (`auto-aof-rewrite-percentage`; 0: never).
    pub auto_aof_rewrite_percentage: u64,
    /// No automatic rewrite below this size (`auto-aof-rewrite-min-size`).
    pub auto_aof_rewrite_min_size: u64,
    /// The `tls-*` options.
    pub tls: crate::tls::TlsOptions,
    /// Refuse clients from other than the loopback interface while the
    /// default user has no password (`protected-mode`).
    pub protected_mode: bool,
    /// Who may CONFIG SET protected options such as `dir`
    /// (`enable-protected-configs`).
    pub enable_protected_configs: Allowed,
    /// Who may run DEBUG (`enable-debug-command`).
    pub enable_debug_command: Allowed,
    /// Who may run MODULE LOAD, LOADEX and UNLOAD (`enable-module-command`);
    /// latchkey loads no module, so an allowed LOAD fails as Redis's does.
    pub enable_module_command: Allowed,
}

/// `enable-protected-configs`, `enable-debug-command`,
/// `enable-module-command`: who may use what they guard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allowed {
    /// Nobody (the default).
    No,
    /// Everybody.
    Yes,
    /// Clients on the loopback interface (127.0.0.1, ::1) or the Unix socket.
    Local,
}

impl Allowed {
    /// Whether a client (`local`: on loopback or the Unix socket) may.
    pub fn allows(self, local: bool) -> bool {
        match self {
            Allowed::No => false,
            Allowed::Yes => true,
            Allowed::Local => local,
        }
    }

    fn name(self) -> String {
        match self {
            Allowed::No => "no",
            Allowed::Yes => "yes",
            Allowed::Local => "local",
        }
        .into()
    }

    fn parse(values: &[String]) -> Result<Self, String> {
        match one(values)?.to_ascii_lowercase().as_str() {
            "no" => Ok(Allowed::No),
            "yes" => Ok(Allowed::Yes),
            "local" => Ok(Allowed::Local),
            _ => Err("argument(s) must be one of the following: no, yes, local".into()),
        }
    }
}

/// One `save <seconds> <changes>` point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SavePoint {
    /// Seconds since the last save, at least 1.
    pub seconds: u64,
    /// Writes since the last save.
    pub changes: u64,
}

impl SavePoint {
    /// Redis's default points: `3600 1 300 100 60 10000`.
    pub const DEFAULT: [SavePoint; 3] = [
        SavePoint {
            seconds: 3600,
            changes: 1,
        },
        SavePoint {
            seconds: 300,
            changes: 100,
        },
        SavePoint {
            seconds: 60,
            changes: 10000,
        },
    ];

    /// Parses `save`'s words (pairs of seconds and changes; `""` alone is
    /// none) as Redis does, with its one error text.
    pub fn parse(values: &[String]) -> Result<Vec<SavePoint>, String> {
        let words: Vec<&str> = values.iter().flat_map(|s| s.split_whitespace()).collect();
        let bad = || "Invalid save parameters".to_string();
        if !words.len().is_multiple_of(2) {
            return Err(bad());
        }
        words
            .chunks_exact(2)
            .map(|pair| {
                // strtoll's reading: out-of-range numbers saturate.
                let number = |w: &str| {
                    w.parse::<i128>()
                        .map(|n| n.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64)
                        .map_err(|_| bad())
                };
                let (seconds, changes) = (number(pair[0])?, number(pair[1])?);
                if seconds < 1 || changes < 0 {
                    return Err(bad());
                }
                Ok(SavePoint {
                    seconds: seconds as u64,
                    changes: changes as u64,
                })
            })
            .collect()
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            bind: vec!["127.0.0.1".into()],
            port: 6379,
            port_auto: false,
            ready_file: None,
            pidfile: None,
            unixsocket: None,
            unixsocketperm: 0,
            requirepass: None,
            users: Vec::new(),
            aclfile: String::new(),
            acllog_max_len: 128,
            acl_pubsub_allchannels: false,
            databases: 16,
            maxclients: 10000,
            timeout: 0,
            proto_max_bulk_len: 512 * 1024 * 1024,
            client_query_buffer_limit: 1024 * 1024 * 1024,
            output_limits: OutputLimits::default(),
            loglevel: "notice".into(),
            logfile: String::new(),
            dir: PathBuf::from("."),
            tcp_backlog: 511,
            tcp_keepalive: 300,
            metrics_port: 0,
            encodings: Default::default(),
            replica_read_only: true,
            busy_reply_threshold: 5000,
            io_threads: 1,
            idle_spin_us: 100,
            hll_sparse_max_bytes: crate::types::hll::DEFAULT_SPARSE_MAX_BYTES,
            notify_keyspace_events: 0,
            tracking_table_max_keys: 1_000_000,
            lock_delay: 0,
            lock_restart_grace: None,
            stop_writes_on_bgsave_error: true,
            save_points: SavePoint::DEFAULT.to_vec(),
            dbfilename: "dump.rdb".into(),
            rdbcompression: true,
            rdbchecksum: true,
            maxmemory: 0,
            maxmemory_policy: crate::memory::Policy::NoEviction,
            maxmemory_samples: 5,
            maxmemory_eviction_tenacity: 10,
            maxmemory_clients: crate::memory::ClientsLimit::Bytes(0),
            lfu_log_factor: 10,
            lfu_decay_time: 1,
            slowlog_log_slower_than: 10_000,
            slowlog_max_len: 128,
            latency_monitor_threshold: 0,
            latency_tracking: true,
            latency_tracking_info_percentiles: vec![50.0, 99.0, 99.9],
            appendonly: false,
            appendfsync: "everysec".into(),
            appendfilename: "appendonly.aof".into(),
            appenddirname: "appendonlydir".into(),
            aof_load_truncated: true,
            aof_rewrite_incremental_fsync: true,
            rdb_save_incremental_fsync: true,
            auto_aof_rewrite_percentage: 100,
            auto_aof_rewrite_min_size: 64 << 20,
            tls: Default::default(),
            protected_mode: true,
            enable_protected_configs: Allowed::No,
            enable_debug_command: Allowed::No,
            enable_module_command: Allowed::No,
        }
    }
}

/// One class's output buffer limit: a client whose pending output reaches `hard`
/// bytes, or stays at `soft` bytes or more for longer than `soft_seconds`, is
/// disconnected. 0 turns a limit off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OutputLimit {
    /// Bytes that close the client at once.
    pub hard: u64,
    /// Bytes that close the client once held past `soft_seconds`.
    pub soft: u64,
    /// Seconds a client may stay at or over `soft`.
    pub soft_seconds: u64,
}

impl OutputLimit {
    /// Whether a client with `used` bytes pending must be closed now (`now_ms`,
    /// server clock), as Redis's `checkClientOutputBufferLimits`: `soft_since`
    /// (0: not over the soft limit) remembers when the soft limit was first
    /// reached, and is cleared once the client is back under it.
    pub fn exceeded(
        &self,
        used: u64,
        soft_since: &std::sync::atomic::AtomicU64,
        now_ms: u64,
    ) -> bool {
        use std::sync::atomic::Ordering;
        if self.hard > 0 && used >= self.hard {
            return true;
        }
        if self.soft == 0 || used < self.soft {
            soft_since.store(0, Ordering::Relaxed);
            return false;
        }
        let since = soft_since.load(Ordering::Relaxed);
        if since == 0 {
            soft_since.store(now_ms.max(1), Ordering::Relaxed);
            return false;
        }
        now_ms.saturating_sub(since) > self.soft_seconds.saturating_mul(1000)
    }
}

/// `client-output-buffer-limit`: a limit per client class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputLimits {
    /// Ordinary clients (`normal`).
    pub normal: OutputLimit,
    /// Replicas (`replica`/`slave`): kept and reported, latchkey has none.
    pub replica: OutputLimit,
    /// Clients subscribed to a channel or pattern (`pubsub`).
    pub pubsub: OutputLimit,
}

impl Default for OutputLimits {
    /// Redis's defaults: `normal 0 0 0 slave 256mb 64mb 60 pubsub 32mb 8mb 60`.
    fn default() -> Self {
        OutputLimits {
            normal: OutputLimit::default(),
            replica: OutputLimit {
                hard: 256 << 20,
                soft: 64 << 20,
                soft_seconds: 60,
            },
            pubsub: OutputLimit {
                hard: 32 << 20,
                soft: 8 << 20,
                soft_seconds: 60,
            },
        }
    }
}

impl OutputLimits {
    /// As CONFIG GET shows it: `normal 0 0 0 slave 268435456 67108864 60 pubsub ...`.
    fn text(&self) -> String {
        [
            ("normal", &self.normal),
            ("slave", &self.replica),
            ("pubsub", &self.pubsub),
        ]
        .iter()
        .map(|(name, l)| format!("{name} {} {} {}", l.hard, l.soft, l.soft_seconds))
        .collect::<Vec<_>>()
        .join(" ")
    }

    /// Sets the classes named in `words` (`<class> <hard> <soft> <seconds>`, any
    /// number of times), leaving the others; nothing changes on an error.
    fn set(&mut self, words: &[&str]) -> Result<(), String> {
        if words.is_empty() || !words.len().is_multiple_of(4) {
            return Err("Wrong number of arguments in buffer limit configuration.".into());
        }
        let mut next = *self;
        for group in words.chunks_exact(4) {
            let slot = match group[0].to_ascii_lowercase().as_str() {
                "normal" => &mut next.normal,
                "replica" | "slave" => &mut next.replica,
                "pubsub" => &mut next.pubsub,
                _ => {
                    return Err(
                        "Invalid client class specified in buffer limit configuration.".into(),
                    )
                }
            };
            let bad = || {
                "Error in hard, soft or soft_seconds setting in buffer limit configuration."
                    .to_string()
            };
            let hard = memory(&[group[1].to_string()]).map_err(|_| bad())?;
            let soft = memory(&[group[2].to_string()]).map_err(|_| bad())?;
            let soft_seconds = group[3].parse::<u64>().map_err(|_| bad())?;
            if hard > i64::MAX as u64 || soft > i64::MAX as u64 || soft_seconds > i64::MAX as u64 {
                return Err(bad());
            }
            *slot = OutputLimit {
                hard,
                soft,
                soft_seconds,
            };
        }
        *self = next;
        Ok(())
    }
}

/// How `CONFIG SET` treats an option, with Redis's refusals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// CONFIG SET may change it.
    Mutable,
    /// Start-up only: `can't set immutable config`.
    Immutable,
    /// A protected config: CONFIG SET only from the clients
    /// `enable-protected-configs` allows, else `can't set protected config`.
    Protected,
}

/// One option: its name, and how to read and change it.
pub struct Param {
    /// The name, as in redis.conf and CONFIG GET.
    pub name: &'static str,
    /// Other accepted names.
    pub aliases: &'static [&'static str],
    /// Whether CONFIG SET may change it on a running server.
    pub change: Change,
    get: fn(&Config) -> String,
    set: fn(&mut Config, &[String]) -> Result<(), String>,
}

fn one(values: &[String]) -> Result<&str, String> {
    match values {
        [v] => Ok(v),
        _ => Err("wrong number of arguments".into()),
    }
}

/// A row for an immutable file path that may be unset (`""`).
macro_rules! path_param {
    ($name:literal, $field:ident) => {
        Param {
            name: $name,
            aliases: &[],
            change: Change::Immutable,
            get: |c| {
                c.$field
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default()
            },
            set: |c, v| {
                let path = one(v)?;
                c.$field = (!path.is_empty()).then(|| PathBuf::from(path));
                Ok(())
            },
        }
    };
}

/// A row for one of Redis's `lazyfree-lazy-*` switches. latchkey frees what an
/// eviction, an expiry, a server-side delete, DEL or a flush removes at once, on
/// the thread that removes it, which is what `no` (Redis's default, and
/// Debian's redis.conf) asks for; `yes`, freeing on a background thread, is
/// refused rather than ignored.
macro_rules! freed_at_once {
    ($name:literal) => {
        Param {
            name: $name,
            aliases: &[],
            change: Change::Mutable,
            get: |_| "no".into(),
            set: |_, v| match boolean(v)? {
                false => Ok(()),
                true => Err(concat!(
                    "latchkey frees at once, not on a background thread: ",
                    $name,
                    " yes is not applied"
                )
                .into()),
            },
        }
    };
}

/// A row for an encoding threshold of `Config::encodings`: `count` is an
/// integer, `size` a memory value (`1kb`), `depth` an integer up to `i32::MAX`,
/// each with Redis's range and error texts.
macro_rules! encoding_param {
    ($name:literal, $aliases:expr, $field:ident, $kind:ident) => {
        Param {
            name: $name,
            aliases: $aliases,
            change: Change::Mutable,
            get: |c| c.encodings.$field.to_string(),
            set: |c, v| {
                c.encodings.$field = encoding_value!($kind, v);
                Ok(())
            },
        }
    };
}

macro_rules! encoding_value {
    (count, $v:expr) => {
        int_in($v, 0, i64::MAX)? as usize
    };
    (size, $v:expr) => {
        memory_in($v, 0)? as usize
    };
    (depth, $v:expr) => {
        int_in($v, 0, i64::from(i32::MAX))? as usize
    };
}

/// A `tls-*` path or text option (empty: not set).
macro_rules! tls_text {
    ($name:literal, $field:ident) => {
        Param {
            name: $name,
            aliases: &[],
            change: Change::Mutable,
            get: |c| c.tls.$field.clone(),
            set: |c, v| {
                c.tls.$field = one(v)?.to_string();
                Ok(())
            },
        }
    };
}

/// An option latchkey takes only at its Redis default (`value`, compared
/// without case), refusing any other with `why`: what it would ask for
/// latchkey does not do.
macro_rules! only_default {
    ($name:literal, $value:literal, $why:literal) => {
        Param {
            name: $name,
            aliases: &[],
            change: Change::Mutable,
            get: |_| $value.into(),
            set: |_, v| {
                if one(v)?.eq_ignore_ascii_case($value) {
                    Ok(())
                } else {
                    Err($why.into())
                }
            },
        }
    };
}

/// An integer option within `min..=max`, with Redis's two error texts.
fn int_in(values: &[String], min: i64, max: i64) -> Result<i64, String> {
    let n: i64 = one(values)?
        .parse()
        .map_err(|_| "argument couldn't be parsed into an integer".to_string())?;
    if !(min..=max).contains(&n) {
        return Err(format!(
            "argument must be between {min} and {max} inclusive"
        ));
    }
    Ok(n)
}

/// A memory option within `min..=i64::MAX` bytes.
fn memory_in(values: &[String], min: u64) -> Result<u64, String> {
    let n = match memory(values) {
        Ok(n) => n,
        // Digits that overflow are out of range, not unreadable, as in Redis.
        Err(_) if one(values)?.bytes().all(|b| b.is_ascii_digit()) && !one(values)?.is_empty() => {
            u64::MAX
        }
        Err(e) => return Err(e),
    };
    if n < min || n > i64::MAX as u64 {
        return Err(format!(
            "argument must be between {min} and {} inclusive",
            i64::MAX
        ));
    }
    Ok(n)
}

fn yes_no(b: bool) -> String {
    if b { "yes" } else { "no" }.into()
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
    memory_value(one(values)?).ok_or_else(|| "argument must be a memory value".to_string())
}

/// A memory size as Redis's `memtoull` reads it: digits, then an optional
/// unit (`b`, `k`, `kb`, `m`, `mb`, `g`, `gb`, any case); None otherwise or
/// past u64.
pub fn memory_value(v: &str) -> Option<u64> {
    let v = v.to_ascii_lowercase();
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
    .find_map(|(suffix, mul)| v.strip_suffix(suffix).map(|n| (n, *mul)))
    .unwrap_or((v.as_str(), 1));
    if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    num.parse::<u64>().ok()?.checked_mul(mul)
}

/// File descriptors Redis keeps for itself beyond one per client
/// (`CONFIG_MIN_RESERVED_FDS`).
const RESERVED_FDS: u64 = 32;

/// Makes room for `maxclients` in the open-files limit as Redis does: raise the
/// soft limit to `maxclients + 32`, or to the highest value below it (in steps
/// of 16) the hard limit allows. Returns the number of clients the limit holds
/// when that is fewer than asked.
pub fn fit_maxclients(maxclients: u64) -> Result<(), u64> {
    let want = maxclients.saturating_add(RESERVED_FDS);
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit through a valid pointer.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Ok(());
    }
    let (soft, hard) = (limit.rlim_cur, limit.rlim_max);
    if want <= soft {
        return Ok(());
    }
    // Redis tries want, want - 16, ... until the kernel accepts one.
    let best = if want <= hard {
        want
    } else {
        want - (want - hard).div_ceil(16) * 16
    };
    if best > soft {
        limit.rlim_cur = best;
        // SAFETY: setrlimit reads one rlimit through a valid pointer.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
            return Err(soft.saturating_sub(RESERVED_FDS));
        }
    }
    let best = best.max(soft);
    if best < want {
        return Err(best.saturating_sub(RESERVED_FDS));
    }
    Ok(())
}

/// Every option latchkey knows, in the order `CONFIG GET *` lists them.
pub static PARAMS: &[Param] = &[
    Param {
        name: "bind",
        aliases: &[],
        change: Change::Immutable,
        get: |c| c.bind.join(" "),
        set: |c, v| {
            let addrs: Vec<String> = v
                .iter()
                .flat_map(|s| s.split_whitespace())
                .map(String::from)
                .collect();
            // One TCP listener: a second required address would be accepted and
            // never bound. Optional ones (`-addr`, which Redis skips when they
            // cannot be bound) after the first are skipped with a warning.
            if addrs.iter().skip(1).any(|a| !a.starts_with('-')) {
                return Err(format!(
                    "latchkey listens on one address; give one (later ones may be optional, as -addr), not '{}'",
                    addrs.join(" ")
                ));
            }
            c.bind = addrs;
            Ok(())
        },
    },
    Param {
        name: "port",
        aliases: &[],
        change: Change::Immutable,
        get: |c| c.port.to_string(),
        set: |c, v| {
            // `auto`: a free port the server picks itself (CONFIG GET then
            // shows the one bound; `ready-file` names it for a wrapper).
            if one(v)?.eq_ignore_ascii_case("auto") {
                c.port = 0;
                c.port_auto = true;
                return Ok(());
            }
            c.port = int_in(v, 0, 65535)? as u16;
            c.port_auto = false;
            Ok(())
        },
    },
    path_param!("pidfile", pidfile),
    path_param!("ready-file", ready_file),
    encoding_param!(
        "hash-max-listpack-entries",
        &["hash-max-ziplist-entries"],
        hash_entries,
        count
    ),
    encoding_param!(
        "hash-max-listpack-value",
        &["hash-max-ziplist-value"],
        hash_value,
        size
    ),
    encoding_param!("set-max-intset-entries", &[], set_intset_entries, count),
    encoding_param!("set-max-listpack-entries", &[], set_entries, count),
    encoding_param!("set-max-listpack-value", &[], set_value, size),
    encoding_param!(
        "zset-max-listpack-entries",
        &["zset-max-ziplist-entries"],
        zset_entries,
        count
    ),
    encoding_param!(
        "zset-max-listpack-value",
        &["zset-max-ziplist-value"],
        zset_value,
        size
    ),
    encoding_param!("list-compress-depth", &[], list_compress_depth, depth),
    encoding_param!("stream-node-max-entries", &[], stream_node_entries, count),
    encoding_param!("stream-node-max-bytes", &[], stream_node_bytes, size),
    Param {
        name: "list-max-listpack-size",
        aliases: &["list-max-ziplist-size"],
        change: Change::Mutable,
        get: |c| c.encodings.list_size.to_string(),
        set: |c, v| {
            c.encodings.list_size = int_in(v, i64::from(i32::MIN), i64::from(i32::MAX))?;
            Ok(())
        },
    },
    Param {
        name: "tcp-backlog",
        aliases: &[],
        change: Change::Immutable,
        get: |c| c.tcp_backlog.to_string(),
        set: |c, v| {
            c.tcp_backlog = int_in(v, 0, i64::from(i32::MAX))? as u32;
            Ok(())
        },
    },
    Param {
        name: "tcp-keepalive",
        aliases: &[],
        change: Change::Mutable,
        get: |c| c.tcp_keepalive.to_string(),
        set: |c, v| {
            c.tcp_keepalive = int_in(v, 0, i64::from(i32::MAX))? as u64;
            Ok(())
        },
    },
    path_param!("unixsocket", unixsocket),
    Param {
        name: "unixsocketperm",
        aliases: &[],
        change: Change::Immutable,
        get: |c| format!("{:o}", c.unixsocketperm),
        set: |c, v| {
            let n = u32::from_str_radix(one(v)?, 8)
                .map_err(|_| "argument couldn't be parsed into an integer".to_string())?;
            if n > 0o777 {
                return Err("argument must be between 0 and 511 inclusive".into());
            }
            c.unixsocketperm = n;
            Ok(())
        },
    },
    Param {
        name: "requirepass",
        aliases: &[],
        change: Change::Mutable,
        get: |c| c.requirepass.clone().unwrap_or_default(),
        set: |c, v| {
            let p = one(v)?;
            c.requirepass = (!p.is_empty()).then(|| p.to_string());
            Ok(())
        },
    },
    Param {
        name: "aclfile",
        aliases: &[],
        change: Change::Immutable,
        get: |c| c.aclfile.clone(),
        set: |c, v| {
            c.aclfile = one(v)?.to_string();
            Ok(())
        },
    },
    Param {
        name: "acllog-max-len",
        aliases: &[],
        change: Change::Mutable,
        get: |c| c.acllog_max_len.to_string(),
        set: |c, v| {
            c.acllog_max_len = int_in(v, 0, i64::MAX)? as u64;
            Ok(())
        },
    },
    Param {
        name: "acl-pubsub-default",
        aliases: &[],
        change: Change::Mutable,
        get: |c| {
            if c.acl_pubsub_allchannels {
                "allchannels".into()
            } else {
                "resetchannels".into()
            }
        },
        set: |c, v| {
            c.acl_pubsub_allchannels = match one(v)?.to_ascii_lowercase().as_str() {
                "allchannels" => true,
                "resetchannels" => false,
                _ => {
                    return Err(
                        "argument(s) must be one of the following: allchannels, resetchannels"
                            .into(),
                    )
                }
            };
            Ok(())
        },
    },
    Param {
        name: "databases",
        aliases: &[],
        change: Change::Immutable,
        get: |c| c.databases.to_string(),
        set: |c, v| {
            c.databases = int_in(v, 1, i64::from(i32::MAX))? as usize;
            Ok(())
        },
    },
    Param {
        name: "maxclients",
        aliases: &[],
        change: Change::Mutable,
        get: |c| c.maxclients.to_string(),
        set: |c, v| {
            c.maxclients = int_in(v, 1, i64::from(u32::MAX))? as usize;
            Ok(())
        },
    },
    Param {
        name: "lock-delay",
        aliases: &[],
        change: Change::Mutable,
        get: |c| c.lock_delay.to_string(),
        set: |c, v| {
            c.lock_delay = int_in(v, 0, i64::from(u32::MAX))? as u32;
            Ok(())
        },
    },
    Param {
        name: "timeout",
        aliases: &[],
        change: Change::Mutable,
        get: |c| c.timeout.to_string(),
        set: |c, v| {
            c.timeout = int_in(v, 0, i64::from(i32::MAX))? as u64;
            Ok(())
        },
    },
    Param {
        name: "proto-max-bulk-len",
        aliases: &[],
        change: Change::Mutable,
        get: |c| c.proto_max_bulk_len.to_string(),
        set: |c, v| {
            c.proto_max_bulk_len = memory_in(v, 1024 * 1024)? as i64;
            Ok(())
        },
    },
    Param {
        name: "hll-sparse-max-bytes",
        aliases: &[],
        change: Change::Mutable,
        get: |c| c.hll_sparse_max_bytes.to_string(),
        set: |c, v| {
            let n = memory_in(v, 0)?;
            c.hll_sparse_max_bytes = usize::try_from(n).unwrap_or(usize::MAX);
            Ok(())
        },
    },
    Param {
        name: "notify-keyspace-events",
        aliases: &[],
        change: Change::Mutable,
        get: |c| crate::notify::classes_to_string(c.notify_keyspace_events),
        set: |c, v| {
            c.notify_keyspace_events = crate::notify::parse_classes(one(v)?.as_bytes())
                .ok_or_else(|| {
                    "Invalid event class character. Use 'Ag$lshzxeKEtmdn'.".to_string()
                })?;
            Ok(())
        },
    },
    Param {
        name: "client-query-buffer-limit",
        aliases: &[],
        change: Change::Mutable,
        get: |c| c.client_query_buffer_limit.to_string(),
        set: |c, v| {
            let n = memory_in(v, 1024 * 1024)?;
            c.client_query_buffer_limit = usize::try_from(n).unwrap_or(usize::MAX);
            Ok(())
        },
    },
    Param {
        name: "client-output-buffer-limit",
        aliases: &[],
        change: Change::Mutable,
        get: |c| c.output_limits.text(),
        set: |c, v| {
            let words: Vec<&str> = v.iter().flat_map(|s| s.split_whitespace()).collect();
            c.output_limits.set(&words)
        },
    },
    Param {
        name: "loglevel",
        aliases: &[],
        // The log filter is built once at start-up (and an embedding host owns
        // its own): a run-time change would be accepted and ignored.
        change: Change::Immutable,
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
        change: Change::Immutable,
        get: |c| c.logfile.clone(),
        set: |c, v| {
            c.logfile = one(v)?.to_string();
            Ok(())
        },
    },
    Param {
        name: "dir",
        aliases: &[],
        change: Change::Protected,
        get: |c| {
            std::fs::canonicalize(&c.dir)
                .unwrap_or_else(|_| c.dir.clone())
                .display()
                .to_string()
        },
        set: |c, v| {
            let dir = PathBuf::from(one(v)?);
            if !dir.is_dir() {
                return Err(format!(
                    "Can't chdir to '{}': No such file or directory",
                    dir.display()
                ));
            }
            c.dir = dir;
            Ok(())
        },
    },
    Param {
        name: "busy-reply-threshold",
        aliases: &["lua-time-limit"],
        change: Change::Mutable,
        get: |c| c.busy_reply_threshold.to_string(),
        set: |c, v| {
            c.busy_reply_threshold = int_in(v, 0, i64::MAX)? as u64;
            Ok(())
        },
    },
    Param {
        name: "tracking-table-max-keys",
        aliases: &[],
        change: Change::Mutable,
        get: |c| c.tracking_table_max_keys.to_string(),
        set: |c, v| {
            c.tracking_table_max_keys = int_in(v, 0, i64::MAX)? as usize;
            Ok(())
        },
    },
    Param {
        name: "io-threads",
        aliases: &[],
        change: Change::Immutable,
        get: |c| c.io_threads.to_string(),
        set: |c, v| {
            c.io_threads = int_in(v, 1, 128)? as usize;
            Ok(())
        },
    },
    Param {
        name: "idle-spin-us",
        aliases: &[],
        change: Change::Immutable,
        get: |c| c.idle_spin_us.to_string(),
        set: |c, v| {
            c.idle_spin_us = int_in(v, 0, 10_000)? as u64;
            Ok(())
        },
    },
    Param {
        name: "replica-read-only",
        aliases: &["slave-read-only"],
        change: Change::Mutable,
        // Kept and reported; like Redis on a primary, it changes nothing.
        get: |c| if c.replica_read_only { "yes" } else { "no" }.into(),
        set: |c, v| {
            c.replica_read_only = boolean(v)?;
            Ok(())
        },
    },
    Param {
        name: "maxmemory",
        aliases: &[],
        change: Change::Mutable,
        get: |c| c.maxmemory.to_string(),
        set: |c, v| {
            let n = memory(v)?;
            if n > 0 && !crate::memory::counting() {
                // No counter of live bytes to hold the limit against.
                return Err("latchkey counts memory with its own allocator, which this process does not use (an embedding installs latchkey::memory::Counting as its #[global_allocator]); only 0 (no limit) is accepted".into());
            }
            c.maxmemory = n;
            Ok(())
        },
    },
    Param {
        name: "maxmemory-policy",
        aliases: &[],
        change: Change::Mutable,
        get: |c| c.maxmemory_policy.name().into(),
        set: |c, v| {
            c.maxmemory_policy = crate::memory::Policy::parse(one(v)?).ok_or(
                "argument(s) must be one of the following: volatile-lru, volatile-lfu, volatile-random, volatile-ttl, allkeys-lru, allkeys-lfu, allkeys-random, noeviction",
            )?;
            Ok(())
        },
    },
    Param {
        name: "maxmemory-clients",
        aliases: &[],
        change: Change::Mutable,
        get: |c| c.maxmemory_clients.to_string(),
        set: |c, v| {
            c.maxmemory_clients = crate::memory::ClientsLimit::parse(one(v)?)?;
            Ok(())
        },
    },
    Param {
        name: "maxmemory-samples",
        aliases: &[],
        change: Change::Mutable,
        get: |c| c.maxmemory_samples.to_string(),
        set: |c, v| {
            c.maxmemory_samples = int_in(v, 1, i64::from(i32::MAX))? as u32;
            Ok(())
        },
    },
    Param {
        name: "maxmemory-eviction-tenacity",
        aliases: &[],
        change: Change::Mutable,
        get: |c| c.maxmemory_eviction_tenacity.to_string(),
        set: |c, v| {
            c.maxmemory_eviction_tenacity = int_in(v, 0, 100)? as u32;
            Ok(())
        },
    },
    Param {
        name: "lfu-log-factor",
        aliases: &[],
        change: Change::Mutable,
        get: |c| c.lfu_log_factor.to_string(),
        set: |c, v| {
            c.lfu_log_factor = int_in(v, 0, i64::from(i32::MAX))? as u32;
            Ok(())
        },
    },
    Param {
        name: "lfu-decay-time",
        aliases: &[],
        change: Change::Mutable,
        get: |c| c.lfu_decay_time.to_string(),
        set: |c, v| {
            c.lfu_decay_time = int_in(v, 0, i64::from(i32::MAX))? as u32;
            Ok(())
        },
    },
    freed_at_once!("lazyfree-lazy-eviction"),
    freed_at_once!("lazyfree-lazy-expire"),
    freed_at_once!("lazyfree-lazy-server-del"),
    freed_at_once!("lazyfree-lazy-user-del"),
    freed_at_once!("lazyfree-lazy-user-flush"),
    Param {
        name: "daemonize",
        aliases: &[],
        change: Change::Immutable,
        get: |_| "no".into(),
        set: |_, v| match boolean(v)? {
            false => Ok(()),
            true => Err("latchkey does not daemonize; run it under a supervisor".into()),
        },
    },
    Param {
        name: "lock-restart-grace",
        aliases: &[],
        change: Change::Immutable,
        get: |c| {
            c.lock_restart_grace
                .map_or("auto".into(), |ms| ms.to_string())
        },
        set: |c, v| {
            c.lock_restart_grace = if one(v)?.eq_ignore_ascii_case("auto") {
                None
            } else {
                Some(int_in(v, 0, i64::MAX)? as u64)
            };
            Ok(())
        },
    },
    Param {
        name: "save",
        aliases: &[],
        change: Change::Mutable,
        get: |c| {
            c.save_points
                .iter()
                .map(|p| format!("{} {}", p.seconds, p.changes))
                .collect::<Vec<_>>()
                .join(" ")
        },
        set: |c, v| {
            c.save_points = SavePoint::parse(v)?;
            Ok(())
        },
    },
    Param {
        name: "stop-writes-on-bgsave-error",
        aliases: &[],
        change: Change::Mutable,
        get: |c| yes_no(c.stop_writes_on_bgsave_error),
        set: |c, v| {
            c.stop_writes_on_bgsave_error = boolean(v)?;
            Ok(())
        },
    },
    Param {
        name: "rdbcompression",
        aliases: &[],
        change: Change::Mutable,
        get: |c| yes_no(c.rdbcompression),
        set: |c, v| {
            c.rdbcompression = boolean(v)?;
            Ok(())
        },
    },
    Param {
        name: "rdbchecksum",
        aliases: &[],
        change: Change::Immutable,
        get: |c| yes_no(c.rdbchecksum),
        set: |c, v| {
            c.rdbchecksum = boolean(v)?;
            Ok(())
        },
    },
    Param {
        name: "slowlog-max-len",
        aliases: &[],
        change: Change::Mutable,
        get: |c| c.slowlog_max_len.to_string(),
        set: |c, v| {
            c.slowlog_max_len = int_in(v, 0, i64::MAX)? as u64;
            Ok(())
        },
    },
    Param {
        name: "slowlog-log-slower-than",
        aliases: &[],
        change: Change::Mutable,
        get: |c| c.slowlog_log_slower_than.to_string(),
        set: |c, v| {
            c.slowlog_log_slower_than = int_in(v, -1, i64::MAX)?;
            Ok(())
        },
    },
    Param {
        name: "latency-monitor-threshold",
        aliases: &[],
        change: Change::Mutable,
        get: |c| c.latency_monitor_threshold.to_string(),
        set: |c, v| {
            c.latency_monitor_threshold = int_in(v, 0, i64::MAX)? as u64;
            Ok(())
        },
    },
    Param {
        name: "latency-tracking",
        aliases: &[],
        change: Change::Mutable,
        get: |c| yes_no(c.latency_tracking),
        set: |c, v| {
            c.latency_tracking = boolean(v)?;
            Ok(())
        },
    },
    Param {
        name: "latency-tracking-info-percentiles",
        aliases: &[],
        change: Change::Mutable,
        get: |c| crate::commands::latency::percentiles_text(&c.latency_tracking_info_percentiles),
        set: |c, v| {
            c.latency_tracking_info_percentiles = crate::commands::latency::parse_percentiles(v)?;
            Ok(())
        },
    },
    Param {
        name: "appendonly",
        aliases: &[],
        change: Change::Mutable,
        get: |c| yes_no(c.appendonly),
        set: |c, v| {
            c.appendonly = boolean(v)?;
            Ok(())
        },
    },
    Param {
        name: "appendfsync",
        aliases: &[],
        change: Change::Mutable,
        get: |c| c.appendfsync.clone(),
        set: |c, v| match crate::persist::aof::Fsync::parse(one(v)?) {
            Some(f) => {
                c.appendfsync = f.name().to_string();
                Ok(())
            }
            None => Err("argument(s) must be one of the following: everysec, always, no".into()),
        },
    },
    Param {
        name: "aof-load-truncated",
        aliases: &[],
        change: Change::Mutable,
        get: |c| yes_no(c.aof_load_truncated),
        set: |c, v| {
            c.aof_load_truncated = boolean(v)?;
            Ok(())
        },
    },
    Param {
        name: "aof-rewrite-incremental-fsync",
        aliases: &[],
        change: Change::Mutable,
        get: |c| yes_no(c.aof_rewrite_incremental_fsync),
        set: |c, v| {
            c.aof_rewrite_incremental_fsync = boolean(v)?;
            Ok(())
        },
    },
    Param {
        name: "rdb-save-incremental-fsync",
        aliases: &[],
        change: Change::Mutable,
        get: |c| yes_no(c.rdb_save_incremental_fsync),
        set: |c, v| {
            c.rdb_save_incremental_fsync = boolean(v)?;
            Ok(())
        },
    },
    Param {
        name: "aof-use-rdb-preamble",
        aliases: &[],
        change: Change::Mutable,
        get: |_| "yes".into(),
        set: |_, v| match boolean(v)? {
            true => Ok(()),
            // A base of commands is not written: refused, not ignored.
            false => {
                Err("latchkey writes the AOF base as RDB only (aof-use-rdb-preamble yes)".into())
            }
        },
    },
    Param {
        name: "aof-timestamp-enabled",
        aliases: &[],
        change: Change::Mutable,
        get: |_| "no".into(),
        set: |_, v| match boolean(v)? {
            false => Ok(()),
            true => Err("latchkey does not write AOF timestamp annotations".into()),
        },
    },
    Param {
        name: "auto-aof-rewrite-percentage",
        aliases: &[],
        change: Change::Mutable,
        get: |c| c.auto_aof_rewrite_percentage.to_string(),
        set: |c, v| {
            c.auto_aof_rewrite_percentage = int_in(v, 0, i64::from(i32::MAX))? as u64;
            Ok(())
        },
    },
    Param {
        name: "auto-aof-rewrite-min-size",
        aliases: &[],
        change: Change::Mutable,
        get: |c| c.auto_aof_rewrite_min_size.to_string(),
        set: |c, v| {
            c.auto_aof_rewrite_min_size = memory_in(v, 0)?;
            Ok(())
        },
    },
    Param {
        name: "dbfilename",
        aliases: &[],
        change: Change::Protected,
        get: |c| c.dbfilename.clone(),
        set: |c, v| {
            let name = one(v)?;
            // Redis's check: a name, not a path.
            if name.contains('/') || name.contains('\\') {
                return Err("dbfilename can't be a path, just a filename".into());
            }
            c.dbfilename = name.to_string();
            Ok(())
        },
    },
    Param {
        name: "protected-mode",
        aliases: &[],
        change: Change::Mutable,
        get: |c| yes_no(c.protected_mode),
        set: |c, v| {
            c.protected_mode = boolean(v)?;
            Ok(())
        },
    },
    Param {
        name: "enable-protected-configs",
        aliases: &[],
        change: Change::Immutable,
        get: |c| c.enable_protected_configs.name(),
        set: |c, v| {
            c.enable_protected_configs = Allowed::parse(v)?;
            Ok(())
        },
    },
    Param {
        name: "enable-debug-command",
        aliases: &[],
        change: Change::Immutable,
        get: |c| c.enable_debug_command.name(),
        set: |c, v| {
            c.enable_debug_command = Allowed::parse(v)?;
            Ok(())
        },
    },
    Param {
        name: "enable-module-command",
        aliases: &[],
        change: Change::Immutable,
        get: |c| c.enable_module_command.name(),
        set: |c, v| {
            c.enable_module_command = Allowed::parse(v)?;
            Ok(())
        },
    },
    Param {
        name: "metrics-port",
        aliases: &[],
        // As `port`: the listeners are bound once, at start-up.
        change: Change::Immutable,
        get: |c| c.metrics_port.to_string(),
        set: |c, v| {
            c.metrics_port = int_in(v, 0, 65535)? as u16;
            Ok(())
        },
    },
    Param {
        name: "tls-port",
        aliases: &[],
        // As `port`: the listeners are bound once, at start-up.
        change: Change::Immutable,
        get: |c| c.tls.port.to_string(),
        set: |c, v| {
            c.tls.port = int_in(v, 0, 65535)? as u16;
            Ok(())
        },
    },
    tls_text!("tls-cert-file", cert_file),
    tls_text!("tls-key-file", key_file),
    tls_text!("tls-key-file-pass", key_file_pass),
    tls_text!("tls-ca-cert-file", ca_cert_file),
    tls_text!("tls-ca-cert-dir", ca_cert_dir),
    Param {
        name: "tls-auth-clients",
        aliases: &[],
        change: Change::Mutable,
        get: |c| c.tls.auth_clients.name().into(),
        set: |c, v| {
            c.tls.auth_clients = crate::tls::AuthClients::parse(one(v)?)?;
            Ok(())
        },
    },
    Param {
        name: "tls-protocols",
        aliases: &[],
        change: Change::Mutable,
        get: |c| c.tls.protocols.clone(),
        set: |c, v| {
            let value = v.join(" ");
            crate::tls::parse_protocols(&value)?;
            c.tls.protocols = value;
            Ok(())
        },
    },
    Param {
        name: "tls-ciphers",
        aliases: &[],
        change: Change::Mutable,
        get: |c| c.tls.ciphers.clone(),
        set: |c, v| {
            crate::tls::parse_ciphers(one(v)?)?;
            c.tls.ciphers = one(v)?.to_string();
            Ok(())
        },
    },
    Param {
        name: "tls-ciphersuites",
        aliases: &[],
        change: Change::Mutable,
        get: |c| c.tls.ciphersuites.clone(),
        set: |c, v| {
            crate::tls::parse_ciphersuites(one(v)?)?;
            c.tls.ciphersuites = one(v)?.to_string();
            Ok(())
        },
    },
    Param {
        name: "tls-prefer-server-ciphers",
        aliases: &[],
        change: Change::Mutable,
        get: |c| yes_no(c.tls.prefer_server_ciphers),
        set: |c, v| {
            c.tls.prefer_server_ciphers = boolean(v)?;
            Ok(())
        },
    },
    Param {
        name: "tls-session-caching",
        aliases: &[],
        change: Change::Mutable,
        get: |c| yes_no(c.tls.session_caching),
        set: |c, v| {
            c.tls.session_caching = boolean(v)?;
            Ok(())
        },
    },
    Param {
        name: "tls-session-cache-size",
        aliases: &[],
        change: Change::Mutable,
        get: |c| c.tls.session_cache_size.to_string(),
        set: |c, v| {
            c.tls.session_cache_size = int_in(v, 0, i64::from(i32::MAX))? as usize;
            Ok(())
        },
    },
    only_default!(
        "tls-session-cache-timeout",
        "300",
        "latchkey (rustls) keeps sessions without a time limit of its own; only 300 is accepted"
    ),
    only_default!(
        "tls-replication",
        "no",
        "latchkey has no replication; only no is accepted"
    ),
    only_default!(
        "tls-cluster",
        "no",
        "latchkey has no cluster bus; only no is accepted"
    ),
    only_default!(
        "tls-client-cert-file",
        "",
        "latchkey makes no outgoing TLS connections (no replication); only an empty value is accepted"
    ),
    only_default!(
        "tls-client-key-file",
        "",
        "latchkey makes no outgoing TLS connections (no replication); only an empty value is accepted"
    ),
    only_default!(
        "tls-client-key-file-pass",
        "",
        "latchkey makes no outgoing TLS connections (no replication); only an empty value is accepted"
    ),
    only_default!(
        "tls-dh-params-file",
        "",
        "latchkey (rustls) offers no DHE suites, only ECDHE ones; only an empty value is accepted"
    ),
    Param {
        name: "appendfilename",
        aliases: &[],
        change: Change::Immutable,
        get: |c| c.appendfilename.clone(),
        set: |c, v| {
            let name = one(v)?;
            if name.contains('/') || name.contains('\\') {
                return Err("appendfilename can't be a path, just a filename".into());
            }
            c.appendfilename = name.to_string();
            Ok(())
        },
    },
    Param {
        name: "appenddirname",
        aliases: &[],
        change: Change::Immutable,
        get: |c| c.appenddirname.clone(),
        set: |c, v| {
            let name = one(v)?;
            if name.contains('/') || name.contains('\\') {
                return Err("appenddirname can't be a path, just a dirname".into());
            }
            c.appenddirname = name.to_string();
            Ok(())
        },
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
    /// What `memory::Memory` applies.
    pub fn memory_settings(&self) -> crate::memory::Settings {
        crate::memory::Settings {
            maxmemory: self.maxmemory,
            policy: self.maxmemory_policy,
            samples: self.maxmemory_samples,
            tenacity: self.maxmemory_eviction_tenacity,
            clients: self.maxmemory_clients,
            lfu_log_factor: self.lfu_log_factor,
            lfu_decay_time: self.lfu_decay_time,
        }
    }

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
        // `save` lines add up, as in redis.conf (the first replaces the
        // defaults, `save ""` clears what came before).
        let mut save_words: Option<Vec<String>> = None;
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
                if name.eq_ignore_ascii_case("user") {
                    // An ACL user: checked when the server starts (the
                    // rules need the command table).
                    if values.is_empty() {
                        return Err(format!(
                            "line {}: Bad directive or wrong number of arguments: 'user'",
                            n + 1
                        ));
                    }
                    self.users.push(values.to_vec());
                    continue;
                }
                let values = if name.eq_ignore_ascii_case("save") {
                    let all = save_words.get_or_insert_with(Vec::new);
                    if values.len() == 1 && values[0].is_empty() {
                        all.clear();
                    } else {
                        all.extend(values.iter().cloned());
                    }
                    if all.is_empty() {
                        vec![String::new()]
                    } else {
                        all.clone()
                    }
                } else {
                    values.to_vec()
                };
                applied.push(
                    self.apply(name, &values)
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
    fn config_file_sets_options_and_the_aof_ones() {
        let mut c = Config::default();
        c.apply_file(
            "# comment\nport 7000\nsave \"\"\nrequirepass \"s p\"\nappendonly yes\nappendfsync ALWAYS\n",
        )
        .unwrap();
        assert_eq!(c.port, 7000);
        assert_eq!(c.requirepass.as_deref(), Some("s p"));
        assert!(c.appendonly);
        assert_eq!(c.appendfsync, "always");
        assert!(c.apply("appendfilename", &["a/b".into()]).is_err());
        assert!(c.apply("aof-use-rdb-preamble", &["no".into()]).is_err());
        assert!(c
            .apply("auto-aof-rewrite-min-size", &["1mb".into()])
            .is_ok());
        assert_eq!(c.auto_aof_rewrite_min_size, 1 << 20);
    }

    #[test]
    fn save_lines_in_a_file_add_up_and_an_empty_one_clears() {
        let point = |seconds, changes| SavePoint { seconds, changes };
        let mut c = Config::default();
        c.apply_file("save 900 1\nsave 300 10\n").unwrap();
        assert_eq!(c.save_points, vec![point(900, 1), point(300, 10)]);
        c.apply_file("save 60 5\n").unwrap();
        assert_eq!(c.save_points, vec![point(60, 5)], "a new file starts over");
        c.apply_file("save 900 1\nsave \"\"\n").unwrap();
        assert!(c.save_points.is_empty());
        let mut d = Config::default();
        d.apply_file("port 7000\n").unwrap();
        assert_eq!(
            d.save_points,
            SavePoint::DEFAULT.to_vec(),
            "no line keeps the defaults"
        );
        for bad in ["save 1", "save 0 1", "save 1 -1", "save x 1", "save 1 2 3"] {
            let err = Config::default().apply_file(bad).err().expect("refused");
            assert!(err.contains("Invalid save parameters"), "{bad}: {err}");
        }
        // strtoll's saturation, as Redis reads them.
        let mut e = Config::default();
        e.apply_file("save 99999999999999999999 1").unwrap();
        assert_eq!(e.save_points, vec![point(i64::MAX as u64, 1)]);
        let err = Config::default()
            .apply_file("dbfilename a/b.rdb")
            .err()
            .expect("refused");
        assert!(
            err.contains("dbfilename can't be a path, just a filename"),
            "{err}"
        );
    }

    #[test]
    fn output_buffer_limits_from_a_file_set_one_class_per_line() {
        let mut c = Config::default();
        c.apply_file(
            "client-output-buffer-limit pubsub 1mb 512kb 10\nclient-output-buffer-limit normal 2mb 0 0\n",
        )
        .unwrap();
        assert_eq!(
            c.output_limits.pubsub,
            OutputLimit {
                hard: 1 << 20,
                soft: 512 << 10,
                soft_seconds: 10
            }
        );
        assert_eq!(c.output_limits.normal.hard, 2 << 20);
        assert_eq!(c.output_limits.replica, OutputLimits::default().replica);
        // A bad group changes nothing, even after a good one.
        assert!(c
            .apply(
                "client-output-buffer-limit",
                &["normal 0 0 0 pubsub 1 x 1".into()]
            )
            .is_err());
        assert_eq!(c.output_limits.normal.hard, 2 << 20);
    }

    #[test]
    fn a_second_required_bind_address_is_refused_not_ignored() {
        let mut c = Config::default();
        assert!(c.apply("bind", &["127.0.0.1 ::1".into()]).is_err());
        assert!(c
            .apply("bind", &["127.0.0.1".into(), "::1".into()])
            .is_err());
        assert!(c.apply("bind", &["127.0.0.1 -::1".into()]).is_ok());
        assert_eq!(c.bind, ["127.0.0.1", "-::1"]);
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
