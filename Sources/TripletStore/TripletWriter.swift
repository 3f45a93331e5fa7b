import CHDF5
import HDF5
import Foundation
import Formats
import TensorCore

/// Appends triplets to an HDF5 file and commits them chunk by chunk (see `TripletFormat` for the
/// commit protocol). Rows are buffered until they fill whole HDF5 chunks, so a compressed chunk
/// is written once and never rewritten; `committedCount` rows are durable, the rest (fewer than
/// one chunk) reach the file at `flush()`/`close()`. Memory does not grow with the number of rows.
/// Not for use by two processes at once: HDF5 locks the file while a writer has it open.
public final class TripletWriter {
    public enum Mode: Sendable {
        /// New file; error if the path exists.
        case create
        /// New file, replacing any file at the path.
        case overwrite
        /// Existing file; error if missing, or if its item shape or writer attributes differ.
        case append
        /// `append` when the path exists, else `create`: what a resumable job uses.
        case createOrAppend
    }

    public let path: String
    /// [C, H, W].
    public let itemShape: [Int]
    /// Every string root attribute of the file (fixed + writer's).
    public let attributes: [String: String]
    /// Rows in the file and committed: what a reader, or a writer reopening after a crash, sees.
    public private(set) var committedCount: Int
    /// Rows accepted so far: committed plus buffered. The next appended row has this index.
    public var count: Int { committedCount + pendingTexts.count }
    /// HDF5 chunk length along N of /noise and /image (the commit granularity).
    public let rowsPerChunk: Int

    /// The fixed size of a `/text` entry in bytes: the longest caption this file can take.
    public let textBytes: Int

    private var file: hid_t = -1
    /// Held from before the file is touched until `close()`.
    private let lock: WriterLock?
    private var data: TripletDatasets
    private let itemSize: Int
    private var pendingTexts: [String] = []
    private var pendingNoise: [Float] = [], pendingImages: [Float] = []

    /// Opens `path` for appending triplets of shape `itemShape` ([C, H, W]).
    /// - Parameters:
    ///   - attributes: the writer's root attributes (teacher checkpoint and hash, solver, steps,
    ///     guidance, seed, ...). They may not change the fixed ones. On reopening, they must
    ///     equal the file's (same keys, same values), so that a resumed job cannot mix teachers.
    ///   - rowsPerChunk: HDF5 chunk length along N for a new file (default: as many rows as fit
    ///     256 KB, 1...64); a reopened file keeps its own.
    ///   - compression: deflate level 0...9 for a new file (0: none), after byte shuffling.
    ///   - textBytes: the fixed size in bytes of a `/text` entry of a new file (UTF-8, NUL-padded):
    ///     the longest caption it can hold. Default `TripletFormat.defaultTextBytes`; a reopened
    ///     file keeps its own, and a longer caption is an error naming the row.
    public init(path: String, itemShape: [Int], attributes: [String: String], mode: Mode = .create,
                rowsPerChunk: Int? = nil, compression: Int = 1, textBytes: Int? = nil) throws {
        guard itemShape.count == 3, itemShape.allSatisfy({ $0 > 0 }) else {
            throw DataError("\(path): triplet item shape \(itemShape) is not [C, H, W] with positive sizes")
        }
        for (k, v) in attributes {
            if let fixed = TripletFormat.fixedAttributes[k], fixed != v {
                throw DataError("\(path): attribute '\(k)' is fixed to '\(fixed)' by the triplet format, got '\(v)'")
            }
            if k == TripletFormat.Key.committedRows {
                throw DataError("\(path): attribute '\(k)' is reserved for the commit marker")
            }
        }
        guard (0...9).contains(compression) else {
            throw DataError("\(path): compression level \(compression) is outside 0...9")
        }
        if let r = rowsPerChunk, r <= 0 { throw DataError("\(path): rowsPerChunk must be positive, got \(r)") }
        if let t = textBytes, !(1...TripletFormat.maxTextBytes).contains(t) {
            throw DataError("\(path): a /text entry must be 1...\(TripletFormat.maxTextBytes) bytes, got \(t)")
        }
        self.path = path
        self.itemShape = itemShape
        self.itemSize = itemShape.reduce(1, *)
        lock = try WriterLock(for: path)
        let exists = FileManager.default.fileExists(atPath: path)
        let user = attributes.filter { TripletFormat.fixedAttributes[$0.key] == nil }

        let mustCreate: Bool
        switch mode {
        case .create:
            if exists {
                throw DataError("\(path): already exists (open it with mode .append or .createOrAppend to resume, "
                    + "or .overwrite to replace it)")
            }
            mustCreate = true
        case .overwrite: mustCreate = true
        case .append:
            if !exists { throw DataError("\(path): no such file to append to") }
            mustCreate = false
        case .createOrAppend: mustCreate = !exists
        }
        if mustCreate {
            let rows = rowsPerChunk ?? max(1, min(64, (256 * 1024) / (itemShape.reduce(1, *) * 4)))
            try H5.run { try TripletWriter.createEmpty(path: path, itemShape: itemShape, attributes: user,
                                                       rowsPerChunk: rows, compression: compression,
                                                       textBytes: textBytes ?? TripletFormat.defaultTextBytes) }
        }

        var all = TripletFormat.fixedAttributes
        all.merge(user) { _, new in new }
        self.attributes = all
        if !mustCreate { try Superblock.coverPhysicalSize(path) }
        let h = try TripletWriter.openForAppend(path: path, itemShape: itemShape, user: user, salvage: true)
        file = h.file; data = h.data
        self.committedCount = h.committed
        self.rowsPerChunk = h.chunkRows
        self.textBytes = h.data.textBytes
    }

