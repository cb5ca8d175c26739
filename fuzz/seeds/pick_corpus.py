#!/usr/bin/env python3
"""pick_corpus.py CONTROL_FILE OUT_DIR MAX_FILES

Chooses the committed corpus from a libFuzzer merge control file (`-merge_control_file`, which
`cargo fuzz cmin` writes): greedily, the file that adds the most features not yet covered,
until MAX_FILES or nothing more is added. A parser's minimized corpus holds hundreds of files
(every wrong type of every field is its own edge); the few dozen committed keep most of its
coverage, and the whole minimized corpus stays in corpus-full/ for the next run."""
import pathlib, shutil, sys

control, out, limit = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), int(sys.argv[3])
lines = control.read_text().split("\n")
count = int(lines[0])
files = lines[2 : 2 + count]
features = {}
for line in lines[2 + count :]:
    if line.startswith("FT "):
        parts = line.split()
        features[int(parts[1])] = set(parts[2:])
everything = set().union(*features.values()) if features else set()
covered, chosen = set(), []
while len(chosen) < limit:
    best = max(features, key=lambda i: (len(features[i] - covered), -i), default=None)
    if best is None or not features[best] - covered:
        break
    chosen.append(best)
    covered |= features.pop(best)
out.mkdir(parents=True, exist_ok=True)
for i in chosen:
    shutil.copy(files[i], out / pathlib.Path(files[i]).name)
print(f"{len(chosen)} files keep {len(covered)} of {len(everything)} features")
