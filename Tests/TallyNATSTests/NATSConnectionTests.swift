import Foundation
import NIOCore
import Testing

@testable import TallyNATS

/// The NATS client against a real `nats-server`: the handshake, publish and subscribe, request-reply and what
/// happens when the server goes away (the transport under SPEC §13, K1–K4).
@Suite struct NATSConnectionTests {
    @Test func publishedMessagesArriveInOrderWithTheirHeaders() async throws {
        let server = try NATSServer()
        let connection = try await NATSConnection.connect(to: [server.address], name: "test")
        #expect(connection.serverInfo.jetStream)
        #expect(connection.serverInfo.version.hasPrefix("2."))
        let subscription = try connection.subscribe("tally.test.>")
        try await connection.flush()
        var headers = NATSHeaders()
        headers.append("Nats-Msg-Id", "evt-1")
        try connection.publish("tally.test.a", payload: Array("first".utf8))
        try connection.publish("tally.test.b", payload: Array("second".utf8), headers: headers, replyTo: "back.here")
        try connection.publish("elsewhere", payload: Array("not mine".utf8))
        try connection.publish("tally.test.c", payload: [])
        var received: [NATSMessage] = []
        for await message in subscription.messages {
            received.append(message)
            if received.count == 3 { break }
        }
        #expect(received.map(\.subject) == ["tally.test.a", "tally.test.b", "tally.test.c"])
        #expect(received[0].payload == Array("first".utf8) && received[0].headers == nil)
        #expect(received[1].headers?["Nats-Msg-Id"] == "evt-1" && received[1].headers?["nats-msg-id"] == "evt-1")
        #expect(received[1].replyTo == "back.here" && received[1].payload == Array("second".utf8))
        #expect(received[2].payload.isEmpty)
        await connection.close()
    }

    @Test func requestsArePipelinedAndAnsweredInOrder() async throws {
        let server = try NATSServer()
        let responder = try await NATSConnection.connect(to: [server.address], name: "responder")
        let client = try await NATSConnection.connect(to: [server.address], name: "client")
        let service = try responder.subscribe("service.echo")
        try await responder.flush()
        let serving = Task {
            for await request in service.messages {
                guard let reply = request.replyTo else { continue }
                try responder.publish(reply, payload: Array(request.payload.reversed()))
            }
        }
        let one = try await client.request("service.echo", payload: Array("abc".utf8))
        #expect(one.payload == Array("cba".utf8))
        // 1,000 requests in one write: the answers come back matched to their requests.
        let requests = (0..<1000).map { NATSRequest(subject: "service.echo", payload: Array("n\($0)".utf8)) }
        let answers = try await client.requestAll(requests)
        #expect(answers.count == 1000)
        #expect(answers.enumerated().allSatisfy { $0.element.payload == Array("n\($0.offset)".utf8.reversed()) })
        serving.cancel()
        await client.close()
        await responder.close()
    }

    @Test func aRequestNobodyListensToFailsAtOnce() async throws {
        let server = try NATSServer()
        let connection = try await NATSConnection.connect(to: [server.address], name: "test")
        await #expect(throws: NATSError.noResponders(subject: "nobody.home")) {
            _ = try await connection.request("nobody.home", payload: [], timeout: .seconds(30))
        }
        await connection.close()
    }

    @Test func aRequestWithoutAnswerTimesOut() async throws {
        let server = try NATSServer()
        let connection = try await NATSConnection.connect(to: [server.address], name: "test")
        _ = try connection.subscribe("silent")  // a listener that never answers
        try await connection.flush()
        await #expect(throws: NATSError.timeout(subject: "silent")) {
            _ = try await connection.request("silent", payload: [], timeout: .milliseconds(200))
        }
        await connection.close()
    }

    @Test func theServerGoingAwayFailsWhatWaitsAndEndsSubscriptions() async throws {
        let server = try NATSServer()
        let connection = try await NATSConnection.connect(to: [server.address], name: "test")
        let subscription = try connection.subscribe("silent")
        try await connection.flush()
        let waiting = Task { try await connection.request("silent", payload: [], timeout: .seconds(30)) }
        try await Task.sleep(for: .milliseconds(100))
        server.kill()
        await #expect(throws: NATSError.self) { _ = try await waiting.value }
        for await _ in subscription.messages {}  // ends
        #expect(connection.isClosed)
        #expect(throws: NATSError.self) { try connection.publish("any", payload: []) }
    }

    @Test func aServerListIsTriedInOrder() async throws {
        let server = try NATSServer()
        let dead = NATSServerAddress(host: "127.0.0.1", port: 1)
        let connection = try await NATSConnection.connect(to: [dead, server.address], name: "test")
        #expect(connection.server == server.address)
        await connection.close()
        await #expect(throws: NATSError.self) {
            _ = try await NATSConnection.connect(to: [dead], name: "test", timeout: .seconds(1))
        }
    }

    @Test func serverAddressesParse() {
        #expect(NATSServerAddress("nats://10.0.0.1:4333") == NATSServerAddress(host: "10.0.0.1", port: 4333))
        #expect(NATSServerAddress("node-2:4223") == NATSServerAddress(host: "node-2", port: 4223))
        #expect(NATSServerAddress("node-3") == NATSServerAddress(host: "node-3", port: 4222))
        #expect(NATSServerAddress("nats://x:0") == nil)
        #expect(NATSServerAddress("nats://x:y") == nil)
        #expect(NATSServerAddress("") == nil)
    }
}

