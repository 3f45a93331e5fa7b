import Foundation
import XCTest
import Autograd
import TensorCore
import Flow

/// Fixtures/diffusion.json, written by scripts/make_diffusion_fixtures.py with diffusers'
/// DDIMScheduler and DPMSolverMultistepScheduler (see the script for what each part holds).
struct DiffusionFixture {
    struct Branch { let mu: [Float]; let std: [Float] }

    let json: [String: Any]
    let schedules: [String: (betaStart: Double, betaEnd: Double, alphasCumprod: [Double])]
    let shape: [Int]
    let xT: Tensor
    let cond: Branch
    let uncond: Branch
    let guidance: Float

    static func load() throws -> DiffusionFixture {
        guard let url = Bundle.module.url(forResource: "diffusion", withExtension: "json", subdirectory: "Fixtures") else {
            throw FlowError(op: "fixture", "Fixtures/diffusion.json is not in the FlowTests bundle (run scripts/make_diffusion_fixtures.py)")
        }
        guard let json = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any] else {
            throw FlowError(op: "fixture", "diffusion.json is not a JSON object")
        }
        return try DiffusionFixture(json: json)
    }

    init(json: [String: Any]) throws {
        self.json = json
        var schedules: [String: (Double, Double, [Double])] = [:]
        for (name, value) in try Self.object(json["schedules"], "schedules") {
            let s = try Self.object(value, "schedules.\(name)")
            schedules[name] = (try Self.number(s["beta_start"], "beta_start"), try Self.number(s["beta_end"], "beta_end"),
                               try Self.numbers(s["alphas_cumprod"], "alphas_cumprod"))
        }
        self.schedules = schedules.mapValues { (betaStart: $0.0, betaEnd: $0.1, alphasCumprod: $0.2) }
        let model = try Self.object(json["model"], "model")
        shape = try Self.numbers(model["shape"], "model.shape").map { Int($0) }
        xT = Tensor(try Self.numbers(model["x_T"], "model.x_T").map(Float.init), shape: shape)
        func branch(_ key: String) throws -> Branch {
            let b = try Self.object(model[key], "model.\(key)")
            return Branch(mu: try Self.numbers(b["mu"], "mu").map(Float.init), std: try Self.numbers(b["std"], "std").map(Float.init))
        }
        cond = try branch("cond"); uncond = try branch("uncond")
        guidance = Float(try Self.number(model["guidance"], "model.guidance"))
    }

    /// The cases of a list entry ("timesteps", "trajectories").
    func cases(_ key: String) throws -> [[String: Any]] {
        guard let list = json[key] as? [[String: Any]], !list.isEmpty else {
            throw FlowError(op: "fixture", "'\(key)' is missing or empty")
        }
        return list
    }

    /// The fixture's analytic model for one branch: the exact denoiser of per-element Gaussian
    /// data N(mu, std^2), with alpha and sigma taken from diffusers' float32 alphas_cumprod (the
    /// fixture's, not ours) so that both sides see the same model outputs. The arithmetic
    /// follows the script's operation order in Float.
    static func gaussianModel(_ b: Branch, prediction: DiffusionPrediction, alphasCumprod acp: [Double], seen: Box<[Int]>? = nil) -> DiffusionModel {
        let per = b.mu.count
        return { x, t in
            let n = x.shape[0], d = x.count / n
            let xs = x.scalars, steps = t.scalars.map { Int($0) }
            seen?.value.append(steps[0])
            var out = [Float](repeating: 0, count: x.count)
            for i in 0..<n {
                let a = Float(acp[steps[i]]), alpha = a.squareRoot(), sigma = (1 - a).squareRoot()
                for j in 0..<d {
                    let mu = b.mu[j % per], c = b.std[j % per]
                    let den = alpha * alpha * c * c + sigma * sigma
                    let centred = xs[i * d + j] - alpha * mu
                    switch prediction {
                    case .epsilon: out[i * d + j] = sigma * centred / den
                    case .v: out[i * d + j] = sigma * (alpha * (1 - c * c) * centred / den - mu)
                    }
                }
            }
            return Tensor(out, shape: x.shape)
        }
    }

    static func object(_ v: Any?, _ what: String) throws -> [String: Any] {
        guard let o = v as? [String: Any] else { throw FlowError(op: "fixture", "'\(what)' is not an object") }
        return o
    }
    static func number(_ v: Any?, _ what: String) throws -> Double {
        guard let n = v as? NSNumber else { throw FlowError(op: "fixture", "'\(what)' is not a number") }
        return n.doubleValue
    }
    static func numbers(_ v: Any?, _ what: String) throws -> [Double] {
        guard let a = v as? [NSNumber] else { throw FlowError(op: "fixture", "'\(what)' is not a list of numbers") }
        return a.map(\.doubleValue)
    }
}

/// A reference cell, so that a model closure can report what it was called with.
final class Box<T> {
    var value: T
    init(_ value: T) { self.value = value }
}

/// The largest |a_i - b_i| / (|b_i| + mean_j |b_j|): TorchFixtures' comparison rule, as a number
/// so that tests can print the margin they have.
func fixtureError(_ a: [Float], _ b: [Double]) -> Double {
    precondition(a.count == b.count, "fixtureError: \(a.count) vs \(b.count) values")
    let floor = b.map { Swift.abs($0) }.reduce(0, +) / Double(max(b.count, 1))
    return zip(a, b).map { Swift.abs(Double($0) - $1) / (Swift.abs($1) + floor) }.max() ?? 0
}
