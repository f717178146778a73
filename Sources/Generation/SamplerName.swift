/// The samplers users can name; the engine gives each its scheduler (`make(config:steps:eta:)`).
public enum SamplerName: String, CaseIterable, Sendable {
    case ddim, ddpm, pndm, lms, euler
    case eulerAncestral = "euler_a"
    case heun
    case dpmpp2m = "dpmpp_2m"
    case dpmpp2mKarras = "dpmpp_2m_karras"
    case dpm2, unipc, lcm
    case dpmppSDEKarras = "dpmpp_sde_karras"

    /// Parses a user-supplied name (any case); the error lists the known ones.
    public init(parsing name: String) throws {
        guard let sampler = SamplerName(rawValue: name.lowercased()) else {
            throw InvalidGenerationRequest(
                .sampler, "unknown sampler \"\(name)\"; known: \(SamplerName.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        self = sampler
    }

    /// The AUTOMATIC1111 web UI's name of the sampler, as its `parameters` text writes it.
    public var webUIName: String {
        switch self {
        case .ddim: return "DDIM"
        case .ddpm: return "DDPM"
        case .pndm: return "PLMS"
        case .lms: return "LMS"
        case .euler: return "Euler"
        case .eulerAncestral: return "Euler a"
        case .heun: return "Heun"
        case .dpmpp2m: return "DPM++ 2M"
        case .dpmpp2mKarras: return "DPM++ 2M Karras"
        case .dpm2: return "DPM2"
        case .unipc: return "UniPC"
        case .lcm: return "LCM"
        case .dpmppSDEKarras: return "DPM++ SDE Karras"
        }
    }
}

/// Which noise generator a seed drives; the engine makes the generator (`generator(seed:)`).
public enum NoiseSource: String, Sendable, CaseIterable {
    /// PyTorch's CPU generator (`torch.randn` after `manual_seed`), as diffusers on CPU.
    case cpu
    /// Philox4x32-10 with the Box–Muller transform of the AUTOMATIC1111 web UI's "NV"
    /// generator, its CPU reproduction of NVIDIA's GPU noise.
    case philox
}
