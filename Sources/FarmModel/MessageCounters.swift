import CoreMetrics

/// Counters of ZeroMQ messages by direction and type (`label{direction="sent",type="assign"}`),
/// each made once: counting runs for every message.
public struct MessageCounters {
    private let label: String
    private var counters: [String: Counter] = [:]

    /// Counters under the metric name `label`.
    public init(label: String) {
        self.label = label
    }

    /// Counts one message of `type` (a wire message's type name) received or sent.
    public mutating func count(_ type: String, received: Bool) {
        let key = received ? "<" + type : ">" + type
        if let counter = counters[key] { return counter.increment() }
        let counter = Counter(label: label, dimensions: [("direction", received ? "received" : "sent"), ("type", type.lowercased())])
        counters[key] = counter
        counter.increment()
    }
}
