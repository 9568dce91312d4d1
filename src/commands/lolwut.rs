//! LOLWUT [VERSION v] [...]: Redis's computer art. Version 5 draws Georg
//! Nees's *Schotter* (squares tilting more as the rows go down) in Braille
//! characters, version 6 a city skyline in terminal colours, both random
//! each time as in Redis; any other version, and the default (this server's
//! own, 7.2), prints the version line.

use bytes::Bytes;

use super::{flag, is, CommandResult, CommandSpec, Ctx};
use crate::error::CommandError;
use crate::reply::Reply;

/// The LOLWUT row.
pub static COMMANDS: &[CommandSpec] =
    &[
        CommandSpec::new("lolwut", -1, flag::READONLY | flag::FAST, lolwut)
            .acl(&["@read", "@fast"])
            .doc(
                "server",
                "5.0.0",
                "Displays computer art and the Redis version",
            ),
    ];

/// The most pixels a version 5 canvas may have. Redis's own limits (1000
/// columns, 200 squares a side) allow a canvas of 800 MB and a reply of
/// 300 MB; latchkey refuses past this (about 6 MB of reply).
const MAX_PIXELS: usize = 1 << 24;

fn lolwut(_: &mut Ctx<'_>, args: &[Bytes]) -> CommandResult {
    let (version, rest) = if args.len() >= 3 && is(&args[1], "version") {
        // Redis prints the version as an unsigned int ("%u.0.0").
        (Some(super::int_arg(&args[2])? as u32), &args[3..])
    } else {
        (None, &args[1..])
    };
    let art = match version {
        Some(5) => schotter(rest)?,
        Some(6) => skyline(rest)?,
        _ => String::new(),
    };
    Ok(Reply::Verbatim(Bytes::from(format!(
        "{art}Redis ver. {}\n",
        crate::server::REDIS_VERSION
    ))))
}

/// The `i`th optional integer argument, or `default`, clamped.
fn number(args: &[Bytes], i: usize, default: i64, max: i64) -> Result<i64, CommandError> {
    let n = match args.get(i) {
        Some(a) => super::int_arg(a)?,
        None => default,
    };
    Ok(n.clamp(1, max))
}

/// A grid of pixel colours.
struct Canvas {
    width: i64,
    height: i64,
    pixels: Vec<u8>,
}

impl Canvas {
    fn new(width: i64, height: i64, color: u8) -> Canvas {
        Canvas {
            width,
            height,
            pixels: vec![color; (width * height) as usize],
        }
    }

    fn set(&mut self, x: i64, y: i64, color: u8) {
        if (0..self.width).contains(&x) && (0..self.height).contains(&y) {
            self.pixels[(x + y * self.width) as usize] = color;
        }
    }

    fn get(&self, x: i64, y: i64) -> u8 {
        if (0..self.width).contains(&x) && (0..self.height).contains(&y) {
            self.pixels[(x + y * self.width) as usize]
        } else {
            0
        }
    }

    /// Bresenham's line from (x1, y1) to (x2, y2), both ends drawn.
    fn line(&mut self, (mut x1, mut y1): (i64, i64), (x2, y2): (i64, i64), color: u8) {
        let (dx, dy) = ((x2 - x1).abs(), (y2 - y1).abs());
        let (sx, sy) = (if x1 < x2 { 1 } else { -1 }, if y1 < y2 { 1 } else { -1 });
        let mut err = dx - dy;
        loop {
            self.set(x1, y1, color);
            if x1 == x2 && y1 == y2 {
                break;
            }
            let e2 = err * 2;
            if e2 > -dy {
                err -= dy;
                x1 += sx;
            }
            if e2 < dx {
                err += dx;
                y1 += sy;
            }
        }
    }

