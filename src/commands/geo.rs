//! Geo commands: GEOADD, GEOPOS, GEODIST, GEOHASH, and the searches GEOSEARCH,
//! GEOSEARCHSTORE, GEORADIUS, GEORADIUSBYMEMBER and their read-only forms.
//!
//! Positions are sorted-set members whose score is a geohash
//! ([`crate::types::geo`]); GEOADD is ZADD with that score. Every search goes
//! through one parser and one runner ([`search`]), as Redis's
//! `georadiusGeneric` serves all six, so they accept, reject and reply alike.

use bytes::Bytes;

use super::CommandResult;
use super::{flag, int_arg, is, parse_float, BeginSearch, CommandSpec, Ctx, FindKeys, KeySpec};
use crate::error::CommandError;
use crate::keyspace::{Entry, Shard, Value};
use crate::notify;
use crate::reply::Reply;
use crate::types::geo::{self, Hit, Search, Shape};
use crate::types::zset::{AddFlags, Added, ScoreBound, ScoreRange, ZSet};

const READ: &[&str] = &["@read", "@geo", "@slow"];
const WRITE: &[&str] = &["@write", "@geo", "@slow"];
const RO_KEY: &[KeySpec] = &[KeySpec::one(1, &["RO", "access"])];

/// A key named after `keyword`, searched from argument `startfrom` (GEORADIUS's
/// STORE and STOREDIST).
const fn store_spec(keyword: &'static str, startfrom: i32) -> KeySpec {
    KeySpec {
        flags: &["OW", "update"],
        begin: BeginSearch::Keyword { keyword, startfrom },
        find: FindKeys::Range {
            lastkey: 0,
            keystep: 1,
            limit: 0,
        },
        notes: "",
    }
}

/// The geo family's rows.
pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec::new("geoadd", -5, flag::WRITE | flag::DENYOOM, geoadd)
        .keys(1, 1, 1)
        .acl(WRITE)
        .key_specs(&[KeySpec::one(1, &["RW", "update"])])
        .doc("geo", "3.2.0", "Adds one or more members to a geospatial index. The key is created if it doesn't exist."),
    CommandSpec::new("geopos", -2, flag::READONLY, geopos)
        .keys(1, 1, 1)
        .acl(READ)
        .key_specs(RO_KEY)
        .doc("geo", "3.2.0", "Returns the longitude and latitude of members from a geospatial index."),
    CommandSpec::new("geodist", -4, flag::READONLY, geodist)
        .keys(1, 1, 1)
        .acl(READ)
        .key_specs(RO_KEY)
        .doc("geo", "3.2.0", "Returns the distance between two members of a geospatial index."),
    CommandSpec::new("geohash", -2, flag::READONLY, geohash)
        .keys(1, 1, 1)
        .acl(READ)
        .key_specs(RO_KEY)
        .doc("geo", "3.2.0", "Returns members from a geospatial index as geohash strings."),
    CommandSpec::new("geosearch", -7, flag::READONLY, geosearch)
        .keys(1, 1, 1)
        .acl(READ)
        .key_specs(RO_KEY)
        .doc("geo", "6.2.0", "Queries a geospatial index for members inside an area of a box or a circle."),
    CommandSpec::new("geosearchstore", -8, flag::WRITE | flag::DENYOOM, geosearchstore)
        .keys(1, 2, 1)
        .acl(WRITE)
        .key_specs(&[KeySpec::one(1, &["OW", "update"]), KeySpec::one(2, &["RO", "access"])])
        .doc("geo", "6.2.0", "Queries a geospatial index for members inside an area of a box or a circle, optionally stores the result."),
    CommandSpec::new("georadius", -6, flag::WRITE | flag::DENYOOM, georadius)
        .keys(1, 1, 1)
        .acl(WRITE)
        .key_specs(&[KeySpec::one(1, &["RO", "access"]), store_spec("STORE", 6), store_spec("STOREDIST", 6)])
        .doc("geo", "3.2.0", "Queries a geospatial index for members within a distance from a coordinate, optionally stores the result."),
    CommandSpec::new("georadiusbymember", -5, flag::WRITE | flag::DENYOOM, georadiusbymember)
        .keys(1, 1, 1)
        .acl(WRITE)
        .key_specs(&[KeySpec::one(1, &["RO", "access"]), store_spec("STORE", 5), store_spec("STOREDIST", 5)])
        .doc("geo", "3.2.0", "Queries a geospatial index for members within a distance from a member, optionally stores the result."),
    CommandSpec::new("georadius_ro", -6, flag::READONLY, georadius_ro)
        .keys(1, 1, 1)
        .acl(READ)
        .key_specs(RO_KEY)
        .doc("geo", "3.2.10", "Returns members from a geospatial index that are within a distance from a coordinate."),
    CommandSpec::new("georadiusbymember_ro", -5, flag::READONLY, georadiusbymember_ro)
        .keys(1, 1, 1)
        .acl(READ)
        .key_specs(RO_KEY)
        .doc("geo", "3.2.10", "Returns members from a geospatial index that are within a distance from a member."),
];