/// The protocol decoder on byte streams cut anywhere.
@Suite struct ServerOperationDecoderTests {
    func decodeAll(_ text: String, cutEvery step: Int) throws -> [ServerOperation] {
        var buffer = ByteBuffer()
        var operations: [ServerOperation] = []
        let bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            buffer.writeBytes(bytes[offset..<min(offset + step, bytes.count)])
            offset += step
            while let operation = try ServerOperationDecoder.next(&buffer) { operations.append(operation) }
        }
        #expect(buffer.readableBytes == 0)
        return operations
    }

    @Test func operationsSplitAcrossReadsDecodeTheSame() throws {
        let stream =
            "INFO {\"server_id\":\"x\"}\r\nPING\r\n+OK\r\nMSG a.b 7 5\r\nhello\r\n"
            + "HMSG c.d 8 r.1 20 23\r\nNATS/1.0\r\nK: v w\r\n\r\nxyz\r\n"
            + "HMSG e 1 _INBOX.a.3 28 28\r\nNATS/1.0 404 No Messages\r\n\r\n\r\n"
            + "PONG\r\n-ERR 'Unknown Protocol Operation'\r\n"
        let whole = try decodeAll(stream, cutEvery: stream.utf8.count)
        for step in [1, 2, 3, 7, 16] { #expect(try decodeAll(stream, cutEvery: step) == whole) }
        #expect(whole.count == 8)
        #expect(whole[0] == .info(Array("{\"server_id\":\"x\"}".utf8)))
        #expect(whole[3] == .message(NATSMessage(subject: "a.b", payload: Array("hello".utf8)), sid: 7))
        guard case .message(let headered, 8) = whole[4] else {
            Issue.record("not a message: \(whole[4])")
            return
        }
        #expect(headered.replyTo == "r.1" && headered.headers?["K"] == "v w" && headered.payload == Array("xyz".utf8))
        guard case .message(let status, 1) = whole[5] else {
            Issue.record("not a message: \(whole[5])")
            return
        }
        #expect(status.status == 404 && status.headers?.statusDescription == "No Messages" && status.payload.isEmpty)
        #expect(whole[7] == .error("Unknown Protocol Operation"))
    }

    @Test func malformedOperationsAreErrors() {
        for bad in ["BOGUS x\r\n", "MSG a b 5\r\nhello\r\n", "MSG a 1 -5\r\n", "HMSG a 1 9 5\r\n12345\r\n"] {
            var buffer = ByteBuffer(string: bad)
            #expect(throws: NATSError.self) { _ = try ServerOperationDecoder.next(&buffer) }
        }
    }

    @Test func headersRoundTrip() throws {
        var headers = NATSHeaders([("Nats-Msg-Id", "e-1"), ("Nats-Expected-Last-Subject-Sequence", "0")])
        headers.append("X", "a: b")
        let encoded = headers.encoded()
        #expect(String(decoding: encoded, as: UTF8.self).hasSuffix("\r\n\r\n"))
        #expect(try NATSHeaders.parse(encoded[...]) == headers)
    }
}
