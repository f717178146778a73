import Foundation
import Testing

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// The programs the browser test drives: Debian's chromium and chromium-driver and python3-selenium, which
/// `Deploy/install-deps.sh --test` installs.
private let browserPrerequisites = ["/usr/bin/chromium", "/usr/bin/chromedriver", "/usr/bin/python3"]

/// Where the browser test writes its screenshots: `FARM_TEST_ARTIFACTS`, else `.build/test-artifacts/dashboard`.
private func dashboardArtifacts() -> URL {
    if let folder = ProcessInfo.processInfo.environment["FARM_TEST_ARTIFACTS"] {
        return URL(fileURLWithPath: folder).appendingPathComponent("dashboard")
    }
    return packageRoot.appendingPathComponent(".build/test-artifacts/dashboard")
}

/// The package's root folder.
private let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// The dashboard in a real headless Chromium (`Tests/Browser/dashboard_test.py`, Selenium) against a real coordinator,
/// PostgreSQL and two synthetic workers: sign in, submit a 3×4 sweep from the form, watch the progress bar reach 12/12,
/// see 12 thumbnails, open one and read its parameters, drain a worker, and check that another owner's submit token
/// sees only its own job. Screenshots of each page go to `dashboardArtifacts()`.
@Test func dashboardInHeadlessChromium() throws {
    let missing = browserPrerequisites.filter { !FileManager.default.isExecutableFile(atPath: $0) }
    if ProcessInfo.processInfo.environment["FARM_SKIP_BROWSER_TESTS"] == "1" {
        print("dashboardInHeadlessChromium: skipped (FARM_SKIP_BROWSER_TESTS=1)")
        return
    }
    #expect(missing.isEmpty, "missing \(missing); run Deploy/install-deps.sh --test (or set FARM_SKIP_BROWSER_TESTS=1)")
    guard missing.isEmpty else { return }

    // Heartbeats with room to spare: Chromium's start takes both cores of a small CI machine for seconds.
    let farm = try HTTPFarm(heartbeat: 1, missedHeartbeats: 60)
    let workers = try ["w1", "w2"].map { try startSyntheticWorker(farm.endpoint, name: $0, delay: 0.5) }
    // Another owner, and a job of theirs submitted through the API.
    let created = try runFarmCapturing(
        ["tokens", "create", "--role", "submit", "--name", "bob-laptop", "--owner", "bob", "--database", farm.conninfo])
    let bob = created.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    #expect(created.status == 0 && bob.count == 64, "\(created.stderr)")
    let spec =
        #"{"name": "bobs-job", "model": "synthetic", "defaults": {"width": 32, "height": 32, "steps": 2}, "sweep": {"prompt": ["a pear"], "seed": "1-2"}}"#
    let submitted = try httpRequest("POST", "\(farm.server)/v1/jobs?format=json", token: bob, body: Data(spec.utf8))
    #expect(submitted.status == 201, "\(String(decoding: submitted.body, as: UTF8.self))")
    let bobJob = try #require((jsonObject(submitted.body)["id"] as? NSNumber)?.int64Value)
    // Both workers are online before the browser looks for them.
    let server = farm.server
    let admin = farm.admin
    let online = waitFor(120) {
        guard let reply = try? httpRequest("GET", "\(server)/v1/workers", token: admin) else { return false }
        let rows = (try? JSONSerialization.jsonObject(with: reply.body)) as? [[String: Any]] ?? []
        return rows.filter { $0["state"] as? String == "online" }.count == 2
    }
    #expect(online, "\(farm.coordinator.output)\n\(workers[0].output)")

    let artifacts = dashboardArtifacts()
    try? FileManager.default.removeItem(at: artifacts)
    let browser = try FarmProcess(
        [
            packageRoot.appendingPathComponent("Tests/Browser/dashboard_test.py").path, "--url", farm.server, "--admin-token", farm.admin,
            "--other-token", bob, "--other-job", String(bobJob), "--drain", "w2", "--artifacts", artifacts.path,
        ], name: "browser", executable: URL(fileURLWithPath: "/usr/bin/python3"))
    // Generous: a 2-core CI machine runs the other suites at the same time.
    let finished = waitFor(900) { !browser.process.isRunning }
    if !finished { browser.crash() }
    browser.process.waitUntilExit()
    print("dashboard screenshots: \(artifacts.path)")
    #expect(
        finished && browser.process.terminationStatus == 0,
        """
        \(browser.output)
        --- coordinator ---
        \(farm.coordinator.output.suffix(8000))
        --- w1 ---
        \(workers[0].output.suffix(4000))
        """)
    for page in ["signin", "submit", "job", "image", "jobs", "workers", "jobs-phone", "jobs-other-owner", "job-other-owner"] {
        #expect(FileManager.default.fileExists(atPath: artifacts.appendingPathComponent("\(page).png").path), "\(page).png")
    }
}