    private struct Handles { var file: hid_t; var data: TripletDatasets; var committed, chunkRows: Int }

    /// Opens an existing triplet file for appending: validates it against this writer, checks
    /// every committed row as a reader would (a damaged file is refused here, not completed and
    /// found out at training time), then cuts the datasets back to the committed rows. When a
    /// killed writer left the uncommitted part too damaged to cut (HDF5 fails on it, or its
    /// extent is implausible), the committed rows are copied into a fresh file that replaces the
    /// old one (`salvage`).
    private static func openForAppend(path: String, itemShape: [Int], user: [String: String], salvage: Bool) throws -> Handles {
        var f: hid_t = -1
        var data: TripletDatasets? = nil
        func closeAll() {
            data?.close()
            if f >= 0 { H5Fclose(f) }
        }
        var damage: Error? = nil
        let opened: Handles? = try H5.run {
            f = try H5.openFile(path, write: true)
            do {
                let (layout, d) = try TripletLayout.inspect(f, path)
                data = d
                guard layout.itemShape == itemShape else {
                    throw DataError("\(path): holds items of shape \(layout.itemShape), cannot append items of shape \(itemShape)")
                }
                let stored = layout.userAttributes
                if stored != user {
                    let keys = Set(stored.keys).union(user.keys).sorted().filter { stored[$0] != user[$0] }
                    let diffs = keys.map { "'\($0)': file has \(stored[$0].map { "'\($0)'" } ?? "nothing"), "
                        + "writer has \(user[$0].map { "'\($0)'" } ?? "nothing")" }
                    throw DataError("\(path): attributes differ from this writer's, refusing to append "
                        + "(\(diffs.joined(separator: "; ")))")
                }
                let names = [TripletFormat.textName, TripletFormat.noiseName, TripletFormat.imageName, TripletFormat.checksumName]
                for (h, name) in zip(d.all, names) {
                    guard H5.dims(h).max.first == -1 else { throw DataError("\(path): dataset '/\(name)' is not extendable") }
                }
                let chunkRows = max(1, min(H5.chunkRows(d.noise) ?? 1, 1 << 16))
                let c = layout.committed
                try d.verifyAll(0..<c)
                // Drop whatever an interrupted append left past the commit marker.
                if layout.extents.contains(where: { $0 != c }) {
                    do {
                        // Cutting visits every chunk of the tail: a damaged extent of 2^40 rows
                        // would take forever. No append leaves 65,536 chunks uncommitted; copy
                        // the committed rows instead (salvage).
                        for (h, e) in zip(d.all, layout.extents) where (e - c) / max(1, H5.chunkRows(h) ?? 1) > 1 << 16 {
                            throw DataError("\(path): a dataset extends \(e - c) rows past the committed \(c) (\(H5.dims(h).dims))")
                        }
                        for (h, name) in zip(d.all, names) { try H5.setRows(h, c, path, "/" + name) }
                        try H5.check(H5Fflush(f, H5F_SCOPE_GLOBAL), path, "cannot flush")
                    } catch {
                        damage = error
                        closeAll()
                        return nil
                    }
                }
                return Handles(file: f, data: d, committed: c, chunkRows: chunkRows)
            } catch {
                closeAll()
                throw error
            }
        }
        if let opened { return opened }
        guard salvage else { throw damage ?? DataError("\(path): cannot resume") }
        try TripletWriter.salvage(path: path)
        return try openForAppend(path: path, itemShape: itemShape, user: user, salvage: false)
    }

