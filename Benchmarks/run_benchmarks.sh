#!/usr/bin/env bash
# A/B benchmark: Layerwise (layerwise-bench) against the PyTorch CPU reference
# (shared/peer/bench_torch.py) and NumPy/OpenBLAS SGEMM (shared/peer/gemm_peak.py).
#
# Runs the two programs alternately (A B A B …, REPS runs each) for every workload and
# thread count, keeps every JSON line, and prints a markdown table of medians and the
# ratio ours / reference. Ratios measured in one alternating session are what to
# compare: the machines are shared and noisy, absolute figures drift.
#
# Environment (all optional):
#   TORCH_PYTHON  python of the reference venv   (default <repo>/.venv-torch/bin/python if it
#                 exists, else <repo>/../.venv-torch/bin/python)
#   PEER_DIR      folder with bench_torch.py and gemm_peak.py (default <repo>/../shared/peer,
#                 else the first shared/peer found above the repo)
#   WORKLOADS     default "l1 l2 l2-full cnn wide gemm". l2 runs ours with its default --trim on
#                 (the patch cropped to the 13x13 window the network reads: same embeddings
#                 and gradients, less work); l2-full runs ours with --trim off, the whole
#                 16x16 patch as the reference computes it. The reference runs l2 for both.
#   THREADS       default "1 2"
#   REPS          processes per program per (workload, threads); default 5 (≥ 5 recommended)
#   INNER_RUNS    timed runs inside each process (--runs); default 1, so the spread comes
#                 from alternated processes rather than from runs back to back
#   OURS_ARGS     extra arguments for layerwise-bench (e.g. "--steps 50")
#   REF_ARGS      extra arguments for bench_torch.py (keep them equal to OURS_ARGS)
#   GEMM_SIZES    matrix sizes for the gemm workload, both programs (default "1024 2048")
#   GEMM_MIN_TIME seconds of timing per gemm size, both programs (default 2.0)
#   OUT_DIR       where raw JSON lines and the table go (default: a new folder under /tmp)
#   SKIP_BUILD=1  use the existing release binary
#
# OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE are left exactly as the machine sets them.
# Each child gets OPENBLAS_NUM_THREADS = its thread count so both OpenBLAS pools match.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

if [[ -z "${TORCH_PYTHON:-}" ]]; then
    if [[ -x "$REPO/.venv-torch/bin/python" ]]; then TORCH_PYTHON="$REPO/.venv-torch/bin/python"
    else TORCH_PYTHON="$REPO/../.venv-torch/bin/python"; fi
fi
if [[ -z "${PEER_DIR:-}" ]]; then
    PEER_DIR="$REPO/../shared/peer"
    d="$REPO"
    while [[ ! -f "$PEER_DIR/bench_torch.py" && "$d" != "/" ]]; do
        d="$(dirname "$d")"; PEER_DIR="$d/shared/peer"
    done
fi
WORKLOADS="${WORKLOADS:-l1 l2 l2-full cnn wide gemm}"
THREADS="${THREADS:-1 2}"
REPS="${REPS:-5}"
INNER_RUNS="${INNER_RUNS:-1}"
OURS_ARGS="${OURS_ARGS:-}"
REF_ARGS="${REF_ARGS:-}"
GEMM_SIZES="${GEMM_SIZES:-1024 2048}"
GEMM_MIN_TIME="${GEMM_MIN_TIME:-2.0}"
OUT_DIR="${OUT_DIR:-$(mktemp -d /tmp/layerwise-bench.XXXXXX)}"

