#![allow(clippy::unwrap_used)]
use super::*;
use expect_test::{expect, Expect};

fn host(name: &str, facts: &[(&str, serde_json::Value)]) -> Host {
    Host {
        name: name.into(),
        address: format!("10.0.0.{}", name.len()),
        hardware: "r750".into(),
        workload: "web".into(),
        facts: facts
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
        ..Host::default()
    }
}

fn spec(queries: &[(&str, &str)], batch: usize) -> Spec {
    Spec {
        url: "http://prom:9090".into(),
        step: 60,
        rate: 120,
        batch,
        label: "instance".into(),
        instance: "{{host}}:9100".into(),
        queries: queries
            .iter()
            .map(|(m, q)| (m.to_string(), q.to_string()))
            .collect(),
        devices: Vec::new(),
        interfaces: Vec::new(),
    }
}

/// The plan for `hosts`, one line per query (`metric [instances] promql`) and per error.
fn check_plan(spec: &Spec, hosts: &[Host], expect: Expect) {
    let refs: Vec<&Host> = hosts.iter().collect();
    let p = plan(spec, &refs);
    let mut out = String::new();
    for q in &p.queries {
        let hosts: Vec<&str> = q.hosts.values().map(String::as_str).collect();
        out.push_str(&format!(
            "{} [{}] {}\n",
            q.metric,
            hosts.join(","),
            q.promql
        ));
    }
    for (h, e) in &p.errors {
        out.push_str(&format!("error {h}: {e}\n"));
    }
    expect.assert_eq(&out);
}

