//! The archive's lineage tree as SVG, written by hand: a tree with one row
//! per generation is simple geometry that a charting library does not offer.
//!
//! Nodes are circles coloured by train score (red → yellow → green),
//! invalid or failed attempts grey dashed squares, the best node ringed in
//! gold; edges run parent → child, green where the child was an accepted
//! improvement. Each node has a `<title>` tooltip with its details. Every
//! piece of text goes through [`crate::escape::xml`].

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use hyperagents_store::NodeStatus;

use crate::escape::xml;
use crate::summary::{NodeSummary, RunReport};

const COLUMN: f64 = 120.0;
const ROW: f64 = 110.0;
const RADIUS: f64 = 18.0;
const LEFT: f64 = 80.0;
const TOP: f64 = 60.0;
const MIN_WIDTH: f64 = 640.0;
/// Longest validation error shown in a tooltip, in characters.
const TOOLTIP_ERROR_CHARS: usize = 300;

/// The lineage tree of `report`'s nodes as an SVG document.
pub(crate) fn lineage_svg(report: &RunReport) -> String {
    let positions = layout(&report.nodes);
    let columns = positions
        .values()
        .map(|&(column, _)| column + 1.0)
        .fold(1.0, f64::max);
    let rows = report
        .nodes
        .iter()
        .map(|n| n.generation + 1)
        .max()
        .unwrap_or(1);
    // Wide enough for the key line under the title, too.
    let width = (LEFT + columns * COLUMN + 40.0).max(MIN_WIDTH);
    let height = TOP + rows as f64 * ROW + 40.0;
    let center = |node: &str| {
        positions.get(node).map(|&(column, row)| {
            (
                LEFT + column * COLUMN + COLUMN / 2.0,
                TOP + row * ROW + 20.0,
            )
        })
    };

    let mut svg = Svg::new(width, height);
    svg.text(
        12.0,
        24.0,
        &format!("Lineage of run {}", report.run_id),
        16.0,
        "start",
        "bold",
    );
    svg.text(
        12.0,
        42.0,
        "colour: train success (red 0% → green 100%); grey squares: invalid; gold ring: best",
        11.0,
        "start",
        "normal",
    );
    for generation in 0..rows {
        let y = TOP + generation as f64 * ROW + 20.0;
        svg.text(
            12.0,
            y + 4.0,
            &format!("gen {generation}"),
            12.0,
            "start",
            "normal",
        );
    }
    for node in &report.nodes {
        let (Some(parent), Some(to)) = (
            node.parent_id.as_deref().and_then(center),
            center(&node.node_id),
        ) else {
            continue;
        };
        let accepted = node.comparison.as_ref().is_some_and(|c| c.accepted);
        let (stroke, width) = if accepted {
            ("#1a9850", 3.0)
        } else {
            ("#999999", 1.5)
        };
        svg.line(
            parent.0,
            parent.1 + RADIUS,
            to.0,
            to.1 - RADIUS,
            stroke,
            width,
        );
    }
    for node in &report.nodes {
        let Some((x, y)) = center(&node.node_id) else {
            continue;
        };
        let best = node.node_id == report.best_node;
        svg.open_group(&tooltip(node, best));
        let valid = node.status == NodeStatus::Valid;
        if valid {
            let fill = node
                .train_score()
                .map_or_else(|| "#ffffff".to_owned(), score_color);
            let (stroke, width) = if best {
                ("#d4a000", 5.0)
            } else {
                ("#333333", 1.5)
            };
            svg.circle(x, y, RADIUS, &fill, stroke, width);
        } else {
            svg.dashed_square(x, y, RADIUS * 0.8, "#cccccc", "#666666");
        }
        svg.text(x, y - RADIUS - 6.0, &node.node_id, 11.0, "middle", "normal");
        let caption = match (valid, node.train_score()) {
            (false, _) => node.status.as_str().to_owned(),
            (true, Some(score)) => format!("{:.0}%", score * 100.0),
            (true, None) => "unscored".to_owned(),
        };
        let weight = if best { "bold" } else { "normal" };
        svg.text(x, y + RADIUS + 14.0, &caption, 11.0, "middle", weight);
        svg.close_group();
    }
    svg.finish()
}

/// Column and row of each node: rows by generation; within a row, children
/// in the order of their parents' columns, so edges cross little.
fn layout(nodes: &[NodeSummary]) -> HashMap<String, (f64, f64)> {
    let mut by_generation: BTreeMap<u64, Vec<&NodeSummary>> = BTreeMap::new();
    for node in nodes {
        by_generation.entry(node.generation).or_default().push(node);
    }
    let mut positions: HashMap<String, (f64, f64)> = HashMap::new();
    for (generation, mut row) in by_generation {
        let parent_column = |node: &NodeSummary| {
            node.parent_id
                .as_deref()
                .and_then(|parent| positions.get(parent))
                .map_or(f64::MAX, |&(column, _)| column)
        };
        // A stable sort keeps the store's order among siblings.
        row.sort_by(|a, b| parent_column(a).total_cmp(&parent_column(b)));
        let placed: Vec<(String, (f64, f64))> = row
            .iter()
            .enumerate()
            .map(|(column, node)| (node.node_id.clone(), (column as f64, generation as f64)))
            .collect();
        positions.extend(placed);
    }
    positions
}

