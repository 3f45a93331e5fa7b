import ConfigKit
import Adapters
import Training

extension LoRATarget: ConfigValue, ConfigEnum {}
extension ItemTransform: ConfigValue, ConfigEnum {}
extension LoRAObjective: ConfigValue, ConfigEnum {}

/// `reflow-train --stage lora`: low-rank adapters on a frozen base (teacher, 2-RF or student).
/// The training fields sit at the same level in YAML (`lora.lr`) and in Swift (`config.lora.lr`).
public struct LoRASection: ConfigSection, TrainedSection, Equatable {
    public var train: TrainSection = {
        var t = TrainSection(steps: 1000, lr: 1e-3, captionDropout: 0.1)
        t.emaDecay = 0; t.warmup = 50
        return t
    }()
    public var rank = 4
    public var alpha: Float = 4
    public var targets: [LoRATarget] = [.linear, .attention, .conv]
    public var objective = LoRAObjective.auto
    public var classes: [Int] = []
    public var transform = ItemTransform.none
    public var transformClasses: [Int] = []
    public var pairs: [String] = []

    public init() {}

    public mutating func visit(_ v: inout ConfigVisitor) throws {
        try train.visit(&v)
        try v.field("rank", &rank, doc: "LoRA rank r (A is [r, in], B is [out, r])")
        try v.field("alpha", &alpha, doc: "LoRA alpha: the adapters add (alpha / rank) * B A x")
        try v.field("targets", &targets, doc: "layers adapted: linear, attention (q/k/v/out projections), conv")
        try v.field("objective", &objective, doc: "base objective: auto (distill for a student, flow otherwise), flow, distill")
        try v.field("classes", &classes, doc: "train on dataset items of these classes only (empty = all)")
        try v.field("transform", &transform, doc: "the change to learn, applied to the items (flow) or pair images (distill) of transform_classes")
        try v.field("transform_classes", &transformClasses, doc: "classes whose items (or pairs, by caption) are transformed (empty = all)")
        try v.field("pairs", &pairs, doc: "triplet files to learn from (distill; flow: a 2-RF's pairs instead of the dataset); --input overrides")
        v.check(rank >= 1, "rank", "must be at least 1")
        v.check(alpha > 0 && alpha.isFinite, "alpha", "must be positive")
        v.check(!targets.isEmpty, "targets", "must name at least one of linear, attention, conv")
        v.check(classes.allSatisfy { $0 >= 0 }, "classes", "class indices must not be negative")
        v.check(transformClasses.allSatisfy { $0 >= 0 }, "transform_classes", "class indices must not be negative")
    }
}