    /// Appends `texts.count` triplets; `noise` and `images` hold that many items of `itemShape`,
    /// contiguous. Every row up to the last whole chunk is committed when this returns (and
    /// survives a killed process); the remainder waits for more rows or `flush()`.
    public func append(texts: [String], noise x0: UnsafeBufferPointer<Float>, images x1: UnsafeBufferPointer<Float>) throws {
        let n = texts.count
        guard x0.count == n * itemSize, x1.count == n * itemSize else {
            throw DataError("\(path): append of \(n) texts needs \(n) x \(itemShape) = \(n * itemSize) floats of "
                + "noise and of images, got \(x0.count) and \(x1.count)")
        }
        guard file >= 0 else { throw DataError("\(path): writer is closed") }
        if n == 0 { return }
        for (k, t) in texts.enumerated() where t.utf8.count > textBytes || t.utf8.contains(0) {
            let why = t.utf8.contains(0) ? "holds a NUL byte"
                : "is \(t.utf8.count) bytes, longer than the \(textBytes) bytes a '/text' entry of this file holds"
            throw DataError("\(path): the text of row \(count + k) \(why)")
        }
        if let p = x0.baseAddress { try TripletCheck.checkValues(p, rows: n, itemSize: itemSize, first: count, .noise, path, writing: true) }
        if let p = x1.baseAddress { try TripletCheck.checkValues(p, rows: n, itemSize: itemSize, first: count, .image, path, writing: true) }
        pendingTexts += texts
        pendingNoise.append(contentsOf: x0)
        pendingImages.append(contentsOf: x1)
        // Write up to the last chunk boundary, so that no compressed chunk is ever rewritten.
        let end = (count / rowsPerChunk) * rowsPerChunk
        if end > committedCount { try commit(rows: end - committedCount) }
    }

    public func append(texts: [String], noise: [Float], images: [Float]) throws {
        try noise.withUnsafeBufferPointer { x0 in
            try images.withUnsafeBufferPointer { x1 in try append(texts: texts, noise: x0, images: x1) }
        }
    }

    public func append(texts: [String], noise: Storage, images: Storage) throws {
        try append(texts: texts, noise: UnsafeBufferPointer(noise.buffer), images: UnsafeBufferPointer(images.buffer))
    }

    /// Writes and commits the buffered rows (a partial chunk, rewritten when more rows follow).
    public func flush() throws {
        guard file >= 0 else { throw DataError("\(path): writer is closed") }
        if !pendingTexts.isEmpty { try commit(rows: pendingTexts.count) }
    }