fn tooltip(node: &NodeSummary, best: bool) -> String {
    let mut text = format!("{} (generation {})", node.node_id, node.generation);
    if best {
        text.push_str(", the best node");
    }
    if let Some(parent) = &node.parent_id {
        let _ = write!(text, "\nparent: {parent}");
    }
    let _ = write!(text, "\nstatus: {}", node.status.as_str());
    if !node.diff_kinds.is_empty() {
        let kinds: Vec<&str> = node.diff_kinds.iter().map(|k| k.as_str()).collect();
        let _ = write!(text, "\nchanged: {}", kinds.join(", "));
    }
    for (stage, rate) in [
        ("stage1", node.stage1),
        ("full", node.full),
        ("test", node.test),
    ] {
        if let Some(rate) = rate {
            let _ = write!(text, "\n{stage}: {:.1}%", rate * 100.0);
        }
    }
    if let Some(comparison) = &node.comparison {
        let _ = write!(
            text,
            "\nvs parent: {:+.1} pp over {} tasks{}",
            comparison.mean_difference * 100.0,
            comparison.tasks,
            if comparison.accepted {
                ", accepted"
            } else {
                ""
            }
        );
    }
    let _ = write!(text, "\nmeta tokens: {}", node.meta_tokens);
    for error in &node.errors {
        let shown: String = error.chars().take(TOOLTIP_ERROR_CHARS).collect();
        let _ = write!(text, "\nerror: {shown}");
    }
    text
}

/// Red (0) → yellow (0.5) → green (1).
fn score_color(score: f64) -> String {
    const RED: (f64, f64, f64) = (215.0, 48.0, 39.0);
    const YELLOW: (f64, f64, f64) = (254.0, 224.0, 139.0);
    const GREEN: (f64, f64, f64) = (26.0, 152.0, 80.0);
    let s = score.clamp(0.0, 1.0);
    let (from, to, t) = if s < 0.5 {
        (RED, YELLOW, s * 2.0)
    } else {
        (YELLOW, GREEN, (s - 0.5) * 2.0)
    };
    let mix = |a: f64, b: f64| (a + (b - a) * t).round() as u8;
    format!(
        "#{:02x}{:02x}{:02x}",
        mix(from.0, to.0),
        mix(from.1, to.1),
        mix(from.2, to.2)
    )
}

/// A minimal SVG writer: every text and attribute value is escaped here.
struct Svg {
    text: String,
}

impl Svg {
    fn new(width: f64, height: f64) -> Self {
        let mut text = String::new();
        let _ = writeln!(
            text,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" viewBox="0 0 {width:.0} {height:.0}" font-family="sans-serif">"#
        );
        let _ = writeln!(
            text,
            r##"<rect width="100%" height="100%" fill="#ffffff"/>"##
        );
        Self { text }
    }

    fn line(&mut self, x1: f64, y1: f64, x2: f64, y2: f64, stroke: &str, width: f64) {
        let _ = writeln!(
            self.text,
            r#"<line x1="{x1:.1}" y1="{y1:.1}" x2="{x2:.1}" y2="{y2:.1}" stroke="{}" stroke-width="{width}"/>"#,
            xml(stroke)
        );
    }

    fn circle(&mut self, x: f64, y: f64, r: f64, fill: &str, stroke: &str, width: f64) {
        let _ = writeln!(
            self.text,
            r#"<circle cx="{x:.1}" cy="{y:.1}" r="{r:.1}" fill="{}" stroke="{}" stroke-width="{width}"/>"#,
            xml(fill),
            xml(stroke)
        );
    }

    fn dashed_square(&mut self, x: f64, y: f64, half: f64, fill: &str, stroke: &str) {
        let _ = writeln!(
            self.text,
            r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{}" stroke="{}" stroke-width="1.5" stroke-dasharray="4 3"/>"#,
            x - half,
            y - half,
            half * 2.0,
            half * 2.0,
            xml(fill),
            xml(stroke)
        );
    }

    fn text(&mut self, x: f64, y: f64, content: &str, size: f64, anchor: &str, weight: &str) {
        let _ = writeln!(
            self.text,
            // A white halo keeps labels readable where edges cross them.
            r##"<text x="{x:.1}" y="{y:.1}" font-size="{size}" text-anchor="{}" font-weight="{}" paint-order="stroke" stroke="#ffffff" stroke-width="3">{}</text>"##,
            xml(anchor),
            xml(weight),
            xml(content)
        );
    }

    /// Opens a group whose tooltip is `title`.
    fn open_group(&mut self, title: &str) {
        let _ = writeln!(self.text, "<g><title>{}</title>", xml(title));
    }

    fn close_group(&mut self) {
        self.text.push_str("</g>\n");
    }

    fn finish(mut self) -> String {
        self.text.push_str("</svg>\n");
        self.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_run_from_red_through_yellow_to_green() {
        assert_eq!(score_color(0.0), "#d73027");
        assert_eq!(score_color(0.5), "#fee08b");
        assert_eq!(score_color(1.0), "#1a9850");
        assert_eq!(score_color(7.0), "#1a9850", "clamped");
    }
}
