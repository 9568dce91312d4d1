//! latchkey's command table against Redis's: `redis-tests/command_info.txt` holds
//! the recording server's `COMMAND INFO` of every Redis command (RESP3, made by
//! `record.py`). Every command and subcommand latchkey has, except its own
//! `LOCK.*`, must answer `COMMAND INFO` exactly as Redis does — arity, flags,
//! first/last/step, ACL categories, tips, key specs — in RESP3 and in RESP2, with
//! a container listing the subcommands latchkey implements. A family added later
//! is checked by this test without editing it.

#[allow(dead_code)]
mod compat;

use std::collections::BTreeMap;
use std::path::Path;

/// Commands that are latchkey's own: Redis has nothing to compare them with.
fn is_latchkey_own(name: &str) -> bool {
    name.starts_with("lock.")
}

/// Commands and subcommands newer than the recording server (Redis 7.2), or
/// changed since (ZRANK's WITHSCORE), with the entry Redis 7.2's command files
/// give them, in RESP3 lines as FORMAT.md writes them.
const NEWER_THAN_RECORDING: &[(&str, &str)] = &[
    (
        "waitaof",
        r#"*10
  "waitaof"
  :4
  ~1
    +noscript
  :0
  :0
  :0
  ~2
    +@slow
    +@connection
  ~2
    "request_policy:all_shards"
    "response_policy:agg_min"
  ~0
  ~0"#,
    ),
    (
        "zrank",
        r#"*10
  "zrank"
  :-3
  ~2
    +readonly
    +fast
  :1
  :1
  :1
  ~3
    +@read
    +@sortedset
    +@fast
  ~0
  ~1
    %3
      "flags"
      ~2
        +RO
        +access
      "begin_search"
      %2
        "type"
        "index"
        "spec"
        %1
          "index"
          :1
      "find_keys"
      %2
        "type"
        "range"
        "spec"
        %3
          "lastkey"
          :0
          "keystep"
          :1
          "limit"
          :0
  ~0"#,
    ),
    (
        "zrevrank",
        r#"*10
  "zrevrank"
  :-3
  ~2
    +readonly
    +fast
  :1
  :1
  :1
  ~3
    +@read
    +@sortedset
    +@fast
  ~0
  ~1
    %3
      "flags"
      ~2
        +RO
        +access
      "begin_search"
      %2
        "type"
        "index"
        "spec"
        %1
          "index"
          :1
      "find_keys"
      %2
        "type"
        "range"
        "spec"
        %3
          "lastkey"
          :0
          "keystep"
          :1
          "limit"
          :0
  ~0"#,
    ),
    (
        "client|setinfo",
        r#"*10
  "client|setinfo"
  :4
  ~3
    +noscript
    +loading
    +stale
  :0
  :0
  :0
  ~2
    +@slow
    +@connection
  ~2
    "request_policy:all_nodes"
    "response_policy:all_succeeded"
  ~0
  ~0"#,
    ),
    (
        "client|no-touch",
        r#"*10
  "client|no-touch"
  :3
  ~3
    +noscript
    +loading
    +stale
  :0
  :0
  :0
  ~2
    +@slow
    +@connection
  ~0
  ~0
  ~0"#,
    ),
];

/// A reply as a tree: a line that is a whole value (`+OK`, `:3`, `"x"`), or an
/// aggregate (`*`, `%`, `~`) with its elements (a map's keys and values in turn).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    Atom(String),
    Agg(char, Vec<Node>),
}

impl Node {
    fn items(&self) -> &[Node] {
        match self {
            Node::Agg(_, items) => items,
            Node::Atom(a) => panic!("{a} is not an aggregate"),
        }
    }

    /// A COMMAND INFO entry's name (its first field, a bulk string).
    fn entry_name(&self) -> String {
        match &self.items()[0] {
            Node::Atom(a) => a.trim_matches('"').to_string(),
            other => panic!("entry name {other:?}"),
        }
    }

    /// The same reply as RESP2 carries it: maps and sets become arrays.
    fn resp2(&self) -> Node {
        match self {
            Node::Atom(a) => Node::Atom(a.clone()),
            Node::Agg(_, items) => Node::Agg('*', items.iter().map(Node::resp2).collect()),
        }
    }

    fn render(&self, indent: usize, out: &mut Vec<String>) {
        let pad = " ".repeat(indent);
        match self {
            Node::Atom(a) => out.push(format!("{pad}{a}")),
            Node::Agg(kind, items) => {
                let n = if *kind == '%' {
                    items.len() / 2
                } else {
                    items.len()
                };
                out.push(format!("{pad}{kind}{n}"));
                for item in items {
                    item.render(indent + 2, out);
                }
            }
        }
    }

    fn text(&self) -> String {
        let mut out = Vec::new();
        self.render(0, &mut out);
        out.join("\n")
    }
}