/// A float as Redis's `getDoubleFromObject` reads it (`strtod`): like
/// [`parse_float`], but a number too large for a double, or too small to be
/// anything but zero, is refused rather than rounded to infinity or zero.
fn strtod(arg: &[u8]) -> Option<f64> {
    let v = parse_float(arg)?;
    let text = arg
        .strip_prefix(b"-")
        .or_else(|| arg.strip_prefix(b"+"))
        .unwrap_or(arg);
    if v.is_infinite() {
        let literal = text.eq_ignore_ascii_case(b"inf") || text.eq_ignore_ascii_case(b"infinity");
        return literal.then_some(v);
    }
    if v == 0.0 {
        let (digits, hex) = match text.get(..2) {
            Some(p) if p.eq_ignore_ascii_case(b"0x") => (&text[2..], true),
            _ => (text, false),
        };
        let exponent = if hex { [b'p', b'P'] } else { [b'e', b'E'] };
        let mantissa = digits
            .split(|c| exponent.contains(c))
            .next()
            .unwrap_or_default();
        let nonzero = |c: &u8| {
            if hex {
                c.is_ascii_hexdigit() && *c != b'0'
            } else {
                (b'1'..=b'9').contains(c)
            }
        };
        if mantissa.iter().any(nonzero) {
            return None;
        }
    }
    Some(v)
}

/// A float argument (`ERR value is not a valid float`).
fn float(arg: &[u8]) -> Result<f64, CommandError> {
    strtod(arg).ok_or(CommandError::NotFloat)
}

/// A longitude and latitude, checked against what can be stored.
fn position_arg(lon: &[u8], lat: &[u8]) -> Result<(f64, f64), CommandError> {
    let (lon, lat) = (float(lon)?, float(lat)?);
    if !geo::valid_position(lon, lat) {
        return Err(CommandError::err(format!(
            "invalid longitude,latitude pair {lon:.6},{lat:.6}"
        )));
    }
    Ok((lon, lat))
}

/// Metres per unit of a unit argument.
fn unit_arg(arg: &[u8]) -> Result<f64, CommandError> {
    geo::unit(arg)
        .ok_or_else(|| CommandError::err("unsupported unit provided. please use M, KM, FT, MI"))
}

/// A distance as Redis prints one (GEODIST, WITHDIST): rounded to four
/// decimals, half to even, and always printed with four.
fn format_distance(d: f64) -> String {
    let scaled = (d * 10000.0).round_ties_even();
    // Out of range (never for a distance on Earth): what C's `llrint` gives.
    let units = if scaled.abs() < 9.2e18 {
        scaled as i64
    } else {
        i64::MIN
    };
    let sign = if units < 0 { "-" } else { "" };
    let magnitude = units.unsigned_abs();
    format!("{sign}{}.{:04}", magnitude / 10000, magnitude % 10000)
}

/// The set at `key`: `None` when missing, WRONGTYPE for another type.
fn zset_at<'s>(
    shard: &'s mut Shard,
    key: &[u8],
    now: u64,
) -> Result<Option<&'s ZSet>, CommandError> {
    Ok(shard.read::<ZSet>(key, now)?)
}

