//! The PNG of `skyshard bench offload`: gateway CPU per object byte, stacked by
//! engine, for every PUT and GET run; and the TLS sweep (ns/byte against record size
//! and write size).

use std::path::Path;

use anyhow::{Context as _, anyhow};
use plotters::coord::ranged1d::SegmentValue;
use plotters::prelude::*;

use super::offload::{Report, SweepPoint};

/// One figure of a sweep point.
type Metric = fn(&SweepPoint) -> f64;

/// Engine classes in stacking order.
const CLASSES: [&str; 7] = ["TLS", "AES-GCM", "RLNC", "CRC32C", "hashing", "other engines", "rest"];

/// Where TrueType fonts usually are (the first that exists is used; `SKYSHARD_FONT`
/// names another).
const FONTS: [&str; 4] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
];

/// Registers a system font as `sans-serif` (plotters draws text with ab_glyph and
/// ships no font of its own).
fn load_font() -> anyhow::Result<()> {
    let candidates = std::env::var("SKYSHARD_FONT").ok().into_iter().chain(FONTS.iter().map(|s| s.to_string()));
    for path in candidates {
        if let Ok(bytes) = std::fs::read(&path) {
            // Registered once per process; plotters keeps a 'static reference.
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            return plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
                .map_err(|_| anyhow!("{path} is not a usable TrueType font"));
        }
    }
    Err(anyhow!("no TrueType font found (install fonts-dejavu-core, or set SKYSHARD_FONT to a .ttf file)"))
}

fn color(i: usize) -> RGBColor {
    const COLORS: [RGBColor; 7] = [
        RGBColor(214, 39, 40),
        RGBColor(31, 119, 180),
        RGBColor(44, 160, 44),
        RGBColor(148, 103, 189),
        RGBColor(255, 127, 14),
        RGBColor(140, 86, 75),
        RGBColor(170, 170, 170),
    ];
    COLORS[i % COLORS.len()]
}

/// Draws `report` into `path`.
pub fn draw(report: &Report, path: &Path) -> anyhow::Result<()> {
    load_font()?;
    let root = BitMapBackend::new(path, (1500, 1300)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
    let (top, bottom) = root.split_vertically(760);
    bars(report, &top).context("bar chart")?;
    let (left, right) = bottom.split_horizontally(750);
    let records: Vec<&SweepPoint> = report.sweep.iter().filter(|p| p.write == super::offload::SWEEP_WRITE).collect();
    let writes: Vec<&SweepPoint> = report.sweep.iter().filter(|p| p.record == super::offload::SWEEP_RECORD).collect();
    sweep(&records, |p| p.record, "TLS record size (bytes), 64 KiB writes", &left).context("record sweep")?;
    sweep(&writes, |p| p.write, "write size (bytes), 16 KiB records", &right).context("write sweep")?;
    root.present().map_err(|e| anyhow!("{e}"))?;
    Ok(())
}

fn bars(report: &Report, area: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>) -> anyhow::Result<()> {
    let ops = &report.ops;
    let ymax = ops.iter().map(|o| o.cpu_ns_per_byte.max(o.breakdown.values().sum())).fold(0.0, f64::max) * 1.25;
    let labels: Vec<String> = ops.iter().map(|o| format!("{} {}/{}", o.op, o.tls, o.aead)).collect();
    let caption = format!(
        "Gateway CPU per object byte, by engine — {} object, {}-of-{}, {} ({} CPUs)",
        gateway::config::units::format_size(report.size),
        report.k,
        report.n,
        report.machine.cpu,
        report.machine.cpus
    );
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(70)
        // Segments of `a..b` run from a to b inclusive: one per operation.
        .build_cartesian_2d((0..ops.len().saturating_sub(1)).into_segmented(), 0f64..ymax.max(0.1))
        .map_err(|e| anyhow!("{e}"))?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(ops.len().max(1))
        .x_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => labels.get(*i).cloned().unwrap_or_default(),
            _ => String::new(),
        })
        .x_label_style(("sans-serif", 13))
        .y_desc("ns per object byte (gateway process)")
        .draw()
        .map_err(|e| anyhow!("{e}"))?;
    for (ci, class) in CLASSES.iter().enumerate() {
        let c = color(ci);
        let rects = ops.iter().enumerate().filter_map(|(i, o)| {
            let h = o.breakdown.get(*class).copied().unwrap_or(0.0);
            let base: f64 = CLASSES[..ci].iter().map(|k| o.breakdown.get(*k).copied().unwrap_or(0.0)).sum();
            (h > 0.0).then(|| {
                let mut r = Rectangle::new(
                    [(SegmentValue::Exact(i), base), (SegmentValue::Exact(i + 1), base + h)],
                    c.filled(),
                );
                r.set_margin(0, 0, 12, 12);
                r
            })
        });
        chart
            .draw_series(rects)
            .map_err(|e| anyhow!("{e}"))?
            .label(*class)
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 12, y + 6)], c.filled()));
    }
    let notes = ops.iter().enumerate().map(|(i, o)| {
        let top: f64 = o.breakdown.values().sum();
        Text::new(
            format!("{:.0} MiB/s, TLS {:.0}%", o.mib_per_s, o.tls_share * 100.0),
            (SegmentValue::Exact(i), top + ymax * 0.02),
            ("sans-serif", 12).into_font(),
        )
    });
    chart.draw_series(notes).map_err(|e| anyhow!("{e}"))?;
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .draw()
        .map_err(|e| anyhow!("{e}"))?;
    Ok(())
}

