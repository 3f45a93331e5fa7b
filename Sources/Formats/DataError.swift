import Foundation

/// Errors from dataset readers, the triplet store and PNG IO. The message always names the file
/// (when there is one) and says what is wrong or how to fix it.
public struct DataError: Error, CustomStringConvertible, LocalizedError {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
    public var errorDescription: String? { message }
}
