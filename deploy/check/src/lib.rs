//! Checks of `deploy/`: which metrics the code defines (scanned from every crate's source, the
//! way the node exports them), every PromQL expression of the dashboards and the alert rules,
//! and the metric names those expressions use. The integration tests in `tests/` run the
//! checks; `deploy-check exprs` prints the expressions for `scripts/e2e.sh`, which runs them
//! against a real Prometheus scraping a devnet.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

use eyre::{WrapErr, bail, eyre};
use promql_parser::{
    label::MatchOp,
    parser::{Expr, VectorSelector},
    util::{ExprVisitor, walk_expr},
};
use regex::Regex;

mod labels;
pub use labels::SeriesLabels;

/// Series Prometheus itself adds to every scrape that expressions may use.
pub const SYNTHETIC_METRICS: &[&str] = &["up"];

/// The repository root (this crate lives in `deploy/check`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the repository root exists")
}

/// How a metric is recorded in the code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `counter!`
    Counter,
    /// `gauge!`
    Gauge,
    /// `histogram!`
    Histogram,
}

/// The metrics the code defines and how the node exports them.
#[derive(Debug, Clone)]
pub struct CodeMetrics {
    /// Name as recorded (without the exporter's prefix) → kind.
    pub defined: BTreeMap<String, Kind>,
    /// Name as recorded → the label keys of its call sites (`None`: some call site passes
    /// its labels as a value the scan cannot read).
    pub labels: BTreeMap<String, Option<BTreeSet<String>>>,
    /// The exporter's prefix (`tandem`).
    pub prefix: String,
    /// Name suffixes of histograms the exporter gives buckets (others become summaries).
    pub bucket_suffixes: Vec<String>,
}

