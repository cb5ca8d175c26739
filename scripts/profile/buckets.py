#!/usr/bin/env python3
"""Two `perf record` profiles of the gateway (before, after) as one Markdown table: the share of
samples by category (allocator, task switches, YAML, other kernel, libc, the gateway's own code)
and, given each run's CPU time per alert, the microseconds per alert of each.

    buckets.py BEFORE.data AFTER.data BEFORE_US AFTER_US
"""
import subprocess, sys, re, collections
def buckets(path):
    out = subprocess.run(["perf","report","-i",path,"--no-children","--sort","dso,sym","--stdio","-g","none"],capture_output=True,text=True).stdout
    b = collections.Counter()
    for line in out.splitlines():
        m = re.match(r"\s+([\d.]+)%\s+(\S+)\s+\[(.)\]\s+(.*)", line)
        if not m: continue
        pct, dso, kind, sym = float(m.group(1)), m.group(2), m.group(3), m.group(4)
        if 'yaml' in sym.lower(): k='YAML emitter/parser'
        elif re.search(r"malloc|free|_int_|unlink_chunk|realloc|^mi_|_mi_|__rdl_alloc|__rust_alloc|consolidate", sym): k='allocator'
        elif 'finish_task_switch' in sym: k='task switches (kernel)'
        elif kind=='k': k='other kernel (network, file system, syscalls)'
        elif dso.startswith('libc'): k='libc (memcpy, syscall stubs)'
        else: k='gateway user code (HTTP, JSON, domain, adapters)'
        b[k]+=pct
    return b
a=buckets(sys.argv[1]); c=buckets(sys.argv[2])
keys=sorted(set(a)|set(c), key=lambda k:-a.get(k,0))
ua, uc = float(sys.argv[3]), float(sys.argv[4])
print("| category | before: % | before: µs/alert | after: % | after: µs/alert |")
print("|---|---|---|---|---|")
for k in keys:
    print(f"| {k} | {a.get(k,0):.1f} | {a.get(k,0)*ua/100:.1f} | {c.get(k,0):.1f} | {c.get(k,0)*uc/100:.1f} |")
print(f"| total | 100 | {ua:.0f} | 100 | {uc:.0f} |")
