import ArgumentParser

/// The arguments that name one thing the farm holds (a job, a worker) and apply an action to it.
protocol ActionTarget: ParsableArguments {
    /// What may be done to it.
    associatedtype Action
    /// Applies `action` through the HTTP API or the database, and prints what it changed.
    func apply(_ action: Action) throws
}

/// A subcommand that applies one fixed action to the target its arguments name (`farm cancel 7`, `farm drain w1`):
/// each such command gives its abstract, its action and its target, and shares this `run()`.
protocol ActionCommand: ParsableCommand {
    /// The arguments naming what the action applies to.
    associatedtype Target: ActionTarget
    /// The action the command applies.
    static var action: Target.Action { get }
    /// What it applies to.
    var target: Target { get }
}

extension ActionCommand {
    /// Applies the command's action to its target.
    func run() throws { try target.apply(Self.action) }
}
