//! Geographic positions as sorted-set scores, the way Redis's GEO commands
//! store them: a 52-bit geohash (26 bits of latitude and 26 of longitude,
//! interleaved, latitude on the even bits), over the latitudes the Web Mercator
//! projection covers (±85.05112878) and every longitude.
//!
//! A position read back is the centre of its geohash cell, so GEOPOS does not
//! return exactly what GEOADD was given; the arithmetic here follows Redis's
//! step by step (including its quirks at the edges and for scores no GEOADD
//! could produce) so that the digits printed are Redis's digits.
//!
//! Also here: the great-circle distance, the search area of GEOSEARCH (the nine
//! geohash cells to scan and the exact radius or box test on each point), and
//! the 11-character base32 GEOHASH string. No replies, no error text.

/// Southernmost latitude that can be stored.
pub const LAT_MIN: f64 = -85.05112878;
/// Northernmost latitude that can be stored.
pub const LAT_MAX: f64 = 85.05112878;
/// Westernmost longitude.
pub const LON_MIN: f64 = -180.0;
/// Easternmost longitude.
pub const LON_MAX: f64 = 180.0;
/// Bits per coordinate in a stored score.
pub const STEP_MAX: u8 = 26;
/// The Earth's radius Redis measures distances with, in metres.
pub const EARTH_RADIUS_M: f64 = 6372797.560856;

/// Largest distance from the centre of the Web Mercator map to an edge, in
/// metres: the search step is chosen by doubling the radius up to it.
const MERCATOR_MAX: f64 = 20037726.37;

/// Degrees to radians, as Redis computes it (`x * (pi / 180)`).
fn deg_rad(deg: f64) -> f64 {
    deg * (std::f64::consts::PI / 180.0)
}

/// Radians to degrees (`x / (pi / 180)`).
fn rad_deg(rad: f64) -> f64 {
    rad / (std::f64::consts::PI / 180.0)
}

/// A closed interval of one coordinate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Range {
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
}

/// Longitudes Redis encodes over.
pub const LON_RANGE: Range = Range {
    min: LON_MIN,
    max: LON_MAX,
};
/// Latitudes Redis encodes over (the stored scores).
pub const LAT_RANGE: Range = Range {
    min: LAT_MIN,
    max: LAT_MAX,
};
/// Latitudes of the standard geohash (the GEOHASH strings).
const LAT_RANGE_STANDARD: Range = Range {
    min: -90.0,
    max: 90.0,
};

/// One geohash cell: `step` bits per coordinate, interleaved in `bits`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cell {
    /// Latitude bits on the even positions, longitude on the odd.
    pub bits: u64,
    /// Bits per coordinate (1..=26 for cells this module makes).
    pub step: u8,
}

/// A cell and the coordinates it spans.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Area {
    /// The cell.
    pub cell: Cell,
    /// Its longitudes.
    pub lon: Range,
    /// Its latitudes.
    pub lat: Range,
}

/// Spreads the low 32 bits of `even` over the even bit positions and those of
/// `odd` over the odd positions.
fn interleave(even: u32, odd: u32) -> u64 {
    spread(even) | (spread(odd) << 1)
}

/// The 32 bits of `v` moved to the even positions of a 64-bit word.
fn spread(v: u32) -> u64 {
    let mut x = u64::from(v);
    x = (x | (x << 16)) & 0x0000_FFFF_0000_FFFF;
    x = (x | (x << 8)) & 0x00FF_00FF_00FF_00FF;
    x = (x | (x << 4)) & 0x0F0F_0F0F_0F0F_0F0F;
    x = (x | (x << 2)) & 0x3333_3333_3333_3333;
    (x | (x << 1)) & 0x5555_5555_5555_5555
}

/// The even bits of `v`, packed into 32 bits (the inverse of [`spread`]).
fn gather(v: u64) -> u32 {
    let mut x = v & 0x5555_5555_5555_5555;
    x = (x | (x >> 1)) & 0x3333_3333_3333_3333;
    x = (x | (x >> 2)) & 0x0F0F_0F0F_0F0F_0F0F;
    x = (x | (x >> 4)) & 0x00FF_00FF_00FF_00FF;
    x = (x | (x >> 8)) & 0x0000_FFFF_0000_FFFF;
    x = (x | (x >> 16)) & 0x0000_0000_FFFF_FFFF;
    x as u32
}

