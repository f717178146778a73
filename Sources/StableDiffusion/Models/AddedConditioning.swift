import Tensors

/// SDXL's added conditioning of one UNet call, one row per batch row: the pooled, projected text embedding and the
/// micro-conditioning numbers (original height and width, crop top and left, then the target height and width — or,
/// for the refiner, the aesthetic score instead of the target size), as diffusers' `added_cond_kwargs`.
public struct AddedConditioning {
    /// [B, projection width]: the second text encoder's projected pooled output.
    public var pooled: Tensor
    /// B rows of 6 numbers (5 for the refiner).
    public var timeIDs: [[Float]]

    /// Makes added conditioning; `timeIDs` needs one row per row of `pooled`.
    public init(pooled: Tensor, timeIDs: [[Float]]) {
        precondition(pooled.rank == 2 && pooled.shape[0] == timeIDs.count, "one row of time ids per pooled row")
        self.pooled = pooled
        self.timeIDs = timeIDs
    }
}

/// diffusers' `add_embedding` (a TimestepEmbedding) with the `add_time_proj` sinusoids in front: maps the added
/// conditioning to a vector summed into the time embedding.
struct AddedEmbedding {
    let linear1: Linear, linear2: Linear
    let numberWidth: Int
    let flipSinToCos: Bool
    let frequencyShift: Float

    init(_ reader: WeightReader, config: UNetConfig) throws {
        guard let numberWidth = config.additionTimeEmbedDim, let inputs = config.projectionClassEmbeddingsInputDim else {
            throw WeightsError(reader.source, "SDXL UNet config needs addition_time_embed_dim and projection_class_embeddings_input_dim")
        }
        linear1 = try Linear(reader, "add_embedding.linear_1", inputs: inputs)
        linear2 = try Linear(reader, "add_embedding.linear_2")
        self.numberWidth = numberWidth
        flipSinToCos = config.flipSinToCos
        frequencyShift = Float(config.freqShift)
    }

    /// The pooled-text width the UNet expects, given `numbers` micro-conditioning numbers per row.
    func pooledWidth(numbers: Int) -> Int { linear1.weight.shape[1] - numbers * numberWidth }

    /// Whether the UNet was trained with the refiner's 5 numbers (aesthetic score) rather than the base's 6,
    /// read from its input width as diffusers checks it, given the pooled width.
    func takesAestheticScore(pooledWidth: Int) -> Bool { linear1.weight.shape[1] - pooledWidth == 5 * numberWidth }

    /// [B, time embedding width] for `added`.
    func callAsFunction(_ added: AddedConditioning) -> Tensor {
        let rows = added.timeIDs.count
        let numbers = added.timeIDs.first?.count ?? 0
        let sinusoids = Tensor.timestepEmbedding(
            added.timeIDs.flatMap { $0 }, dimension: numberWidth, flipSinToCos: flipSinToCos, downscaleFreqShift: frequencyShift
        ).reshaped([rows, numbers * numberWidth])
        precondition(
            added.pooled.shape[1] + numbers * numberWidth == linear1.weight.shape[1],
            "added conditioning is \(added.pooled.shape[1]) + \(numbers)×\(numberWidth) wide, the UNet takes \(linear1.weight.shape[1])")
        return linear2(linear1(Tensor.concat([added.pooled, sinusoids], axis: 1)).silu())
    }
}
