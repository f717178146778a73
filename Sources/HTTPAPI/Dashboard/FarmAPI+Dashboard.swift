import Foundation
import HTTPTypes
import Hummingbird

extension FarmAPI {
    /// The dashboard's static files, outside `/v1` and without a token (the page asks for one and sends it with
    /// each API call): `/` (the page), `/dashboard.css` and `/dashboard.js`, all compiled into the binary.
    func addDashboardRoutes(_ routes: APIRoutes) {
        let files: [(path: String, type: String, body: String)] = [
            ("/", "text/html; charset=utf-8", DashboardAssets.page),
            ("/dashboard.css", "text/css; charset=utf-8", DashboardAssets.style),
            ("/dashboard.js", "text/javascript; charset=utf-8", DashboardAssets.script),
        ]
        for file in files {
            let bytes = ByteBuffer(string: file.body)
            for method in [HTTPRequest.Method.get, .head] {
                routes.on(method, file.path) { _, _ in
                    Response(
                        status: .ok,
                        headers: [
                            .contentType: file.type, .cacheControl: "no-cache",
                            .contentSecurityPolicy: DashboardAssets.contentSecurityPolicy,
                        ],
                        body: ResponseBody(byteBuffer: method == .head ? ByteBuffer() : bytes))
                }
            }
        }
    }
}

/// The dashboard's files as text compiled into the binary: plain HTML, CSS and JavaScript with no build step and
/// nothing fetched from elsewhere. The script is split by page across `DashboardAssets+*.swift`.
enum DashboardAssets {
    /// Only the coordinator's own files and API; images arrive as `blob:` URLs (fetched with the token) or, for
    /// live previews, `data:` URLs.
    static let contentSecurityPolicy =
        "default-src 'self'; img-src 'self' blob: data:; script-src 'self'; style-src 'self'; connect-src 'self'; "
        + "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

    /// The whole script, its parts in order.
    static let script = [core, jobsPage, jobPage, galleryPart, workersPage, submitPage, startup].joined(separator: "\n")
}
