import FarmModel
import Foundation
import Testing

/// Event streams are bounded by bytes: readers that never read cannot make the coordinator grow with previews.
@Test func nonReadingSubscribersStayWithinTheirByteBudget() async throws {
    let events = FarmEvents()
    let idle = (0..<100).map { _ in events.subscribe() }
    let preview = String(repeating: "A", count: 300_000)  // a large base64 preview
    for step in 0..<200 {
        events.post(FarmEvent(name: "preview", job: 1, payload: .init(task: 1, step: step, png: preview)))
        events.post(FarmEvent(name: "progress", job: 1, payload: .init(task: 1, step: step)))
    }
    events.post(FarmEvent(name: "done", job: 1, payload: .init(task: 1)))
    let bound = 100 * FarmEvents.subscriberBudgetBytes
    #expect(events.bufferedBytes <= bound, "\(events.bufferedBytes) bytes buffered; the bound is \(bound)")
    #expect(idle.allSatisfy { $0.bufferedBytes <= FarmEvents.subscriberBudgetBytes && $0.dropped > 0 })

    // What a slow reader finds: previews went first, so the small events, the last of all included, are there.
    var names: [String] = []
    for await event in idle[0].events {
        names.append(event.name)
        if event.name == "done" { break }
    }
    #expect(names.last == "done")
    #expect(names.filter { $0 == "progress" }.count == 200, "progress events were dropped before previews")
    #expect(names.filter { $0 == "preview" }.count < 10)
    for subscription in idle { subscription.cancel() }
    #expect(events.subscriberCount == 0 && events.bufferedBytes == 0)
}

@Test func aReadingSubscriberGetsEveryEventInOrderAndEndsWhenCancelled() async throws {
    let events = FarmEvents()
    let subscription = events.subscribe(job: 7)
    let reader = Task { () -> [Int] in
        var steps: [Int] = []
        for await event in subscription.events {
            if let data = event.data.data(using: .utf8),
                let step = (try? JSONSerialization.jsonObject(with: data) as? [String: Any])?["step"] as? Int
            {
                steps.append(step)
            }
        }
        return steps
    }
    for step in 0..<1000 {
        events.post(FarmEvent(name: "progress", job: step % 2 == 0 ? 7 : 8, payload: .init(step: step)))
        if step % 100 == 0 { try await Task.sleep(nanoseconds: 1_000_000) }
    }
    try await Task.sleep(nanoseconds: 50_000_000)
    subscription.cancel()
    let steps = await reader.value
    #expect(steps == Array(stride(from: 0, to: 1000, by: 2)), "job 7's events, in order, none lost: got \(steps.count)")
}