    /// The first `rows` buffered rows go to the file, then the commit marker (see `TripletFormat`).
    private func commit(rows: Int) throws {
        try H5.run {
            let start = committedCount, end = committedCount + rows
            // Keep the file longer than any end-of-file address this commit's flush can record:
            // a flush killed between writing the superblock and growing the file would otherwise
            // leave a file HDF5 refuses to open ("truncated file"). HDF5 trims the slack itself
            // when the flush completes.
            reserveFileSpace(2 * (2 * rows * itemSize * 4 + rows * (textBytes + 12)) + (1 << 20))
            // Each row's text as its stored bytes (NUL-padded), and the CRC32s of the three rows.
            var textData = [UInt8](repeating: 0, count: rows * textBytes)
            for (k, t) in pendingTexts[0..<rows].enumerated() {
                textData.replaceSubrange((k * textBytes)..<(k * textBytes + t.utf8.count), with: t.utf8)
            }
            var sums = [UInt32](repeating: 0, count: rows * 3)
            let rowBytes = itemSize * 4
            textData.withUnsafeBytes { tb in pendingNoise.withUnsafeBytes { nb in pendingImages.withUnsafeBytes { ib in
                for k in 0..<rows {
                    sums[3 * k] = TripletCheck.crc(row: start + k, .init(rebasing: tb[(k * textBytes)..<((k + 1) * textBytes)]))
                    sums[3 * k + 1] = TripletCheck.crc(row: start + k, .init(rebasing: nb[(k * rowBytes)..<((k + 1) * rowBytes)]))
                    sums[3 * k + 2] = TripletCheck.crc(row: start + k, .init(rebasing: ib[(k * rowBytes)..<((k + 1) * rowBytes)]))
                }
            } } }
            for (h, name) in [(data.noise, "/noise"), (data.image, "/image"), (data.text, "/text"), (data.checksum, "/checksum")] {
                try H5.setRows(h, end, path, name)
            }
            let str = H5.fixedStringType(bytes: textBytes)
            defer { H5Tclose(str) }
            let float = rf_H5T_NATIVE_FLOAT()
            try pendingNoise.withUnsafeBytes {
                try H5.writeRows(data.noise, start: start, rows: rows, itemShape: itemShape, memType: float, $0.baseAddress!, path, "/noise")
            }
            try pendingImages.withUnsafeBytes {
                try H5.writeRows(data.image, start: start, rows: rows, itemShape: itemShape, memType: float, $0.baseAddress!, path, "/image")
            }
            try textData.withUnsafeBytes {
                try H5.writeRows(data.text, start: start, rows: rows, itemShape: [], memType: str, $0.baseAddress!, path, "/text")
            }
            try sums.withUnsafeBytes {
                try H5.writeRows(data.checksum, start: start, rows: rows, itemShape: [3], memType: rf_H5T_NATIVE_UINT32(),
                                 $0.baseAddress!, path, "/checksum")
            }
            try H5.check(H5Fflush(file, H5F_SCOPE_GLOBAL), path, "cannot flush rows \(start)..<\(end)")
            try H5.writeInts(file, TripletFormat.Key.committedRows, [Int64(end), ~Int64(end)], path)
            try H5.check(H5Fflush(file, H5F_SCOPE_GLOBAL), path, "cannot flush the commit of rows \(start)..<\(end)")
            committedCount = end
            pendingTexts.removeFirst(rows)
            pendingNoise.removeFirst(rows * itemSize)
            pendingImages.removeFirst(rows * itemSize)
        }
    }

    private func reserveFileSpace(_ bytes: Int) {
        var size: hsize_t = 0
        guard H5Fget_filesize(file, &size) >= 0 else { H5Eclear2(rf_H5E_DEFAULT()); return }
        var st = stat()
        let target = off_t(size) + off_t(bytes)
        if stat(path, &st) == 0 && st.st_size < target { _ = truncate(path, target) }
    }

    /// Writes any buffered rows, commits them and closes the file.
    public func close() throws {
        guard file >= 0 else { lock?.release(); return }
        defer { lock?.release() }
        var failure: Error? = nil
        do { try flush() } catch { failure = error }
        try H5.run {
            let f = file
            // HDF5's own idea of the file size (its end of allocation): the slack that
            // `reserveFileSpace` added past it is cut once the file is closed.
            var size: hsize_t = 0
            let sized = H5Fget_filesize(f, &size) >= 0
            data.close()
            data.text = -1; data.noise = -1; data.image = -1; data.checksum = -1; file = -1
            let rc = H5Fclose(f)
            if let failure { throw failure }
            try H5.check(rc, path, "cannot close")
            var st = stat()
            if sized, size > 0, stat(path, &st) == 0, st.st_size > off_t(size) { _ = truncate(path, off_t(size)) }
        }
    }

    /// A writer dropped without `close()` still writes its buffered rows.
    deinit { try? close() }
}