    /// A square of side `size` centred on (x, y), turned by `angle`.
    fn square(&mut self, (x, y): (i64, i64), size: f32, angle: f32, color: u8) {
        // The side of a square inscribed in a circle of radius 1 is √2.
        let size = (size / std::f32::consts::SQRT_2).round();
        let mut k = std::f32::consts::FRAC_PI_4 + angle;
        let mut corners = [(0, 0); 4];
        for c in &mut corners {
            *c = (
                (k.sin() * size + x as f32).round() as i64,
                (k.cos() * size + y as f32).round() as i64,
            );
            k += std::f32::consts::FRAC_PI_2;
        }
        for j in 0..4 {
            self.line(corners[j], corners[(j + 1) % 4], color);
        }
    }
}

/// LOLWUT VERSION 5 [columns [squares-per-row [squares-per-column]]].
fn schotter(args: &[Bytes]) -> Result<String, CommandError> {
    let cols = number(args, 0, 66, 1000)?;
    let per_row = number(args, 1, 8, 200)?;
    let per_col = number(args, 2, 12, 200)?;
    let width = cols * 2;
    let padding = if width > 4 { 2 } else { 0 };
    let side = (width - padding * 2) as f32 / per_row as f32;
    let height = (side * per_col as f32) as i64 + padding * 2;
    if (width * height) as usize > MAX_PIXELS {
        return Err(CommandError::err(
            "LOLWUT canvas too large: use fewer columns or squares",
        ));
    }
    let mut canvas = Canvas::new(width, height, 0);
    let mut rng = fastrand::Rng::new();
    for y in 0..per_col {
        for x in 0..per_row {
            let mut sx = (x as f32 * side + side / 2.0 + padding as f32) as i64;
            let mut sy = (y as f32 * side + side / 2.0 + padding as f32) as i64;
            let mut angle = 0.0;
            // Below the first two rows, more disorder the lower the row.
            if y > 1 {
                let mut r = || rng.f32() / per_col as f32 * y as f32;
                let (mut r1, mut r2, mut r3) = (r(), r(), r());
                for v in [&mut r1, &mut r2, &mut r3] {
                    if rng.bool() {
                        *v = -*v;
                    }
                }
                angle = r1;
                sx += (r2 * side / 3.0) as i64;
                sy += (r3 * side / 3.0) as i64;
            }
            canvas.square((sx, sy), side, angle, 1);
        }
    }
    let mut text = String::new();
    // Each character holds 2x4 pixels, in Braille's dot order.
    for y in (0..height).step_by(4) {
        for x in (0..width).step_by(2) {
            let dots = [
                (0, 0),
                (0, 1),
                (0, 2),
                (1, 0),
                (1, 1),
                (1, 2),
                (0, 3),
                (1, 3),
            ];
            let byte = dots.iter().enumerate().fold(0u32, |b, (bit, (dx, dy))| {
                b | (u32::from(canvas.get(x + dx, y + dy) != 0) << bit)
            });
            text.push(char::from_u32(0x2800 + byte).unwrap_or(' '));
        }
        if y != height - 1 {
            text.push('\n');
        }
    }
    text.push_str("\nGeorg Nees - schotter, plotter on paper, 1968. ");
    Ok(text)
}

/// LOLWUT VERSION 6 [columns [rows]].
fn skyline(args: &[Bytes]) -> Result<String, CommandError> {
    let cols = number(args, 0, 80, 1000)?;
    let rows = number(args, 1, 20, 1000)?;
    let mut canvas = Canvas::new(cols, rows, 3);
    let mut rng = fastrand::Rng::new();
    let mut rand = |n: i64| rng.i64(0..n.max(1));
    let h = canvas.height;
    // The background first, without windows, the lighter grey behind.
    for color in [2u8, 1] {
        let mut offset = -10;
        while offset < canvas.width {
            offset += rand(8);
            let width = 10 + rand(9);
            let height = if color == 2 {
                h / 2 + rand(h) / 2
            } else {
                h / 2 + rand(h) / 3
            };
            skyscraper(&mut canvas, offset, width, height, color, None);
            offset += if color == 2 { width / 2 } else { width + 1 };
        }
    }
    // Then the black foreground ones, with lit windows.
    let mut offset = -10;
    while offset < canvas.width {
        offset += rand(8);
        let mut width = 5 + rand(14);
        if width % 4 != 0 {
            width += width % 3;
        }
        let height = h / 3 + rand(h) / 2;
        skyscraper(&mut canvas, offset, width, height, 0, Some(&mut rand));
        offset += width + 5;
    }
    let mut text = String::new();
    for y in 0..canvas.height {
        for x in 0..canvas.width {
            let escape = match canvas.get(x, y) {
                1 => "0;90;100m",
                2 => "0;37;47m",
                3 => "0;97;107m",
                _ => "0;30;40m",
            };
            text.push_str("\x1b[");
            text.push_str(escape);
            text.push_str(" \x1b[0m");
        }
        if y != canvas.height - 1 {
            text.push('\n');
        }
    }
    text.push_str(
        "\nDedicated to the 8 bit game developers of past and present.\n\
         Original 8 bit image from Plaguemon by hikikomori. ",
    );
    Ok(text)
}