/// GEOADD key [NX|XX] [CH] longitude latitude member [...]: ZADD with each
/// position's geohash as the score.
fn geoadd(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let key = &args[1];
    let (mut nx, mut xx, mut ch) = (false, false, false);
    let mut first = 2;
    while let Some(opt) = args.get(first) {
        if is(opt, "nx") {
            nx = true;
        } else if is(opt, "xx") {
            xx = true;
        } else if is(opt, "ch") {
            ch = true;
        } else {
            break;
        }
        first += 1;
    }
    let triples = &args[first..];
    if triples.is_empty() || !triples.len().is_multiple_of(3) || (nx && xx) {
        return Err(CommandError::Syntax);
    }
    let mut points = Vec::with_capacity(triples.len() / 3);
    for t in triples.chunks_exact(3) {
        let (lon, lat) = position_arg(&t[0], &t[1])?;
        let score = geo::score(lon, lat).unwrap_or_default();
        points.push((score as f64, &t[2]));
    }
    let limits = ctx.shared.encodings.zset();
    let now = ctx.now;
    let mut shard = ctx.db().lock(key);
    if zset_at(&mut shard, key, now)?.is_none() {
        if xx {
            return Ok(Reply::Int(0));
        }
        let longest = points.iter().map(|(_, m)| m.len()).max().unwrap_or(0);
        let set = ZSet::with_hint(points.len(), longest, limits);
        shard.insert(key, Entry::persistent(Value::ZSet(Box::new(set))), now);
    }
    let Some(set) = shard.write::<ZSet>(key, now)? else {
        return Ok(Reply::Int(0));
    };
    set.reserve_hint(points.len(), limits);
    let flags = AddFlags {
        nx,
        xx,
        ..AddFlags::default()
    };
    let (mut added, mut updated) = (0i64, 0i64);
    for (score, member) in points {
        match set.add(member, score, flags, limits) {
            Ok(Added::New(_)) => added += 1,
            Ok(Added::Updated(_)) => updated += 1,
            _ => {}
        }
    }
    if shard.read::<ZSet>(key, now)?.is_some_and(|z| !z.is_empty()) {
        // Wakes clients blocked in BZPOPMIN and the like on `key`.
        ctx.shared.blocked.signal(ctx.session.db, key);
    }
    drop(shard);
    if added + updated > 0 {
        // GEOADD is ZADD underneath, in Redis too.
        ctx.notify(notify::ZSET, "zadd", key);
    }
    Ok(Reply::Int(if ch { added + updated } else { added }))
}

/// GEOPOS key member [...]: each member's position, nil for a missing one.
fn geopos(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let now = ctx.now;
    let mut shard = ctx.db().lock(&args[1]);
    let set = zset_at(&mut shard, &args[1], now)?;
    let reply = args[2..]
        .iter()
        .map(|m| match set.and_then(|s| s.score(m)) {
            Some(score) => {
                let (lon, lat) = geo::position(score);
                Reply::Array(vec![Reply::HumanDouble(lon), Reply::HumanDouble(lat)])
            }
            None => Reply::NilArray,
        })
        .collect();
    Ok(Reply::Array(reply))
}

/// GEOHASH key member [...]: each member's 11-character geohash.
fn geohash(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let now = ctx.now;
    let mut shard = ctx.db().lock(&args[1]);
    let set = zset_at(&mut shard, &args[1], now)?;
    let reply = args[2..]
        .iter()
        .map(|m| match set.and_then(|s| s.score(m)) {
            Some(score) => Reply::Bulk(Bytes::copy_from_slice(&geo::geohash_string(score))),
            None => Reply::Nil,
        })
        .collect();
    Ok(Reply::Array(reply))
}