impl CodeMetrics {
    /// Scans every crate's `src/` under `root` (everything but `deploy/`, build output and tools)
    /// and the node's exporter setup.
    pub fn scan(root: &Path) -> eyre::Result<Self> {
        let call = Regex::new(
            r#"\b(describe_)?(counter|gauge|histogram)!\s*(\()\s*"([a-zA-Z_:][a-zA-Z0-9_:]*)""#,
        )?;
        let mut defined = BTreeMap::new();
        let mut labels: BTreeMap<String, Option<BTreeSet<String>>> = BTreeMap::new();
        for entry in walkdir::WalkDir::new(root)
            .into_iter()
            .filter_entry(|entry| {
                let name = entry.file_name().to_string_lossy();
                // deploy/ is what is checked; tests/ record metrics only to assert on them.
                let skipped_here =
                    entry.depth() == 1 && matches!(name.as_ref(), "deploy" | ".tools" | ".git");
                let skipped_anywhere = matches!(name.as_ref(), "target" | "node_modules" | "tests");
                !(skipped_here || skipped_anywhere)
            })
        {
            let entry = entry?;
            let path = entry.path();
            let in_src = path
                .components()
                .any(|part| part.as_os_str() == std::ffi::OsStr::new("src"));
            if !in_src || path.extension().is_none_or(|ext| ext != "rs") {
                continue;
            }
            let text = std::fs::read_to_string(path)
                .wrap_err_with(|| format!("reading {}", path.display()))?;
            for found in call.captures_iter(&text) {
                let kind = match &found[2] {
                    "counter" => Kind::Counter,
                    "gauge" => Kind::Gauge,
                    _ => Kind::Histogram,
                };
                let name = found[4].to_string();
                if found.get(1).is_none() {
                    // A recording call site: its labels follow the name.
                    let (open, name_end) = (found.get(3), found.get(4));
                    if let (Some(open), Some(name_end)) = (open, name_end) {
                        let body = labels::macro_body(&text, open.start());
                        let after_name = name_end.end() + 1 - (open.start() + 1);
                        let keys = body.get(after_name..).and_then(labels::macro_label_keys);
                        let entry = labels
                            .entry(name.clone())
                            .or_insert_with(|| Some(BTreeSet::new()));
                        match (entry.as_mut(), keys) {
                            (Some(known), Some(keys)) => known.extend(keys),
                            _ => *entry = None,
                        }
                    }
                }
                if let Some(previous) = defined.insert(name.clone(), kind)
                    && previous != kind
                {
                    bail!("{name} is recorded both as {previous:?} and as {kind:?}");
                }
            }
        }
        let exporter = root.join("node/src/metrics.rs");
        let text = std::fs::read_to_string(&exporter)
            .wrap_err_with(|| format!("reading {}", exporter.display()))?;
        let prefix = Regex::new(r#"METRICS_PREFIX: &str = "([a-z_]+)""#)?
            .captures(&text)
            .ok_or_else(|| eyre!("{}: no METRICS_PREFIX", exporter.display()))?[1]
            .to_string();
        let bucket_suffixes = Regex::new(r#"Matcher::Suffix\("([a-z_]+)"\.into\(\)\)"#)?
            .captures_iter(&text)
            .map(|found| found[1].to_string())
            .collect();
        Ok(Self {
            defined,
            labels,
            prefix,
            bucket_suffixes,
        })
    }

    /// The label keys of every exported series whose labels the scan could read (the
    /// exporter adds `le` to histogram buckets and `quantile` to summaries).
    pub fn series_labels(&self) -> SeriesLabels {
        let mut out = SeriesLabels::new();
        for (name, kind) in &self.defined {
            // Only described, or labels passed as a value: not checked.
            let Some(Some(keys)) = self.labels.get(name).cloned() else {
                continue;
            };
            let full = format!("{}_{name}", self.prefix);
            let with = |extra: &str| {
                let mut keys = keys.clone();
                keys.insert(extra.to_string());
                keys
            };
            match kind {
                Kind::Counter | Kind::Gauge => {
                    out.insert(full, keys);
                }
                Kind::Histogram => {
                    if self.bucket_suffixes.iter().any(|s| name.ends_with(s)) {
                        out.insert(format!("{full}_bucket"), with("le"));
                    } else {
                        out.insert(full.clone(), with("quantile"));
                    }
                    out.insert(format!("{full}_sum"), keys.clone());
                    out.insert(format!("{full}_count"), keys);
                }
            }
        }
        out
    }

    /// Every series name the node's `/metrics` can carry.
    pub fn exported(&self) -> BTreeSet<String> {
        let mut names = BTreeSet::new();
        for (name, kind) in &self.defined {
            let full = format!("{}_{name}", self.prefix);
            match kind {
                Kind::Counter | Kind::Gauge => {
                    names.insert(full);
                }
                Kind::Histogram => {
                    // With buckets: a histogram; without: a summary (quantile series under the
                    // bare name).
                    if self.bucket_suffixes.iter().any(|s| name.ends_with(s)) {
                        names.insert(format!("{full}_bucket"));
                    } else {
                        names.insert(full.clone());
                    }
                    names.insert(format!("{full}_sum"));
                    names.insert(format!("{full}_count"));
                }
            }
        }
        names
    }
}

/// One PromQL expression of `deploy/` and where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expression {
    /// `file: panel or rule`.
    pub source: String,
    /// As written (Grafana variables unexpanded).
    pub raw: String,
    /// An alert's name (alert expressions only).
    pub alert: Option<String>,
}

impl Expression {
    /// The expression with Grafana's variables replaced by values Prometheus accepts: every
    /// instance and role, one-minute rate windows.
    pub fn expanded(&self) -> String {
        let mut text = self.raw.clone();
        for (var, value) in [
            ("$__rate_interval", "1m"),
            ("$__interval", "1m"),
            ("$__range", "1h"),
        ] {
            text = text.replace(var, value);
        }
        let var = Regex::new(r"\$\{?[a-zA-Z_][a-zA-Z0-9_]*\}?").expect("valid regex");
        var.replace_all(&text, ".*").into_owned()
    }

