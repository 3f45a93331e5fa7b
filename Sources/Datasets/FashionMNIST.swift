import Foundation
import Formats
import TensorCore

extension Dataset {
    /// Where Debian's `dataset-fashion-mnist` package puts the IDX files.
    public static let defaultFashionDirectory = "/usr/share/datasets/fashion-mnist"

    /// Fashion-MNIST's class names, in label order.
    public static let fashionClassNames = [
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
        "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
    ]
    /// The noun each caption template uses for a class.
    static let fashionNouns = [
        "t-shirt", "pair of trousers", "pullover", "dress", "coat",
        "sandal", "shirt", "sneaker", "bag", "ankle boot",
    ]

    static func fashionCaptions(_ label: Int) -> [String] {
        let noun = fashionNouns[label], a = indefiniteArticle(noun)
        return ["a photo of \(a) \(noun)", "\(a) \(noun)", "a grayscale picture of \(a) \(noun)",
                fashionClassNames[label].lowercased(), "a small image of \(a) \(noun)"]
    }

    /// Fashion-MNIST (Xiao et al., 2017): 60,000 train and 10,000 test images, [N, 1, 28, 28],
    /// bytes 0..255 scaled to v / 127.5 - 1. Captions: one of five templates over the class
    /// names, chosen by a fixed hash of the item's index in its IDX file.
    public static func fashionMNIST(split: Split, directory: String = defaultFashionDirectory) throws -> Dataset {
        if split == .all {
            return try concatenate(fashionMNIST(split: .train, directory: directory),
                                   fashionMNIST(split: .test, directory: directory))
        }
        let prefix = split == .train ? "train" : "t10k"
        let expected = split == .train ? 60_000 : 10_000
        let imagePath = "\(directory)/\(prefix)-images-idx3-ubyte.gz"
        let labelPath = "\(directory)/\(prefix)-labels-idx1-ubyte.gz"
        for p in [imagePath, labelPath] where !FileManager.default.fileExists(atPath: p) {
            throw DataError("fashion-mnist: \(p) not found. Install the data with "
                + "`sudo apt-get install dataset-fashion-mnist` (Debian/Ubuntu), or pass the folder "
                + "holding {train,t10k}-{images-idx3,labels-idx1}-ubyte.gz")
        }
        let imageFile = try IDXFile(path: imagePath, magic: 0x0000_0803, dims: [expected, 28, 28])
        let labelFile = try IDXFile(path: labelPath, magic: 0x0000_0801, dims: [expected])

        let n = expected, size = 28 * 28
        let images = Storage(uninitializedCount: n * size)
        imageFile.bytes.withUnsafeBufferPointer { src in
            let s = src.baseAddress! + imageFile.dataOffset, d = images.ptr
            Parallel.chunks(n * size) { r in
                for j in r { d[j] = Float(s[j]) * (1 / 127.5) - 1 }
            }
        }
        var labels = [Int](repeating: 0, count: n)
        for i in 0..<n {
            let l = Int(labelFile.bytes[labelFile.dataOffset + i])
            guard l < 10 else { throw DataError("\(labelPath): label \(l) at item \(i) is outside 0...9") }
            labels[i] = l
        }
        let salt: UInt64 = split == .train ? 0xFA51 : 0xFA52
        let table = (0..<10).map { fashionCaptions($0) }
        let captions = (0..<n).map { table[labels[$0]][StableHash.pick($0, salt: salt, among: 5)] }
        return try Dataset(name: DatasetName.fashionMNIST.rawValue, split: split, images: images, shape: [n, 1, 28, 28],
                           labels: labels, captions: captions, classNames: fashionClassNames,
                           classCaptions: table, sourceIDs: Array(0..<n))
    }
}

/// An IDX file (LeCun's MNIST format): a big-endian header (magic 0x0000_08TT with TT the element
/// type, the low byte the number of dimensions), the dimensions as big-endian UInt32, then data.
/// We only need unsigned bytes (type 0x08).
struct IDXFile {
    let bytes: [UInt8]
    let dataOffset: Int

    init(path: String, magic: UInt32, dims: [Int]) throws {
        let bytes = try FileBytes.read(path, expectedSize: 16 + dims.reduce(1, *))
        func be32(_ at: Int) -> UInt32 {
            UInt32(bytes[at]) << 24 | UInt32(bytes[at + 1]) << 16 | UInt32(bytes[at + 2]) << 8 | UInt32(bytes[at + 3])
        }
        let header = 4 + 4 * dims.count
        guard bytes.count >= header else {
            throw DataError("\(path): \(bytes.count) bytes is too short for an IDX header (\(header) bytes)")
        }
        let m = be32(0)
        guard m == magic else {
            throw DataError("\(path): IDX magic number 0x\(String(m, radix: 16, uppercase: true)), expected "
                + "0x\(String(magic, radix: 16, uppercase: true)) (unsigned bytes, \(dims.count) dimensions)")
        }
        let got = (0..<dims.count).map { Int(be32(4 + 4 * $0)) }
        guard got == dims else {
            throw DataError("\(path): IDX dimensions \(got), expected \(dims)")
        }
        let want = header + dims.reduce(1, *)
        guard bytes.count == want else {
            throw DataError("\(path): \(bytes.count) bytes after decompression, expected \(want) "
                + "for dimensions \(dims) (truncated or corrupt file)")
        }
        self.bytes = bytes
        dataOffset = header
    }
}