/// GEODIST key member1 member2 [unit]: nil when either member is missing.
fn geodist(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let unit = match args.len() {
        4 => 1.0,
        5 => unit_arg(&args[4])?,
        _ => return Err(CommandError::Syntax),
    };
    let now = ctx.now;
    let mut shard = ctx.db().lock(&args[1]);
    let Some(set) = zset_at(&mut shard, &args[1], now)? else {
        return Ok(Reply::Nil);
    };
    let (Some(a), Some(b)) = (set.score(&args[2]), set.score(&args[3])) else {
        return Ok(Reply::Nil);
    };
    let ((lon1, lat1), (lon2, lat2)) = (geo::position(a), geo::position(b));
    let metres = geo::distance(lon1, lat1, lon2, lat2);
    Ok(Reply::bulk_string(format_distance(metres / unit)))
}

/// Which search command runs: what it accepts and where its arguments are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// GEORADIUS / GEORADIUS_RO: `key lon lat radius unit ...`.
    Radius { store: bool },
    /// GEORADIUSBYMEMBER / _RO: `key member radius unit ...`.
    RadiusByMember { store: bool },
    /// GEOSEARCH: `key FROM... BY... ...`.
    Search,
    /// GEOSEARCHSTORE: `dest key FROM... BY... ...`.
    SearchStore,
}

impl Kind {
    fn accepts_store_key(self) -> bool {
        matches!(
            self,
            Kind::Radius { store: true } | Kind::RadiusByMember { store: true }
        )
    }

    fn is_search(self) -> bool {
        matches!(self, Kind::Search | Kind::SearchStore)
    }
}

fn georadius(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    search(ctx, args, Kind::Radius { store: true })
}

fn georadius_ro(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    search(ctx, args, Kind::Radius { store: false })
}

fn georadiusbymember(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    search(ctx, args, Kind::RadiusByMember { store: true })
}

fn georadiusbymember_ro(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    search(ctx, args, Kind::RadiusByMember { store: false })
}

fn geosearch(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    search(ctx, args, Kind::Search)
}

fn geosearchstore(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    search(ctx, args, Kind::SearchStore)
}

/// Result order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sort {
    None,
    Asc,
    Desc,
}

/// A search's options once parsed.
#[derive(Debug)]
struct Options<'a> {
    centre: Option<(f64, f64)>,
    shape: Option<(Shape, f64)>,
    from_member: bool,
    from_lonlat: bool,
    with_dist: bool,
    with_hash: bool,
    with_coord: bool,
    any: bool,
    sort: Sort,
    count: usize,
    store: Option<&'a Bytes>,
    store_dist: bool,
}

/// A member found by a search.
struct Found {
    member: Bytes,
    score: f64,
    hit: Hit,
}

/// The position of `member` as a search centre.
fn member_position(set: &ZSet, member: &[u8]) -> Result<(f64, f64), CommandError> {
    set.score(member)
        .map(geo::position)
        .ok_or_else(|| CommandError::err("could not decode requested zset member"))
}

/// `radius unit`.
fn radius_arg(radius: &[u8], unit: &[u8]) -> Result<(Shape, f64), CommandError> {
    let r = strtod(radius).ok_or_else(|| CommandError::err("need numeric radius"))?;
    if r < 0.0 {
        return Err(CommandError::err("radius cannot be negative"));
    }
    Ok((Shape::Radius(r), unit_arg(unit)?))
}

/// `width height unit`.
fn box_arg(width: &[u8], height: &[u8], unit: &[u8]) -> Result<(Shape, f64), CommandError> {
    let w = strtod(width).ok_or_else(|| CommandError::err("need numeric width"))?;
    let h = strtod(height).ok_or_else(|| CommandError::err("need numeric height"))?;
    if h < 0.0 || w < 0.0 {
        return Err(CommandError::err("height or width cannot be negative"));
    }
    Ok((
        Shape::Box {
            width: w,
            height: h,
        },
        unit_arg(unit)?,
    ))
}