die() { echo "run_benchmarks.sh: $*" >&2; exit 2; }
[[ -x "$TORCH_PYTHON" ]] || die "TORCH_PYTHON=$TORCH_PYTHON is not an executable python (see shared/peer/README.md to create the venv)"
[[ -f "$PEER_DIR/bench_torch.py" && -f "$PEER_DIR/gemm_peak.py" ]] || die "PEER_DIR=$PEER_DIR has no bench_torch.py / gemm_peak.py"
[[ "$REPS" =~ ^[1-9][0-9]*$ ]] || die "REPS=$REPS must be a positive integer"
[[ "$INNER_RUNS" =~ ^[1-9][0-9]*$ ]] || die "INNER_RUNS=$INNER_RUNS must be a positive integer"
for w in $WORKLOADS; do [[ "$w" =~ ^(l1|l2|l2-full|cnn|wide|gemm)$ ]] || die "WORKLOADS: unknown workload '$w' (l1 l2 l2-full cnn wide gemm)"; done
for t in $THREADS; do [[ "$t" =~ ^[1-9][0-9]*$ ]] || die "THREADS: '$t' is not a positive integer"; done
mkdir -p "$OUT_DIR"

cd "$REPO"
if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
    echo "building layerwise-bench (release)…" >&2
    swift build -c release --product layerwise-bench >&2
fi
OURS="$(swift build -c release --show-bin-path)/layerwise-bench"
[[ -x "$OURS" ]] || die "no release binary at $OURS"

export GEMM_SIZES GEMM_MIN_TIME OURS TORCH_PYTHON PEER_DIR WORKLOADS THREADS REPS INNER_RUNS OURS_ARGS REF_ARGS OUT_DIR
exec python3 - <<'PY'
import json, os, shlex, statistics, subprocess, sys, time

env = os.environ
ours, torch_py, peer, out_dir = env["OURS"], env["TORCH_PYTHON"], env["PEER_DIR"], env["OUT_DIR"]
workloads, threads = env["WORKLOADS"].split(), [int(t) for t in env["THREADS"].split()]
reps, inner = int(env["REPS"]), env["INNER_RUNS"]
ours_extra, ref_extra = shlex.split(env["OURS_ARGS"]), shlex.split(env["REF_ARGS"])
raw_path = os.path.join(out_dir, "raw.jsonl")
raw = open(raw_path, "a")
loads = []  # 1-minute load average before every process


def run_measured(tag, cmd, nthreads, cwd=None):
    """Runs one benchmark process and returns its JSON lines, each tagged with the program
    and the child's peak RSS from wait4 (measured the same way for both programs)."""
    child_env = dict(os.environ, OPENBLAS_NUM_THREADS=str(nthreads))
    load_before = round(os.getloadavg()[0], 2)
    loads.append(load_before)
    t0 = time.time()
    with open(os.path.join(out_dir, "stderr.log"), "a") as errf:
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=errf, env=child_env, cwd=cwd)
        out = p.stdout.read().decode()
        _, status, usage = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        sys.stderr.write(f"{tag} failed ({p.returncode}): {' '.join(cmd)} (see {out_dir}/stderr.log)\n")
        raise SystemExit(1)
    lines = []
    for line in out.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        d = json.loads(line)
        if d.get("kind") == "env":
            continue
        d["program"] = tag
        d["process_peak_rss_mb"] = round(usage.ru_maxrss / 1024, 1)  # KiB on Linux
        d["wall_s"] = round(time.time() - t0, 2)
        d["load1_before"] = load_before
        raw.write(json.dumps(d) + "\n")
        lines.append(d)
    raw.flush()
    return lines


def commands(w, t):
    if w == "gemm":
        sizes, mt = env["GEMM_SIZES"].split(), env["GEMM_MIN_TIME"]
        return ([ours, "--workload", "gemm", "--threads", str(t), "--gemm-sizes", *sizes, "--gemm-min-time", mt],
                [torch_py, os.path.join(peer, "gemm_peak.py"), "--threads", str(t), "--sizes", *sizes,
                 "--min-time", mt], None)
    base, trim = ("l2", ["--trim", "off"]) if w == "l2-full" else (w, [])
    return ([ours, "--workload", base, "--threads", str(t), "--runs", inner] + trim + ours_extra,
            [torch_py, os.path.join(peer, "bench_torch.py"), "--workload", base, "--threads", str(t),
             "--runs", inner] + ref_extra, peer)


def key(d, w):
    if d.get("workload") == "gemm" or d.get("kind") == "gemm":
        return ("gemm", f"sgemm n={d['n']}", d["threads"])
    return (w, d["mode"], d["threads"])


