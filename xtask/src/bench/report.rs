//! The benchmark's report: rows of samples per system, their median, minimum and maximum, the
//! ratios between systems, and the three renderings (`report.md`, `report.json`, the SVG
//! chart of the ratios). Host-tested; nothing here measures.
//!
//! The chart is hand-written SVG (a few dozen lines): one bar per ratio on a log scale around
//! 1, no fonts or new dependencies needed, and the output is plain text the tests can read.
//! `plotters` would bring a drawing tree for what is a list of rectangles.

use std::fmt::Write as _;

/// A system under test, in the table's column order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum System {
    /// pvguest on hv.
    PvguestHv,
    /// pvguest on stock Xen 4.17 (Linux dom0's netback and blkback).
    PvguestXen,
    /// The Linux PVH domU on stock Xen 4.17.
    LinuxXen,
}

impl System {
    /// Every system, in column order.
    pub const ALL: [Self; 3] = [Self::PvguestHv, Self::PvguestXen, Self::LinuxXen];

    /// The column heading.
    pub fn label(self) -> &'static str {
        match self {
            Self::PvguestHv => "pvguest on hv",
            Self::PvguestXen => "pvguest on Xen",
            Self::LinuxXen => "Linux on Xen",
        }
    }

    /// The key in `report.json`.
    pub fn key(self) -> &'static str {
        match self {
            Self::PvguestHv => "pvguest_hv",
            Self::PvguestXen => "pvguest_xen",
            Self::LinuxXen => "linux_xen",
        }
    }
}

/// Whether a row's figures are timings (noisy: median of several) or exact counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A measured rate or time: bigger is better.
    Higher,
    /// A measured time or cost: smaller is better.
    Lower,
    /// An exact count or size (the same every run).
    Count,
}

/// One row of the report.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// The group (`boot`, `hypercalls`, `network`, `block`, `size`).
    pub group: &'static str,
    /// What is measured.
    pub name: String,
    /// Its unit.
    pub unit: &'static str,
    /// Timing or count.
    pub kind: Kind,
    /// Where the client ran and what was compared (one phrase).
    pub note: String,
    /// The samples of each system that has this measure (in the order taken).
    pub cells: Vec<(System, Vec<f64>)>,
}

/// Median, minimum and maximum of some samples.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Summary {
    /// The median (the mean of the middle two for an even count).
    pub median: f64,
    /// The smallest.
    pub min: f64,
    /// The largest.
    pub max: f64,
    /// How many.
    pub n: usize,
}

/// The summary of `samples`; `None` for none or for a sample that is not a finite number.
pub fn summarize(samples: &[f64]) -> Option<Summary> {
    if samples.is_empty() || samples.iter().any(|s| !s.is_finite()) {
        return None;
    }
    let mut v = samples.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    Some(Summary {
        median,
        min: v[0],
        max: v[n - 1],
        n,
    })
}

/// The ratios the report shows: (heading, numerator, denominator).
pub const RATIOS: [(&str, System, System); 2] = [
    ("hv ÷ Xen (pvguest)", System::PvguestHv, System::PvguestXen),
    (
        "pvguest ÷ Linux (Xen)",
        System::PvguestXen,
        System::LinuxXen,
    ),
];

impl Row {
    /// A row with no samples yet.
    pub fn new(
        group: &'static str,
        name: impl Into<String>,
        unit: &'static str,
        kind: Kind,
        note: impl Into<String>,
    ) -> Self {
        Self {
            group,
            name: name.into(),
            unit,
            kind,
            note: note.into(),
            cells: Vec::new(),
        }
    }

    /// Adds one sample of `system`.
    pub fn push(&mut self, system: System, value: f64) {
        match self.cells.iter_mut().find(|(s, _)| *s == system) {
            Some((_, v)) => v.push(value),
            None => {
                self.cells.push((system, vec![value]));
                self.cells.sort_by_key(|(s, _)| *s);
            }
        }
    }

    /// The summary of `system`'s samples.
    pub fn summary(&self, system: System) -> Option<Summary> {
        self.cells
            .iter()
            .find(|(s, _)| *s == system)
            .and_then(|(_, v)| summarize(v))
    }

    /// `num`'s median over `den`'s, when both have one and `den`'s is not zero.
    pub fn ratio(&self, num: System, den: System) -> Option<f64> {
        let (a, b) = (self.summary(num)?, self.summary(den)?);
        (b.median != 0.0).then(|| a.median / b.median)
    }

    /// Whether every system of the row has a number (and it has at least one system).
    pub fn complete(&self) -> bool {
        !self.cells.is_empty() && self.cells.iter().all(|(_, v)| summarize(v).is_some())
    }
}

/// A number with about four significant digits.
pub fn num(x: f64) -> String {
    let a = x.abs();
    if a >= 1000.0 || (x.fract() == 0.0 && a < 1e15) {
        format!("{x:.0}")
    } else if a >= 100.0 {
        format!("{x:.1}")
    } else if a >= 1.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.4}")
    }
}