/// Reads the options after the fixed arguments, in order, failing at the first
/// bad one as Redis does (a FROMMEMBER naming a missing member fails there,
/// before later options are looked at).
fn parse_options<'a>(
    kind: Kind,
    rest: &'a [Bytes],
    set: Option<&ZSet>,
    opts: &mut Options<'a>,
) -> Result<(), CommandError> {
    let mut i = 0;
    while let Some(arg) = rest.get(i) {
        let left = rest.len() - i - 1;
        if is(arg, "withdist") {
            opts.with_dist = true;
        } else if is(arg, "withhash") {
            opts.with_hash = true;
        } else if is(arg, "withcoord") {
            opts.with_coord = true;
        } else if is(arg, "any") {
            opts.any = true;
        } else if is(arg, "asc") {
            opts.sort = Sort::Asc;
        } else if is(arg, "desc") {
            opts.sort = Sort::Desc;
        } else if is(arg, "count") && left >= 1 {
            let n = int_arg(&rest[i + 1])?;
            if n <= 0 {
                return Err(CommandError::err("COUNT must be > 0"));
            }
            opts.count = usize::try_from(n).unwrap_or(usize::MAX);
            i += 1;
        } else if (is(arg, "store") || is(arg, "storedist"))
            && left >= 1
            && kind.accepts_store_key()
        {
            opts.store = Some(&rest[i + 1]);
            opts.store_dist = is(arg, "storedist");
            i += 1;
        } else if is(arg, "storedist") && kind == Kind::SearchStore {
            opts.store_dist = true;
        } else if is(arg, "frommember") && left >= 1 && kind.is_search() && !opts.from_lonlat {
            if let Some(set) = set {
                opts.centre = Some(member_position(set, &rest[i + 1])?);
            }
            opts.from_member = true;
            i += 1;
        } else if is(arg, "fromlonlat") && left >= 2 && kind.is_search() && !opts.from_member {
            opts.centre = Some(position_arg(&rest[i + 1], &rest[i + 2])?);
            opts.from_lonlat = true;
            i += 2;
        } else if is(arg, "byradius")
            && left >= 2
            && kind.is_search()
            && !matches!(opts.shape, Some((Shape::Box { .. }, _)))
        {
            opts.shape = Some(radius_arg(&rest[i + 1], &rest[i + 2])?);
            i += 2;
        } else if is(arg, "bybox")
            && left >= 3
            && kind.is_search()
            && !matches!(opts.shape, Some((Shape::Radius(_), _)))
        {
            opts.shape = Some(box_arg(&rest[i + 1], &rest[i + 2], &rest[i + 3])?);
            i += 3;
        } else {
            return Err(CommandError::Syntax);
        }
        i += 1;
    }
    Ok(())
}

/// Everything the search needs from the set at `key` (missing: `Ok(None)`),
/// parsed in Redis's order: the fixed arguments, then the options, then the
/// checks across options.
fn parse_search<'a>(
    kind: Kind,
    args: &'a [Bytes],
    set: Option<&ZSet>,
) -> Result<Options<'a>, CommandError> {
    let mut opts = Options {
        centre: None,
        shape: None,
        from_member: false,
        from_lonlat: false,
        with_dist: false,
        with_hash: false,
        with_coord: false,
        any: false,
        sort: Sort::None,
        count: 0,
        store: None,
        store_dist: false,
    };
    let base = match kind {
        Kind::Radius { .. } => {
            opts.centre = Some(position_arg(&args[2], &args[3])?);
            opts.shape = Some(radius_arg(&args[4], &args[5])?);
            6
        }
        Kind::RadiusByMember { .. } => {
            // With no set there is nothing to decode: Redis goes on to the
            // options and answers an empty result.
            if let Some(set) = set {
                opts.centre = Some(member_position(set, &args[2])?);
                opts.shape = Some(radius_arg(&args[3], &args[4])?);
            }
            5
        }
        Kind::Search => 2,
        Kind::SearchStore => {
            opts.store = Some(&args[1]);
            3
        }
    };
    parse_options(kind, args.get(base..).unwrap_or_default(), set, &mut opts)?;
    if opts.store.is_some() && (opts.with_dist || opts.with_hash || opts.with_coord) {
        let who = if kind == Kind::SearchStore {
            "GEOSEARCHSTORE"
        } else {
            "STORE option in GEORADIUS"
        };
        return Err(CommandError::err(format!(
            "{who} is not compatible with WITHDIST, WITHHASH and WITHCOORD options"
        )));
    }
    let name = String::from_utf8_lossy(&args[0]);
    if kind.is_search() && !(opts.from_member || opts.from_lonlat) {
        return Err(CommandError::err(format!(
            "exactly one of FROMMEMBER or FROMLONLAT can be specified for {name}"
        )));
    }
    if kind.is_search() && opts.shape.is_none() {
        return Err(CommandError::err(format!(
            "exactly one of BYRADIUS and BYBOX can be specified for {name}"
        )));
    }
    if opts.any && opts.count == 0 {
        return Err(CommandError::err(
            "the ANY argument requires COUNT argument",
        ));
    }
    Ok(opts)
}