/// Whether a longitude, latitude pair can be stored.
pub fn valid_position(lon: f64, lat: f64) -> bool {
    (LON_MIN..=LON_MAX).contains(&lon) && (LAT_MIN..=LAT_MAX).contains(&lat)
}

/// The cell of `step` bits per coordinate holding the point, over the given
/// ranges; `None` for a point outside them or outside what can be stored.
pub fn encode_in(lon_range: Range, lat_range: Range, lon: f64, lat: f64, step: u8) -> Option<Cell> {
    if step == 0 || step > 32 || !valid_position(lon, lat) {
        return None;
    }
    if lat < lat_range.min || lat > lat_range.max || lon < lon_range.min || lon > lon_range.max {
        return None;
    }
    let scale = (1u64 << step) as f64;
    let lat_offset = (lat - lat_range.min) / (lat_range.max - lat_range.min) * scale;
    let lon_offset = (lon - lon_range.min) / (lon_range.max - lon_range.min) * scale;
    // The offsets lie in [0, 2^step]: the conversion truncates, as C's does.
    Some(Cell {
        bits: interleave(lat_offset as u32, lon_offset as u32),
        step,
    })
}

/// [`encode_in`] over the stored ranges.
pub fn encode(lon: f64, lat: f64, step: u8) -> Option<Cell> {
    encode_in(LON_RANGE, LAT_RANGE, lon, lat, step)
}

/// The coordinates a cell spans, over the stored ranges.
pub fn decode(cell: Cell) -> Area {
    let lat_index = gather(cell.bits);
    let lon_index = gather(cell.bits >> 1);
    let cells = (1u64 << cell.step.min(63)) as f64;
    // `index + 1` wraps in 32 bits, as Redis's unsigned arithmetic does (only
    // for scores no GEOADD makes).
    let span = |range: Range, index: u32| Range {
        min: range.min + (f64::from(index) / cells) * (range.max - range.min),
        max: range.min + (f64::from(index.wrapping_add(1)) / cells) * (range.max - range.min),
    };
    Area {
        cell,
        lon: span(LON_RANGE, lon_index),
        lat: span(LAT_RANGE, lat_index),
    }
}

/// The centre of an area, clamped to what can be stored.
fn centre(area: &Area) -> (f64, f64) {
    let lon = ((area.lon.min + area.lon.max) / 2.0).clamp(LON_MIN, LON_MAX);
    let lat = ((area.lat.min + area.lat.max) / 2.0).clamp(LAT_MIN, LAT_MAX);
    (lon, lat)
}

/// The score GEOADD stores for a valid position: its 26-step cell, as an
/// integer (exactly representable as a double).
pub fn score(lon: f64, lat: f64) -> Option<u64> {
    encode(lon, lat, STEP_MAX).map(|cell| cell.bits)
}

/// The 52-bit hash a score stands for. Redis converts the double with C's
/// unsigned cast, which on x86-64 turns a negative score into its two's
/// complement and an out-of-range one into 0 or 2^63; reproduced here so that
/// GEOPOS of a score set by ZADD prints what Redis prints.
pub fn score_bits(score: f64) -> u64 {
    const TWO_63: f64 = 9_223_372_036_854_775_808.0;
    const INDEFINITE: u64 = 1 << 63;
    if score < TWO_63 {
        if score >= -TWO_63 {
            score as i64 as u64
        } else {
            INDEFINITE
        }
    } else if score.is_nan() {
        INDEFINITE
    } else {
        let high = score - TWO_63;
        if high < TWO_63 {
            (high as i64 as u64) ^ INDEFINITE
        } else {
            0
        }
    }
}

/// The position (longitude, latitude) a stored score decodes to: the centre
/// of its cell.
pub fn position(score: f64) -> (f64, f64) {
    centre(&decode(Cell {
        bits: score_bits(score),
        step: STEP_MAX,
    }))
}

/// The 11-character geohash string of a stored score, over the standard
/// latitude range -90..90 (the last character stands for bits Redis does not
/// have, and is always `0`).
pub fn geohash_string(score: f64) -> [u8; 11] {
    const ALPHABET: &[u8; 32] = b"0123456789bcdefghjkmnpqrstuvwxyz";
    let (lon, lat) = position(score);
    let bits = encode_in(LON_RANGE, LAT_RANGE_STANDARD, lon, lat, STEP_MAX).map_or(0, |c| c.bits);
    let mut out = [b'0'; 11];
    for (i, c) in out.iter_mut().take(10).enumerate() {
        let shift = 52 - (i + 1) * 5;
        *c = ALPHABET[((bits >> shift) & 0x1f) as usize];
    }
    out
}

