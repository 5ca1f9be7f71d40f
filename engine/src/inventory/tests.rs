//! Data-driven inventory tests: each case is a file's text and the hosts (or errors) it gives.

use super::*;
use expect_test::{expect, Expect};

fn render(r: Result<Inventory, InventoryError>) -> String {
    match r {
        Err(e) => format!("error:\n{}\n", e.render()),
        Ok(inv) => {
            let mut out = format!("{:?}\n", inv.format);
            for (h, line) in inv.hosts.iter().zip(&inv.lines) {
                out.push_str(&format!(
                    "{line}: {} @{}{}{} {}/{} {}/{} {} [{}] {}\n",
                    h.name,
                    h.address,
                    h.port.map(|p| format!(":{p}")).unwrap_or_default(),
                    h.user
                        .as_ref()
                        .map(|u| format!(" user={u}"))
                        .unwrap_or_default(),
                    h.hardware,
                    h.workload,
                    h.datacenter,
                    h.rack,
                    h.kernel,
                    h.tags.join(","),
                    serde_json::to_string(&h.facts).unwrap_or_default()
                ));
            }
            out
        }
    }
}

fn check_with(ext: &str, text: &str, map: &FieldMap, want: Expect) {
    want.assert_eq(&render(parse(&format!("inv.{ext}"), ext, text, None, map)));
}

fn check(ext: &str, text: &str, want: Expect) {
    check_with(ext, text, &FieldMap::default(), want);
}

const HOST: &str = "hardware=r740 workload=db datacenter=ams1 rack=r01 kernel=6.8.0-40-generic";