/// The members of `set` inside the search area, in the order Redis finds them
/// (cell by cell, by score within a cell), stopping at `limit` (0: none).
fn find(set: &ZSet, area: &Search, limit: usize) -> Vec<Found> {
    let mut found = Vec::new();
    for (min, max) in area.score_ranges() {
        let range = ScoreRange {
            min: ScoreBound {
                value: min as f64,
                exclusive: false,
            },
            max: ScoreBound {
                value: max as f64,
                exclusive: true,
            },
        };
        let (start, end) = set.score_bounds(&range);
        for (member, score) in set.range(start, end, false) {
            if let Some(hit) = area.hit(score) {
                found.push(Found {
                    member: Bytes::copy_from_slice(member),
                    score,
                    hit,
                });
            }
            if limit > 0 && found.len() >= limit {
                return found;
            }
        }
    }
    found
}

/// The keys a search may write: GEOSEARCHSTORE's destination, or any argument
/// after a STORE or STOREDIST word (locked up front; only the one the parser
/// settles on is written).
fn store_candidates(kind: Kind, args: &[Bytes]) -> Vec<&Bytes> {
    match kind {
        Kind::SearchStore => vec![&args[1]],
        _ if kind.accepts_store_key() => args
            .windows(2)
            .filter(|w| is(&w[0], "store") || is(&w[0], "storedist"))
            .map(|w| &w[1])
            .collect(),
        _ => Vec::new(),
    }
}

/// Runs any of the six searches (Redis's `georadiusGeneric`).
fn search(ctx: &mut Ctx<'_>, args: &[Bytes], kind: Kind) -> CommandResult {
    let key = if kind == Kind::SearchStore {
        &args[2]
    } else {
        &args[1]
    };
    let mut keys = store_candidates(kind, args);
    keys.push(key);
    let now = ctx.now;
    let limits = ctx.shared.encodings.zset();
    let db = ctx.db();
    let mut shards = db.lock_keys(&keys);
    let (opts, found) = {
        let set = zset_at(shards.shard(key), key, now)?;
        let mut opts = parse_search(kind, args, set)?;
        let Some(set) = set else {
            return Ok(match opts.store {
                Some(dest) => {
                    if shards.shard(dest).remove(dest, now).is_some() {
                        drop(shards);
                        ctx.notify(notify::GENERIC, "del", dest);
                    }
                    Reply::Int(0)
                }
                None => Reply::Array(Vec::new()),
            });
        };
        let (Some((lon, lat)), Some((shape, unit))) = (opts.centre, opts.shape) else {
            return Ok(Reply::Array(Vec::new()));
        };
        if opts.count > 0 && opts.sort == Sort::None && !opts.any {
            opts.sort = Sort::Asc;
        }
        let area = Search {
            lon,
            lat,
            shape,
            unit,
        };
        let limit = if opts.any { opts.count } else { 0 };
        (opts, find(set, &area, limit))
    };
    let mut found = found;
    let returned = if opts.count > 0 {
        opts.count.min(found.len())
    } else {
        found.len()
    };
    let order = match opts.sort {
        Sort::Asc => Some(by_distance as fn(&Found, &Found) -> std::cmp::Ordering),
        Sort::Desc => Some((|a, b| by_distance(b, a)) as fn(&Found, &Found) -> std::cmp::Ordering),
        Sort::None => None,
    };
    if let Some(order) = order {
        if returned == found.len() {
            // A stable sort, as glibc's qsort (a merge sort) is.
            found.sort_by(order);
        } else if returned > 0 {
            geo::partial_sort(&mut found, 0, returned - 1, order);
        }
    }
    found.truncate(returned);
    let unit = opts.shape.map_or(1.0, |(_, unit)| unit);
    match opts.store {
        None => Ok(Reply::Array(
            found
                .into_iter()
                .map(|f| search_item(f, &opts, unit))
                .collect(),
        )),
        Some(dest) => {
            let stored = found.len();
            let shard = shards.shard(dest);
            if found.is_empty() {
                if shard.remove(dest, now).is_some() {
                    drop(shards);
                    ctx.notify(notify::GENERIC, "del", dest);
                }
            } else {
                let longest = found.iter().map(|f| f.member.len()).max().unwrap_or(0);
                let mut set = ZSet::with_hint(stored, longest, limits);
                for f in found {
                    let score = if opts.store_dist {
                        f.hit.metres / unit
                    } else {
                        f.score
                    };
                    set.insert(&f.member, score, limits);
                }
                shard.insert(dest, Entry::persistent(Value::ZSet(Box::new(set))), now);
                ctx.shared.blocked.signal(ctx.session.db, dest);
                drop(shards);
                let event = if kind == Kind::SearchStore {
                    "geosearchstore"
                } else {
                    "georadiusstore"
                };
                ctx.notify(notify::ZSET, event, dest);
            }
            Ok(Reply::Int(stored as i64))
        }
    }
}