/// A cell of the table: `median (min–max, n=N)`, or the value alone for one sample or a
/// count; empty where the system has no such measure.
fn cell(row: &Row, system: System) -> String {
    match row.summary(system) {
        None => String::new(),
        Some(s) if s.n == 1 || row.kind == Kind::Count || s.min == s.max => num(s.median),
        Some(s) => format!(
            "{} ({}–{}, n={})",
            num(s.median),
            num(s.min),
            num(s.max),
            s.n
        ),
    }
}

/// The whole report.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Lines about the host, QEMU and the mode, printed above the table.
    pub header: Vec<String>,
    /// The rows, in order.
    pub rows: Vec<Row>,
}

impl Report {
    /// The rows without a number for one of their systems (or with no system at all).
    pub fn incomplete(&self) -> Vec<&str> {
        self.rows
            .iter()
            .filter(|r| !r.complete())
            .map(|r| r.name.as_str())
            .collect()
    }

    /// The Markdown table (also printed on stdout).
    pub fn markdown(&self) -> String {
        let mut s = String::from("# cargo xtask bench\n\n");
        for h in &self.header {
            let _ = writeln!(s, "- {h}");
        }
        s.push('\n');
        s.push_str("| group | measure | unit |");
        for sys in System::ALL {
            let _ = write!(s, " {} |", sys.label());
        }
        for (heading, _, _) in RATIOS {
            let _ = write!(s, " {heading} |");
        }
        s.push_str(" compared, client |\n|---|---|---|");
        s.push_str(&"---:|".repeat(System::ALL.len() + RATIOS.len()));
        s.push_str("---|\n");
        for row in &self.rows {
            let _ = write!(s, "| {} | {} | {} |", row.group, row.name, row.unit);
            for sys in System::ALL {
                let _ = write!(s, " {} |", cell(row, sys));
            }
            for (_, a, b) in RATIOS {
                let r = row
                    .ratio(a, b)
                    .map(|r| format!("{r:.3}"))
                    .unwrap_or_default();
                let _ = write!(s, " {r} |");
            }
            let _ = writeln!(s, " {} |", row.note);
        }
        s
    }

    /// The raw numbers as JSON: the header, and per row every sample of every system, its
    /// summary and the ratios.
    pub fn json(&self) -> String {
        let mut s = String::from("{\n  \"header\": [");
        let header: Vec<String> = self.header.iter().map(|h| json_str(h)).collect();
        s.push_str(&header.join(", "));
        s.push_str("],\n  \"rows\": [\n");
        let rows: Vec<String> = self.rows.iter().map(row_json).collect();
        s.push_str(&rows.join(",\n"));
        s.push_str("\n  ]\n}\n");
        s
    }

    /// The SVG chart: one bar per (row, ratio) that has a value, on a log₂ scale centred on 1;
    /// green where the numerator's system does better, red where worse, grey for counts.
    pub fn svg(&self) -> String {
        let bars: Vec<(String, f64, Kind)> = self
            .rows
            .iter()
            .flat_map(|row| {
                RATIOS.iter().filter_map(move |(heading, a, b)| {
                    row.ratio(*a, *b)
                        .filter(|r| *r > 0.0)
                        .map(|r| (format!("{} [{}]", row.name, heading), r, row.kind))
                })
            })
            .collect();
        let (label_w, plot_w, bar_h) = (420.0, 400.0, 18.0);
        let height = 60.0 + bar_h * bars.len() as f64;
        let width = label_w + plot_w + 80.0;
        let centre = label_w + plot_w / 2.0;
        // ±3 on the log₂ scale (÷8 to ×8) fills half the plot; beyond is clipped.
        let scale = plot_w / 2.0 / 3.0;
        let mut s = format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" \
             font-family=\"sans-serif\" font-size=\"11\">\n\
             <text x=\"10\" y=\"20\" font-size=\"14\">cargo xtask bench: ratios of medians \
             (log scale; 1 = equal)</text>\n\
             <line x1=\"{centre}\" y1=\"30\" x2=\"{centre}\" y2=\"{}\" stroke=\"black\"/>\n",
            height - 10.0
        );
        for (i, (label, r, kind)) in bars.iter().enumerate() {
            let y = 40.0 + bar_h * i as f64;
            let len = (r.log2().clamp(-3.0, 3.0) * scale).abs();
            let x = if *r >= 1.0 { centre } else { centre - len };
            // Green where the numerator's system does better, red where worse, grey for counts.
            let colour = match kind {
                Kind::Count => "#999",
                Kind::Higher if *r >= 1.0 => "#4a7",
                Kind::Lower if *r <= 1.0 => "#4a7",
                _ => "#c64",
            };
            let _ = writeln!(
                s,
                "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>\
                 <rect x=\"{x:.1}\" y=\"{y}\" width=\"{len:.1}\" height=\"{}\" fill=\"{colour}\"/>\
                 <text x=\"{}\" y=\"{}\">{r:.3}</text>",
                label_w - 6.0,
                y + 12.0,
                xml_escape(label),
                bar_h - 4.0,
                label_w + plot_w + 6.0,
                y + 12.0
            );
        }
        s.push_str("</svg>\n");
        s
    }
}