/// Distance along a meridian between two latitudes, in metres.
fn lat_distance(lat1: f64, lat2: f64) -> f64 {
    EARTH_RADIUS_M * (deg_rad(lat2) - deg_rad(lat1)).abs()
}

/// Great-circle distance between two points, in metres (the haversine formula,
/// as Redis evaluates it).
pub fn distance(lon1: f64, lat1: f64, lon2: f64, lat2: f64) -> f64 {
    let v = ((deg_rad(lon2) - deg_rad(lon1)) / 2.0).sin();
    if v == 0.0 {
        return lat_distance(lat1, lat2);
    }
    let (lat1r, lat2r) = (deg_rad(lat1), deg_rad(lat2));
    let u = ((lat2r - lat1r) / 2.0).sin();
    let a = u * u + lat1r.cos() * lat2r.cos() * v * v;
    2.0 * EARTH_RADIUS_M * a.sqrt().asin()
}

/// Metres per unit for a unit name (`m`, `km`, `ft`, `mi`, any case).
pub fn unit(name: &[u8]) -> Option<f64> {
    [("m", 1.0), ("km", 1000.0), ("ft", 0.3048), ("mi", 1609.34)]
        .into_iter()
        .find(|(n, _)| name.eq_ignore_ascii_case(n.as_bytes()))
        .map(|(_, metres)| metres)
}

/// The shape of a search, in the unit it was given in.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Shape {
    /// Within `radius` of the centre (BYRADIUS, GEORADIUS).
    Radius(f64),
    /// Within a box `width` wide and `height` high, centred (BYBOX).
    Box {
        /// East-west extent.
        width: f64,
        /// North-south extent.
        height: f64,
    },
}

/// A GEOSEARCH area: a centre, a shape, and the unit's size in metres.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Search {
    /// Centre longitude.
    pub lon: f64,
    /// Centre latitude.
    pub lat: f64,
    /// The shape around the centre.
    pub shape: Shape,
    /// Metres per unit of the shape's sizes.
    pub unit: f64,
}

/// A point found by a search: where it is and how far from the centre.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hit {
    /// Longitude of the point (its cell's centre).
    pub lon: f64,
    /// Latitude of the point.
    pub lat: f64,
    /// Distance from the search centre, in metres.
    pub metres: f64,
}

impl Search {
    /// The smallest and largest longitude and latitude the shape can reach:
    /// `[min_lon, min_lat, max_lon, max_lat]`.
    fn bounds(&self) -> [f64; 4] {
        let (half_height, half_width) = match self.shape {
            Shape::Radius(r) => (r, r),
            Shape::Box { width, height } => (height / 2.0, width / 2.0),
        };
        let (height, width) = (self.unit * half_height, self.unit * half_width);
        let lat_delta = rad_deg(height / EARTH_RADIUS_M);
        let lon_delta_top = rad_deg(width / EARTH_RADIUS_M / deg_rad(self.lat + lat_delta).cos());
        let lon_delta_bottom =
            rad_deg(width / EARTH_RADIUS_M / deg_rad(self.lat - lat_delta).cos());
        // A box's wide edge is the one nearer the equator.
        let lon_delta = if self.lat < 0.0 {
            lon_delta_bottom
        } else {
            lon_delta_top
        };
        [
            self.lon - lon_delta,
            self.lat - lat_delta,
            self.lon + lon_delta,
            self.lat + lat_delta,
        ]
    }

    /// How far from the centre the search reaches, in metres (a box's corner).
    fn reach(&self) -> f64 {
        let size = match self.shape {
            Shape::Radius(r) => r,
            Shape::Box { width, height } => {
                ((width / 2.0) * (width / 2.0) + (height / 2.0) * (height / 2.0)).sqrt()
            }
        };
        size * self.unit
    }