/// Parses reply lines (FORMAT.md) into a tree, consuming them.
fn parse_node(lines: &mut std::slice::Iter<'_, String>) -> Node {
    let line = lines.next().expect("a reply line").trim_start();
    let kind = line.chars().next().expect("a non-empty line");
    if matches!(kind, '*' | '%' | '~' | '>') {
        if let Ok(n) = line[1..].parse::<usize>() {
            let count = if kind == '%' { 2 * n } else { n };
            return Node::Agg(kind, (0..count).map(|_| parse_node(lines)).collect());
        }
    }
    Node::Atom(line.to_string())
}

fn parse_lines(lines: &[String]) -> Node {
    let mut iter = lines.iter();
    let node = parse_node(&mut iter);
    assert!(iter.next().is_none(), "trailing lines after {lines:?}");
    node
}

/// Redis's recorded entries by command name.
fn recorded() -> BTreeMap<String, Node> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("redis-tests/command_info.txt");
    let text = std::fs::read_to_string(&path).expect("redis-tests/command_info.txt");
    let mut blocks: Vec<(String, Vec<String>)> = Vec::new();
    for line in text.lines() {
        if let Some(cmd) = line.strip_prefix("> ") {
            blocks.push((cmd.to_string(), Vec::new()));
        } else if line.starts_with(">? ") || line.starts_with("# ") || line.trim().is_empty() {
            continue;
        } else if let Some((_, lines)) = blocks.last_mut() {
            lines.push(line.to_string());
        }
    }
    let mut out = BTreeMap::new();
    for (cmd, lines) in blocks {
        let name = cmd
            .strip_prefix("COMMAND INFO ")
            .unwrap_or_else(|| panic!("unexpected command {cmd}"));
        let reply = parse_lines(&lines);
        let [entry] = reply.items() else {
            panic!("{name}: one entry expected");
        };
        assert_eq!(entry.entry_name(), name);
        out.insert(name.to_string(), entry.clone());
    }
    assert!(out.len() > 200, "only {} commands recorded", out.len());
    out
}

/// A connection whose replies are trees, read as FORMAT.md lines by the
/// compatibility runner's connection.
struct Conn(compat::Conn);

impl Conn {
    async fn open(addr: std::net::SocketAddr, protocol: &str) -> Conn {
        let mut conn = Conn(compat::Conn::open(addr).await);
        conn.ask(&["HELLO", protocol]).await;
        conn
    }

    async fn ask(&mut self, words: &[&str]) -> Node {
        parse_lines(&self.0.ask_lines(words).await)
    }
}

/// Redis's entry reduced to the subcommands latchkey has (`keep`), in name
/// order; latchkey's entry with its subcommands in name order.
fn with_subcommands(entry: &Node, keep: &dyn Fn(&str) -> bool) -> Node {
    let Node::Agg(kind, fields) = entry else {
        panic!("entry {entry:?}");
    };
    let mut fields = fields.clone();
    if let Some(Node::Agg('*', subs)) = fields.get_mut(9) {
        subs.retain(|s| keep(&s.entry_name()));
        subs.sort_by_key(Node::entry_name);
    }
    Node::Agg(*kind, fields)
}

fn subcommand_names(entry: &Node) -> Vec<String> {
    match entry.items().get(9) {
        Some(Node::Agg('*', subs)) => subs.iter().map(Node::entry_name).collect(),
        _ => Vec::new(),
    }
}

fn newer(name: &str) -> Option<Node> {
    NEWER_THAN_RECORDING
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, text)| parse_lines(&text.lines().map(str::to_string).collect::<Vec<_>>()))
}

/// Compares latchkey's `COMMAND INFO` of every command it has with Redis's, in
/// one protocol; returns the differences.
async fn compare(protocol: &str) -> Vec<String> {
    let redis = recorded();
    let server = latchkey::Server::builder().start().await.expect("starts");
    let mut con = Conn::open(server.addr(), protocol).await;
    let list = con.ask(&["COMMAND", "LIST"]).await;
    let mut names: Vec<String> = list
        .items()
        .iter()
        .map(|n| match n {
            Node::Atom(a) => a.trim_matches('"').to_string(),
            other => panic!("{other:?}"),
        })
        .filter(|n| !n.contains('|') && !is_latchkey_own(n))
        .collect();
    names.sort();
    assert!(names.len() > 40, "COMMAND LIST: {names:?}");
    let mut failures = Vec::new();
    for name in names {
        let newer_entry = newer(&name);
        let Some(expected) = newer_entry.as_ref().or_else(|| redis.get(&name)) else {
            failures.push(format!("{name}: latchkey has it, Redis does not"));
            continue;
        };
        let reply = con.ask(&["COMMAND", "INFO", &name]).await;
        let [got] = reply.items() else {
            failures.push(format!("{name}: COMMAND INFO gave {}", reply.text()));
            continue;
        };
        let ours = subcommand_names(got);
        let theirs = subcommand_names(expected);
        for sub in &ours {
            if theirs.contains(sub) {
                continue;
            }
            match newer(sub) {
                Some(entry) => {
                    let reply = con.ask(&["COMMAND", "INFO", sub]).await;
                    let expected = if protocol == "2" {
                        entry.resp2()
                    } else {
                        entry
                    };
                    if reply.items() != [expected.clone()] {
                        failures.push(format!(
                            "{sub} (Redis 7.2):\n  expected:\n{}\n  latchkey:\n{}",
                            expected.text(),
                            reply.text()
                        ));
                    }
                }
                None => failures.push(format!("{sub}: latchkey has it, Redis does not")),
            }
        }
        let mut expected = with_subcommands(expected, &|s| ours.iter().any(|o| o == s));
        if protocol == "2" {
            expected = expected.resp2();
        }
        let got = with_subcommands(got, &|s| theirs.iter().any(|t| t == s));
        if got != expected {
            failures.push(format!(
                "{name}:\n  redis-server:\n{}\n  latchkey:\n{}",
                expected.text(),
                got.text()
            ));
        }
    }
    failures
}

