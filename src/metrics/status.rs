//! `GET /`: a status page for people, server-rendered HTML with no script
//! (a meta refresh reloads it): the locks with the longest waits and the
//! largest queues, their holders and waiters, and the wait-time histogram
//! as an inline SVG bar chart.
//!
//! Lock names and owners are the clients' bytes: every one is escaped (and
//! cut to [`MAX_SHOWN`] characters) before it reaches the page.

use std::fmt::Write;
use std::sync::atomic::Ordering;

use super::figures::{self, LockEntry};
use crate::server::Shared;

/// Locks listed in each table.
const TOP: usize = 20;
/// Holders and waiters listed per lock.
const PER_LOCK: usize = 8;
/// Characters of a name or owner shown.
pub const MAX_SHOWN: usize = 120;

/// Client bytes as HTML text: lossy UTF-8, cut to [`MAX_SHOWN`] characters,
/// and `& < > " '` escaped.
pub fn escape(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out = String::with_capacity(text.len());
    for (i, c) in text.chars().enumerate() {
        if i == MAX_SHOWN {
            out.push('…');
            break;
        }
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// The page now.
pub fn render(shared: &Shared) -> String {
    let now = shared.clock.now_ms();
    let mut contended = figures::locks_where(shared, None, usize::MAX, now, |_, l| l.has_waiters());
    let counts = figures::lock_counts(shared);
    let stats = &shared.keyspace.locks().stats;
    let mut p = String::with_capacity(16 * 1024);
    p.push_str(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"2\">\
         <title>latchkey status</title><style>\
         body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}\
         table{border-collapse:collapse;margin-bottom:1.5em}\
         td,th{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top}\
         th{background:#f0f0f0}code{font-size:13px}.n{text-align:right}\
         .bar{fill:#3b7dd8}</style></head><body>\n",
    );
    let _ = writeln!(
        p,
        "<h1>latchkey</h1><p>up {}s · {} clients ({} blocked) · {} locks, {} holders, {} waiters · \
         acquisitions: {} immediate, {} after a wait, {} timed out · fencing token high-water {}</p>",
        shared.started.elapsed().as_secs(),
        shared.clients.len(),
        figures::blocked_clients(shared),
        counts.locks,
        counts.holders,
        counts.waiters,
        stats.acquired_immediately.load(Ordering::Relaxed),
        stats.acquired_after_wait.load(Ordering::Relaxed),
        stats.wait_timeouts.load(Ordering::Relaxed),
        shared.keyspace.locks().high_water(),
    );
    wait_chart(&mut p, &stats.wait_ms.snapshot());
    contended.sort_by_key(|e| std::cmp::Reverse(e.longest_wait(now)));
    table(&mut p, "Longest waits", &contended, now);
    contended.sort_by_key(|e| std::cmp::Reverse(e.info.waiters));
    table(&mut p, "Largest queues", &contended, now);
    p.push_str("</body></html>\n");
    p
}

/// The wait-time histogram, one bar per bucket (not cumulative), as SVG.
fn wait_chart(p: &mut String, h: &super::HistogramSnapshot) {
    let mut per_bucket = Vec::with_capacity(h.buckets.len() + 1);
    let mut below = 0;
    for &(bound, cumulative) in &h.buckets {
        let label = if bound == 0 {
            "0".to_string()
        } else if bound < 1000 {
            format!("≤{bound}ms")
        } else {
            format!("≤{}s", bound as f64 / 1000.0)
        };
        per_bucket.push((label, cumulative.saturating_sub(below)));
        below = cumulative;
    }
    per_bucket.push(("more".to_string(), h.count.saturating_sub(below)));
    let max = per_bucket.iter().map(|b| b.1).max().unwrap_or(0).max(1);
    let (bar_w, height) = (52, 160);
    let width = bar_w * per_bucket.len();
    let _ = write!(
        p,
        "<h2>Lock wait time</h2><p>{} acquires, {:.3}s waited in all</p>\
         <svg id=\"wait-histogram\" width=\"{width}\" height=\"{}\" role=\"img\" \
         aria-label=\"wait-time histogram\">",
        h.count,
        h.sum_ms as f64 / 1000.0,
        height + 40
    );
    for (i, (label, n)) in per_bucket.iter().enumerate() {
        let bar_h = (*n as f64 / max as f64 * height as f64).round() as usize;
        let x = i * bar_w;
        let _ = write!(
            p,
            "<rect class=\"bar\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{bar_h}\"><title>{label}: {n}</title></rect>\
             <text x=\"{}\" y=\"{}\" font-size=\"11\" text-anchor=\"middle\">{n}</text>\
             <text x=\"{}\" y=\"{}\" font-size=\"11\" text-anchor=\"middle\">{label}</text>",
            x + 4,
            height - bar_h + 14,
            bar_w - 8,
            x + bar_w / 2,
            height - bar_h + 12,
            x + bar_w / 2,
            height + 30,
        );
    }
    p.push_str("</svg>\n");
}

/// One table of contended locks, the first [`TOP`] of `locks`.
fn table(p: &mut String, title: &str, locks: &[LockEntry], now: u64) {
    let _ = writeln!(p, "<h2>{title}</h2>");
    if locks.is_empty() {
        p.push_str("<p>No lock has waiters.</p>\n");
        return;
    }
    p.push_str(
        "<table><tr><th>db</th><th>lock</th><th>holders (owner, token, lease left)</th>\
         <th class=\"n\">waiters</th><th class=\"n\">longest wait</th><th>queue (owner, waited)</th></tr>\n",
    );
    for e in locks.iter().take(TOP) {
        let _ = write!(
            p,
            "<tr><td>{}</td><td><code>{}</code></td><td>",
            e.db,
            escape(&e.key)
        );
        for h in e.info.holders.iter().take(PER_LOCK) {
            let _ = write!(
                p,
                "<code>{}</code> #{} {}ms<br>",
                escape(h.owner.as_slice()),
                h.token,
                h.expires_at.saturating_sub(now)
            );
        }
        if e.info.holders.len() > PER_LOCK {
            let _ = write!(p, "… {} more", e.info.holders.len() - PER_LOCK);
        }
        let _ = write!(
            p,
            "</td><td class=\"n\">{}</td><td class=\"n\">{}ms</td><td>",
            e.info.waiters,
            e.longest_wait(now)
        );
        for q in e.info.queue.iter().take(PER_LOCK) {
            let _ = write!(
                p,
                "<code>{}</code> {}ms<br>",
                escape(&q.owner),
                now.saturating_sub(q.since)
            );
        }
        if e.info.queue.len() > PER_LOCK {
            let _ = write!(p, "… {} more", e.info.queue.len() - PER_LOCK);
        }
        p.push_str("</td></tr>\n");
    }
    p.push_str("</table>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_bytes_cannot_open_markup() {
        let hostile = b"<script>alert('x')</script>&\"\x00";
        let shown = escape(hostile);
        assert_eq!(
            shown,
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;\u{fffd}"
        );
        let long = vec![b'a'; 1000];
        assert_eq!(escape(&long).chars().count(), MAX_SHOWN + 1);
    }
}
