print("layerwise-bench")
