import Foundation
import Testing
import ZeroMQ

@Test func dealerRouterMultipartRoundTripOverTCP() throws {
    let context = ZMQContext()
    let router = try Socket(context, .router)
    try router.bind("tcp://127.0.0.1:*")
    let endpoint = router.lastEndpoint
    #expect(endpoint.hasPrefix("tcp://127.0.0.1:"))

    let dealer = try Socket(context, .dealer)
    try dealer.setIdentity("worker-1")
    try dealer.connect(endpoint)
    let payload = Data((0..<100_000).map { UInt8(truncatingIfNeeded: $0) })
    try dealer.send([Data("HELLO".utf8), Data(), payload])

    var poller = Poller()
    poller.add(.socket(router))
    #expect(try poller.poll(timeout: 5) == [true])
    let received = try #require(try router.receive())
    #expect(received.count == 4)
    #expect(received[0] == Data("worker-1".utf8), "ROUTER prefixes the sender's identity")
    #expect(received[1] == Data("HELLO".utf8))
    #expect(received[2].isEmpty)
    #expect(received[3] == payload)

    try router.send([received[0], Data("WELCOME".utf8)])
    let reply = try #require(try dealer.receive())
    #expect(reply == [Data("WELCOME".utf8)])
    #expect(try dealer.receive(dontWait: true) == nil)
}

@Test func pollerWaitsOnAForeignFileDescriptor() throws {
    let context = ZMQContext()
    let router = try Socket(context, .router)
    try router.bind("tcp://127.0.0.1:*")
    var fds: [Int32] = [0, 0]
    #expect(pipe(&fds) == 0)
    defer {
        close(fds[0])
        close(fds[1])
    }

    var poller = Poller()
    poller.add(.socket(router))
    poller.add(.fileDescriptor(fds[0]))
    #expect(try poller.poll(timeout: 0.05) == [false, false])
    var byte: UInt8 = 1
    #expect(write(fds[1], &byte, 1) == 1)
    #expect(try poller.poll(timeout: 5) == [false, true])
}

@Test func oversizedMessageIsNotDelivered() throws {
    let context = ZMQContext()
    let router = try Socket(context, .router)
    try router.setMaxMessageSize(1000)
    try router.bind("tcp://127.0.0.1:*")
    let dealer = try Socket(context, .dealer)
    try dealer.connect(router.lastEndpoint)
    try dealer.send([Data(repeating: 7, count: 5000)])
    try dealer.send([Data("small".utf8)])
    var poller = Poller()
    poller.add(.socket(router))
    _ = try poller.poll(timeout: 0.5)
    let first = try router.receive(dontWait: true)
    #expect(first == nil || first?.last != Data(repeating: 7, count: 5000))
}

@Test func bindingABadEndpointThrows() throws {
    let socket = try Socket(ZMQContext(), .router)
    #expect(throws: ZMQError.self) { try socket.bind("nonsense://here") }
}
