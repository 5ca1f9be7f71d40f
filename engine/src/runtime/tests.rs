//! Data-driven tests of the policy runtime: each case is a set of files, a call, and the
//! expected outcome rendered as one line.

use super::*;
use crate::error::PolicyError;
use crate::source::SourceTree;
use expect_test::{expect, Expect};
use rhai::Dynamic;
use std::path::Path;

const ROLLOUT_OK: &str = "fn eligible(host) { true }\nfn canary(group) { 1 }\nfn waves() { [1, 5, 25, 100] }\nfn bake(wave) { 0 }\n";

use crate::source::from_strs as tree;

fn load_with(files: &[(&str, &str)], limits: &[&str]) -> Result<PolicySet, PolicyError> {
    PolicySet::compile(
        tree(files),
        &LoadOptions {
            limit_overrides: limits.iter().map(|s| s.to_string()).collect(),
            ..LoadOptions::default()
        },
    )
}

/// One line per diagnostic: `kind file:line:col: message`.
fn show(e: &PolicyError) -> String {
    e.diagnostics()
        .iter()
        .map(|d| format!("{:?} {}", d.kind, d.one_line()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Loads `files` (plus a valid rollout policy unless one is given) and expects the load to
/// fail as described.
fn check_load(files: &[(&str, &str)], expect: Expect) {
    let mut all: Vec<(&str, &str)> = files.to_vec();
    if !files.iter().any(|(n, _)| *n == "rollout.rhai") {
        all.push(("rollout.rhai", ROLLOUT_OK));
    }
    match load_with(&all, &[]) {
        Ok(_) => expect.assert_eq("loaded"),
        Err(e) => expect.assert_eq(&show(&e)),
    }
}

/// Loads a `rollout.rhai` that adds `extra` functions, calls `func()` and expects the result.
fn check_call(extra: &str, limits: &[&str], func: &str, expect: Expect) {
    let src = format!("{ROLLOUT_OK}{extra}");
    let set = load_with(&[("rollout.rhai", &src)], limits).unwrap();
    let got = match set.call_dynamic("rollout", func, Vec::new()) {
        Ok(v) => format!("ok {v}"),
        Err(e) => show(&e),
    };
    expect.assert_eq(&got);
    // The set stays healthy: the next evaluation works.
    assert_eq!(
        set.call::<Vec<f64>>("rollout", "waves", ()).unwrap(),
        vec![1.0, 5.0, 25.0, 100.0]
    );
}

#[test]
fn syntax_error() {
    check_load(
        &[(
            "gates.rhai",
            "fn gate(w) {\n    let v = verdict(;\n    v\n}\n",
        )],
        expect!["Syntax gates.rhai:2:21: unexpected ';'"],
    );
}

#[test]
fn unknown_function() {
    check_call(
        "fn f() {\n    1 + frobnicate(2)\n}\n",
        &[],
        "f",
        expect![[r#"Runtime rollout.rhai:6:9: unknown function `frobnicate (i64)`"#]],
    );
}

#[test]
fn infinite_loop_hits_the_operation_limit() {
    check_call(
        "fn f() {\n    let i = 0;\n    loop { i += 1; }\n}\n",
        &[],
        "f",
        expect![
            "Limit rollout.rhai:5:1: in `fn f`: evaluation exceeded `max_operations` (2000000)"
        ],
    );
}

#[test]
fn infinite_loop_hits_the_deadline() {
    check_call(
        "fn f() {\n    let i = 0;\n    loop { i += 1; }\n}\n",
        &["max_operations=1000000000000", "deadline_ms=50"],
        "f",
        expect!["Limit rollout.rhai:5:1: in `fn f`: evaluation exceeded its deadline of 50 ms"],
    );
}

#[test]
fn unbounded_recursion() {
    check_call(
        "fn f() { down(0) }\nfn down(n) {\n    down(n + 1)\n}\n",
        &[],
        "f",
        expect!["Limit rollout.rhai:5:1: in `fn f`: call depth exceeded `max_call_depth` (48)"],
    );
}

#[test]
fn doubling_string() {
    check_call(
        "fn f() {\n    let s = \"x\";\n    loop { s += s; }\n}\n",
        &[],
        "f",
        expect!["Limit rollout.rhai:5:1: in `fn f`: a string grew past `max_string_size` (1048576 bytes)"],
    );
}

#[test]
fn doubling_array() {
    check_call(
        "fn f() {\n    let a = [1];\n    loop { a += a; }\n}\n",
        &[],
        "f",
        expect!["Limit rollout.rhai:5:1: in `fn f`: an array grew past `max_array_size` (200000)"],
    );
}

#[test]
fn deeply_nested_expression() {
    let deep = format!("fn f() {{ {}1{} }}\n", "(".repeat(500), ")".repeat(500));
    check_load(
        &[("gates.rhai", &format!("fn gate(w) {{ pass() }}\n{deep}"))],
        expect!["Limit gates.rhai:2:32: expression exceeds maximum complexity"],
    );
}

#[test]
fn missing_required_function() {
    check_load(
        &[("gates.rhai", "fn gait(w) { pass() }\n")],
        expect![[r#"Validation gates.rhai:1:1: `gates.rhai` must define `fn gate(w)`"#]],
    );
}

#[test]
fn wrong_arity() {
    check_load(
        &[("gates.rhai", "// gate\n\nfn gate() { pass() }\n")],
        expect![[
            r#"Validation gates.rhai:3:1: `fn gate()` takes 0 parameter(s); `gates.rhai` must define `fn gate(w)`"#
        ]],
    );
}

#[test]
fn wrong_return_type_found_at_load() {
    check_load(
        &[(
            "rollout.rhai",
            "fn eligible(host) { true }\nfn canary(group) { 1 }\nfn waves() { \"1,5,100\" }\nfn bake(wave) { 0 }\n",
        )],
        expect![[r#"ReturnType rollout.rhai:3:1: `fn waves` in `rollout.rhai` returned the wrong type: expected an array of rising cumulative percentages ending in 100, got `string`: invalid type: string "1,5,100", expected a sequence"#]],
    );
    check_load(
        &[(
            "rollout.rhai",
            "fn eligible(host) { true }\nfn canary(group) { 1 }\nfn waves() { [5, 1, 100] }\nfn bake(wave) { 0 }\n",
        )],
        expect![[r#"ReturnType rollout.rhai:3:1: `fn waves` in `rollout.rhai` returned the wrong type: expected an array of rising cumulative percentages ending in 100, wave 1 is `1`: waves must be cumulative percentages, rising, in (0, 100]"#]],
    );
}

#[test]
fn wrong_return_type_found_at_call() {
    let set = load_with(
        &[(
            "rollout.rhai",
            "fn eligible(host) {\n    if host.tags.len() > 0 { \"no\" } else { true }\n}\nfn canary(group) { 1 }\nfn waves() { [100] }\nfn bake(wave) { 0 }\n",
        )],
        &[],
    )
    .unwrap();
    let host = crate::model::Host {
        tags: vec!["x".into()],
        ..Default::default()
    };
    let e = set
        .call::<bool>("rollout", "eligible", (&host,))
        .unwrap_err();
    expect![[r#"ReturnType rollout.rhai:1:1: `fn eligible` in `rollout.rhai` returned the wrong type: expected `true`, `false` or `exclude(reason)`, got `string`: invalid type: string "no", expected a boolean"#]]
        .assert_eq(&show(&e));
    assert!(set
        .call::<bool>("rollout", "eligible", (&crate::model::Host::default(),))
        .unwrap());
}

#[test]
fn not_utf8() {
    let e = SourceTree::from_bytes(
        Path::new("p"),
        [(
            "gates.rhai".to_string(),
            b"fn gate(w) {\n  \"caf\xe9\"\n}\n".to_vec(),
        )],
    )
    .unwrap_err();
    expect![[
        r#"Encoding gates.rhai:2:7: `gates.rhai` is not valid UTF-8 (bad byte at offset 19)"#
    ]]
    .assert_eq(&show(&e));
}

#[test]
fn missing_and_empty_directories() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    let e = PolicySet::load(&missing, &LoadOptions::default()).unwrap_err();
    assert!(matches!(e, PolicyError::MissingDir(_)), "{e}");
    assert!(e.to_string().contains("does not exist"));
    let e = PolicySet::load(dir.path(), &LoadOptions::default()).unwrap_err();
    assert!(matches!(e, PolicyError::EmptyDir(_)), "{e}");
    std::fs::write(dir.path().join("notes.txt"), "hi").unwrap();
    let e = PolicySet::load(dir.path(), &LoadOptions::default()).unwrap_err();
    assert!(e.to_string().contains("holds no `.rhai` files"), "{e}");
    let file = dir.path().join("notes.txt");
    let e = PolicySet::load(&file, &LoadOptions::default()).unwrap_err();
    assert!(matches!(e, PolicyError::NotADirectory(_)), "{e}");
}

#[test]
fn errors_inside_imported_modules_point_at_the_module() {
    let set = load_with(
        &[
            (
                "rollout.rhai",
                &format!("import \"lib/util\" as u;\n{ROLLOUT_OK}fn f() {{\n    u::boom(1)\n}}\n"),
            ),
            (
                "lib/util.rhai",
                "fn boom(x) {\n    let y = x;\n    y + nope(x)\n}\n",
            ),
        ],
        &[],
    )
    .unwrap();
    let e = set.call_dynamic("rollout", "f", Vec::new()).unwrap_err();
    expect![[r#"Runtime lib/util.rhai:3:9: unknown function `nope (i64)`"#]].assert_eq(&show(&e));
    let d = &e.diagnostics()[0];
    assert_eq!(
        d.trace,
        vec![
            "in call to `boom` at rollout.rhai:7:8".to_string(),
            "in call to `f` at <fleetward>:1:1".to_string()
        ]
        .into_iter()
        .filter(|t| !t.contains("<fleetward>"))
        .collect::<Vec<_>>()
    );
}

#[test]
fn errors_at_import_time_point_at_the_module() {
    check_load(
        &[
            (
                "gates.rhai",
                "import \"lib/bad\" as b;\nfn gate(w) { pass() }\n",
            ),
            ("lib/bad.rhai", "fn x() { 1 }\nthrow \"boom at load\";\n"),
        ],
        expect![[r#"Runtime lib/bad.rhai:2:1: boom at load"#]],
    );
    check_load(
        &[(
            "gates.rhai",
            "import \"lib/missing\" as b;\nfn gate(w) { pass() }\n",
        )],
        expect![[r#"Runtime gates.rhai:1:8: module `lib/missing` not found"#]],
    );
    check_load(
        &[(
            "gates.rhai",
            "import \"../../etc/passwd\" as b;\nfn gate(w) { pass() }\n",
        )],
        expect![[
            r#"Runtime gates.rhai:1:8: module `../../etc/passwd` is outside the policy directory"#
        ]],
    );
}

#[test]
fn import_cycles_are_reported() {
    check_load(
        &[
            (
                "gates.rhai",
                "import \"lib/a\" as a;\nfn gate(w) { pass() }\n",
            ),
            ("lib/a.rhai", "import \"lib/b\" as b;\nfn x() { 1 }\n"),
            ("lib/b.rhai", "import \"lib/a\" as a;\nfn y() { 1 }\n"),
        ],
        expect![[r#"Runtime lib/b.rhai:1:8: import cycle: lib/a.rhai → lib/b.rhai → lib/a.rhai"#]],
    );
}

#[test]
fn config_errors_name_the_line() {
    check_load(
        &[("fleetward.toml", "[limits]\nmax_operations = \"lots\"\n")],
        expect![[
            r#"Config fleetward.toml:2:18: invalid `fleetward.toml`: invalid type: string "lots", expected u64"#
        ]],
    );
}

#[test]
fn config_sets_limits() {
    let set = load_with(
        &[
            (
                "rollout.rhai",
                &format!("{ROLLOUT_OK}fn f() {{ let i = 0; loop {{ i += 1; }} }}\n"),
            ),
            ("fleetward.toml", "[limits]\nmax_operations = 5000\n"),
        ],
        &[],
    )
    .unwrap();
    assert_eq!(set.limits().max_operations, 5000);
    let e = set.call_dynamic("rollout", "f", Vec::new()).unwrap_err();
    assert!(show(&e).contains("`max_operations` (5000)"), "{}", show(&e));
}

#[test]
fn constants_and_imports_are_visible_in_functions() {
    let set = load_with(
        &[(
            "rollout.rhai",
            "import \"std/waves\" as w;\nconst FIRST = 10;\nfn eligible(host) { true }\nfn canary(group) { 1 }\nfn waves() { w::doubling(global::FIRST) }\nfn bake(wave) { hours(1) }\n",
        )],
        &[],
    )
    .unwrap();
    assert_eq!(
        set.call::<Vec<f64>>("rollout", "waves", ()).unwrap(),
        vec![10.0, 20.0, 40.0, 80.0, 100.0]
    );
    assert_eq!(set.call::<i64>("rollout", "bake", (&0,)).unwrap(), 3600);
}

#[test]
fn typed_inputs_reach_the_script() {
    let set = load_with(
        &[(
            "rollout.rhai",
            "fn eligible(host) { !has_tag(host, \"no-reboot\") && host.facts.numa == 2 }\nfn canary(group) { 1 }\nfn waves() { [100] }\nfn bake(wave) { 0 }\n",
        )],
        &[],
    )
    .unwrap();
    let mut h = crate::model::Host::default();
    h.facts.insert("numa".into(), serde_json::json!(2));
    assert!(set.call::<bool>("rollout", "eligible", (&h,)).unwrap());
    h.tags.push("no-reboot".into());
    assert!(!set.call::<bool>("rollout", "eligible", (&h,)).unwrap());
}

#[test]
fn eval_is_disabled_and_prints_are_captured() {
    check_load(
        &[("gates.rhai", "fn gate(w) { eval(\"1\") }\n")],
        expect!["Syntax gates.rhai:1:14: reserved keyword 'eval' is disabled"],
    );
    let set = load_with(
        &[(
            "rollout.rhai",
            &format!("{ROLLOUT_OK}fn f() {{ print(\"hello\"); 7 }}\n"),
        )],
        &[],
    )
    .unwrap();
    let t = set.eval_json("rollout", "f", Vec::new()).unwrap();
    assert_eq!(t.value, serde_json::json!(7));
    assert_eq!(t.prints, vec!["hello".to_string()]);
}

#[test]
fn policy_tests_report_failures_with_locations() {
    let set = load_with(
        &[
            ("rollout.rhai", ROLLOUT_OK),
            (
                "rollout_test.rhai",
                "import \"rollout\" as r;\nfn test_ok() { assert_eq(r::canary(#{}), 1); }\nfn test_bad() {\n    assert_eq(r::waves(), [1]);\n}\nfn helper() { 1 }\n",
            ),
        ],
        &[],
    )
    .unwrap();
    let results = set.run_tests(None);
    let got: Vec<String> = results
        .iter()
        .map(|r| {
            format!(
                "{} {} {}",
                r.name,
                r.passed,
                r.error.as_ref().map(|e| e.one_line()).unwrap_or_default()
            )
        })
        .collect();
    expect![[r#"
        test_bad false rollout_test.rhai:4:5: assertion failed: left == right
          left:  [1, 5, 25, 100]
          right: [1]
        test_ok true "#]]
    .assert_eq(&got.join("\n"));
    assert_eq!(set.run_tests(Some("test_ok")).len(), 1);
}

#[test]
fn ambiguous_and_unknown_functions() {
    let set = load_with(
        &[
            (
                "rollout.rhai",
                &format!("{ROLLOUT_OK}fn common() {{ 1 }}\n"),
            ),
            ("gates.rhai", "fn gate(w) { pass() }\nfn common() { 2 }\n"),
        ],
        &[],
    )
    .unwrap();
    assert!(matches!(
        set.resolve_fn("common"),
        Err(PolicyError::AmbiguousFunction { .. })
    ));
    assert_eq!(set.resolve_fn("gates::common").unwrap().0.kind, "gates");
    assert!(matches!(
        set.resolve_fn("nothing"),
        Err(PolicyError::NoSuchFunction(_))
    ));
    let v = set.call_dynamic("gates", "common", Vec::new()).unwrap();
    assert_eq!(v.as_int().unwrap(), 2);
    assert!(set
        .call_dynamic("gates", "common", vec![Dynamic::UNIT])
        .is_err());
}

/// Finding: a simulation's eligibility threads panicked inside Rhai (`global::` constants sit
/// behind one lock per module that Rhai gives up on after ~50 ms of contention). Many threads
/// reading a large `global::` constant of one set at once must all get their answer.
#[test]
fn global_constants_read_from_many_threads_at_once() {
    let src = format!(
        "{ROLLOUT_OK}fn big() {{ let a = []; a.pad(40000, 1); a }}\nconst BIG = big();\n\
         fn total() {{ let n = 0; for x in global::BIG {{ n += x; }} n }}\n"
    );
    let set = load_with(&[("rollout.rhai", &src)], &["max_operations=100000000"]).unwrap();
    std::thread::scope(|s| {
        for _ in 0..16 {
            s.spawn(|| {
                for _ in 0..30 {
                    assert_eq!(set.call::<i64>("rollout", "total", ()).unwrap(), 40_000);
                }
            });
        }
    });
}
