import Foundation
import Tensors
import Testing

/// The BLAS core check: which core replaces a generic fallback, and that this machine's is not one.
@Test func fallbackCoresAreReplacedFromTheCPUsFeatures() {
    let sapphireRapids = BLASCore.Features(avx2: true, avx512: true, avx512BF16: true)
    let skylake = BLASCore.Features(avx2: true, avx512: true)
    let zen3 = BLASCore.Features(avx2: true, avx512: false, amd: true)
    let haswell = BLASCore.Features(avx2: true, avx512: false)
    // OpenBLAS 0.3.21 on Sapphire Rapids says Prescott; older releases on new AMD parts say Nehalem and the like.
    #expect(BLASCore.replacement(for: "Prescott", features: sapphireRapids, userSetting: nil) == "Cooperlake")
    #expect(BLASCore.replacement(for: "Prescott", features: skylake, userSetting: nil) == "SkylakeX")
    #expect(BLASCore.replacement(for: "Haswell", features: skylake, userSetting: nil) == "SkylakeX")
    #expect(BLASCore.replacement(for: "Nehalem", features: zen3, userSetting: nil) == "Zen")
    #expect(BLASCore.replacement(for: "Sandybridge", features: haswell, userSetting: nil) == "Haswell")
    #expect(BLASCore.replacement(for: "Core2", features: haswell, userSetting: "") == "Haswell", "an empty setting is no setting")
    // Cores that suit the processor stay, and so does whatever the user chose.
    #expect(BLASCore.replacement(for: "Cooperlake", features: sapphireRapids, userSetting: nil) == nil)
    #expect(BLASCore.replacement(for: "SKYLAKEX", features: skylake, userSetting: nil) == nil)
    #expect(BLASCore.replacement(for: "Zen", features: zen3, userSetting: nil) == nil)
    #expect(BLASCore.replacement(for: "Prescott", features: sapphireRapids, userSetting: "Prescott") == nil)
    // Without AVX2 there is nothing better to choose.
    #expect(BLASCore.replacement(for: "Prescott", features: .init(avx2: false, avx512: false), userSetting: nil) == nil)
}

@Test func thisMachinesBLASCoreIsNotAGenericFallback() {
    let status = BLASCore.status
    let userSetting = ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] ?? ""
    if !userSetting.isEmpty {
        #expect(status.choice == .user, "a user's OPENBLAS_CORETYPE=\(userSetting) must stand")
        return
    }
    let features = BLASCore.Features.current
    guard features.avx2 else { return }
    #expect(
        BLASCore.replacement(for: status.core, features: features, userSetting: nil) == nil,
        "BLAS core \(status.core) is a generic fallback on a CPU with AVX2\(features.avx512 ? " and AVX-512" : "")")
    #expect(status.choice != .fallbackKept)
}