    /// The score ranges `[min, max)` to scan, in Redis's order: the centre's
    /// cell, then north, south, east, west, north-east, north-west, south-east,
    /// south-west, leaving out neighbours the shape cannot reach and a
    /// neighbour equal to the one scanned just before it.
    pub fn score_ranges(&self) -> Vec<(u64, u64)> {
        let cells = self.cells();
        let mut ranges = Vec::with_capacity(cells.len());
        let mut last: Option<Cell> = None;
        for (i, cell) in cells.into_iter().enumerate() {
            let Some(cell) = cell else { continue };
            // Redis compares with the last scanned cell only once that is not
            // the centre's (so a neighbour equal to the centre is scanned twice).
            if i > 0 && last.is_some_and(|l| l == cell) {
                continue;
            }
            let shift = 52 - u32::from(cell.step) * 2;
            let min = cell.bits << shift;
            let max = cell.bits.wrapping_add(1) << shift;
            ranges.push((min, max));
            if i > 0 {
                last = Some(cell);
            }
        }
        ranges
    }

    /// The centre's cell and its eight neighbours (`None` for one left out),
    /// at a step fitting the search's size.
    fn cells(&self) -> [Option<Cell>; 9] {
        let [min_lon, min_lat, max_lon, max_lat] = self.bounds();
        let mut step = estimate_step(self.reach(), self.lat);
        let Some(mut centre) = encode(self.lon, self.lat, step) else {
            return [None; 9];
        };
        let mut near = neighbours(centre);
        // Too coarse when a neighbour does not reach the shape's edge.
        let north = decode(near[0]);
        let south = decode(near[1]);
        let east = decode(near[2]);
        let west = decode(near[3]);
        let short = north.lat.max < max_lat
            || south.lat.min > min_lat
            || east.lon.max < max_lon
            || west.lon.min > min_lon;
        if step > 1 && short {
            step -= 1;
            match encode(self.lon, self.lat, step) {
                Some(c) => centre = c,
                None => return [None; 9],
            }
            near = neighbours(centre);
        }
        let area = decode(centre);
        let [n, s, e, w, ne, nw, se, sw] = near.map(Some);
        let mut cells = [Some(centre), n, s, e, w, ne, nw, se, sw];
        if step >= 2 {
            // Neighbours beyond the shape's bounds are not scanned.
            let mut drop = |indexes: [usize; 3]| indexes.iter().for_each(|&i| cells[i] = None);
            if area.lat.min < min_lat {
                drop([2, 8, 7]);
            }
            if area.lat.max > max_lat {
                drop([1, 5, 6]);
            }
            if area.lon.min < min_lon {
                drop([4, 8, 6]);
            }
            if area.lon.max > max_lon {
                drop([3, 7, 5]);
            }
        }
        cells
    }

    /// Where a stored score lies and its distance from the centre, if it is
    /// inside the shape.
    pub fn hit(&self, score: f64) -> Option<Hit> {
        let (lon, lat) = position(score);
        let metres = match self.shape {
            Shape::Radius(r) => {
                let d = distance(self.lon, self.lat, lon, lat);
                if d > r * self.unit {
                    return None;
                }
                d
            }
            Shape::Box { width, height } => {
                if lat_distance(lat, self.lat) > height * self.unit / 2.0 {
                    return None;
                }
                if distance(lon, lat, self.lon, lat) > width * self.unit / 2.0 {
                    return None;
                }
                distance(self.lon, self.lat, lon, lat)
            }
        };
        Some(Hit { lon, lat, metres })
    }
}

/// The step (bits per coordinate) whose cells are about as large as a search
/// reaching `metres` from a point at latitude `lat`: coarser near the poles.
fn estimate_step(metres: f64, lat: f64) -> u8 {
    if metres == 0.0 {
        return STEP_MAX;
    }
    let mut range = metres;
    let mut step: i32 = 1;
    // At most ~1100 doublings, from the smallest positive double.
    while range < MERCATOR_MAX {
        range *= 2.0;
        step += 1;
    }
    step -= 2;
    if !(-66.0..=66.0).contains(&lat) {
        step -= 1;
        if !(-80.0..=80.0).contains(&lat) {
            step -= 1;
        }
    }
    step.clamp(1, i32::from(STEP_MAX)) as u8
}

