//! Replays the committed fuzz corpus (`fuzz/corpus/TARGET/`) through the very functions the
//! fuzz targets call (`fuzz/src/lib.rs`, included here), so `cargo test` on stable keeps every
//! input the fuzzer found interesting from panicking again.

use std::path::{Path, PathBuf};

#[path = "../../fuzz/src/lib.rs"]
mod targets;

fn corpus(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} holds no corpus", dir.display());
    files
}

fn replay(target: &str, run: fn(&[u8])) {
    for file in corpus(target) {
        let input = std::fs::read(&file).unwrap();
        if std::panic::catch_unwind(|| run(&input)).is_err() {
            panic!("{} panics {target}", file.display());
        }
    }
}

#[test]
fn the_alertmanager_corpus_never_panics() {
    replay("alertmanager", targets::alertmanager);
}

#[test]
fn the_kubernetes_event_corpus_never_panics() {
    replay("kubernetes_event", targets::kubernetes_event);
}

#[test]
fn the_settings_corpus_never_panics() {
    replay("settings", targets::settings);
}
