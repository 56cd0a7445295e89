//! Label keys: which labels each metric is exported with (from the metrics macros in the
//! source), and whether every label key an expression uses — in matchers, `by`/`without`,
//! `on`/`ignoring` and `group_left`/`group_right` — can exist where it is used.
//!
//! The label sets flowing through an expression are over-approximated (a binary operation
//! carries the labels of both sides), so a check never fails a correct expression; a label no
//! metric below the clause has (a typo, a renamed label) fails it.

use std::collections::{BTreeMap, BTreeSet};

use promql_parser::parser::{Expr, LabelModifier, VectorMatchCardinality, VectorSelector};

/// Labels Prometheus attaches to every scraped series: `job` and `instance`, and the target
/// labels of `prometheus/prometheus.devnet.yml`'s targets (`devnet-targets.sh`) and
/// `prometheus.compose.yml`.
pub(crate) const TARGET_LABELS: &[&str] = &["job", "instance", "node", "node_role"];

/// The label keys of `body`, the argument list of one metrics macro after the metric's name:
/// `Some` with the `"key" => value` keys, `None` when the labels are passed as a value the scan
/// cannot read (then the metric's labels are not checked).
pub(crate) fn macro_label_keys(body: &str) -> Option<BTreeSet<String>> {
    let key = regex::Regex::new(r#""([a-zA-Z_][a-zA-Z0-9_]*)"\s*=>"#).expect("valid regex");
    let keys: BTreeSet<String> = key
        .captures_iter(body)
        .map(|found| found[1].to_string())
        .collect();
    let rest = body.trim_start();
    if keys.is_empty() && rest.starts_with(',') && !rest[1..].trim().is_empty() {
        return None;
    }
    Some(keys)
}

/// The text between the `(` at `open` and its matching `)` (string literals skipped).
pub(crate) fn macro_body(text: &str, open: usize) -> &str {
    let bytes = text.as_bytes();
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for (index, &byte) in bytes.iter().enumerate().skip(open) {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'(' => depth += 1,
            b')' => {
                depth -= 1;
                if depth == 0 {
                    return &text[open + 1..index];
                }
            }
            _ => {}
        }
    }
    &text[open + 1..]
}

/// The labels of each exported series name; names absent from the map are not checked
/// (recording rules, labels passed as values).
pub type SeriesLabels = BTreeMap<String, BTreeSet<String>>;

struct Checker<'a> {
    series: &'a SeriesLabels,
    problems: Vec<String>,
}

fn keys(labels: &promql_parser::label::Labels) -> impl Iterator<Item = &String> {
    labels.labels.iter()
}

