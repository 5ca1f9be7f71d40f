use super::*;

fn node() -> NodeRef {
    NodeRef {
        name: "c1".into(),
        address: "127.0.0.1".into(),
        port: 6379,
    }
}

fn pending_event(id: &str, old: &str, value: &str, pid: u32) -> RevertEvent {
    RevertEvent::Pending(Pending {
        id: id.into(),
        node: node(),
        name: "maxmemory-policy".into(),
        old: old.into(),
        value: value.into(),
        due: "2026-01-01T00:00:00Z".into(),
        pid,
        command: "config-set".into(),
        safety: Safety::Write,
    })
}

#[test]
fn pending_reverts_fold_out_of_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    let j = RevertJournal::new(&dir.path().join("reverts.jsonl"));
    j.append(&pending_event("a", "allkeys-lru", "allkeys-lfu", 1))
        .unwrap();
    j.append(&pending_event("b", "allkeys-lru", "noeviction", 1))
        .unwrap();
    j.append(&RevertEvent::Reverted {
        id: "a".into(),
        error: None,
        how: None,
    })
    .unwrap();
    j.append(&RevertEvent::Reverted {
        id: "b".into(),
        error: Some("unreachable".into()),
        how: None,
    })
    .unwrap();
    let left = j.pending().unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].id, "b", "a failed revert stays pending");
    // A torn last line is skipped, and the next append starts on a line of its own.
    let mut text = std::fs::read_to_string(j.path()).unwrap();
    text.push_str("{\"event\":\"rev");
    std::fs::write(j.path(), &text).unwrap();
    assert_eq!(j.pending().unwrap().len(), 1);
    j.append(&pending_event("c", "allkeys-lru", "noeviction", 1))
        .unwrap();
    assert_eq!(j.pending().unwrap().len(), 2);
    // Damage that is not a torn write is an error that names the line.
    std::fs::write(j.path(), format!("garbage\n{text}\n")).unwrap();
    assert!(matches!(
        j.pending(),
        Err(RevertError::Damaged { line: 1, .. })
    ));
}

#[test]
fn a_journal_from_before_the_class_was_recorded_still_reads_as_write() {
    let line = r#"{"event":"pending","id":"x","node":{"name":"c1","address":"127.0.0.1","port":6379},"name":"hz","old":"10","value":"20","due":"2026-01-01T00:00:00Z","pid":7}"#;
    let e: RevertEvent = serde_json::from_str(line).unwrap();
    let p = pending(&[e]);
    assert_eq!(p[0].safety, Safety::Write);
    assert_eq!(p[0].command, "");
}

/// `stack` is `id:value:pid` entries bottom to top (original `orig`); `removing` the ids
/// taken off; pids 1 and 2 are alive, others are gone.
fn check_settle(stack: &str, removing: &[&str], expect: &str) {
    let entries: Vec<Pending> = stack
        .split(' ')
        .map(|e| {
            let mut it = e.split(':');
            let (id, value, pid) = (it.next().unwrap(), it.next().unwrap(), it.next().unwrap());
            Pending {
                id: id.into(),
                node: node(),
                name: "hz".into(),
                old: "orig".into(),
                value: value.into(),
                due: String::new(),
                pid: pid.parse().unwrap(),
                command: String::new(),
                safety: Safety::Write,
            }
        })
        .collect();
    let group: Vec<&Pending> = entries.iter().collect();
    let s = settle(&group, &|p| removing.contains(&p.id.as_str()), &|pid| {
        pid <= 2
    });
    let got = format!(
        "off [{}] set {}",
        s.ids.join(" "),
        s.set_to.as_deref().unwrap_or("nothing")
    );
    assert_eq!(got, expect, "stack {stack}, removing {removing:?}");
}

#[test]
fn finding_stacked_reverts_restore_the_original() {
    // Two killed runs: both off, back to the original (not the first run's value).
    check_settle("a:v1:9 b:v2:9", &[], "off [a b] set orig");
    // One run's own revert with nothing else on the stack.
    check_settle("a:v1:1", &["a"], "off [a] set orig");
    // A later run is still live on top: nothing is sent; it restores the original later.
    check_settle("a:v1:1 b:v2:2", &["a"], "off [a] set nothing");
    // A short change on top of a live longer one goes back to the longer one's value.
    check_settle("a:v1:1 b:v2:2", &["b"], "off [b] set v1");
    // Dead entries under a reverting top go with it.
    check_settle("a:v1:9 b:v2:1", &["b"], "off [a b] set orig");
    // A dead top over a live one: `cache revert` sets the live one's value.
    check_settle("a:v1:1 b:v2:9", &[], "off [b] set v1");
    // All alive and nothing taken off: nothing to do.
    check_settle("a:v1:1 b:v2:2", &[], "off [] set nothing");
}
