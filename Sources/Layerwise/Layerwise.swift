// The umbrella module: `import Layerwise` brings in every concern.
@_exported import Augmentations
@_exported import Baselines
@_exported import Datasets
@_exported import Experiments
@_exported import Figures
@_exported import Layers
@_exported import Losses
@_exported import Optimizers
@_exported import PatchSamplers
@_exported import Probes
@_exported import TensorCore
@_exported import Training