fn row_json(row: &Row) -> String {
    let systems: Vec<String> = row
        .cells
        .iter()
        .filter_map(|(sys, samples)| {
            let sum = summarize(samples)?;
            let list: Vec<String> = samples.iter().map(|v| json_num(*v)).collect();
            Some(format!(
                "\"{}\": {{\"samples\": [{}], \"median\": {}, \"min\": {}, \"max\": {}}}",
                sys.key(),
                list.join(", "),
                json_num(sum.median),
                json_num(sum.min),
                json_num(sum.max)
            ))
        })
        .collect();
    let ratios: Vec<String> = RATIOS
        .iter()
        .filter_map(|(heading, a, b)| {
            let r = row.ratio(*a, *b)?;
            Some(format!("{}: {}", json_str(heading), json_num(r)))
        })
        .collect();
    let kind = match row.kind {
        Kind::Higher => "higher-is-better",
        Kind::Lower => "lower-is-better",
        Kind::Count => "count",
    };
    format!(
        "    {{\"group\": {}, \"measure\": {}, \"unit\": {}, \"kind\": \"{kind}\", \"note\": {}, \
         \"systems\": {{{}}}, \"ratios\": {{{}}}}}",
        json_str(row.group),
        json_str(&row.name),
        json_str(row.unit),
        json_str(&row.note),
        systems.join(", "),
        ratios.join(", ")
    )
}

/// A finite number as JSON (callers pass only finite ones).
fn json_num(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{x:.0}")
    } else {
        format!("{x}")
    }
}

/// A JSON string literal.
fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_report() -> Report {
        let mut down = Row::new("network", "download", "MB/s", Kind::Higher, "host client");
        for (sys, v) in [
            (System::PvguestHv, 20.0),
            (System::PvguestXen, 10.0),
            (System::PvguestHv, 30.0),
            (System::PvguestXen, 12.0),
            (System::PvguestHv, 25.0),
            (System::PvguestXen, 11.0),
        ] {
            down.push(sys, v);
        }
        let mut size = Row::new("size", "hv ELF", "bytes", Kind::Count, "file size");
        size.push(System::PvguestHv, 123_456.0);
        Report {
            header: vec!["host: test \"cpu\"".into()],
            rows: vec![down, size],
        }
    }

    #[test]
    fn summaries_are_median_min_max() {
        let s = summarize(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.median, s.min, s.max, s.n), (2.0, 1.0, 3.0, 3));
        assert_eq!(summarize(&[4.0, 1.0, 3.0, 2.0]).unwrap().median, 2.5);
        assert!(summarize(&[]).is_none());
        assert!(summarize(&[1.0, f64::NAN]).is_none());
    }

    #[test]
    fn ratios_are_of_medians_and_missing_systems_are_left_out() {
        let r = sample_report();
        assert_eq!(
            r.rows[0].ratio(System::PvguestHv, System::PvguestXen),
            Some(25.0 / 11.0)
        );
        assert_eq!(r.rows[0].ratio(System::PvguestXen, System::LinuxXen), None);
        let md = r.markdown();
        assert!(md.contains("| network | download | MB/s | 25 (20–30, n=3) | 11 (10–12, n=3) |  | 2.273 |  | host client |"), "{md}");
        assert!(md.contains("| size | hv ELF | bytes | 123456 |"), "{md}");
        for banned in ["n/a", "TODO", "null", "not yet", "NaN"] {
            assert!(!md.contains(banned), "{banned} in {md}");
            assert!(!r.json().contains(banned), "{banned} in the json");
            assert!(!r.svg().contains(banned), "{banned} in the svg");
        }
        assert!(r.incomplete().is_empty());
    }

    #[test]
    fn a_row_without_a_number_is_incomplete() {
        let mut r = sample_report();
        r.rows
            .push(Row::new("block", "seq read", "MB/s", Kind::Higher, "x"));
        let mut nan = Row::new("block", "seq write", "MB/s", Kind::Higher, "x");
        nan.push(System::PvguestXen, f64::NAN);
        r.rows.push(nan);
        assert_eq!(r.incomplete(), ["seq read", "seq write"]);
        assert!(!r.json().contains("NaN"));
    }

    #[test]
    fn json_and_svg_carry_the_numbers() {
        let r = sample_report();
        let j = r.json();
        assert!(j.contains("\"host: test \\\"cpu\\\"\""), "{j}");
        assert!(j.contains("\"pvguest_hv\": {\"samples\": [20, 30, 25], \"median\": 25, \"min\": 20, \"max\": 30}"), "{j}");
        assert!(j.contains("\"hv ÷ Xen (pvguest)\": 2.272727"), "{j}");
        let svg = r.svg();
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<rect").count(), 1, "{svg}");
        assert!(svg.contains("fill=\"#4a7\""), "{svg}");
        assert!(svg.contains(">2.273</text>"), "{svg}");
    }
}
