//! A real crash: a child process (this test binary again, told so by an environment variable)
//! records dedup windows and puts outbox entries from concurrent tasks, printing each key the
//! store acknowledged; the parent SIGKILLs it mid-stream, reopens the store and finds every
//! acknowledged key. While the child runs, the parent's own open is refused: the file is locked.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test
#![allow(clippy::disallowed_methods)] // the test waits on real time and the OS clock

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gateway_adapter_embedded::{EmbeddedOptions, EmbeddedStore, OpenError};
use gateway_ports::test_util::{ManualClock, at};
use gateway_ports::{DedupStore, Fingerprint, Outbox, Seen};

/// Set in the child: the state directory it writes to.
const CHILD_DIR: &str = "GATEWAY_EMBEDDED_CRASH_CHILD";
/// Acknowledgements the parent waits for before the kill.
const ACKS_BEFORE_KILL: usize = 300;
const TTL: Duration = Duration::from_secs(3_600);

fn fingerprint(n: u64) -> Fingerprint {
    Fingerprint::from_hex(&format!("{n:064x}")).unwrap()
}

fn open(dir: &Path) -> Result<EmbeddedStore, OpenError> {
    EmbeddedStore::open(
        dir,
        Arc::new(ManualClock::new(at(0))),
        EmbeddedOptions::default(),
    )
}

/// The child's work: runs only when the parent sets [`CHILD_DIR`]; writes until it is killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_writes_until_killed() {
    let Some(dir) = std::env::var_os(CHILD_DIR) else {
        return;
    };
    let store = Arc::new(open(Path::new(&dir)).unwrap());
    let writers: Vec<_> = (0..8_u64)
        .map(|task| {
            let store = store.clone();
            tokio::spawn(async move {
                for n in 0.. {
                    let id = n * 8 + task;
                    if id % 2 == 0 {
                        store.record(&fingerprint(id), TTL, at(0)).await.unwrap();
                        println!("ack dedup {id}");
                    } else {
                        let version = store.put(&format!("rr-{id}"), vec![7; 64]).await.unwrap();
                        println!("ack outbox {id} {version}");
                    }
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
}

#[test]
fn every_acknowledged_write_survives_sigkill() {
    if std::env::var_os(CHILD_DIR).is_some() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_writes_until_killed",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DIR, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut acks = Vec::new();
    let until = Instant::now() + Duration::from_secs(60);
    while acks.len() < ACKS_BEFORE_KILL {
        assert!(
            Instant::now() < until,
            "the child acknowledged only {}",
            acks.len()
        );
        match lines.next() {
            Some(line) => {
                let line = line.unwrap();
                if let Some(ack) = line.strip_prefix("ack ") {
                    acks.push(ack.to_owned());
                }
            }
            None => panic!("the child ended after {} acknowledgements", acks.len()),
        }
    }
    let refused = open(dir.path()).unwrap_err();
    assert!(matches!(refused, OpenError::Locked { .. }), "{refused:?}");
    // Let the child run on a little: the kill then meets writes in flight and acknowledgements
    // the parent has not read yet.
    std::thread::sleep(Duration::from_millis(150));
    // SIGKILL: no destructor, no flush, the writes in flight cut wherever they are.
    child.kill().unwrap();
    // Everything the child printed before it died was acknowledged before it was printed.
    for line in lines {
        if let Some(ack) = line.unwrap().strip_prefix("ack ") {
            acks.push(ack.to_owned());
        }
    }
    child.wait().unwrap();

    let store = open(dir.path()).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let listed = store.list().await.unwrap();
        for ack in &acks {
            let parts: Vec<&str> = ack.split(' ').collect();
            let id: u64 = parts[1].parse().unwrap();
            match parts[0] {
                "dedup" => assert!(
                    matches!(
                        store.record(&fingerprint(id), TTL, at(1)).await.unwrap(),
                        Seen::Claimed { .. }
                    ),
                    "acknowledged dedup record {id} was lost (or lost its claim)"
                ),
                _ => {
                    let version: u64 = parts[2].parse().unwrap();
                    let key = format!("rr-{id}");
                    let entry = listed.iter().find(|e| e.key == key);
                    assert!(
                        entry.is_some_and(|e| e.version == version && e.entry == [7; 64]),
                        "acknowledged outbox entry {key} v{version} was lost: {entry:?}"
                    );
                }
            }
        }
    });
    println!(
        "{} acknowledged writes before SIGKILL, all found after reopening ({} commits since)",
        acks.len(),
        store.commits()
    );
}
