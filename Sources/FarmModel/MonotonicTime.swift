/// The farm's timeouts run on the monotonic clock: a wall clock set back or forward (NTP, an operator) must not
/// declare a worker lost or keep a dead one alive. The daemons read `ContinuousClock.now` and hand it to their
/// state machines, so tests drive time by hand.
public typealias Instant = ContinuousClock.Instant

extension Duration {
    /// The duration in seconds, for comparing with settings that are given in seconds.
    public var seconds: Double {
        let (whole, fraction) = components
        return Double(whole) + Double(fraction) * 1e-18
    }
}

extension ContinuousClock.Instant {
    /// Seconds from `earlier` to this instant (negative when `earlier` is later).
    public func seconds(since earlier: Self) -> Double { (self - earlier).seconds }

    /// This instant moved by `seconds`.
    public func adding(seconds: Double) -> Self { advanced(by: .nanoseconds(Int64((seconds * 1e9).rounded()))) }
}
