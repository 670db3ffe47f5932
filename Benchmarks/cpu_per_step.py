#!/usr/bin/env python3
"""Load-robust comparison: CPU milliseconds per training step, ours vs the reference.

On a shared machine wall-clock throughput swings with other processes; CPU time (user +
system of the whole process, from wait4) moves far less. Each program is run twice with
identical settings except the number of timed steps (``--runs 1`` vs ``--runs 3``, or
``--cnn-steps`` for cnn), so set-up, data generation, warm-up and pre-sampling cancel in
the difference. Programs alternate (ours, reference, ours, …). Single-threaded only: with
more threads CPU time adds up across threads and says nothing about wall time.

    python3 Benchmarks/cpu_per_step.py --workload l1 --mode excl
    python3 Benchmarks/cpu_per_step.py --workload cnn --reps 2            # training; --mode inference
    python3 Benchmarks/cpu_per_step.py --workload wide --mode inference   # or --mode train (train_stage3)

This is a profiling aid, not the benchmark: final figures come from run_benchmarks.sh on
a quiet machine.
"""
import argparse
import os
import statistics
import subprocess
import sys


def cpu_seconds(cmd, cwd):
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=cwd, env=env)
    err = p.stderr.read().decode(errors="replace")
    _, status, usage = os.wait4(p.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{err}")
    return usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def main():
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workload", choices=["l1", "l2", "cnn", "wide"], required=True)
    ap.add_argument("--mode", choices=["incl", "excl", "train", "inference"], default=None,
                    help="sampling mode (l1, l2: incl | excl, default excl); cnn, wide: train | inference "
                         "(default train)")
    ap.add_argument("--steps", type=int, default=None,
                    help="steps per timed run (default: l1 200, l2 10, cnn 3 (inference 10), wide 2)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--ours", default=os.path.join(repo, ".build", "release", "layerwise-bench"))
    ap.add_argument("--torch-python", default=os.environ.get("TORCH_PYTHON", ".venv-torch/bin/python"))
    peer = os.path.join(repo, "..", "shared", "peer")
    d = repo
    while not os.path.isfile(os.path.join(peer, "bench_torch.py")) and d != "/":
        d = os.path.dirname(d)
        peer = os.path.join(d, "shared", "peer")
    ap.add_argument("--peer-dir", default=os.environ.get("PEER_DIR", peer))
    ap.add_argument("--no-reference", action="store_true", help="time ours only")
    a = ap.parse_args()
    for path, what in ((a.ours, "--ours"), (a.torch_python, "--torch-python")):
        if not (a.no_reference and what == "--torch-python") and not os.access(path, os.X_OK):
            sys.exit(f"{what} {path} is not an executable")
    if a.reps < 1:
        sys.exit(f"--reps must be >= 1, got {a.reps}")

    w = a.workload
    mode = a.mode or ("excl" if w in ("l1", "l2") else "train")
    if (mode in ("incl", "excl")) != (w in ("l1", "l2")):
        sys.exit(f"--mode {mode} does not apply to --workload {w}")
    a.mode = mode
    steps = a.steps or {"l1": 200, "l2": 10, "cnn": 10 if mode == "inference" else 3, "wide": 2}[w]
    if w == "cnn":
        common = ["--workload", "cnn", "--runs", "1", "--cnn-warmup", "1"]
        fixed, vary = ("--cnn-steps", "--infer-steps") if mode == "inference" else ("--infer-steps", "--cnn-steps")
        common += [fixed, "1"]
        lo, hi, per = steps, 2 * steps, steps
    elif w == "wide":
        common = ["--workload", "wide", "--runs", "1", "--wide-warmup", "1"]
        fixed, vary = ("--wide-train-steps", "--wide-steps") if mode == "inference" else ("--wide-steps", "--wide-train-steps")
        common += [fixed, "1"]
        lo, hi, per = steps, 2 * steps, steps
    else:
        common = ["--workload", w, "--modes", a.mode, "--steps", str(steps), "--warmup", "5" if w == "l2" else "20"]
        vary, lo, hi, per = "--runs", 1, 3, 2 * steps
    progs = {"ours": ([a.ours] + common + ["--gemm-peak", "100"], None)}
    if not a.no_reference:
        progs["reference"] = ([a.torch_python, "bench_torch.py"] + common, a.peer_dir)
    res = {k: [] for k in progs}
    rss = {k: [] for k in progs}
    for _ in range(a.reps):
        for name, (cmd, cwd) in progs.items():
            c1, _ = cpu_seconds(cmd + [vary, str(lo)], cwd)
            c2, m2 = cpu_seconds(cmd + [vary, str(hi)], cwd)
            res[name].append((c2 - c1) * 1000 / per)
            rss[name].append(m2)
    print(f"{w} {a.mode} (1 thread), load {os.getloadavg()[0]:.2f}:")
    for name in progs:
        print(f"  {name:9s} CPU ms/step median {statistics.median(res[name]):9.3f}  "
              f"all {[round(x, 3) for x in res[name]]}  peak RSS {statistics.median(rss[name]):.0f} MB")
    if "reference" in res:
        print(f"  reference / ours = {statistics.median(res['reference']) / statistics.median(res['ours']):.2f}")


if __name__ == "__main__":
    main()