    /// The metric names it selects.
    pub fn metric_names(&self) -> eyre::Result<BTreeSet<String>> {
        let expr = promql_parser::parser::parse(&self.expanded())
            .map_err(|err| eyre!("{}: does not parse: {err}\n  {}", self.source, self.raw))?;
        let mut names = Names::default();
        walk_expr(&mut names, &expr).map_err(|err| eyre!("{}: {err}", self.source))?;
        Ok(names.0)
    }
}

#[derive(Default)]
struct Names(BTreeSet<String>);

impl Names {
    fn selector(&mut self, selector: &VectorSelector) -> Result<(), String> {
        if let Some(name) = &selector.name {
            self.0.insert(name.clone());
            return Ok(());
        }
        let by_name = selector
            .matchers
            .matchers
            .iter()
            .find(|matcher| matcher.name == "__name__");
        match by_name {
            Some(matcher) if matches!(matcher.op, MatchOp::Equal) => {
                self.0.insert(matcher.value.clone());
                Ok(())
            }
            _ => Err(format!(
                "selector {selector} does not name one metric (regex names cannot be checked)"
            )),
        }
    }
}

impl ExprVisitor for Names {
    type Error = String;

    fn pre_visit(&mut self, expr: &Expr) -> Result<bool, String> {
        match expr {
            Expr::VectorSelector(selector) => self.selector(selector)?,
            Expr::MatrixSelector(matrix) => self.selector(&matrix.vs)?,
            _ => {}
        }
        Ok(true)
    }
}

/// The dashboards' files.
pub fn dashboard_files(root: &Path) -> eyre::Result<Vec<PathBuf>> {
    files_with(root.join("deploy/grafana/dashboards"), ".json")
}

/// The alert and recording rule files (not their unit tests).
pub fn rule_files(root: &Path) -> eyre::Result<Vec<PathBuf>> {
    files_with(root.join("deploy/prometheus/rules"), ".rules.yml")
}

/// Files in `dir` whose name ends with `suffix`, sorted.
pub fn files_with(dir: PathBuf, suffix: &str) -> eyre::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(&dir).wrap_err_with(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path
            .file_name()
            .is_some_and(|name| name.to_string_lossy().ends_with(suffix))
        {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Every panel and template-variable expression of one dashboard.
pub fn dashboard_expressions(path: &Path) -> eyre::Result<Vec<Expression>> {
    let text =
        std::fs::read_to_string(path).wrap_err_with(|| format!("reading {}", path.display()))?;
    let dashboard: serde_json::Value =
        serde_json::from_str(&text).wrap_err_with(|| format!("{}: not JSON", path.display()))?;
    let file = file_name(path);
    let mut out = Vec::new();
    let mut panels: Vec<&serde_json::Value> = Vec::new();
    for panel in dashboard["panels"].as_array().into_iter().flatten() {
        panels.push(panel);
        // Rows nest their panels.
        panels.extend(panel["panels"].as_array().into_iter().flatten());
    }
    for panel in panels {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let Some(expr) = target["expr"].as_str() else {
                continue;
            };
            out.push(Expression {
                source: format!(
                    "{file}: panel {:?} {}",
                    panel["title"].as_str().unwrap_or("?"),
                    target["refId"].as_str().unwrap_or("?")
                ),
                raw: expr.to_string(),
                alert: None,
            });
        }
    }
    let label_values = Regex::new(r"^label_values\((.+),\s*[a-zA-Z_]+\)$")?;
    for variable in dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if variable["type"] != "query" {
            continue;
        }
        let query = variable["query"]["query"]
            .as_str()
            .or_else(|| variable["query"].as_str())
            .unwrap_or_default();
        let selector = label_values.captures(query).ok_or_else(|| {
            eyre!(
                "{file}: variable {}: {query:?} is not label_values(SELECTOR, LABEL)",
                variable["name"]
            )
        })?;
        out.push(Expression {
            source: format!("{file}: variable {}", variable["name"]),
            raw: selector[1].to_string(),
            alert: None,
        });
    }
    Ok(out)
}

/// Every recording and alerting rule expression of one rule file.
pub fn rule_expressions(path: &Path) -> eyre::Result<Vec<Expression>> {
    let text =
        std::fs::read_to_string(path).wrap_err_with(|| format!("reading {}", path.display()))?;
    let rules: yaml_serde::Value =
        yaml_serde::from_str(&text).wrap_err_with(|| format!("{}: not YAML", path.display()))?;
    let file = file_name(path);
    let mut out = Vec::new();
    for group in rules["groups"].as_sequence().into_iter().flatten() {
        for rule in group["rules"].as_sequence().into_iter().flatten() {
            let alert = rule["alert"].as_str().map(str::to_string);
            let name = alert
                .clone()
                .or_else(|| rule["record"].as_str().map(str::to_string))
                .ok_or_else(|| eyre!("{file}: a rule with neither alert nor record"))?;
            let expr = rule["expr"]
                .as_str()
                .ok_or_else(|| eyre!("{file}: {name}: no expr"))?;
            out.push(Expression {
                source: format!("{file}: {name}"),
                raw: expr.trim().to_string(),
                alert,
            });
        }
    }
    Ok(out)
}

/// The names recording rules define.
pub fn recorded_names(root: &Path) -> eyre::Result<BTreeSet<String>> {
    let mut names = BTreeSet::new();
    for path in rule_files(root)? {
        let rules: yaml_serde::Value = yaml_serde::from_str(&std::fs::read_to_string(&path)?)?;
        for group in rules["groups"].as_sequence().into_iter().flatten() {
            for rule in group["rules"].as_sequence().into_iter().flatten() {
                if let Some(name) = rule["record"].as_str() {
                    names.insert(name.to_string());
                }
            }
        }
    }
    Ok(names)
}

/// Every expression of `deploy/`: dashboards, then rules.
pub fn all_expressions(root: &Path) -> eyre::Result<Vec<Expression>> {
    let mut out = Vec::new();
    for path in dashboard_files(root)? {
        out.extend(dashboard_expressions(&path)?);
    }
    for path in rule_files(root)? {
        out.extend(rule_expressions(&path)?);
    }
    Ok(out)
}

/// The problems of `expressions` against the names `known`: one line per expression that does
/// not parse or uses a name nobody defines.
pub fn unknown_metrics(expressions: &[Expression], known: &BTreeSet<String>) -> Vec<String> {
    let mut problems = Vec::new();
    for expression in expressions {
        match expression.metric_names() {
            Err(err) => problems.push(err.to_string()),
            Ok(names) => {
                for name in names.difference(known) {
                    problems.push(format!(
                        "{}: {name} is not a metric the code defines\n  {}",
                        expression.source, expression.raw
                    ));
                }
            }
        }
    }
    problems
}

/// The problems of `expressions`' label keys against `series`: one line per label used where
/// no series below it has that label.
pub fn unknown_labels(expressions: &[Expression], series: &SeriesLabels) -> Vec<String> {
    let mut problems = Vec::new();
    for expression in expressions {
        match promql_parser::parser::parse(&expression.expanded()) {
            Err(err) => problems.push(format!("{}: does not parse: {err}", expression.source)),
            Ok(expr) => {
                for problem in labels::check(&expr, series) {
                    problems.push(format!(
                        "{}: {problem}\n  {}",
                        expression.source, expression.raw
                    ));
                }
            }
        }
    }
    problems
}

/// Every name an expression may use: the exported metrics, the recording rules' names and
/// Prometheus's own series.
pub fn known_names(root: &Path) -> eyre::Result<BTreeSet<String>> {
    let mut known = CodeMetrics::scan(root)?.exported();
    known.extend(recorded_names(root)?);
    known.extend(SYNTHETIC_METRICS.iter().map(|name| (*name).to_string()));
    Ok(known)
}
