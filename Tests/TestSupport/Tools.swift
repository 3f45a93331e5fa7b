import Foundation

private final class BundleAnchor {}

/// A tool built next to the test bundle (swift build --build-tests builds them all).
public func builtTool(_ name: String) -> String? {
    let main = URL(fileURLWithPath: Bundle.main.bundlePath)
    let here = Bundle(for: BundleAnchor.self).bundleURL
    return [main, main.deletingLastPathComponent(), here, here.deletingLastPathComponent()]
        .map { $0.path + "/" + name }
        .first { FileManager.default.isExecutableFile(atPath: $0) }
}