#[tokio::test]
async fn every_command_describes_itself_as_redis_does_in_resp3() {
    let failures = compare("3").await;
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn every_command_describes_itself_as_redis_does_in_resp2() {
    let failures = compare("2").await;
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_recording_parses_with_subcommands_in_name_order() {
    let redis = recorded();
    let config = &redis["config"];
    let subs = subcommand_names(config);
    let mut sorted = subs.clone();
    sorted.sort();
    assert_eq!(subs, sorted);
    assert!(subs.contains(&"config|get".to_string()), "{subs:?}");
    assert_eq!(redis["get"].items()[1], Node::Atom(":2".into()));
}

/// Redis's recorded COMMAND DOCS entries (a map each) by command name.
fn recorded_docs() -> BTreeMap<String, Node> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("redis-tests/command_docs.txt");
    let text = std::fs::read_to_string(&path).expect("redis-tests/command_docs.txt");
    let mut out = BTreeMap::new();
    let mut block: Vec<String> = Vec::new();
    let mut flush = |block: &mut Vec<String>| {
        if block.is_empty() {
            return;
        }
        let reply = parse_lines(block);
        if let [name, doc] = reply.items() {
            out.insert(
                match name {
                    Node::Atom(a) => a.trim_matches('"').to_string(),
                    other => panic!("{other:?}"),
                },
                doc.clone(),
            );
        }
        block.clear();
    };
    for line in text.lines() {
        if line.starts_with('>') {
            flush(&mut block);
        } else if !line.starts_with("# ") && !line.trim().is_empty() {
            block.push(line.to_string());
        }
    }
    flush(&mut block);
    assert!(out.len() > 200, "only {} commands documented", out.len());
    out
}

/// A COMMAND DOCS map with its `subcommands` kept to those `keep` names, in
/// name order.
fn docs_with_subcommands(doc: &Node, keep: &dyn Fn(&str) -> bool) -> Node {
    let Node::Agg('%', fields) = doc else {
        panic!("docs {doc:?}");
    };
    let mut fields = fields.clone();
    for i in (0..fields.len()).step_by(2) {
        if fields[i] == Node::Atom("\"subcommands\"".into()) {
            if let Node::Agg('%', subs) = &fields[i + 1] {
                let mut pairs: Vec<(Node, Node)> = subs
                    .chunks(2)
                    .map(|p| (p[0].clone(), p[1].clone()))
                    .filter(|(n, _)| match n {
                        Node::Atom(a) => keep(a.trim_matches('"')),
                        _ => false,
                    })
                    .collect();
                pairs.sort_by(|a, b| format!("{:?}", a.0).cmp(&format!("{:?}", b.0)));
                fields[i + 1] =
                    Node::Agg('%', pairs.into_iter().flat_map(|(a, b)| [a, b]).collect());
            }
        }
    }
    Node::Agg('%', fields)
}

/// COMMAND DOCS of every command latchkey shares with Redis is Redis's
/// (argument lists included, which redis-cli shows as hints), with the
/// subcommands latchkey has.
#[tokio::test]
async fn every_command_documents_itself_as_redis_does() {
    let redis = recorded_docs();
    let server = latchkey::Server::builder().start().await.expect("starts");
    let mut con = Conn::open(server.addr(), "3").await;
    let mut failures = Vec::new();
    let mut compared = 0;
    for (name, theirs) in &redis {
        let reply = con.ask(&["COMMAND", "DOCS", name]).await;
        let [_, ours] = reply.items() else {
            continue; // latchkey does not have it
        };
        compared += 1;
        let has = |s: &str| newer(s).is_none() && doc_has_sub(theirs, s);
        let expected = docs_with_subcommands(theirs, &|s| doc_has_sub(ours, s));
        let got = docs_with_subcommands(ours, &has);
        if got != expected {
            failures.push(format!(
                "{name}:\n  redis-server:\n{}\n  latchkey:\n{}",
                expected.text(),
                got.text()
            ));
        }
    }
    assert!(compared > 150, "only {compared} commands compared");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // latchkey's own commands keep the table's summary, since and group.
    let reply = con.ask(&["COMMAND", "DOCS", "lock.acquire"]).await;
    assert!(reply.text().contains("\"summary\""), "{}", reply.text());
}

/// Whether a COMMAND DOCS map names subcommand `sub` (`config|get`).
fn doc_has_sub(doc: &Node, sub: &str) -> bool {
    doc.text().contains(&format!("\"{sub}\""))
}
