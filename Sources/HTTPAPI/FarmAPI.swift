import FarmModel
import Foundation
import HTTPTypes
import Hummingbird
import JobStore

/// The coordinator's JSON API as a Hummingbird `Router`: the routes under `/v1` behind bearer tokens, and
/// `/metrics` and the dashboard's static files (`/`) without one. `FarmHTTPServer` serves it; tests drive it in-process with HummingbirdTesting.
public struct FarmAPI: Sendable {
    /// The database behind the routes: every libpq call runs on one of its serial queues.
    let pool: DatabasePool
    /// The live events `/v1/events` streams.
    let events: FarmEvents
    /// The process's metrics in the Prometheus text format; nil: `/metrics` answers 404.
    let metrics: (@Sendable () -> String)?
    /// The highest priority a submit token's job may ask for.
    let maxSubmitPriority: Int
    /// Where the model store's bytes live; nil: the model-store routes answer 404.
    let modelStore: ModelDirectory?

    /// The largest request body accepted (a job spec); larger ones get 413.
    public static let maxBodyBytes = 64 << 20
    /// `X-Content-Type-Options`, sent with every answer so that no body is sniffed as another type.
    static let noSniff = HTTPField.Name("X-Content-Type-Options")!

    /// Makes the API over the database at `conninfo` (`connections` serial queues), streaming `events`;
    /// `metrics` gives the Prometheus text for `/metrics`; a submit token's jobs may ask for priorities up to
    /// `maxSubmitPriority`; `modelStore` holds the model store's bytes.
    public init(
        conninfo: String?, connections: Int = 4, events: FarmEvents = FarmEvents(), metrics: (@Sendable () -> String)? = nil,
        maxSubmitPriority: Int = 0, modelStore: ModelDirectory? = nil
    ) {
        self.modelStore = modelStore
        self.pool = DatabasePool(conninfo: conninfo, size: connections)
        self.events = events
        self.metrics = metrics
        self.maxSubmitPriority = maxSubmitPriority
    }

    /// The router of every route: the nosniff header and the JSON errors around all of them, the path-id and
    /// token checks around those under `/v1`.
    public func router() -> Router<APIRequestContext> { router(known: KnownPaths()) }

    /// Every route's path (`v1/jobs/:job`) and methods, as the router registers them: what docs/openapi.yaml must cover.
    @_spi(Testing) public func routeTable() -> [(path: String, methods: [String])] {
        let known = KnownPaths()
        _ = router(known: known)
        return known.all
    }

    private func router(known: KnownPaths) -> Router<APIRequestContext> {
        let router = Router(context: APIRequestContext.self)
        router.add(middleware: NoSniffMiddleware())
        router.add(middleware: ErrorMiddleware(known: known))
        func v1(_ least: TokenRole) -> APIRoutes {
            let group = router.group("v1").add(middleware: PathIDMiddleware()).add(middleware: AuthMiddleware(pool: pool, least: least))
            return APIRoutes(group: group, prefix: "v1", known: known)
        }
        let (submit, admin) = (v1(.submit), v1(.admin))
        addJobRoutes(submit: submit)
        addInputRoutes(submit: submit)
        addOwnerRoutes(submit: submit, admin: admin)
        addWorkerRoutes(admin: admin)
        addRetentionRoutes(admin: admin)
        addTokenRoutes(admin: admin)
        addModelRoutes(submit: submit, admin: admin)
        addEventRoutes(submit: submit)
        // Outside /v1 and without a token, as scrapers expect.
        let open = APIRoutes(group: router.group(), prefix: "", known: known)
        open.on(.get, "metrics") { _, _ in try await metricsPage() }
        // The dashboard's static files; the page asks for a token and sends it to /v1 itself.
        addDashboardRoutes(open)
        return router
    }
}

/// Routes that share a group's middleware (for `/v1`, the token check with one least role): each is added to
/// the group and its path recorded in `known`, for 405s.
struct APIRoutes {
    /// The Hummingbird group the routes go into.
    let group: RouterGroup<APIRequestContext>
    /// The group's path (`v1`), which the group does not expose.
    let prefix: String
    /// Where each route's path and method are recorded.
    let known: KnownPaths

    /// Adds `handler` for `method` on `path` (relative to the group; `:name` captures a parameter).
    @discardableResult
    func on(
        _ method: HTTPRequest.Method, _ path: String, use handler: @escaping @Sendable (Request, APIRequestContext) async throws -> Response
    ) -> APIRoutes {
        known.add(prefix.isEmpty ? path : "\(prefix)/\(path)", method)
        group.on(RouterPath(path), method: method, use: handler)
        return self
    }
}

extension FarmAPI {
    /// The encoder of every JSON answer: sorted keys, compact.
    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return encoder
    }()

    /// JSON bytes (sorted keys) of a record.
    static func encode<Value: Encodable>(_ value: Value) throws -> Data {
        try encoder.encode(value)
    }

    /// A JSON response of encoded bytes.
    static func json(bytes body: Data, status: Int = 200) -> Response {
        Response(
            status: HTTPResponse.Status(code: status), headers: [.contentType: "application/json"],
            body: ResponseBody(byteBuffer: ByteBuffer(bytes: body)))
    }

    /// A JSON response of a record.
    static func json<Value: Encodable>(_ value: Value, status: Int = 200) throws -> Response {
        json(bytes: try encode(value), status: status)
    }

    /// Reads a body of at most `maxBodyBytes`; a larger one is read to its end (so the client sees the answer)
    /// unless it passes four times that, and gets 413.
    static func collect(_ body: RequestBody) async throws -> Data {
        var data = Data()
        var total = 0
        for try await buffer in body {
            total += buffer.readableBytes
            if total <= maxBodyBytes {
                data.append(contentsOf: buffer.readableBytesView)
            } else if total > 4 * maxBodyBytes {
                break
            }
        }
        guard total <= maxBodyBytes else {
            throw APIError(status: 413, "the body is larger than \(maxBodyBytes >> 20) MiB", field: "body")
        }
        return data
    }
}