/// Nearer first; equal distances keep their order.
fn by_distance(a: &Found, b: &Found) -> std::cmp::Ordering {
    a.hit
        .metres
        .partial_cmp(&b.hit.metres)
        .unwrap_or(std::cmp::Ordering::Equal)
}

/// One result: the member alone, or with what WITHDIST, WITHHASH and WITHCOORD
/// asked for, in that order.
fn search_item(f: Found, opts: &Options<'_>, unit: f64) -> Reply {
    if !(opts.with_dist || opts.with_hash || opts.with_coord) {
        return Reply::Bulk(f.member);
    }
    let mut item = vec![Reply::Bulk(f.member)];
    if opts.with_dist {
        item.push(Reply::bulk_string(format_distance(f.hit.metres / unit)));
    }
    if opts.with_hash {
        item.push(Reply::Int(f.score as i64));
    }
    if opts.with_coord {
        item.push(Reply::Array(vec![
            Reply::HumanDouble(f.hit.lon),
            Reply::HumanDouble(f.hit.lat),
        ]));
    }
    Reply::Array(item)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances_print_with_four_decimals_as_redis() {
        assert_eq!(format_distance(166274.15156960033), "166274.1516");
        assert_eq!(format_distance(0.0), "0.0000");
        assert_eq!(format_distance(0.00005), "0.0000");
        assert_eq!(format_distance(0.00015), "0.0001");
        assert_eq!(format_distance(0.00025), "0.0002");
        assert_eq!(format_distance(0.00035), "0.0004");
        assert_eq!(format_distance(0.5), "0.5000");
        assert_eq!(format_distance(12.34567), "12.3457");
        assert_eq!(format_distance(-1.5), "-1.5000");
        assert_eq!(format_distance(f64::NAN), "-922337203685477.5808");
    }

    #[test]
    fn floats_are_read_as_strtod_reads_them() {
        assert_eq!(strtod(b"1.5"), Some(1.5));
        assert_eq!(strtod(b"-inf"), Some(f64::NEG_INFINITY));
        assert_eq!(strtod(b"Infinity"), Some(f64::INFINITY));
        assert_eq!(strtod(b"0"), Some(0.0));
        assert_eq!(strtod(b"-0.000e10"), Some(-0.0));
        assert_eq!(strtod(b"0x0p5"), Some(0.0));
        assert_eq!(strtod(b"1e-310"), Some(1e-310));
        for bad in [
            &b"1e400"[..],
            b"-1e400",
            b"1e-400",
            b"0x1p-5000",
            b"0x1p5000",
            b"nan",
            b" 1",
            b"",
        ] {
            assert_eq!(strtod(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }
}
