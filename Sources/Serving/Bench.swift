import Foundation
import FlyingFox
import FlyingSocks

/// An HTTP/1.1 client for a demo server on 127.0.0.1 (FlyingFox's client: one connection per
/// request, closed after it). Used by `reflow serve --bench` and the tests.
public struct DemoClient: Sendable {
    public let port: UInt16
    public init(port: UInt16) { self.port = port }

    /// The port of a URL such as http://127.0.0.1:8080/.
    public init?(url: String) {
        guard let p = URLComponents(string: url)?.port, let port = UInt16(exactly: p) else { return nil }
        self.port = port
    }

    public func send(_ method: String, _ path: String, body: Data = Data(),
                     headers: [String: String] = [:]) async throws -> (status: Int, body: Data) {
        var h = HTTPHeaders()
        h[.connection] = "close"
        for (k, v) in headers { h[HTTPHeader(k)] = v }
        let request = HTTPRequest(method: HTTPMethod(method), version: .http11, path: path, query: [], headers: h,
                                  body: HTTPBodySequence(data: body))
        var client = HTTPClient()
        let response = try await client.sendHTTPRequest(request, to: try sockaddr_in.inet(ip4: "127.0.0.1", port: port))
        return (response.statusCode.code, try await response.bodyData)
    }

    /// POST /api/generate with a JSON object; the answer parsed as a JSON object.
    public func generate(_ fields: [String: Any]) async throws -> (status: Int, json: [String: Any]) {
        let body = try JSONSerialization.data(withJSONObject: fields)
        let (status, data) = try await send("POST", "/api/generate", body: body, headers: ["Content-Type": "application/json"])
        let json = try JSONSerialization.jsonObject(with: data) as? [String: Any]
        return (status, json ?? [:])
    }
}

/// Latency of one-image requests over HTTP, as a client sees it (request sent to answer read).
public struct LatencyReport {
    public var milliseconds: [Double]
    /// The server's own solve times ("ms" in each answer).
    public var solveMilliseconds: [Double]

    /// Nearest-rank percentile (p in 0...100) of the client-side times.
    public func percentile(_ p: Double) -> Double { Self.percentile(milliseconds, p) }

    public static func percentile(_ xs: [Double], _ p: Double) -> Double {
        let s = xs.sorted()
        guard !s.isEmpty else { return .nan }
        let rank = Int((p / 100 * Double(s.count)).rounded(.up))
        return s[min(max(rank, 1), s.count) - 1]
    }

    public var summary: String {
        func f(_ x: Double) -> String { String(format: "%.1f", x) }
        return "\(milliseconds.count) requests: p50 \(f(percentile(50))) ms, p95 \(f(percentile(95))) ms, "
            + "min \(f(milliseconds.min() ?? .nan)) ms, max \(f(milliseconds.max() ?? .nan)) ms over HTTP; "
            + "solve alone p50 \(f(Self.percentile(solveMilliseconds, 50))) ms"
    }
}

/// Sends `warmup` and then `requests` one-image requests one after another (seeds 0, 1, ...)
/// with the model's default settings, and times each.
public func benchLatency(_ client: DemoClient, model: String, prompt: String, requests: Int,
                         warmup: Int = 5) async throws -> LatencyReport {
    var report = LatencyReport(milliseconds: [], solveMilliseconds: [])
    for i in 0..<(warmup + requests) {
        let start = DispatchTime.now().uptimeNanoseconds
        let (status, json) = try await client.generate(["prompt": prompt, "model": model, "seed": i, "count": 1])
        let ms = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6
        guard status == 200, let solve = json["ms"] as? Double else {
            throw ServeError(.internalServerError, "bench request \(i) got \(status): \(json["error"] ?? "no error text")")
        }
        if i >= warmup { report.milliseconds.append(ms); report.solveMilliseconds.append(solve) }
    }
    return report
}
