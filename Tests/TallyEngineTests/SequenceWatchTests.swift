import Testing

@testable import TallyEngine

/// `?after=SEQ` waits on the projector's checkpoint: resumed by the advance that reaches it, not by polling.
@Suite struct SequenceWatchTests {
    @Test func aReachedTargetAnswersAtOnce() async {
        let watch = SequenceWatch(10)
        #expect(await watch.wait(forAtLeast: 10, timeout: .seconds(60)))
        #expect(await watch.wait(forAtLeast: 3, timeout: .zero))
    }

    @Test func anAdvanceResumesTheWaitersItReaches() async {
        let watch = SequenceWatch(0)
        async let low = watch.wait(forAtLeast: 5, timeout: .seconds(600))
        async let high = watch.wait(forAtLeast: 50, timeout: .seconds(600))
        while watch.waiting < 2 { await Task.yield() }
        watch.advance(to: 7)
        #expect(await low)
        #expect(watch.waiting == 1)
        watch.advance(to: 3)  // never lowers
        #expect(watch.value == 7)
        watch.advance(to: 50)
        #expect(await high)
        #expect(watch.waiting == 0)
    }

    @Test func aTimeoutAnswersFalseAndForgetsTheWaiter() async {
        let watch = SequenceWatch(0)
        #expect(await !watch.wait(forAtLeast: 1, timeout: .milliseconds(20)))
        #expect(await !watch.wait(forAtLeast: 1, timeout: .zero))
        #expect(watch.waiting == 0)
    }

    @Test func aCancelledWaitAnswersFalse() async {
        let watch = SequenceWatch(0)
        let task = Task { await watch.wait(forAtLeast: 1, timeout: .seconds(600)) }
        while watch.waiting < 1 { await Task.yield() }
        task.cancel()
        #expect(await !task.value)
        #expect(watch.waiting == 0)
        let early = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            return await watch.wait(forAtLeast: 1, timeout: .seconds(600))
        }
        #expect(await !early.value)
        #expect(watch.waiting == 0)
    }
}
