extension TensorReference {
    /// The number of elements, or nil if a dimension is negative or the product overflows.
    var elementCount: Int? {
        var count = 1
        for extent in shape {
            guard extent >= 0 else { return nil }
            let (product, overflow) = count.multipliedReportingOverflow(by: extent)
            guard !overflow else { return nil }
            count = product
        }
        return count
    }

    /// Checks that every element the view addresses lies inside a storage of `storageCount` elements.
    func validate(storageCount: Int) throws(CheckpointError) {
        guard offset >= 0, strides.allSatisfy({ $0 >= 0 }), let count = elementCount else {
            throw CheckpointError(
                .invalidTensor,
                "size \(shape), stride \(strides) and offset \(offset) include a "
                    + "negative or overflowing value; the file is damaged")
        }
        guard count > 0 else { return }
        var last = offset
        for (extent, stride) in zip(shape, strides) {
            let (step, overflow) = (extent - 1).multipliedReportingOverflow(by: stride)
            let (sum, carry) = last.addingReportingOverflow(step)
            guard !overflow, !carry else {
                throw CheckpointError(
                    .invalidTensor,
                    "size \(shape) with stride \(strides) overflows; the file is "
                        + "damaged")
            }
            last = sum
        }
        guard last < storageCount else {
            throw CheckpointError(
                .invalidTensor,
                "size \(shape), stride \(strides) at offset \(offset) reaches "
                    + "element \(last) of a storage of \(storageCount); the file is damaged")
        }
    }

    /// Writes the elements in row-major order into `output`, gathered from `bytes` (a storage of `type`): half and
    /// bfloat16 elements as they are (`output` holds 2-byte elements, see `StorageType.resident`), every other type
    /// converted to Float32. The caller has validated the view against the storage.
    func gather(from bytes: UnsafeRawBufferPointer, type: StorageType, into output: UnsafeMutableRawPointer) {
        guard let base = bytes.baseAddress, elementCount ?? 0 > 0 else { return }
        let floats = output.assumingMemoryBound(to: Float.self)
        switch type {
        case .float: gather(Float32Element.self, base, floats)
        case .half, .bfloat16: copyHalves(base, output)
        case .double: gather(Float64Element.self, base, floats)
        case .long: gather(IntegerElement<Int64>.self, base, floats)
        case .int: gather(IntegerElement<Int32>.self, base, floats)
        case .short: gather(IntegerElement<Int16>.self, base, floats)
        case .char: gather(IntegerElement<Int8>.self, base, floats)
        case .byte: gather(IntegerElement<UInt8>.self, base, floats)
        case .bool: gather(BoolElement.self, base, floats)
        }
    }

    private func gather<Element: StorageElement>(
        _: Element.Type, _ base: UnsafeRawPointer,
        _ output: UnsafeMutablePointer<Float>
    ) {
        forEachRun { start, inner, innerStep, written in
            let destination = output + written
            if innerStep == 1 {
                Element.convert(base, from: start, count: inner, into: destination)
            } else {
                for index in 0..<inner { destination[index] = Element.load(base, start + index * innerStep) }
            }
        }
    }

    /// Copies 2-byte elements unconverted.
    private func copyHalves(_ base: UnsafeRawPointer, _ output: UnsafeMutableRawPointer) {
        forEachRun { start, inner, innerStep, written in
            let destination = output + written * 2
            if innerStep == 1 {
                destination.copyMemory(from: base + start * 2, byteCount: inner * 2)
            } else {
                for index in 0..<inner {
                    let value = base.loadUnaligned(fromByteOffset: (start + index * innerStep) * 2, as: UInt16.self)
                    destination.storeBytes(of: value, toByteOffset: index * 2, as: UInt16.self)
                }
            }
        }
    }

    /// Calls `body(start, count, step, written)` for each run of the view in row-major order: `count` elements from
    /// storage element `start`, `step` apart, landing after the `written` elements of the runs before it.
    private func forEachRun(_ body: (_ start: Int, _ count: Int, _ step: Int, _ written: Int) -> Void) {
        // Merge dimensions that are contiguous with each other, so that a dense tensor is one run.
        var extents: [Int] = []
        var steps: [Int] = []
        for (extent, stride) in zip(shape, strides) where extent != 1 {
            if let lastExtent = extents.last, steps[steps.count - 1] == extent * stride {
                extents[extents.count - 1] = lastExtent * extent
                steps[steps.count - 1] = stride
            } else {
                extents.append(extent)
                steps.append(stride)
            }
        }
        guard let inner = extents.last, let innerStep = steps.last else {
            body(offset, 1, 1, 0)
            return
        }
        let outerRank = extents.count - 1
        var counters = [Int](repeating: 0, count: outerRank)
        var start = offset
        var written = 0
        let total = extents.reduce(1, *)
        while written < total {
            body(start, inner, innerStep, written)
            written += inner
            var axis = outerRank - 1
            while axis >= 0 {
                counters[axis] += 1
                start += steps[axis]
                if counters[axis] < extents[axis] { break }
                start -= steps[axis] * extents[axis]
                counters[axis] = 0
                axis -= 1
            }
        }
    }
}
