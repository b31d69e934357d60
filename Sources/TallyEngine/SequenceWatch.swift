public import Foundation
import Synchronization

/// A monotonically increasing log position (the log head, or the projected checkpoint) that threads and tasks
/// can wait on.
///
/// Tasks wait without polling: each waiter is a continuation kept with its target, resumed by the
/// ``advance(to:)`` that reaches it (or by its timeout or cancellation, whichever comes first: a waiter is
/// removed from the list by the one that resumes it, so it is resumed exactly once).
public final class SequenceWatch: Sendable {
    /// A suspended ``wait(forAtLeast:timeout:)``.
    private struct Waiter {
        var id: UInt64
        var target: UInt64
        var continuation: CheckedContinuation<Bool, Never>
    }

    private struct State {
        var value: UInt64
        var waiters: [Waiter] = []
        var nextID: UInt64 = 0
    }

    private let condition = NSCondition()
    private let state: Mutex<State>

    public init(_ value: UInt64) {
        state = Mutex(State(value: value))
    }

    public var value: UInt64 { state.withLock { $0.value } }

    /// Tasks waiting in ``wait(forAtLeast:timeout:)``.
    var waiting: Int { state.withLock { $0.waiters.count } }

    /// Raises the value (never lowers it) and wakes every waiter it reaches.
    public func advance(to value: UInt64) {
        condition.lock()
        let reached = state.withLock { state -> [Waiter] in
            state.value = max(state.value, value)
            guard !state.waiters.isEmpty else { return [] }
            let current = state.value
            let reached = state.waiters.filter { $0.target <= current }
            if !reached.isEmpty { state.waiters.removeAll { $0.target <= current } }
            return reached
        }
        condition.broadcast()
        condition.unlock()
        for waiter in reached { waiter.continuation.resume(returning: true) }
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

    /// Waits (asynchronously, without polling) until the value reaches `target`; false when `timeout` passes or
    /// the task is cancelled first.
    public func wait(forAtLeast target: UInt64, timeout: Duration) async -> Bool {
        let id = state.withLock { state -> UInt64 in
            defer { state.nextID += 1 }
            return state.nextID
        }
        var timer: Task<Void, Never>?
        defer { timer?.cancel() }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let done = state.withLock { state -> Bool in
                    if state.value >= target { return true }
                    state.waiters.append(Waiter(id: id, target: target, continuation: continuation))
                    return false
                }
                if done { return continuation.resume(returning: true) }
                // Started only once the waiter is listed, so that neither can miss the other.
                timer = Task {
                    guard (try? await Task.sleep(for: timeout)) != nil else { return }  // cancelled: resumed already
                    self.expire(id)
                }
                if Task.isCancelled { expire(id) }  // cancelled before the waiter was listed
            }
        } onCancel: {
            expire(id)
        }
    }

    /// Resumes the waiter `id` with false, if it is still waiting.
    private func expire(_ id: UInt64) {
        let expired = state.withLock { state -> Waiter? in
            guard let index = state.waiters.firstIndex(where: { $0.id == id }) else { return nil }
            return state.waiters.remove(at: index)
        }
        expired?.continuation.resume(returning: false)
    }
}

/// The wall clock in epoch milliseconds: the `at` of events that arrive without one. Only ingest reads it;
/// the fold never does.
public func wallClockMillis() -> Int64 {
    Int64((Date().timeIntervalSince1970 * 1000).rounded(.down))
}
