/// A layer that updates statistics of its input while it trains (e.g. ``BatchNorm``'s running
/// mean and variance), which inference then uses. Data-parallel training averages them over
/// the ranks after every step, so every rank infers with the same values.
public protocol RunningStatistics: Layer {
    /// The buffers training updates from the data.
    var runningStatistics: [Parameter] { get }
}

extension BatchNorm: RunningStatistics {
    public var runningStatistics: [Parameter] { [runningMean, runningVar] }
}
