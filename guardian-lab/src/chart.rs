//! The MTTR chart: one horizontal bar per fault, median time from the fault's condition to the
//! verified heal (detection + heal), split into its two parts, with a whisker to the p95.
//! Detection-only faults show their detection latency alone. SVG (plotters' SVG backend only).
use plotters::prelude::*;

use super::report::Summary;

const DETECT: RGBColor = RGBColor(0x4c, 0x78, 0xa8);
const HEAL: RGBColor = RGBColor(0xf5, 0x85, 0x18);

/// Renders the chart for `rows` as an SVG document.
pub fn svg(rows: &[Summary]) -> String {
    let mut out = String::new();
    let height = 120 + 34 * rows.len().max(1) as u32;
    // Drawing into a String cannot fail for I/O reasons; a layout error leaves what was drawn.
    let _ = draw(rows, &mut out, height);
    out
}

fn draw(rows: &[Summary], out: &mut String, height: u32) -> Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::with_string(out, (900, height)).into_drawing_area();
    root.fill(&WHITE)?;
    let max = rows
        .iter()
        .filter_map(|r| {
            let top = r.mttr.or(r.detection)?;
            Some(top.p95.max(top.median))
        })
        .fold(1.0f64, f64::max)
        * 1.1;
    let n = rows.len().max(1);
    let names: Vec<&str> = rows.iter().map(|r| r.fault).collect();
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "guardian-lab: time to verified heal per fault (median, whisker = p95)",
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(190)
        .build_cartesian_2d(0f64..max, (0..n).into_segmented())?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .x_desc("milliseconds (fault condition holds → opened → verified)")
        .y_labels(n)
        .y_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => names.get(*i).map_or(String::new(), |s| s.to_string()),
            _ => String::new(),
        })
        .draw()?;
    for (i, r) in rows.iter().enumerate() {
        let (lo, hi) = (SegmentValue::Exact(i), SegmentValue::Exact(i + 1));
        let det = r.detection.map_or(0.0, |s| s.median);
        chart.draw_series(std::iter::once(Rectangle::new(
            [(0.0, lo.clone()), (det, hi.clone())],
            DETECT.filled(),
        )))?;
        if let Some(heal) = r.heal {
            chart.draw_series(std::iter::once(Rectangle::new(
                [(det, lo), (det + heal.median, hi)],
                HEAL.filled(),
            )))?;
        }
        if let Some(top) = r.mttr.or(r.detection) {
            chart.draw_series(std::iter::once(PathElement::new(
                vec![
                    (top.median, SegmentValue::CenterOf(i)),
                    (top.p95, SegmentValue::CenterOf(i)),
                ],
                BLACK.stroke_width(2),
            )))?;
        }
    }
    chart
        .draw_series(std::iter::once(Rectangle::new(
            [(0.0, SegmentValue::Exact(0)), (0.0, SegmentValue::Exact(0))],
            DETECT.filled(),
        )))?
        .label("detection (median)")
        .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], DETECT.filled()));
    chart
        .draw_series(std::iter::once(Rectangle::new(
            [(0.0, SegmentValue::Exact(0)), (0.0, SegmentValue::Exact(0))],
            HEAL.filled(),
        )))?
        .label("heal: opened → verified (median)")
        .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], HEAL.filled()));
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Stats;

    fn row(fault: &'static str, det: f64, heal: Option<f64>) -> Summary {
        let s = |v: f64| Stats {
            median: v,
            p95: v * 1.5,
            worst: v * 2.0,
            n: 5,
        };
        Summary {
            fault,
            remedy: heal.map(|_| "r"),
            runs: 5,
            detection: Some(s(det)),
            heal: heal.map(s),
            mttr: heal.map(|h| s(det + h)),
            healed: 5,
            detected: 5,
            rollbacks: 0,
            failed: 0,
        }
    }

    #[test]
    fn renders_every_fault_as_valid_svg() {
        let rows = [
            row("link_down", 2.0, Some(40.0)),
            row("dns_failure", 300.0, None),
        ];
        let svg = svg(&rows);
        assert!(
            svg.starts_with("<svg") || svg.starts_with("<?xml"),
            "{}",
            &svg[..80.min(svg.len())]
        );
        let doc = roxmltree::Document::parse(&svg).expect("well-formed XML");
        let texts: Vec<&str> = doc.descendants().filter_map(|n| n.text()).collect();
        for name in ["link_down", "dns_failure", "detection (median)"] {
            assert!(
                texts.iter().any(|t| t.contains(name)),
                "{name} not in {texts:?}"
            );
        }
        // Two detection bars and one heal bar (besides legend swatches and the background).
        let fills = |c: &str| {
            doc.descendants()
                .filter(|n| n.has_tag_name("rect") && n.attribute("fill") == Some(c))
                .count()
        };
        assert!(fills("#4C78A8") >= 2, "{svg}");
        assert!(fills("#F58518") >= 1);
        assert_eq!(svg, super::svg(&rows), "deterministic");
    }
}