#[test]
fn native_toml() {
    check(
        "toml",
        r#"
[defaults]
user = "ops"
kernel = "6.8.0-40-generic"

[[hosts]]
name = "db-1"
address = "10.0.0.1"
hardware = "r740"
workload = "db"
datacenter = "ams1"
rack = "r01"
tags = ["pci", "no-reboot"]
serial = "X1"

[[hosts]]
name = "db-2"
port = 2222
hardware = "r740"
workload = "db"
datacenter = "ams1"
rack = 7
facts = { cores = 64 }
"#,
        expect![[r#"
            Native
            6: db-1 @10.0.0.1 user=ops r740/db ams1/r01 6.8.0-40-generic [pci,no-reboot] {"serial":"X1"}
            16: db-2 @db-2:2222 user=ops r740/db ams1/7 6.8.0-40-generic [] {"cores":64}
        "#]],
    );
}

#[test]
fn native_json_and_yaml() {
    let json = r#"{"hosts": [
  {"name": "a", "hardware": "h", "workload": "w", "datacenter": "d", "rack": "r", "kernel": "6.1.0-18-amd64"},
  {"name": "b", "hardware": "h", "workload": "w", "datacenter": "d", "rack": "r", "kernel": "6.1.0-18-amd64", "tags": "x, y"}
]}"#;
    check(
        "json",
        json,
        expect![[r#"
            Native
            2: a @a h/w d/r 6.1.0-18-amd64 [] {}
            3: b @b h/w d/r 6.1.0-18-amd64 [x,y] {}
        "#]],
    );
    check(
        "yaml",
        "hosts:\n  - name: a\n    hardware: h\n    workload: w\n    datacenter: d\n    rack: r\n    kernel: 5.15.0-91-generic\n",
        expect![[r#"
            Native
            2: a @a h/w d/r 5.15.0-91-generic [] {}
        "#]],
    );
}

#[test]
fn csv_rows() {
    check(
        "csv",
        "name,address,hardware,workload,datacenter,rack,kernel,tags,cores\n\
         a,10.0.0.1,r740,db,ams1,r01,6.8.0-40-generic,pci;gpu,64\n\
         # a comment line\n\
         b,,r740,db,ams1,r02,6.8.0-40-generic,,\n",
        expect![[r#"
            Csv
            2: a @10.0.0.1 r740/db ams1/r01 6.8.0-40-generic [pci,gpu] {"cores":64}
            4: b @b r740/db ams1/r02 6.8.0-40-generic [] {}
        "#]],
    );
}

#[test]
fn ansible_ini() {
    let ini = format!(
        "# site inventory\n\
         [all:vars]\n\
         ansible_user=deploy\n\
         datacenter=ams1\n\
         \n\
         [web]\n\
         web[01:03].ams ansible_port=2200 {HOST}\n\
         \n\
         [db]\n\
         db1 ansible_host=10.0.0.5 {HOST} tags=\"['pci', 'no-reboot']\"\n\
         \n\
         [db:vars]\n\
         workload=database\n\
         \n\
         [sjc:children]\n\
         db\n\
         \n\
         [sjc:vars]\n\
         datacenter=sjc3\n"
    );
    check(
        "ini",
        &ini,
        expect![[r#"
            AnsibleIni
            7: web01.ams @web01.ams:2200 user=deploy r740/db ams1/r01 6.8.0-40-generic [] {"groups":["web"]}
            7: web02.ams @web02.ams:2200 user=deploy r740/db ams1/r01 6.8.0-40-generic [] {"groups":["web"]}
            7: web03.ams @web03.ams:2200 user=deploy r740/db ams1/r01 6.8.0-40-generic [] {"groups":["web"]}
            10: db1 @10.0.0.5 user=deploy r740/db ams1/r01 6.8.0-40-generic [pci,no-reboot] {"groups":["db","sjc"]}
        "#]],
    );
}

#[test]
fn ansible_precedence_child_over_parent_host_over_group() {
    // Group vars: `all` < `sjc` (parent) < `db` (child); host vars win over all of them.
    let ini = "[db]\nh1 rack=r9\nh2\n[db:vars]\nrack=r1\nhardware=child\n[sjc:children]\ndb\n[sjc:vars]\nhardware=parent\nworkload=w\n[all:vars]\nworkload=all\ndatacenter=d\nkernel=6.8.0-1\n";
    check(
        "ini",
        ini,
        expect![[r#"
            AnsibleIni
            2: h1 @h1 child/w d/r9 6.8.0-1 [] {"groups":["db","sjc"]}
            3: h2 @h2 child/w d/r1 6.8.0-1 [] {"groups":["db","sjc"]}
        "#]],
    );
}

#[test]
fn ansible_yaml_and_group_prefix_mapping() {
    let yaml = r#"
all:
  vars:
    kernel: 6.8.0-40-generic
  children:
    hw_r740:
      hosts:
        db[1:2]:
          rack: r01
        web1:
          rack: r02
    role_db:
      hosts:
        db[1:2]:
    role_web:
      hosts:
        web1:
    dc_ams1:
      children:
        hw_r740:
"#;
    let mut map = FieldMap::default();
    map.set("hardware=group:hw_").unwrap();
    map.set("workload=group:role_").unwrap();
    map.set("datacenter=group:dc_").unwrap();
    check_with(
        "yaml",
        yaml,
        &map,
        expect![[r#"
            AnsibleYaml
            8: db1 @db1 r740/db ams1/r01 6.8.0-40-generic [] {"groups":["dc_ams1","hw_r740","role_db"]}
            8: db2 @db2 r740/db ams1/r01 6.8.0-40-generic [] {"groups":["dc_ams1","hw_r740","role_db"]}
            10: web1 @web1 r740/web ams1/r02 6.8.0-40-generic [] {"groups":["dc_ams1","hw_r740","role_web"]}
        "#]],
    );
}

#[test]
fn ansible_inventory_list_json() {
    let json = r#"{
 "_meta": {"hostvars": {"a": {"rack": "r1", "kernel": "6.8.0-1"}, "b": {"rack": "r2", "kernel": "6.8.0-1"}}},
 "all": {"children": ["ungrouped", "web"], "vars": {"hardware": "h", "workload": "w", "datacenter": "d"}},
 "web": {"hosts": ["a", "b"]}
}"#;
    check(
        "json",
        json,
        expect![[r#"
            AnsibleYaml
            4: a @a h/w d/r1 6.8.0-1 [] {"groups":["web"]}
            4: b @b h/w d/r2 6.8.0-1 [] {"groups":["web"]}
        "#]],
    );
}

#[test]
fn errors_name_file_and_line() {
    check(
        "toml",
        "[[hosts]]\nname = \"a\"\nhardware = \"h\"\n\n[[hosts]]\nname = \"a\"\n",
        expect![[r#"
            error:
            inv.toml:1: host `a`: missing `workload` (looked for `workload`)
            inv.toml:1: host `a`: missing `datacenter` (looked for `datacenter`)
            inv.toml:1: host `a`: missing `rack` (looked for `rack`)
            inv.toml:1: host `a`: missing `kernel` (looked for `kernel`)
            inv.toml:5: host `a` is declared again (first on line 1)
        "#]],
    );
    check(
        "csv",
        "name,hardware,workload,datacenter,rack,kernel,port\n\
         a,h,w,d,r,6.8.0-1,22\n\
         b,h,w,d,r,not-a-kernel,99999\n\
         c,h,w,d,r\n",
        expect![[r#"
            error:
            inv.csv:4: the row has 5 fields; the header has 7
        "#]],
    );
    check(
        "ini",
        &format!("[web]\nw1 {HOST} oops\nw[3:1]\n[web:kids]\n[a:children]\nb\n[b:children]\na\n"),
        expect![[r#"
            error:
            inv.ini:2: expected `key=value` after the host, found `oops`
            inv.ini:3: `w[3:1]`: range start `3` is after its end `1`
            inv.ini:4: unknown section kind `:kids`; expected `:vars` or `:children`
            inv.ini:8: group `a` is its own ancestor (through `b`)
        "#]],
    );
    check(
        "ini",
        "[a:children]\nb\n[b:children]\na\n",
        expect![[r#"
            error:
            inv.ini:4: group `a` is its own ancestor (through `b`)
        "#]],
    );
    check(
        "ini",
        &format!("[web]\nw1 {HOST} ansible_host=10.0.0.1\n[db]\nw1 rack=r02\nw2 {HOST} ansible_host=10.0.0.1\n"),
        expect![[r#"
            error:
            inv.ini:4: host `w1` sets `rack` to `r02` here and to `r01` on line 2
        "#]],
    );
    check(
        "yaml",
        "all:\n  hosts:\n    a:\n      rack: [1\n",
        expect![[r#"
            error:
            inv.yaml:5: not valid YAML: while parsing a flow sequence, expected ',' or ']'
        "#]],
    );
    check(
        "json",
        "{\"hosts\": []}",
        expect![[r#"
        error:
        inv.json: holds no hosts
    "#]],
    );
}

#[test]
fn shared_address_is_an_error() {
    check(
        "ini",
        &format!("[web]\nw1 {HOST} ansible_host=10.0.0.1\nw2 {HOST} ansible_host=10.0.0.1\n"),
        expect![[r#"
            error:
            inv.ini:3: hosts `w2` and `w1` (line 2) share the address `10.0.0.1:22`; one machine would be updated twice
        "#]],
    );
}

#[test]
fn field_map_from_settings_and_flags() {
    let spec: fields::FieldMapSpec =
        toml::from_str("hardware = [\"hw_class\", \"group:hw_\"]\nrequired = [\"hardware\"]\n")
            .unwrap();
    let mut map = FieldMap::from_spec(&spec).unwrap();
    assert_eq!(map.required, vec![Field::Hardware]);
    check_with(
        "csv",
        "host,hw_class\nx,big\n",
        &map,
        expect![[r#"
            Csv
            2: x @x big/ /  [] {}
        "#]],
    );
    assert!(map
        .set("nonsense=x")
        .unwrap_err()
        .0
        .contains("unknown host field"));
    assert!(map.set("rack").is_err());
    assert!(map.set("rack=group:").is_err());
    assert!(toml::from_str::<fields::FieldMapSpec>("hw = \"x\"").is_err());
}
