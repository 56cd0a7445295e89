//! Test support: what an SVG holds, read with an XML parser (which also proves it is
//! well-formed).

use std::collections::BTreeMap;

use xml::reader::{EventReader, XmlEvent};

/// Element counts and text contents of an SVG document.
#[derive(Debug, Default)]
pub(crate) struct SvgSummary {
    pub(crate) polylines: usize,
    pub(crate) circles: usize,
    pub(crate) rects: usize,
    /// Every `<text>` element's content, in document order.
    pub(crate) texts: Vec<String>,
    /// Every element name with its count.
    pub(crate) elements: BTreeMap<String, usize>,
    /// `<polyline>`s by their `stroke` colour (`#RRGGBB`).
    pub(crate) polylines_by_stroke: BTreeMap<String, usize>,
    /// `<circle>`s by their `fill` colour.
    pub(crate) circles_by_fill: BTreeMap<String, usize>,
    /// `<rect>`s by their `fill` colour.
    pub(crate) rects_by_fill: BTreeMap<String, usize>,
}

/// Parses `svg`; an error when it is not well-formed XML with an `<svg>` root.
pub(crate) fn summarize(svg: &str) -> Result<SvgSummary, String> {
    let mut summary = SvgSummary::default();
    let mut depth = 0usize;
    let mut root = None;
    let mut in_text = false;
    for event in EventReader::new(svg.as_bytes()) {
        match event.map_err(|err| err.to_string())? {
            XmlEvent::StartElement {
                name, attributes, ..
            } => {
                let attribute = |key: &str| {
                    attributes
                        .iter()
                        .find(|a| a.name.local_name == key)
                        .map(|a| a.value.to_uppercase())
                        .unwrap_or_default()
                };
                if depth == 0 {
                    root = Some(name.local_name.clone());
                }
                depth += 1;
                *summary.elements.entry(name.local_name.clone()).or_default() += 1;
                match name.local_name.as_str() {
                    "polyline" => {
                        summary.polylines += 1;
                        *summary
                            .polylines_by_stroke
                            .entry(attribute("stroke"))
                            .or_default() += 1;
                    }
                    "circle" => {
                        summary.circles += 1;
                        *summary
                            .circles_by_fill
                            .entry(attribute("fill"))
                            .or_default() += 1;
                    }
                    "rect" => {
                        summary.rects += 1;
                        *summary.rects_by_fill.entry(attribute("fill")).or_default() += 1;
                    }
                    "text" => {
                        in_text = true;
                        summary.texts.push(String::new());
                    }
                    _ => {}
                }
            }
            XmlEvent::EndElement { name } => {
                depth -= 1;
                if name.local_name == "text" {
                    in_text = false;
                }
            }
            XmlEvent::Characters(text) if in_text => {
                if let Some(last) = summary.texts.last_mut() {
                    last.push_str(text.trim());
                }
            }
            _ => {}
        }
    }
    match root.as_deref() {
        Some("svg") => Ok(summary),
        other => Err(format!("root element {other:?}, not svg")),
    }
}
