//! promtool on every Prometheus file, and every dashboard and alert expression against the
//! metrics the code defines.

use std::{collections::BTreeSet, path::Path, process::Command};

use tandem_deploy_check::{
    CodeMetrics, Expression, Kind, all_expressions, dashboard_expressions, dashboard_files,
    files_with, known_names, repo_root, rule_expressions, rule_files, unknown_labels,
    unknown_metrics,
};

fn promtool(args: &[&str], dir: &Path) {
    let output = Command::new("promtool")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|err| {
            panic!(
                "promtool: {err} (scripts/install-tools.sh installs Debian's prometheus package)"
            )
        });
    assert!(
        output.status.success(),
        "promtool {}: {}\n{}",
        args.join(" "),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn promtool_checks_every_config_rule_file_and_unit_test() {
    let root = repo_root();
    let dir = root.join("deploy/prometheus");
    let configs = files_with(dir.clone(), ".yml").unwrap();
    let configs: Vec<_> = configs
        .iter()
        .filter(|path| {
            path.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("prometheus.")
        })
        .collect();
    assert_eq!(
        configs.len(),
        2,
        "devnet and compose scrape configs: {configs:?}"
    );
    for config in configs {
        // --syntax-only: the devnet config's file_sd targets are written at run time.
        promtool(
            &["check", "config", "--syntax-only", config.to_str().unwrap()],
            &dir,
        );
    }
    let rules = rule_files(&root).unwrap();
    assert!(!rules.is_empty());
    for file in &rules {
        promtool(
            &["check", "rules", file.to_str().unwrap()],
            &dir.join("rules"),
        );
    }
    let tests = files_with(dir.join("rules"), ".test.yml").unwrap();
    assert!(!tests.is_empty());
    for file in &tests {
        promtool(
            &["test", "rules", file.to_str().unwrap()],
            &dir.join("rules"),
        );
    }
}

#[test]
fn every_alert_has_a_runbook_a_unit_test_and_a_readme_entry() {
    let root = repo_root();
    let tests: String = files_with(root.join("deploy/prometheus/rules"), ".test.yml")
        .unwrap()
        .iter()
        .map(|path| std::fs::read_to_string(path).unwrap())
        .collect();
    let tests: yaml_serde::Value = yaml_serde::from_str(&tests).unwrap();
    // Alerts some unit test expects to fire.
    let mut fired = BTreeSet::new();
    for test in tests["tests"].as_sequence().unwrap() {
        for case in test["alert_rule_test"].as_sequence().into_iter().flatten() {
            if case["exp_alerts"]
                .as_sequence()
                .is_some_and(|a| !a.is_empty())
            {
                fired.insert(case["alertname"].as_str().unwrap().to_string());
            }
        }
    }
    let readme = std::fs::read_to_string(root.join("deploy/README.md")).unwrap();
    let mut alerts = 0;
    for file in rule_files(&root).unwrap() {
        let rules: yaml_serde::Value =
            yaml_serde::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        for group in rules["groups"].as_sequence().unwrap() {
            for rule in group["rules"].as_sequence().unwrap() {
                let Some(name) = rule["alert"].as_str() else {
                    continue;
                };
                alerts += 1;
                let runbook = rule["annotations"]["runbook"].as_str().unwrap_or_default();
                assert!(
                    !runbook.trim().is_empty() && !runbook.contains('\n'),
                    "{name}: needs a one-line runbook annotation"
                );
                assert!(
                    rule["annotations"]["summary"].as_str().is_some(),
                    "{name}: summary"
                );
                assert!(
                    fired.contains(name),
                    "{name}: no promtool unit test fires it"
                );
                assert!(
                    readme.contains(&format!("`{name}`")),
                    "{name}: deploy/README.md does not explain it"
                );
            }
        }
    }
    // The issue's list, plus the node being down.
    assert_eq!(alerts, 10);
}

#[test]
fn the_source_scan_finds_the_code_metrics_as_the_node_exports_them() {
    let root = repo_root();
    let code = CodeMetrics::scan(&root).unwrap();
    assert_eq!(code.prefix, "tandem");
    assert_eq!(code.bucket_suffixes, ["_seconds"]);
    for (name, kind) in [
        ("node_ready", Kind::Gauge),
        ("sequencer_pipeline_depth", Kind::Gauge),
        ("sequencer_pipeline_discards_total", Kind::Counter),
        ("publisher_l1_inclusion_delay_seconds", Kind::Histogram),
        ("sequencer_blocks_per_checkpoint", Kind::Histogram),
        ("p2p_reqresp_requests_total", Kind::Counter),
    ] {
        assert_eq!(code.defined.get(name), Some(&kind), "{name}");
    }
    let exported = code.exported();
    // Histograms with buckets, and summaries (no buckets configured for them).
    assert!(exported.contains("tandem_publisher_l1_inclusion_delay_seconds_bucket"));
    assert!(exported.contains("tandem_sequencer_blocks_per_checkpoint"));
    assert!(!exported.contains("tandem_sequencer_blocks_per_checkpoint_bucket"));
    assert!(exported.contains("tandem_sequencer_blocks_per_checkpoint_count"));
    assert!(code.defined.len() > 100, "{}", code.defined.len());
}

#[test]
fn every_expression_parses_and_uses_only_metrics_the_code_defines() {
    let root = repo_root();
    let expressions = all_expressions(&root).unwrap();
    let dashboards = dashboard_files(&root).unwrap();
    assert_eq!(dashboards.len(), 6, "{dashboards:?}");
    assert!(expressions.len() > 80, "{}", expressions.len());
    let problems = unknown_metrics(&expressions, &known_names(&root).unwrap());
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn a_renamed_metric_is_reported() {
    let root = repo_root();
    let known = known_names(&root).unwrap();
    let mut expressions =
        rule_expressions(&root.join("deploy/prometheus/rules/tandem.rules.yml")).unwrap();
    assert!(unknown_metrics(&expressions, &known).is_empty());
    // A metric renamed in the code looks, from the rules, like a name nobody defines.
    let mut known_without = known.clone();
    assert!(known_without.remove("tandem_node_clock_head_delay_min_seconds"));
    let problems = unknown_metrics(&expressions, &known_without);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].contains("TandemClockOffset"), "{}", problems[0]);
    // And a histogram used through buckets it does not have.
    expressions.push(Expression {
        source: "test".into(),
        raw: "rate(tandem_sequencer_blocks_per_checkpoint_bucket[5m])".into(),
        alert: None,
    });
    assert_eq!(unknown_metrics(&expressions, &known).len(), 1);
}

