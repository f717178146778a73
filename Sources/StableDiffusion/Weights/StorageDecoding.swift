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

    /// Writes the elements in row-major order into `output`, gathered from `bytes` (a storage of
    /// `type`) and converted to Float32. The caller has validated the view against the storage.
    func gather(from bytes: UnsafeRawBufferPointer, type: StorageType, into output: UnsafeMutablePointer<Float>) {
        guard let base = bytes.baseAddress, elementCount ?? 0 > 0 else { return }
        switch type {
        case .float: gather(Float32Element.self, base, output)
        case .half: gather(Float16Element.self, base, output)
        case .bfloat16: gather(BFloat16Element.self, base, output)
        case .double: gather(Float64Element.self, base, output)
        case .long: gather(IntegerElement<Int64>.self, base, output)
        case .int: gather(IntegerElement<Int32>.self, base, output)
        case .short: gather(IntegerElement<Int16>.self, base, output)
        case .char: gather(IntegerElement<Int8>.self, base, output)
        case .byte: gather(IntegerElement<UInt8>.self, base, output)
        case .bool: gather(BoolElement.self, base, output)
        }
    }

    private func gather<Element: StorageElement>(
        _: Element.Type, _ base: UnsafeRawPointer,
        _ output: UnsafeMutablePointer<Float>
    ) {
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
            output[0] = Element.load(base, offset)
            return
        }
        let outerRank = extents.count - 1
        var counters = [Int](repeating: 0, count: outerRank)
        var start = offset
        var written = 0
        let total = extents.reduce(1, *)
        while written < total {
            let destination = output + written
            if innerStep == 1 {
                Element.convert(base, from: start, count: inner, into: destination)
            } else {
                for index in 0..<inner { destination[index] = Element.load(base, start + index * innerStep) }
            }
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
