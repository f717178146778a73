import CBLAS
import CKernels
import Foundation

/// Which OpenBLAS kernel set ("core") the process multiplies matrices with, and the one check, before the
/// first product, that it is not a generic fallback on a processor that has AVX2 or AVX-512.
///
/// OpenBLAS picks its core from the CPU id when it loads. Releases older than the processor do not know it
/// and fall back silently: Debian 12's 0.3.21 runs Sapphire Rapids (AVX-512 FP16/BF16) on its `Prescott`
/// (SSE3) kernels, a sixth of the machine's sgemm rate. The library reads `OPENBLAS_CORETYPE` only while it
/// initialises, so a wrong choice is corrected through its own entry points for that: set the variable,
/// `gotoblas_dynamic_quit`, `gotoblas_dynamic_init` (the DYNAMIC_ARCH build's core selection), then unset it.
/// A core the user chose with `OPENBLAS_CORETYPE` is never overridden.
///
/// Tests reproduce an unknown processor with `FARM_TEST_BLAS_LIBRARY_CORE=Prescott`: the library is first put
/// on that core, as OpenBLAS 0.3.21 does on Sapphire Rapids, and the check then runs as it would there.
public enum BLASCore {
    /// Who chose the core in use.
    public enum Choice: Equatable, Sendable {
        /// OpenBLAS, from the CPU id, and it suits the processor.
        case library
        /// The user, through `OPENBLAS_CORETYPE`.
        case user
        /// The engine, replacing the library's generic fallback (named).
        case engine(replaced: String)
        /// The library's choice is a fallback, but this OpenBLAS cannot switch cores (not a DYNAMIC_ARCH build).
        case fallbackKept
    }

    /// The core in use and how it came to be.
    public struct Status: Equatable, Sendable {
        /// OpenBLAS's name of the core (`Haswell`, `SkylakeX`, `Cooperlake`, `Zen`, …).
        public var core: String
        /// Who chose it.
        public var choice: Choice

        /// One line for a log or a report: `Cooperlake (chosen by OpenBLAS)`.
        public var description: String {
            switch choice {
            case .library: return "\(core) (chosen by OpenBLAS)"
            case .user: return "\(core) (set by OPENBLAS_CORETYPE)"
            case .engine(let replaced): return "\(core) (OpenBLAS chose the generic \(replaced); replaced from the CPU's features)"
            case .fallbackKept: return "\(core) (a generic fallback; this OpenBLAS cannot switch cores: set OPENBLAS_CORETYPE)"
            }
        }
    }

    /// What the processor offers, as far as the choice of a BLAS core goes.
    public struct Features: Equatable, Sendable {
        /// AVX2 and FMA.
        public var avx2: Bool
        /// AVX-512 F, BW, DQ and VL (what OpenBLAS's SkylakeX kernels use).
        public var avx512: Bool
        /// AVX-512 BF16 (Cooper Lake, Sapphire Rapids, Zen 4).
        public var avx512BF16: Bool
        /// An AMD processor.
        public var amd: Bool

        /// A set of features.
        public init(avx2: Bool, avx512: Bool, avx512BF16: Bool = false, amd: Bool = false) {
            (self.avx2, self.avx512, self.avx512BF16, self.amd) = (avx2, avx512, avx512BF16, amd)
        }

        /// This processor's.
        public static var current: Features {
            let bits = ck_cpu_features()
            return Features(
                avx2: bits & CK_CPU_AVX2 != 0 && bits & CK_CPU_FMA != 0, avx512: bits & CK_CPU_AVX512 != 0,
                avx512BF16: bits & CK_CPU_AVX512_BF16 != 0, amd: bits & CK_CPU_AMD != 0)
        }
    }

    /// The cores that use a processor's widest vectors: a core outside this set on such a processor is a fallback.
    static func suitableCores(for features: Features) -> Set<String>? {
        if features.avx512 { return ["skylakex", "cooperlake", "sapphirerapids"] }
        if features.avx2 { return ["haswell", "zen", "skylakex", "cooperlake", "sapphirerapids"] }
        return nil
    }

    /// The core to switch to when OpenBLAS chose `current` on a processor with `features`, or nil to keep it.
    /// A user's `OPENBLAS_CORETYPE` (`userSetting`) always stands.
    public static func replacement(for current: String, features: Features, userSetting: String?) -> String? {
        if let userSetting, !userSetting.isEmpty { return nil }
        guard let suitable = suitableCores(for: features), !suitable.contains(current.lowercased()) else { return nil }
        if features.avx512 { return features.avx512BF16 ? "Cooperlake" : "SkylakeX" }
        return features.amd ? "Zen" : "Haswell"
    }

    /// The core in use, checked (and corrected) once per process before the first product.
    public static let status: Status = prepare()

    private static func prepare() -> Status {
        let environment = ProcessInfo.processInfo.environment
        if let user = environment["OPENBLAS_CORETYPE"], !user.isEmpty {
            return Status(core: String(cString: openblas_get_corename()), choice: .user)
        }
        if let simulated = environment["FARM_TEST_BLAS_LIBRARY_CORE"], !simulated.isEmpty { _ = select(simulated) }
        let chosen = String(cString: openblas_get_corename())
        guard let target = replacement(for: chosen, features: .current, userSetting: nil) else {
            return Status(core: chosen, choice: .library)
        }
        guard let now = select(target), now.lowercased() == target.lowercased() else {
            return Status(core: String(cString: openblas_get_corename()), choice: .fallbackKept)
        }
        return Status(core: now, choice: .engine(replaced: chosen))
    }

    /// Makes OpenBLAS select `core` again as it does when it loads; returns the core now in use, or nil when the
    /// library has no DYNAMIC_ARCH entry points. Runs before any product (other threads wait on `status`).
    private static func select(_ core: String) -> String? {
        guard let library = dlopen(nil, RTLD_NOW),
            let quit = dlsym(library, "gotoblas_dynamic_quit"), let initialise = dlsym(library, "gotoblas_dynamic_init")
        else {
            return nil
        }
        typealias Entry = @convention(c) () -> Void
        setenv("OPENBLAS_CORETYPE", core, 1)
        unsafeBitCast(quit, to: Entry.self)()
        unsafeBitCast(initialise, to: Entry.self)()
        unsetenv("OPENBLAS_CORETYPE")
        return String(cString: openblas_get_corename())
    }
}
