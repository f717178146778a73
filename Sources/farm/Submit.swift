import ArgumentParser
import FarmModel
import Foundation
import Generation
import Imaging
import JobSpec
import JobStore

/// `farm submit`: a job from a spec file or from --prompt, into the database or through the HTTP API.
struct Submit: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract:
            "Queue a job: a spec file (YAML/JSON with defaults, items and sweeps; JSONL; CSV; text, one prompt per line), or one prompt over a range of seeds.",
        discussion: """
            Flags such as --model, --width or --steps fill what a spec leaves out. Example YAML:
              name: foxes
              model: tiny-sd
              defaults: {steps: 10, cfg: 7, sampler: euler_a, width: 32, height: 32}
              sweep:
                prompt: ["a red fox in the snow", "a castle at night"]
                seed: "1-4"
            """)

    @OptionGroup var database: DatabaseOptions
    @OptionGroup var remote: RemoteOptions

    @Argument(help: "A job spec file (.yaml, .yml, .json, .jsonl, .csv, or text).")
    var spec: String?

    @Flag(help: "Print how many tasks the spec makes and the first few; submit nothing.")
    var dryRun = false

    @Flag(help: "Follow the job until it finishes.")
    var wait = false

    @Option(help: "The job's name.")
    var name: String?

    @OptionGroup var generation: GenerationOptions

    @Option(help: "Number of images (seeds seed, seed+1, ...).")
    var count = 1

    @Option(help: "Let retention remove the job's tasks, images and events this long after it finishes: 7d, 12h, or seconds.")
    var expiresAfter: String?

    @Option(help: "POST the job's end (JSON: job, state, counts) to this http(s) URL.")
    var notify: String?

    func validate() throws {
        guard count >= 1 && count <= Limits().maxTasksPerJob else {
            throw ValidationError("--count must be 1...\(Limits().maxTasksPerJob), got \(count)")
        }
    }

    func run() throws {
        if let spec {
            try submitSpec(spec)
            return
        }
        guard generation.prompt != nil else { throw ValidationError("give a spec file or --prompt") }
        let request = try generation.request(defaultModel: "test-pattern")
        let client = try remote.client()
        let store = client == nil ? JobStore(connection: try database.connect()) : nil
        // The farm's references to the inputs are the stored images' SHA-256s; a mask of another size than its
        // image is refused from the headers, before anything is stored.
        var farmRequest = request
        let inputs = SubmitInputs(client: client, store: store)
        try inputs.checkMaskSizes([TaskParameters(request)], asFlags: true)
        farmRequest.initImage = try request.initImage.map { try inputs.store($0, field: "--init-image") }
        farmRequest.mask = try request.mask.map { try inputs.store($0, field: "--mask") }
        for index in farmRequest.controlnets.indices {
            farmRequest.controlnets[index].image = try inputs.store(request.controlnets[index].image, field: "--control-image")
        }
        let task = TaskParameters(farmRequest)
        var job = JobSpec(name: name ?? "job", model: request.model, tasks: [])
        job.tasks = (0..<count).map { offset in
            var image = task
            image.seed = request.seed &+ UInt64(offset)
            return image
        }
        do {
            job.expiresAfter = try expiresAfter.map { try RetentionPeriod.seconds($0, field: "--expires-after") }
            job.notify = notify
            let id = try submit(job, client: client, store: store)
            print(id)
            if wait { try follow(id, client: client, store: store) }
        } catch let failure as ValidationFailure {
            throw ValidationError(failure.description)
        }
    }

    /// Flags given on the command line, as spec field overrides.
    var overrides: [String: String] {
        var fields: [String: String] = [:]
        fields["name"] = name
        fields["model"] = generation.model
        fields["sampler"] = generation.sampler
        fields["cfg"] = generation.cfg.map { String($0) }
        fields["width"] = generation.width.map(String.init)
        fields["height"] = generation.height.map(String.init)
        fields["steps"] = generation.steps.map(String.init)
        fields["refiner"] = generation.refiner
        fields["refiner_switch"] = generation.refinerSwitch.map { String($0) }
        fields["vae"] = generation.vae
        if !generation.lora.isEmpty { fields["loras"] = generation.lora.joined(separator: ",") }
        if !generation.negative.isEmpty { fields["negative"] = generation.negative }
        fields["expires_after"] = expiresAfter
        fields["notify"] = notify
        fields.merge(generation.finishingOverrides) { $1 }
        return fields
    }

    private func submitSpec(_ path: String) throws {
        let url = URL(fileURLWithPath: path)
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: path) else {
            throw ValidationError("\(path): cannot read the file")
        }
        guard (attributes[.size] as? Int ?? 0) <= 256 << 20 else { throw ValidationError("\(path): larger than 256 MB") }
        let text = try String(contentsOf: url, encoding: .utf8)
        var job: JobSpec
        do {
            job = try JobSpec.parse(text, file: path, overrides: overrides, directory: url.deletingLastPathComponent().path)
        } catch let error as JobSpecError {
            throw ValidationError(error.description)
        }
        if dryRun { return printDryRun(job) }
        let client = try remote.client()
        let store = client == nil ? JobStore(connection: try database.connect()) : nil
        let id: Int64
        if let client, job.inputPaths.isEmpty {
            // The server expands the spec itself: a sweep of a million tasks travels as its few lines.
            let format = ["yaml": "yaml", "yml": "yaml", "json": "json", "jsonl": "jsonl", "csv": "csv"][url.pathExtension.lowercased()] ?? "txt"
            let query =
                [URLQueryItem(name: "format", value: format)]
                + overrides.sorted { $0.key < $1.key }.map { URLQueryItem(name: $0.key, value: $0.value) }
            id = try client.json(SubmitReply.self, "POST", "jobs", query: query, body: Data(text.utf8)).id
        } else {
            // Input files are read here, stored or uploaded once each, and the tasks then name their SHA-256s.
            let inputs = SubmitInputs(client: client, store: store)
            try inputs.checkMaskSizes(job.tasks)
            try job.resolveInputs { try inputs.store($0, field: "input") }
            do { id = try submit(job, client: client, store: store) } catch let failure as ValidationFailure {
                throw ValidationError(failure.description)
            }
        }
        print(id)
        if wait { try follow(id, client: client, store: store) }
    }

    /// Queues an expanded job: as `tasks` JSON through the HTTP API, or into the database.
    private func submit(_ job: JobSpec, client: FarmClient?, store: JobStore?) throws -> Int64 {
        if let client {
            return try client.json(
                SubmitReply.self, "POST", "jobs", query: [URLQueryItem(name: "format", value: "tasks")], body: try job.submittedTasks()
            ).id
        }
        return try store!.enqueue(
            name: job.name, model: job.model, maxAttempts: job.maxAttempts, priority: job.priority, expiresAfter: job.expiresAfter,
            notify: job.notify, tasks: job.tasks)
    }

    private func printDryRun(_ job: JobSpec) {
        print("\(job.tasks.count) task(s) for job \"\(job.name)\" (model \(job.model))")
        for (index, task) in job.tasks.prefix(5).enumerated() {
            print(
                "  \(index): \"\(task.prompt.prefix(60))\" seed \(task.seed), \(task.width.map(String.init) ?? "native")x\(task.height.map(String.init) ?? "native"), \(task.steps) steps, cfg \(task.cfgScale), \(task.sampler), \(task.model)"
                    + (task.refiner.map { ", refiner \($0) at \(GenerationRequest(task).effectiveRefinerSwitch)" } ?? "")
                    + (task.vae.map { ", VAE \($0)" } ?? "")
                    + (task.loras.map { ", LoRAs " + $0.map { "\($0.name):\($0.weight)" }.joined(separator: " ") } ?? "")
                    + (task.initImage.map { ", init image \($0)" } ?? "") + (task.mask.map { ", mask \($0)" } ?? ""))
        }
        if job.tasks.count > 5 { print("  …") }
        if !job.inputPaths.isEmpty { print("\(job.inputPaths.count) input file(s) to store") }
    }

    private func follow(_ job: Int64, client: FarmClient?, store: JobStore?) throws {
        if let client {
            try follow(job) { try client.json(JobDetail.self, "GET", "jobs/\(job)").counts.byState }
        } else {
            try follow(job) { try store!.progress(job: job).counts }
        }
    }

    /// Prints a job's counts to standard error whenever they change, until no task will run again.
    private func follow(_ job: Int64, counts: () throws -> [TaskState: Int]) throws {
        var last = ""
        while true {
            let progress = JobProgress(counts: try counts().filter { $0.value > 0 })
            let line = TaskState.allCases.map { "\($0.rawValue)=\(progress.counts[$0, default: 0])" }.joined(separator: " ")
            if line != last {
                FileHandle.standardError.write(Data("job \(job): \(line)\n".utf8))
                last = line
            }
            if progress.isFinished { return }
            Thread.sleep(forTimeInterval: 0.5)
        }
    }
}
