import Foundation

/// The pickle machine's stack, marks and memo, and the containers built on them, each within its limit.
extension Unpickler {
    func push(_ value: PickleValue) throws(CheckpointError) {
        guard stack.count < limits.stackDepth else { throw limit("more than \(limits.stackDepth) values on the stack") }
        stack.append(value)
    }

    func pop() throws(CheckpointError) -> PickleValue {
        guard stack.count > (marks.last ?? 0) else { throw malformed("an opcode needs a value but the stack is empty") }
        return stack.removeLast()
    }

    func top() throws(CheckpointError) -> PickleValue {
        guard stack.count > (marks.last ?? 0) else { throw malformed("an opcode needs a value but the stack is empty") }
        return stack[stack.count - 1]
    }

    func popMark() throws(CheckpointError) -> [PickleValue] {
        guard let mark = marks.popLast() else { throw malformed("an opcode needs a MARK but none is open") }
        let values = Array(stack[mark...])
        stack.removeSubrange(mark...)
        return values
    }

    func put(_ index: Int) throws(CheckpointError) {
        let value = try top()
        guard memo[index] != nil || memo.count < limits.memoEntries else {
            throw limit("more than \(limits.memoEntries) memo entries")
        }
        memo[index] = value
    }

    func get(_ index: Int) throws(CheckpointError) -> PickleValue {
        guard let value = memo[index] else { throw malformed("memo entry \(index) is read before it is written") }
        return value
    }

    func addItems(_ added: Int) throws(CheckpointError) {
        items += added
        guard items <= limits.containerItems else {
            throw limit("more than \(limits.containerItems) items in containers")
        }
    }

    func tuple(_ elements: [PickleValue]) throws(CheckpointError) -> PickleValue {
        try addItems(elements.count)
        let depth = 1 + elements.reduce(0) { max($0, $1.depth) }
        guard depth <= limits.tupleDepth else { throw limit("tuples nested more than \(limits.tupleDepth) deep") }
        return .tuple(elements, depth: depth)
    }

    func newList(_ elements: [PickleValue]) throws(CheckpointError) -> PickleValue {
        try addItems(elements.count + 1)
        lists.append(elements)
        return .list(lists.count - 1)
    }

    func newDict(_ entries: [(key: PickleValue, value: PickleValue)]) throws(CheckpointError) -> PickleValue {
        try addItems(entries.count + 1)
        dicts.append(entries)
        return .dict(dicts.count - 1)
    }

    func pairs(_ values: [PickleValue]) throws(CheckpointError) -> [(key: PickleValue, value: PickleValue)] {
        guard values.count % 2 == 0 else {
            throw malformed("a dict is built from an odd number (\(values.count)) of values")
        }
        return stride(from: 0, to: values.count, by: 2).map { (key: values[$0], value: values[$0 + 1]) }
    }

    func append(_ values: [PickleValue], to target: PickleValue) throws(CheckpointError) {
        guard case .list(let index) = target else { throw malformed("APPEND to a \(target.kind), not a list") }
        try addItems(values.count)
        lists[index].append(contentsOf: values)
    }

    func setItems(
        _ entries: [(key: PickleValue, value: PickleValue)],
        in target: PickleValue
    ) throws(CheckpointError) {
        guard case .dict(let index) = target else { throw malformed("SETITEM on a \(target.kind), not a dict") }
        try addItems(entries.count)
        dicts[index].append(contentsOf: entries)
    }

    // MARK: - Reading the input
}