/// The cell `dx` cells east (1), west (-1) or the same (0), and `dy` north or
/// south, wrapping around at the edges of the map.
fn moved(cell: Cell, dx: i8, dy: i8) -> Cell {
    let width = 64 - u32::from(cell.step) * 2;
    let lat_mask = 0x5555_5555_5555_5555u64 >> width;
    let lon_mask = 0xAAAA_AAAA_AAAA_AAAAu64 >> width;
    let shift = |bits: u64, mine: u64, others: u64, d: i8| -> u64 {
        // Adding 1 to the bits of one coordinate: fill the other's bits with
        // ones so the carry runs through them.
        match d {
            1 => bits.wrapping_add(others + 1) & mine,
            -1 => (bits | others).wrapping_sub(others + 1) & mine,
            _ => bits,
        }
    };
    let lon = cell.bits & 0xAAAA_AAAA_AAAA_AAAA;
    let lat = cell.bits & 0x5555_5555_5555_5555;
    Cell {
        bits: shift(lon, lon_mask, lat_mask, dx) | shift(lat, lat_mask, lon_mask, dy),
        step: cell.step,
    }
}

/// North, south, east, west, north-east, north-west, south-east, south-west.
fn neighbours(cell: Cell) -> [Cell; 8] {
    [
        moved(cell, 0, 1),
        moved(cell, 0, -1),
        moved(cell, 1, 0),
        moved(cell, -1, 0),
        moved(cell, 1, 1),
        moved(cell, -1, 1),
        moved(cell, 1, -1),
        moved(cell, -1, -1),
    ]
}