impl Checker<'_> {
    fn missing(&mut self, what: &str, label: &str, available: &BTreeSet<String>) {
        self.problems.push(format!(
            "{what}: label {label:?} is not a label there (available: {})",
            available.iter().cloned().collect::<Vec<_>>().join(", ")
        ));
    }

    fn selector(&mut self, selector: &VectorSelector) -> Option<BTreeSet<String>> {
        let name = selector.name.clone().or_else(|| {
            selector
                .matchers
                .matchers
                .iter()
                .find(|matcher| matcher.name == "__name__")
                .map(|matcher| matcher.value.clone())
        })?;
        let mut labels = self.series.get(&name)?.clone();
        labels.extend(TARGET_LABELS.iter().map(|label| (*label).to_string()));
        let matchers = &selector.matchers;
        for matcher in matchers
            .matchers
            .iter()
            .chain(matchers.or_matchers.iter().flatten())
        {
            if matcher.name != "__name__" && !labels.contains(&matcher.name) {
                self.missing(&format!("selector of {name}"), &matcher.name, &labels);
            }
        }
        Some(labels)
    }

    fn check_all(&mut self, what: &str, used: &[String], available: &Option<BTreeSet<String>>) {
        if let Some(available) = available {
            for label in used {
                if !available.contains(label) {
                    self.missing(what, label, available);
                }
            }
        }
    }

    /// The labels `expr`'s series can carry (`None`: unknown, anything goes).
    fn labels(&mut self, expr: &Expr) -> Option<BTreeSet<String>> {
        match expr {
            Expr::VectorSelector(selector) => self.selector(selector),
            Expr::MatrixSelector(matrix) => self.selector(&matrix.vs),
            Expr::NumberLiteral(_) | Expr::StringLiteral(_) => Some(BTreeSet::new()),
            Expr::Paren(paren) => self.labels(&paren.expr),
            Expr::Unary(unary) => self.labels(&unary.expr),
            Expr::Subquery(subquery) => self.labels(&subquery.expr),
            Expr::Extension(_) => None,
            Expr::Aggregate(aggregate) => {
                let inner = self.labels(&aggregate.expr);
                if let Some(param) = &aggregate.param {
                    self.labels(param);
                }
                let op = aggregate.op.to_string().to_lowercase();
                let keeps_labels = matches!(op.as_str(), "topk" | "bottomk" | "limitk");
                match &aggregate.modifier {
                    Some(LabelModifier::Include(by)) => {
                        let used: Vec<String> = keys(by).cloned().collect();
                        self.check_all(&format!("{op} by"), &used, &inner);
                        if keeps_labels {
                            inner
                        } else {
                            Some(used.into_iter().collect())
                        }
                    }
                    Some(LabelModifier::Exclude(without)) => {
                        let used: Vec<String> = keys(without).cloned().collect();
                        self.check_all(&format!("{op} without"), &used, &inner);
                        inner.map(|mut labels| {
                            for label in &used {
                                labels.remove(label);
                            }
                            labels
                        })
                    }
                    None if keeps_labels => inner,
                    None => Some(BTreeSet::new()),
                }
            }
            Expr::Call(call) => {
                let args: Vec<Option<BTreeSet<String>>> =
                    call.args.args.iter().map(|arg| self.labels(arg)).collect();
                let first = args
                    .iter()
                    .find(|labels| labels.as_ref().is_none_or(|labels| !labels.is_empty()));
                let mut out = first.cloned().unwrap_or_else(|| Some(BTreeSet::new()));
                match call.func.name {
                    "label_replace" | "label_join" => {
                        if let (Some(labels), Some(Expr::StringLiteral(dst))) =
                            (out.as_mut(), call.args.args.get(1).map(|arg| &**arg))
                        {
                            labels.insert(dst.val.clone());
                        }
                    }
                    "histogram_quantile" => {
                        let buckets = args.get(1).cloned().flatten();
                        if let Some(buckets) = &buckets
                            && !buckets.contains("le")
                        {
                            self.missing("histogram_quantile", "le", buckets);
                        }
                        out = buckets.map(|mut labels| {
                            labels.remove("le");
                            labels
                        });
                    }
                    "absent" | "absent_over_time" => out = None,
                    _ => {}
                }
                out
            }
            Expr::Binary(binary) => {
                let lhs = self.labels(&binary.lhs);
                let rhs = self.labels(&binary.rhs);
                let union = match (&lhs, &rhs) {
                    (Some(lhs), Some(rhs)) => Some(lhs.union(rhs).cloned().collect()),
                    _ => None,
                };
                if let Some(modifier) = &binary.modifier {
                    match &modifier.matching {
                        Some(LabelModifier::Include(on)) => {
                            let used: Vec<String> = keys(on).cloned().collect();
                            self.check_all("on (left side)", &used, &lhs);
                            self.check_all("on (right side)", &used, &rhs);
                        }
                        Some(LabelModifier::Exclude(ignoring)) => {
                            let used: Vec<String> = keys(ignoring).cloned().collect();
                            self.check_all("ignoring", &used, &union);
                        }
                        None => {}
                    }
                    match &modifier.card {
                        VectorMatchCardinality::ManyToOne(extra) => {
                            let used: Vec<String> = keys(extra).cloned().collect();
                            self.check_all("group_left (right side)", &used, &rhs);
                        }
                        VectorMatchCardinality::OneToMany(extra) => {
                            let used: Vec<String> = keys(extra).cloned().collect();
                            self.check_all("group_right (left side)", &used, &lhs);
                        }
                        _ => {}
                    }
                }
                union
            }
        }
    }
}

/// The label problems of one parsed expression against `series`.
pub(crate) fn check(expr: &Expr, series: &SeriesLabels) -> Vec<String> {
    let mut checker = Checker {
        series,
        problems: Vec::new(),
    };
    checker.labels(expr);
    checker.problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macro_label_keys_reads_literal_keys_and_gives_up_on_values() {
        assert_eq!(
            macro_label_keys(r#", "topic" => kind.name(), "result" => verdict.label()"#),
            Some(["result".to_string(), "topic".to_string()].into())
        );
        assert_eq!(macro_label_keys(""), Some(BTreeSet::new()));
        assert_eq!(macro_label_keys(", &labels"), None);
        let text = r#"counter!("x", "a" => f("(")).increment(1)"#;
        let open = text.find('(').unwrap();
        assert_eq!(macro_body(text, open), r#""x", "a" => f("(")"#);
    }
}
