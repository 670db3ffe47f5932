import TensorCore

/// A random image transformation. Randomness comes only from the generator passed in,
/// so the same seed gives the same output.
///
/// Conform to plug your own transformation into samplers and the trainer.
public protocol Augmentation: Sendable {
    /// The transformed image. Output shape may differ from the input only where the
    /// augmentation says so (e.g. resize).
    func apply<G: RandomNumberGenerator>(to image: Image, using generator: inout G) -> Image
}