fn sweep(
    points: &[&SweepPoint],
    x: impl Fn(&SweepPoint) -> usize,
    xdesc: &str,
    area: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
) -> anyhow::Result<()> {
    if points.is_empty() {
        return Ok(());
    }
    // x is log2 of the size, labelled with the sizes measured.
    let log2 = |p: &SweepPoint| (x(p) as f64).log2();
    let (xmin, xmax) = points.iter().map(|p| log2(p)).fold((f64::MAX, f64::MIN), |(a, b), v| (a.min(v), b.max(v)));
    let ymax = points.iter().map(|p| p.send_ns_per_byte.max(p.recv_ns_per_byte)).fold(0.0, f64::max) * 1.2;
    let mut chart = ChartBuilder::on(area)
        .caption(format!("TLS over loopback, server side — {xdesc}"), ("sans-serif", 16))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(xmin - 0.3..xmax + 0.3, 0f64..ymax.max(0.1))
        .map_err(|e| anyhow!("{e}"))?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(((xmax - xmin) * 4.0) as usize + 2)
        .x_label_formatter(&|v| {
            if (v - v.round()).abs() < 0.01 {
                gateway::config::units::format_size(2f64.powf(v.round()) as u64)
            } else {
                String::new()
            }
        })
        .x_desc(xdesc)
        .y_desc("ns per byte")
        .draw()
        .map_err(|e| anyhow!("{e}"))?;
    let mut engines: Vec<&str> = points.iter().map(|p| p.engine.as_str()).collect();
    engines.dedup();
    for (ei, engine) in engines.iter().enumerate() {
        let mine: Vec<&&SweepPoint> = points.iter().filter(|p| p.engine == *engine).collect();
        let directions: [(&str, Metric); 2] = [("send", |p| p.send_ns_per_byte), ("recv", |p| p.recv_ns_per_byte)];
        for (di, (dir, f)) in directions.into_iter().enumerate() {
            let c = color(ei * 2 + di);
            let mut line: Vec<(f64, f64)> = mine.iter().map(|p| (log2(p), f(p))).collect();
            line.sort_by(|a, b| a.0.total_cmp(&b.0));
            chart
                .draw_series(LineSeries::new(line.clone(), c.stroke_width(2)))
                .map_err(|e| anyhow!("{e}"))?
                .label(format!("{engine} {dir}"))
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], c.stroke_width(2)));
            chart.draw_series(line.into_iter().map(|pt| Circle::new(pt, 3, c.filled()))).map_err(|e| anyhow!("{e}"))?;
        }
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 13))
        .draw()
        .map_err(|e| anyhow!("{e}"))?;
    Ok(())
}
