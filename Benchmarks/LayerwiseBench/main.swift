// Entry point of `layerwise-bench`: the Swift side of the A/B benchmark against the
// PyTorch reference in shared/peer/bench_torch.py (see Benchmarks/README.md).
LayerwiseBenchCommand.main()