/// One building standing on the bottom row; `windows` draws lit windows
/// (two pixels wide, one tall) in a colour other than the building's.
fn skyscraper(
    canvas: &mut Canvas,
    xoff: i64,
    width: i64,
    height: i64,
    color: u8,
    mut windows: Option<&mut dyn FnMut(i64) -> i64>,
) {
    let bottom = canvas.height - 1;
    let top = bottom - height + 1;
    for y in (top..=bottom).rev() {
        for x in xoff..xoff + width {
            // The roof is four pixels narrower.
            if y == top && (x <= xoff + 1 || x >= xoff + width - 2) {
                continue;
            }
            let mut c = color;
            if let Some(rand) = windows.as_deref_mut() {
                let inside = x > xoff + 1 && x < xoff + width - 2 && y > top + 1 && y < bottom - 1;
                let (rx, ry) = (x - (xoff + 1), y - (top + 1));
                if inside && (rx / 2) % 2 != 0 && ry % 2 != 0 {
                    c = loop {
                        let lit = 1 + rand(2) as u8;
                        if lit != color {
                            break lit;
                        }
                    };
                    // Both pixels of a window alike.
                    if rx % 2 != 0 {
                        c = canvas.get(x - 1, y);
                    }
                }
            }
            canvas.set(x, y, c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(w: &[&str]) -> Vec<Bytes> {
        w.iter()
            .map(|s| Bytes::copy_from_slice(s.as_bytes()))
            .collect()
    }

    #[test]
    fn schotter_is_a_braille_grid_of_the_asked_size() {
        let art = schotter(&words(&["10", "2", "3"])).unwrap();
        let lines: Vec<&str> = art.lines().collect();
        // 20 pixels wide: 10 characters; squares of side 8 three high, plus
        // the padding: 28 pixels, 7 rows of 4. As in Redis, the last row
        // ends with a new line too, then the caption starts with one.
        assert_eq!(lines.len(), 9, "{art}");
        assert!(lines[..7].iter().all(|l| l.chars().count() == 10));
        assert!(art
            .chars()
            .any(|c| c != '\u{2800}' && ('\u{2800}'..='\u{28ff}').contains(&c)));
        assert_eq!(lines[7], "");
        assert!(lines[8].starts_with("Georg Nees - schotter"));
        // The two first rows of squares are never disturbed: the top three
        // lines come out the same each time.
        let again = schotter(&words(&["10", "2", "3"])).unwrap();
        assert_eq!(
            art.lines().take(3).collect::<Vec<_>>(),
            again.lines().take(3).collect::<Vec<_>>()
        );
        assert!(schotter(&words(&["1000", "1", "200"])).is_err());
        assert!(schotter(&words(&["x"])).is_err());
    }

    #[test]
    fn the_skyline_fills_its_canvas_with_four_colours() {
        let art = skyline(&words(&["30", "12"])).unwrap();
        let lines: Vec<&str> = art.lines().collect();
        assert_eq!(lines.len(), 14);
        assert!(lines[..12]
            .iter()
            .all(|l| l.matches("\x1b[0m").count() == 30));
        assert!(lines[0].contains("0;97;107m"), "sky at the top");
    }
}
