//! Golden output: every assembler scenario's journeys and syscalls, as JSON Lines, text and
//! pcapng comments, compared byte for byte with the files under `sockpath/tests/golden/`.
//!
//! The reshaping of the journey model and its renderers must not change what a user sees; a
//! change that does is made on purpose, by regenerating the files with `SOCKPATH_BLESS=1 cargo
//! test -p sockpath` and reviewing the diff in the same commit.

use std::path::PathBuf;

use crate::{
    journey::model::{read::Line, Item, Journey, SyscallRecord},
    output::{comment, journey_json, json::JsonSink, text, text::TextSink, Sink},
};

thread_local! {
    /// Scenarios run so far by this test (a test may run several).
    static RUNS: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

fn path() -> PathBuf {
    let run = RUNS.with(|r| {
        r.set(r.get() + 1);
        r.get()
    });
    // libtest names each test's thread after the test's path.
    let name = std::thread::current()
        .name()
        .unwrap_or("unnamed")
        .rsplit("::")
        .next()
        .unwrap_or("unnamed")
        .to_string();
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(if run == 1 {
            format!("{name}.txt")
        } else {
            format!("{name}.{run}.txt")
        })
}

/// What a scenario's output looks like to a user, in one text.
fn render(journeys: &[Journey], calls: &[SyscallRecord]) -> String {
    let mut out = String::new();
    for j in journeys {
        let mut json = Vec::new();
        journey_json::write(&mut json, j);
        out.push_str("== json\n");
        out.push_str(&String::from_utf8_lossy(&json));
        out.push_str("\n== text\n");
        out.push_str(&text::journey_text(j));
        out.push_str("\n== pcapng comments\n");
        for c in comment::comments(j) {
            out.push_str(&c);
            out.push('\n');
        }
    }
    for c in calls {
        out.push_str("== syscall json\n");
        out.push_str(&serde_json::to_string(c).unwrap_or_default());
        out.push('\n');
    }
    out
}

/// What a client of `watch --json` gets: every item as a JSON line, read back into the model.
/// It must print what `watch` prints (text, pcapng comments), and write the same JSON again.
fn check_read_back(journeys: &[Journey], calls: &[SyscallRecord]) {
    let items: Vec<Item> = journeys
        .iter()
        .map(|j| Item::Journey(Box::new(j.clone())))
        .chain(calls.iter().map(|c| Item::Syscall(Box::new(c.clone()))))
        .collect();
    let mut json = JsonSink::new(Vec::new());
    for i in &items {
        json.item(i).unwrap();
    }
    let json = String::from_utf8(json.into_inner()).unwrap();
    let back: Vec<Item> = json
        .lines()
        .map(|l| Line::parse(l).unwrap().into_item().unwrap())
        .collect();
    let text_of = |items: &[Item]| {
        let mut t = TextSink::new(Vec::new());
        for i in items {
            t.item(i).unwrap();
        }
        String::from_utf8(t.into_inner()).unwrap()
    };
    assert_eq!(text_of(&back), text_of(&items), "text read back from JSON");
    let mut again = JsonSink::new(Vec::new());
    for i in &back {
        again.item(i).unwrap();
    }
    assert_eq!(
        String::from_utf8(again.into_inner()).unwrap(),
        json,
        "JSON read back and written again"
    );
    for (j, b) in journeys.iter().zip(&back) {
        let Item::Journey(b) = b else {
            panic!("journey {} read back as another item", j.id)
        };
        assert_eq!(
            comment::comments(b),
            comment::comments(j),
            "pcapng comments of journey {} read back from JSON",
            j.id
        );
    }
}

pub(super) fn check(journeys: &[Journey], calls: &[SyscallRecord]) {
    check_read_back(journeys, calls);
    let got = render(journeys, calls);
    let path = path();
    if std::env::var_os("SOCKPATH_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run SOCKPATH_BLESS=1 cargo test -p sockpath to write it",
            path.display()
        )
    });
    if got != want {
        let line = got
            .lines()
            .zip(want.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(got.lines().count().min(want.lines().count()));
        panic!(
            "{} differs from this scenario's output at line {}:\n got: {:?}\nwant: {:?}\n(SOCKPATH_BLESS=1 rewrites it, when the change is meant)",
            path.display(),
            line + 1,
            got.lines().nth(line),
            want.lines().nth(line)
        );
    }
}