#[test]
fn batches_hosts_into_one_alternation_per_metric() {
    let hosts: Vec<Host> = ["a", "b", "c"].iter().map(|n| host(n, &[])).collect();
    check_plan(
        &spec(&[("up", r#"up{instance=~"{{instance}}"}"#)], 2),
        &hosts,
        expect![[r#"
            up [a,b] up{instance=~"a:9100|b:9100"}
            up [c] up{instance=~"c:9100"}
        "#]],
    );
}

#[test]
fn other_placeholders_split_batches_by_their_values() {
    let hosts = vec![
        host("a", &[("dc", "ams1".into())]),
        host("b", &[("dc", "fra1".into())]),
        host("c", &[("dc", "ams1".into())]),
        host("d", &[]),
    ];
    check_plan(
        &spec(
            &[(
                "up",
                r#"up{instance=~"{{instance}}",dc="{{facts.dc}}"}[{{rate}}]"#,
            )],
            10,
        ),
        &hosts,
        expect![[r#"
            up [a,c] up{instance=~"a:9100|c:9100",dc="ams1"}[120s]
            up [b] up{instance=~"b:9100",dc="fra1"}[120s]
            error d: the query of `up`: host `d` has no fact `dc`
        "#]],
    );
}

#[test]
fn values_are_escaped_for_regexes_and_strings() {
    let hosts = vec![
        host("a.b", &[("instance", "10.0.0.1:9100".into())]),
        host("q", &[("note", r#"say "hi"\"#.into())]),
    ];
    check_plan(
        &spec(&[("m", r#"x{instance=~"{{instance}}",n="{{note}}"}"#)], 10),
        &hosts,
        expect![[r#"
            m [q] x{instance=~"q:9100",n="say \"hi\"\\"}
            error a.b: the query of `m`: host `a.b` has no fact `note`
        "#]],
    );
}

#[test]
fn regex_metacharacters_in_instances_are_literal() {
    let hosts = vec![host("a", &[("instance", "10.0.0.1:9100".into())])];
    check_plan(
        &spec(&[("m", r#"x{instance=~"{{instance}}"}"#)], 10),
        &hosts,
        expect![[r#"
            m [a] x{instance=~"10\\.0\\.0\\.1:9100"}
        "#]],
    );
}

#[test]
fn the_standard_templates_fill_with_no_facts() {
    let hosts = [host("a", &[])];
    let s = spec(&[], 10);
    let s = Spec {
        queries: templates(true, &BTreeMap::new()),
        devices: vec!["nvme0n1".into()],
        ..s
    };
    let refs: Vec<&Host> = hosts.iter().collect();
    let p = plan(&s, &refs);
    assert!(p.errors.is_empty(), "{:?}", p.errors);
    assert_eq!(p.queries.len(), STANDARD.len());
    for q in &p.queries {
        assert!(!q.promql.contains("{{"), "{}", q.promql);
    }
    let io = p
        .queries
        .iter()
        .find(|q| q.metric == "io_latency_p99_ms")
        .unwrap();
    assert!(io.promql.contains(r#"device=~"nvme0n1""#), "{}", io.promql);
    let net = p
        .queries
        .iter()
        .find(|q| q.metric == "net_throughput_mbps")
        .unwrap();
    assert!(net.promql.contains(r#"device!~"lo|"#), "{}", net.promql);
}

#[test]
fn policy_queries_overlay_and_drop_standard_ones() {
    let own = BTreeMap::from([
        ("cpu_util_pct".to_string(), String::new()),
        ("errors".to_string(), "sum(x)".to_string()),
    ]);
    let t = templates(true, &own);
    assert!(!t.contains_key("cpu_util_pct"));
    assert_eq!(t.get("errors").map(String::as_str), Some("sum(x)"));
    assert!(t.contains_key("mem_used_pct"));
    assert_eq!(templates(false, &own).len(), 1);
}

#[test]
fn placeholders_must_close() {
    assert!(check_template("x{{instance}}").is_ok());
    expect![[r#"`{{` without `}}` in `x{{instance`"#]]
        .assert_eq(&check_template("x{{instance").unwrap_err());
    expect![[r#"`{{ }}` is not a placeholder name"#]]
        .assert_eq(&check_template("{{ }}").unwrap_err());
}

fn query(metric: &str, hosts: &[(&str, &str)]) -> Query {
    Query {
        metric: metric.into(),
        promql: "q".into(),
        hosts: hosts
            .iter()
            .map(|(i, h)| (i.to_string(), h.to_string()))
            .collect(),
    }
}

fn series(labels: &[(&str, &str)], values: &[(f64, &str)]) -> Series {
    Series {
        metric: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        values: values.iter().map(|(t, v)| (*t, v.to_string())).collect(),
    }
}

#[test]
fn series_map_back_to_hosts_and_non_finite_values_are_left_out() {
    let q = query("m", &[("a:9100", "a"), ("b:9100", "b")]);
    let got = samples(
        &q,
        &[
            series(&[("instance", "a:9100")], &[(10.0, "1.5"), (70.0, "NaN")]),
            series(&[("instance", "b:9100")], &[(10.0, "+Inf"), (70.0, "2")]),
            series(&[("instance", "z:9100")], &[(10.0, "9")]),
        ],
        "instance",
    )
    .unwrap();
    let flat: Vec<(String, f64, f64)> = got
        .into_iter()
        .map(|(h, s)| (h, s.timestamp, s.value))
        .collect();
    assert_eq!(flat, vec![("a".into(), 10.0, 1.5), ("b".into(), 70.0, 2.0)]);
}

#[test]
fn series_without_the_label_or_twice_for_a_host_are_errors() {
    let q = query("m", &[("a:9100", "a")]);
    expect![[r#"the query of `m` returned a series without label `instance` ({"job": "node"}); aggregate `by (instance)`"#]]
        .assert_eq(&samples(&q, &[series(&[("job", "node")], &[])], "instance").unwrap_err());
    let two = [
        series(&[("instance", "a:9100"), ("device", "sda")], &[]),
        series(&[("instance", "a:9100"), ("device", "sdb")], &[]),
    ];
    expect![[r#"the query of `m` returned more than one series for host `a` (`instance` `a:9100`); aggregate `by (instance)`"#]]
        .assert_eq(&samples(&q, &two, "instance").unwrap_err());
}

#[test]
fn prometheus_errors_name_the_query_and_its_message() {
    let body =
        r#"{"status":"error","errorType":"bad_data","error":"1:5: parse error: unexpected \"}\""}"#;
    expect![[r#"prometheus rejected `up{` (400 bad_data): 1:5: parse error: unexpected "}""#]]
        .assert_eq(&decode("up{", 400, body).unwrap_err().to_string());
    expect![[r#"prometheus answered `up` with what is not a range result: HTTP 200, expected value at line 1 column 1: `<html>`"#]]
        .assert_eq(&decode("up", 200, "<html>").unwrap_err().to_string());
    let vector = r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#;
    expect![[r#"prometheus answered `up` with what is not a range result: result type `vector`, not `matrix`"#]]
        .assert_eq(&decode("up", 200, vector).unwrap_err().to_string());
    let ok = r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"instance":"a"},"values":[[1.5,"2"]]}]}}"#;
    assert_eq!(
        decode("up", 200, ok).unwrap(),
        vec![series(&[("instance", "a")], &[(1.5, "2")])]
    );
}

#[test]
fn basic_auth_is_standard_base64() {
    assert_eq!(base64(b"user:pass"), "dXNlcjpwYXNz");
    assert_eq!(base64(b"a"), "YQ==");
    assert_eq!(base64(b"ab"), "YWI=");
    assert_eq!(base64(b""), "");
}

/// A store that answers from a table and counts, for `fetch`.
struct Table(BTreeMap<String, Result<Vec<Series>, PromError>>);

impl MetricsStore for Table {
    fn query_range(&self, _: &Endpoint, q: &str, _: Range) -> Result<Vec<Series>, PromError> {
        self.0
            .get(q)
            .cloned()
            .unwrap_or_else(|| Err(PromError::Unsupported(format!("no `{q}`"))))
    }
}

#[test]
fn a_host_without_series_or_behind_a_failed_query_has_errors_not_zeros() {
    let s = spec(
        &[
            ("m", r#"m{instance=~"{{instance}}"}"#),
            ("n", r#"n{instance=~"{{instance}}"}"#),
        ],
        10,
    );
    let store = Table(BTreeMap::from([
        (
            r#"m{instance=~"a:9100|b:9100"}"#.to_string(),
            Ok(vec![series(&[("instance", "a:9100")], &[(1.0, "3")])]),
        ),
        (
            r#"n{instance=~"a:9100|b:9100"}"#.to_string(),
            Err(PromError::Rejected {
                query: "n".into(),
                status: 422,
                kind: "execution".into(),
                message: "too many samples".into(),
            }),
        ),
    ]));
    let hosts = [host("a", &[]), host("b", &[])];
    let refs: Vec<&Host> = hosts.iter().collect();
    let endpoint = Endpoint {
        url: s.url.clone(),
        settings: Settings::default(),
    };
    let f = fetch(
        &store,
        &endpoint,
        &s,
        &refs,
        Range {
            start: 0.0,
            end: 60.0,
            step: 60,
        },
    );
    assert_eq!(f.rows.len(), 1);
    assert_eq!(f.queries, 2);
    expect![[r#"
        {
            "a": [
                "no `n`: the query failed",
            ],
            "b": [
                "no series for `m` (`instance` `b:9100`)",
                "no `n`: the query failed",
            ],
        }
    "#]]
    .assert_debug_eq(&f.host_errors);
    expect![[r#"
        [
            "prometheus rejected `n` (422 execution): too many samples",
        ]
    "#]]
    .assert_debug_eq(&f.errors);
}
