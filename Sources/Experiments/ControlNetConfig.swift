import ConfigKit
import Control

// The `controlnet:` section: a training stage (its keys at the same level, as in `distill`) plus
// the control operator and the scale of the ControlNet's residuals.

extension ControlOperator.Kind: ConfigValue, ConfigEnum {}

public struct ControlNetSection: ConfigSection, TrainedSection, Equatable {
    public var train = TrainSection(steps: 1500, lr: 5e-4)
    public var `operator` = ControlOperator.Kind.sobel
    public var threshold: Float = 2.5
    public var factor = 4
    public var scale: Float = 1
    public var base: String? = nil

    public init() {}

    /// The operator that makes the control images.
    public var controlOperator: ControlOperator { ControlOperator(kind: `operator`, threshold: threshold, factor: factor) }

    public mutating func visit(_ v: inout ConfigVisitor) throws {
        try train.visit(&v)
        try v.field("operator", &`operator`, doc: "control images from the data: sobel (edge map of the intensity) or silhouette (intensity above threshold, in factor x factor blocks)")
        try v.field("threshold", &threshold, doc: "sobel: edge where the gradient magnitude of the [0, 1] intensity exceeds it; silhouette: intensity threshold")
        try v.field("factor", &factor, doc: "silhouette: block size (must divide the image size)")
        try v.field("scale", &scale, doc: "weight of the ControlNet's residuals in training (and the default of --controlnet FILE without :scale)")
        try v.field("base", &base, doc: "checkpoint the ControlNet is trained on (null = <run>/teacher.safetensors)")
        v.check(threshold.isFinite, "threshold", "must be a finite number")
        v.check(factor >= 1 && factor <= 64, "factor", "must be in 1...64")
        v.check(scale.isFinite && scale > 0, "scale", "must be positive")
    }
}