/// Sorts `v` far enough that positions `lo..=hi` hold what a full sort would put
/// there, by the partial quicksort Redis uses when a search returns fewer
/// results than it found (`pqsort`: Bentley and McIlroy's three-way
/// partitioning with a median of three, or of nine above 40 elements, and an
/// insertion sort below 7). It is not stable, and which of several equal
/// elements ends up first is part of Redis's reply, so the algorithm is
/// followed step by step. Pending parts wait on a list, not the call stack.
pub fn partial_sort<T>(
    v: &mut [T],
    lo: usize,
    hi: usize,
    cmp: impl Fn(&T, &T) -> std::cmp::Ordering,
) {
    use std::cmp::Ordering::{Greater, Less};
    let med3 = |v: &[T], a: usize, b: usize, c: usize| -> usize {
        if cmp(&v[a], &v[b]) == Less {
            if cmp(&v[b], &v[c]) == Less {
                b
            } else if cmp(&v[a], &v[c]) == Less {
                c
            } else {
                a
            }
        } else if cmp(&v[b], &v[c]) == Greater {
            b
        } else if cmp(&v[a], &v[c]) == Less {
            a
        } else {
            c
        }
    };
    let swap_runs =
        |v: &mut [T], a: usize, b: usize, n: usize| (0..n).for_each(|k| v.swap(a + k, b + k));
    // A part `base..base + n` is sorted only if it holds a wanted position.
    let wanted =
        |base: usize, n: usize| !((lo < base && hi < base) || (lo >= base + n && hi >= base + n));
    let mut pending = vec![(0usize, v.len())];
    while let Some((base, n)) = pending.pop() {
        if n < 7 {
            for m in base + 1..base + n {
                let mut l = m;
                while l > base && cmp(&v[l - 1], &v[l]) == Greater {
                    v.swap(l, l - 1);
                    l -= 1;
                }
            }
            continue;
        }
        let mut pm = base + n / 2;
        if n > 7 {
            let (mut pl, mut pn) = (base, base + n - 1);
            if n > 40 {
                let d = n / 8;
                pl = med3(v, pl, pl + d, pl + 2 * d);
                pm = med3(v, pm - d, pm, pm + d);
                pn = med3(v, pn - 2 * d, pn - d, pn);
            }
            pm = med3(v, pl, pm, pn);
        }
        v.swap(base, pm);
        // Equal to the pivot: gathered at both ends (base+1..pa, pd+1..end),
        // smaller ones in pa..pb, larger ones in pc+1..=pd.
        let (mut pa, mut pb) = (base + 1, base + 1);
        let (mut pc, mut pd) = (base + n - 1, base + n - 1);
        loop {
            while pb <= pc {
                let c = cmp(&v[pb], &v[base]);
                if c == Greater {
                    break;
                }
                if c.is_eq() {
                    v.swap(pa, pb);
                    pa += 1;
                }
                pb += 1;
            }
            while pb <= pc {
                let c = cmp(&v[pc], &v[base]);
                if c == Less {
                    break;
                }
                if c.is_eq() {
                    v.swap(pc, pd);
                    pd -= 1;
                }
                pc -= 1;
            }
            if pb > pc {
                break;
            }
            v.swap(pb, pc);
            pb += 1;
            pc -= 1;
        }
        let end = base + n;
        let r = (pa - base).min(pb - pa);
        swap_runs(v, base, pb - r, r);
        let r = (pd - pc).min(end - pd - 1);
        swap_runs(v, pb, end - r, r);
        let smaller = pb - pa;
        if smaller > 1 && wanted(base, smaller) {
            pending.push((base, smaller));
        }
        let larger = pd - pc;
        if larger > 1 && wanted(end - larger, larger) {
            pending.push((end - larger, larger));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (name, longitude, latitude given to GEOADD, score Redis 7 stored, the
    /// GEOPOS Redis printed (`%.17Lf`, trailing zeros trimmed), GEOHASH).
    const POINTS: &[(&str, f64, f64, u64, &str, &str, &str)] = &[
        (
            "Palermo",
            13.361389,
            38.115556,
            3479099956230698,
            "13.36138933897018433",
            "38.11555639549629859",
            "sqc8b49rny0",
        ),
        (
            "Catania",
            15.087269,
            37.502669,
            3479447370796909,
            "15.08726745843887329",
            "37.50266842333162032",
            "sqdtr74hyu0",
        ),
        (
            "Paris",
            2.3522,
            48.8566,
            3663832779122514,
            "2.35219806432723999",
            "48.8565995303492997",
            "u09tvw0f640",
        ),
        (
            "London",
            -0.1276,
            51.5072,
            2163557714838307,
            "-0.12760072946548462",
            "51.50720053692975853",
            "gcpvj0e54w0",
        ),
        (
            "Fiji",
            179.9999,
            -16.5,
            3355687726873826,
            "179.99990075826644897",
            "-16.49999931370297901",
            "rvpfpurbt90",
        ),
        (
            "Samoa",
            -179.9999,
            -16.6,
            353286846763608,
            "-179.99990075826644897",
            "-16.59999913288122286",
            "2j018401fr0",
        ),
        (
            "NP",
            0.0,
            85.05,
            3752999689392132,
            "0.00000268220901489",
            "85.04999956172351006",
            "up05b4bh0j0",
        ),
        (
            "SP",
            0.0,
            -85.05,
            2251799813768529,
            "0.00000268220901489",
            "-85.04999956172352427",
            "h0bh0j05b40",
        ),
        (
            "SF",
            -122.4194,
            37.7749,
            1367859919124626,
            "-122.41940170526504517",
            "37.77490001056577995",
            "9q8yyk8ytp0",
        ),
        (
            "Tokyo",
            139.6917,
            35.6895,
            4171231230197045,
            "139.69170123338699341",
            "35.68950126697937009",
            "xn774c06kt0",
        ),
        (
            "E180",
            180.0,
            0.0,
            10133099161583616,
            "180",
            "0.00000126736058093",
            "80000000000",
        ),
        (
            "W180",
            -180.0,
            0.0,
            1125899906842624,
            "-179.99999731779098511",
            "0.00000126736058093",
            "80000000000",
        ),
        (
            "corner",
            180.0,
            85.05112878,
            13510798882111488,
            "180",
            "85.0511287799999991",
            "bp05b5048p0",
        ),
        (
            "c2",
            -180.0,
            -85.05112878,
            0,
            "-179.99999731779098511",
            "-85.05112751263942528",
            "00bh0hbj200",
        ),
    ];

    use crate::reply::format_human_double as human;

    #[test]
    fn scores_positions_and_hashes_are_redis_s() {
        for &(name, lon, lat, stored, plon, plat, hash) in POINTS {
            assert_eq!(score(lon, lat), Some(stored), "{name} score");
            let (dlon, dlat) = position(stored as f64);
            assert_eq!(
                (human(dlon).as_str(), human(dlat).as_str()),
                (plon, plat),
                "{name}"
            );
            assert_eq!(
                &geohash_string(stored as f64),
                hash.as_bytes(),
                "{name} hash"
            );
        }
    }

    #[test]
    fn scores_no_geoadd_makes_decode_as_redis_casts_them() {
        // ZADD k -1 neg 1e300 big, then GEOPOS on Redis 7.0.15 (x86-64).
        let (lon, lat) = position(-1.0);
        assert_eq!(
            (human(lon), human(lat)),
            ("180".into(), "85.0511287799999991".into())
        );
        let (lon, lat) = position(1e300);
        assert_eq!(
            (human(lon), human(lat)),
            (
                "-179.99999731779098511".into(),
                "-85.05112751263942528".into()
            )
        );
        assert_eq!(score_bits(f64::INFINITY), 0);
        assert_eq!(score_bits(f64::NEG_INFINITY), 1 << 63);
        assert_eq!(score_bits(-1.0), u64::MAX);
        assert_eq!(score_bits(1e19), 10_000_000_000_000_000_000);
    }

    #[test]
    fn out_of_range_positions_have_no_score() {
        assert_eq!(score(180.000001, 0.0), None);
        assert_eq!(score(0.0, 85.06), None);
        assert_eq!(score(0.0, -90.0), None);
        assert_eq!(score(f64::NAN, 0.0), None);
        assert!(valid_position(-180.0, LAT_MIN));
        assert!(!valid_position(f64::INFINITY, 0.0));
    }

    /// GEODIST between stored points, printed with 4 decimals by Redis.
    #[test]
    fn distances_are_redis_s() {
        let at = |name: &str| {
            let p = POINTS.iter().find(|p| p.0 == name).map_or(0, |p| p.3);
            position(p as f64)
        };
        let dist = |a: &str, b: &str, unit: f64| {
            let ((lon1, lat1), (lon2, lat2)) = (at(a), at(b));
            format!("{:.4}", distance(lon1, lat1, lon2, lat2) / unit)
        };
        assert_eq!(dist("Palermo", "Catania", 1.0), "166274.1516");
        assert_eq!(dist("Fiji", "Samoa", 1000.0), "11.1226");
        assert_eq!(dist("Paris", "London", 1609.34), "213.5204");
        assert_eq!(dist("NP", "SP", 0.3048), "62072157.2589");
        assert_eq!(dist("E180", "W180", 1.0), "0.2983");
        assert_eq!(dist("Paris", "Paris", 1.0), "0.0000");
        assert_eq!(dist("SF", "Tokyo", 1000.0), "8273.0474");
    }

    #[test]
    fn units_are_case_insensitive_and_closed() {
        assert_eq!(unit(b"KM"), Some(1000.0));
        assert_eq!(unit(b"Mi"), Some(1609.34));
        assert_eq!(unit(b"ft"), Some(0.3048));
        assert_eq!(unit(b"m"), Some(1.0));
        assert_eq!(unit(b"meters"), None);
        assert_eq!(unit(b""), None);
    }

    #[test]
    fn neighbours_wrap_around_the_map() {
        let cell = Cell { bits: 0, step: 1 };
        // Step 1: lat bit 0, lon bit 1. West of lon 0 wraps to lon 1.
        assert_eq!(
            moved(cell, -1, 0),
            Cell {
                bits: 0b10,
                step: 1
            }
        );
        assert_eq!(
            moved(cell, 0, 1),
            Cell {
                bits: 0b01,
                step: 1
            }
        );
        assert_eq!(
            moved(cell, 1, 1),
            Cell {
                bits: 0b11,
                step: 1
            }
        );
        let cell = encode(13.36, 38.11, 10).unwrap_or(Cell { bits: 0, step: 0 });
        let here = decode(cell);
        let east = decode(moved(cell, 1, 0));
        assert_eq!(east.lon.min, here.lon.max);
        assert_eq!(east.lat, here.lat);
        let north = decode(moved(cell, 0, 1));
        assert_eq!(north.lat.min, here.lat.max);
    }

    #[test]
    fn search_finds_points_by_radius_and_box() {
        let palermo = POINTS[0].3 as f64;
        let catania = POINTS[1].3 as f64;
        let search = Search {
            lon: 15.0,
            lat: 37.0,
            shape: Shape::Radius(200.0),
            unit: 1000.0,
        };
        // GEOSEARCH ... FROMLONLAT 15 37 BYRADIUS 200 km WITHDIST on Redis:
        // Palermo 190.4424, Catania 56.4413.
        let hit = search
            .hit(palermo)
            .map(|h| format!("{:.4}", h.metres / 1000.0));
        assert_eq!(hit.as_deref(), Some("190.4424"));
        let hit = search
            .hit(catania)
            .map(|h| format!("{:.4}", h.metres / 1000.0));
        assert_eq!(hit.as_deref(), Some("56.4413"));
        let near = Search {
            shape: Shape::Radius(100.0),
            ..search
        };
        assert!(near.hit(palermo).is_none());
        let ranges = search.score_ranges();
        let covered = |s: f64| {
            ranges
                .iter()
                .any(|&(lo, hi)| lo as f64 <= s && s < hi as f64)
        };
        assert!(covered(palermo) && covered(catania));
        let boxed = Search {
            shape: Shape::Box {
                width: 400.0,
                height: 400.0,
            },
            ..search
        };
        assert!(boxed.hit(palermo).is_some());
        let narrow = Search {
            shape: Shape::Box {
                width: 400.0,
                height: 100.0,
            },
            ..search
        };
        assert!(narrow.hit(palermo).is_none());
    }

    #[test]
    fn step_follows_the_radius_and_the_latitude() {
        assert_eq!(estimate_step(0.0, 0.0), 26);
        assert_eq!(estimate_step(f64::MIN_POSITIVE, 0.0), 26);
        assert_eq!(estimate_step(f64::INFINITY, 0.0), 1);
        assert_eq!(estimate_step(200_000.0, 0.0), 6);
        assert_eq!(estimate_step(200_000.0, 70.0), 5);
        assert_eq!(estimate_step(200_000.0, -81.0), 4);
    }

    /// Positions `lo..=hi` hold what a full sort puts there, whatever the
    /// input (a deterministic pseudo-random sweep of sizes and ranges).
    #[test]
    fn partial_sort_places_the_wanted_positions() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for round in 0..400 {
            let n = (next() % 120) as usize + 1;
            let spread = if round % 3 == 0 { 4 } else { 1000 };
            let v: Vec<u64> = (0..n).map(|_| next() % spread).collect();
            let lo = (next() as usize) % n;
            let hi = lo + (next() as usize) % (n - lo);
            let mut sorted = v.clone();
            sorted.sort();
            let mut got = v.clone();
            partial_sort(&mut got, lo, hi, |a, b| a.cmp(b));
            assert_eq!(&got[lo..=hi], &sorted[lo..=hi], "{v:?} {lo}..={hi}");
            let mut all = v.clone();
            partial_sort(&mut all, 0, n - 1, |a, b| a.cmp(b));
            assert_eq!(all, sorted);
        }
    }

    /// Redis's pqsort is not stable: on equal keys its order is its own.
    #[test]
    fn partial_sort_orders_ties_as_redis_pqsort() {
        // Below 7 elements: an insertion sort, which keeps ties in order.
        let mut v = [(1, 'a'), (0, 'b'), (1, 'c'), (0, 'd')];
        partial_sort(&mut v, 0, 1, |a, b| a.0.cmp(&b.0));
        assert_eq!(v[..2], [(0, 'b'), (0, 'd')]);
        // Orders printed by Redis 7.0's pqsort.c run on the same keys (the
        // labels are the input positions); this implementation agreed with
        // it on 3,000 random inputs.
        let labels = |keys: &[u32], lo: usize, hi: usize| -> Vec<usize> {
            let mut v: Vec<(u32, usize)> = keys.iter().copied().zip(0..).collect();
            partial_sort(&mut v, lo, hi, |a, b| a.0.cmp(&b.0));
            v.into_iter().map(|p| p.1).collect()
        };
        let keys = [3, 1, 2, 2, 0, 5, 4, 2];
        assert_eq!(labels(&keys, 0, 7), [4, 1, 3, 7, 2, 0, 6, 5]);
        assert_eq!(labels(&keys, 0, 2), [4, 1, 3, 7, 2, 5, 6, 0]);
        let keys: Vec<u32> = (0..45).map(|i| (i * 7) % 5).collect();
        let want = [
            40, 20, 5, 25, 0, 10, 30, 15, 35, 13, 33, 3, 43, 38, 23, 18, 28, 8, 26, 6, 31, 11, 41,
            16, 1, 21, 36, 44, 4, 9, 14, 19, 24, 29, 34, 39, 27, 37, 22, 2, 17, 12, 42, 7, 32,
        ];
        assert_eq!(labels(&keys, 0, 4), want);
    }
}
