import Foundation

/// A value guarded by a lock, for tests that collect results from several threads.
public final class ThreadSafeBox<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: Value

    /// Wraps `value`.
    public init(_ value: Value) { stored = value }

    /// The current value.
    public var value: Value { lock.withLock { stored } }

    /// Changes the value under the lock.
    public func mutate(_ change: (inout Value) -> Void) { lock.withLock { change(&stored) } }
}
