public import Foundation
import Synchronization

/// A monotonically increasing log position (the log head, or the projected checkpoint) that threads and tasks
/// can wait on.
public final class SequenceWatch: Sendable {
    private let condition = NSCondition()
    private let current: Mutex<UInt64>

    public init(_ value: UInt64) {
        current = Mutex(value)
    }

    public var value: UInt64 { current.withLock { $0 } }

    /// Raises the value (never lowers it) and wakes every waiter.
    public func advance(to value: UInt64) {
        condition.lock()
        current.withLock { $0 = max($0, value) }
        condition.broadcast()
        condition.unlock()
    }

    /// Blocks the calling thread until the value exceeds `value` or `timeout` seconds pass; returns the value.
    /// For dedicated threads only, never for tasks of the cooperative pool.
    @discardableResult
    public func blockingWait(beyond value: UInt64, timeout: TimeInterval) -> UInt64 {
        condition.lock()
        defer { condition.unlock() }
        let deadline = Date(timeIntervalSinceNow: timeout)
        while self.value <= value, condition.wait(until: deadline) {}
        return self.value
    }

    /// Wakes blocked threads without changing the value (used on shutdown).
    public func wakeAll() {
        condition.lock()
        condition.broadcast()
        condition.unlock()
    }

    /// Waits (asynchronously) until the value reaches `target`; false when `timeout` passes first.
    public func wait(forAtLeast target: UInt64, timeout: Duration) async -> Bool {
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: timeout)
        var pause = Duration.microseconds(200)
        while value < target {
            guard clock.now < deadline, !Task.isCancelled else { return false }
            try? await Task.sleep(for: pause)
            pause = min(pause * 2, .milliseconds(20))
        }
        return true
    }
}

/// The wall clock in epoch milliseconds: the `at` of events that arrive without one. Only ingest reads it;
/// the fold never does.
public func wallClockMillis() -> Int64 {
    Int64((Date().timeIntervalSince1970 * 1000).rounded(.down))
}
