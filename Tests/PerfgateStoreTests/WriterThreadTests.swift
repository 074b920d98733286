@testable import PerfgateStore
import Testing

@Suite struct WriterThreadTests {
    @Test func aCallerElsewhereIsHandedOverToTheWriterThread() async throws {
        let writer = WriterThread()
        defer { writer.shutdown() }
        #expect(!writer.isCurrent)
        let ranOnWriter = try await writer.run { writer.isCurrent }
        #expect(ranOnWriter)
        #expect(!writer.isCurrent)
    }

    @Test func aTaskPreferringTheWriterRunsItsWritesInlineAndStaysThere() async throws {
        let writer = WriterThread()
        defer { writer.shutdown() }
        let seen = await Task(executorPreference: writer) { () -> [Bool] in
            var seen = [writer.isCurrent]
            // Resuming after a write and after a suspension elsewhere lands on the writer again.
            seen.append(try! await writer.run { writer.isCurrent })
            await Task.yield()
            seen.append(writer.isCurrent)
            try? await Task.sleep(for: .milliseconds(5))
            seen.append(writer.isCurrent)
            return seen
        }.value
        #expect(seen == [true, true, true, true])
    }

    @Test func aWriteAfterShutdownFailsAndAPreferringTaskStillFinishes() async throws {
        let writer = WriterThread()
        writer.shutdown()
        // Shutdown completes asynchronously; wait until the thread refuses work.
        var refused = false
        for _ in 0..<200 where !refused {
            do { _ = try await writer.run { 1 } } catch StoreError.closed { refused = true }
            if !refused { try await Task.sleep(for: .milliseconds(10)) }
        }
        #expect(refused)
        let finished = await Task(executorPreference: writer) { 42 }.value
        #expect(finished == 42)
    }
}