def metric(d):
    if "triplets_per_s" in d:
        return d["triplets_per_s"], "triplets/s"
    if "images_per_s" in d:
        return d["images_per_s"], "images/s"
    if "gflops_best" in d:
        return d["gflops_best"], "GFLOP/s (best call)"
    return None, None


# Environment lines first, for the record.
for t in sorted(set(threads)):
    for cmd in ([ours, "--env-only", "--threads", str(t)],
                [torch_py, os.path.join(peer, "bench_torch.py"), "--env-only", "--threads", str(t)]):
        r = subprocess.run(cmd, capture_output=True, text=True, cwd=peer,
                           env=dict(os.environ, OPENBLAS_NUM_THREADS=str(t)))
        raw.write(r.stdout)
raw.flush()

results = {}  # key -> {"ours": [...], "ref": [...]}
for w in workloads:
    for t in threads:
        ours_cmd, ref_cmd, ref_cwd = commands(w, t)
        for i in range(reps):
            sys.stderr.write(f"[{time.strftime('%H:%M:%S')}] {w} threads={t} rep {i + 1}/{reps} "
                             f"(load {os.getloadavg()[0]:.2f})\n")
            for tag, cmd, cwd in (("ours", ours_cmd, None), ("ref", ref_cmd, ref_cwd)):  # A B A B …
                for d in run_measured(tag, cmd, t, cwd):
                    if d.get("kind") not in (None, "gemm"):
                        continue
                    results.setdefault(key(d, w), {"ours": [], "ref": []})[tag].append(d)


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt(x, nd=1):
    return "—" if x is None else f"{x:,.{nd}f}"


rows = ["| workload | mode | threads | unit | ours (median) | reference (median) | ours / ref "
        "| ours GFLOP/s | ref GFLOP/s | ours gemm_fraction | ours peak RSS MB | ref peak RSS MB | n (ours, ref) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
for k in sorted(results, key=lambda k: (workloads.index(k[0]) if k[0] in workloads else 99, k[1], k[2])):
    r = results[k]
    mo = med([metric(d)[0] for d in r["ours"]])
    mr = med([metric(d)[0] for d in r["ref"]])
    unit = metric((r["ours"] or r["ref"])[0])[1]
    ratio = (mo / mr) if (mo and mr) else None
    go = med([d.get("achieved_gflops") for d in r["ours"]])
    gr = med([d.get("achieved_gflops", d.get("gflops_best")) for d in r["ref"]])
    gf = med([d.get("gemm_fraction") for d in r["ours"]])
    ro = med([d.get("process_peak_rss_mb") for d in r["ours"]])
    rr = med([d.get("process_peak_rss_mb") for d in r["ref"]])
    rows.append(f"| {k[0]} | {k[1]} | {k[2]} | {unit} | {fmt(mo)} | {fmt(mr)} | {fmt(ratio, 2)} "
                f"| {fmt(go, 2)} | {fmt(gr, 2)} | {fmt(gf, 3)} | {fmt(ro)} | {fmt(rr)} "
                f"| {len(r['ours'])}, {len(r['ref'])} |")

table = "\n".join(rows)
header = (f"Measured {time.strftime('%Y-%m-%d %H:%M %Z')}, REPS={reps} alternating processes per program, "
          f"--runs {inner} inside each; reference = {os.path.basename(torch_py)} in {peer}. "
          f"Peak RSS = ru_maxrss of each whole process (wait4), same for both. "
          f"1-min load average before each process: {min(loads):.2f}–{max(loads):.2f} on {os.cpu_count()} cores.\n")
if max(loads) > 1.5:
    header += ("\n**Warning: the machine was busy (load > 1.5) during this session; treat every figure, "
               "ratios included, as preliminary.**\n")
with open(os.path.join(out_dir, "table.md"), "w") as f:
    f.write(header + "\n" + table + "\n")
print(header)
print(table)
sys.stderr.write(f"raw JSON lines: {raw_path}\ntable: {os.path.join(out_dir, 'table.md')}\n")
PY