#[test]
fn every_label_key_an_expression_uses_is_a_label_of_its_metrics() {
    let root = repo_root();
    let code = CodeMetrics::scan(&root).unwrap();
    let series = code.series_labels();
    // The scan read the labels of the macros' call sites.
    let labels = |name: &str| series[name].iter().cloned().collect::<Vec<_>>();
    assert_eq!(
        labels("tandem_p2p_gossip_messages_total"),
        ["result", "topic"]
    );
    assert_eq!(labels("tandem_node_info"), ["role", "version"]);
    assert_eq!(labels("tandem_p2p_peers"), Vec::<String>::new());
    assert!(series.len() > 100, "{}", series.len());
    let expressions = all_expressions(&root).unwrap();
    let problems = unknown_labels(&expressions, &series);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn a_wrong_label_key_is_reported() {
    let root = repo_root();
    let series = CodeMetrics::scan(&root).unwrap().series_labels();
    let expression = |raw: &str| Expression {
        source: "test".into(),
        raw: raw.into(),
        alert: None,
    };
    let problems = |raw: &str| unknown_labels(&[expression(raw)], &series);
    // Right labels, target labels, the exporter's le.
    for good in [
        r#"sum by (topic, result) (rate(tandem_p2p_gossip_messages_total{instance=~"$instance"}[5m]))"#,
        "histogram_quantile(0.9, sum by (le, topic) (rate(tandem_p2p_gossip_validation_seconds_bucket[5m])))",
        "tandem_node_peers < on(job, instance) tandem_node_min_peers",
        "tandem_node_peers * on (instance) group_left (role) tandem_node_info",
        r#"sum by (r) (label_replace(tandem_node_info, "r", "$1", "role", "(.*)"))"#,
    ] {
        assert_eq!(problems(good), Vec::<String>::new(), "{good}");
    }
    // A misspelt matcher, by clause, on clause and group_left label each fail.
    for bad in [
        r#"tandem_p2p_gossip_messages_total{topc="tx"}"#,
        "sum by (reason) (rate(tandem_p2p_gossip_messages_total[5m]))",
        "sum by (topic) (sum by (result) (tandem_p2p_gossip_messages_total))",
        "tandem_node_peers < on(job, role) tandem_node_min_peers",
        "tandem_node_peers * on (instance) group_left (version) tandem_node_min_peers",
        "histogram_quantile(0.9, sum by (topic) (rate(tandem_p2p_gossip_validation_seconds_bucket[5m])))",
    ] {
        // (An `on` label missing on both sides is reported for each side.)
        let expected = if bad.contains("on(job, role)") { 2 } else { 1 };
        assert_eq!(problems(bad).len(), expected, "{bad}: {:?}", problems(bad));
    }
}

#[test]
fn dashboards_filter_by_instance_and_offer_role_and_instance_variables() {
    let root = repo_root();
    let mut uids = BTreeSet::new();
    for path in dashboard_files(&root).unwrap() {
        let dashboard: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let name = path.display().to_string();
        assert!(
            uids.insert(dashboard["uid"].as_str().unwrap().to_string()),
            "{name}"
        );
        let variables: Vec<&str> = dashboard["templating"]["list"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["name"].as_str().unwrap())
            .collect();
        assert_eq!(variables, ["datasource", "role", "instance"], "{name}");
        for panel in dashboard["panels"].as_array().unwrap() {
            assert_eq!(panel["datasource"]["uid"], "${datasource}", "{name}");
        }
        for expression in dashboard_expressions(&path).unwrap() {
            if expression.source.contains(": panel ") {
                assert!(
                    expression.raw.contains("instance=~\"$instance\""),
                    "{}: panels follow the instance variable\n  {}",
                    expression.source,
                    expression.raw
                );
            }
        }
    }
}

#[test]
fn committed_dashboards_are_what_the_generator_writes() {
    let root = repo_root();
    let out = tempfile::tempdir().unwrap();
    let status = Command::new("python3")
        .arg(root.join("deploy/grafana/generate.py"))
        .arg("--out")
        .arg(out.path())
        .output()
        .expect("python3 runs the dashboard generator");
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    for path in dashboard_files(&root).unwrap() {
        let generated = out.path().join(path.file_name().unwrap());
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            std::fs::read_to_string(&generated).unwrap_or_default(),
            "{}: edit deploy/grafana/generate.py and run it",
            path.display()
        );
    }
}
