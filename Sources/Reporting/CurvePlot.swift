import Foundation

/// One named series of a line plot; a one-point series is drawn as a marker only.
public struct PlotSeries: Equatable {
    public var name: String
    public var points: [(x: Double, y: Double)]
    /// Optional text beside each point (e.g. its guidance weight).
    public var labels: [String]
    public init(name: String, points: [(x: Double, y: Double)], labels: [String] = []) {
        self.name = name; self.points = points; self.labels = labels
    }
    public static func == (a: PlotSeries, b: PlotSeries) -> Bool {
        a.name == b.name && a.labels == b.labels && a.points.count == b.points.count
            && zip(a.points, b.points).allSatisfy { $0.x == $1.x && $0.y == $1.y }
    }
}

/// A line plot as SVG text (readable in a browser and on GitHub, no font or image library):
/// axes with ticks and labels, one colour per series, a legend. Points are joined in the
/// order given.
public func linePlotSVG(title: String, xLabel: String, yLabel: String, series: [PlotSeries],
                        width: Int = 720, height: Int = 420) -> String {
    let colours = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]
    let all = series.flatMap(\.points).filter { $0.x.isFinite && $0.y.isFinite }
    let (left, right, top, bottom) = (70.0, 230.0, 40.0, 50.0)
    let pw = Double(width) - left - right, ph = Double(height) - top - bottom
    func range(_ v: [Double]) -> (Double, Double) {
        guard let lo = v.min(), let hi = v.max() else { return (0, 1) }
        let pad = hi > lo ? (hi - lo) * 0.08 : max(abs(lo) * 0.1, 0.5)
        return (lo - pad, hi + pad)
    }
    let (x0, x1) = range(all.map(\.x)), (y0, y1) = range(all.map(\.y))
    func px(_ x: Double) -> Double { left + (x - x0) / (x1 - x0) * pw }
    func py(_ y: Double) -> Double { top + (1 - (y - y0) / (y1 - y0)) * ph }
    func f(_ v: Double) -> String { String(format: "%.1f", v) }
    func ticks(_ lo: Double, _ hi: Double) -> [Double] {
        let raw = (hi - lo) / 5, mag = pow(10, floor(log10(raw)))
        let step = [1.0, 2, 5, 10].map { $0 * mag }.first { $0 >= raw } ?? raw
        return stride(from: ceil(lo / step) * step, through: hi, by: step).map { $0 }
    }
    var svg = ["<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(width)\" height=\"\(height)\" font-family=\"sans-serif\" font-size=\"12\">",
               "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>",
               "<text x=\"\(f(left + pw / 2))\" y=\"22\" text-anchor=\"middle\" font-size=\"14\">\(htmlEscaped(title))</text>",
               "<rect x=\"\(f(left))\" y=\"\(f(top))\" width=\"\(f(pw))\" height=\"\(f(ph))\" fill=\"none\" stroke=\"black\"/>"]
    for t in ticks(x0, x1) {
        svg.append("<line x1=\"\(f(px(t)))\" y1=\"\(f(top + ph))\" x2=\"\(f(px(t)))\" y2=\"\(f(top + ph + 5))\" stroke=\"black\"/>")
        svg.append("<text x=\"\(f(px(t)))\" y=\"\(f(top + ph + 18))\" text-anchor=\"middle\">\(String(format: "%g", t))</text>")
    }
    for t in ticks(y0, y1) {
        svg.append("<line x1=\"\(f(left - 5))\" y1=\"\(f(py(t)))\" x2=\"\(f(left))\" y2=\"\(f(py(t)))\" stroke=\"black\"/>")
        svg.append("<text x=\"\(f(left - 8))\" y=\"\(f(py(t) + 4))\" text-anchor=\"end\">\(String(format: "%g", t))</text>")
    }
    svg.append("<text x=\"\(f(left + pw / 2))\" y=\"\(height - 10)\" text-anchor=\"middle\">\(htmlEscaped(xLabel))</text>")
    svg.append("<text x=\"16\" y=\"\(f(top + ph / 2))\" text-anchor=\"middle\" transform=\"rotate(-90 16 \(f(top + ph / 2)))\">\(htmlEscaped(yLabel))</text>")
    for (k, s) in series.enumerated() {
        let c = colours[k % colours.count]
        let keep = s.points.indices.filter { s.points[$0].x.isFinite && s.points[$0].y.isFinite }
        let pts = keep.map { s.points[$0] }
        if pts.count > 1 {
            svg.append("<polyline fill=\"none\" stroke=\"\(c)\" stroke-width=\"2\" points=\"" + pts.map { "\(f(px($0.x))),\(f(py($0.y)))" }.joined(separator: " ") + "\"/>")
        }
        for (i, p) in zip(keep, pts) {
            svg.append("<circle cx=\"\(f(px(p.x)))\" cy=\"\(f(py(p.y)))\" r=\"4\" fill=\"\(c)\"/>")
            if i < s.labels.count {
                svg.append("<text x=\"\(f(px(p.x) - 7))\" y=\"\(f(py(p.y) - 7))\" text-anchor=\"end\" font-size=\"10\" fill=\"\(c)\">\(htmlEscaped(s.labels[i]))</text>")
            }
        }
        let ly = top + 14 + Double(k) * 20
        svg.append("<circle cx=\"\(f(left + pw + 16))\" cy=\"\(f(ly - 4))\" r=\"4\" fill=\"\(c)\"/>")
        svg.append("<text x=\"\(f(left + pw + 26))\" y=\"\(f(ly))\">\(htmlEscaped(s.name))</text>")
    }
    svg.append("</svg>")
    return svg.joined(separator: "\n") + "\n"
}
