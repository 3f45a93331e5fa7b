import CHDF5
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

    private var file: hid_t = -1
    private var text: hid_t = -1, noise: hid_t = -1, image: hid_t = -1
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
    public init(path: String, itemShape: [Int], attributes: [String: String], mode: Mode = .create,
                rowsPerChunk: Int? = nil, compression: Int = 1) throws {
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
        self.path = path
        self.itemShape = itemShape
        self.itemSize = itemShape.reduce(1, *)
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
                                                       rowsPerChunk: rows, compression: compression) }
        }

        var all = TripletFormat.fixedAttributes
        all.merge(user) { _, new in new }
        self.attributes = all
        if !mustCreate { try Superblock.coverPhysicalSize(path) }
        let h = try TripletWriter.openForAppend(path: path, itemShape: itemShape, user: user, salvage: true)
        file = h.file; text = h.text; noise = h.noise; image = h.image
        self.committedCount = h.committed
        self.rowsPerChunk = h.chunkRows
    }

    private struct Handles { var file, text, noise, image: hid_t; var committed, chunkRows: Int }

    /// Opens an existing triplet file for appending: validates it against this writer, then cuts
    /// the datasets back to the committed rows. When a killed writer left the uncommitted part
    /// too damaged to cut (HDF5 fails on it), the committed rows are copied into a fresh file
    /// that replaces the old one (`salvage`).
    private static func openForAppend(path: String, itemShape: [Int], user: [String: String], salvage: Bool) throws -> Handles {
        var f: hid_t = -1, t: hid_t = -1, n: hid_t = -1, i: hid_t = -1
        func closeAll() {
            for h in [t, n, i] where h >= 0 { H5Dclose(h) }
            if f >= 0 { H5Fclose(f) }
        }
        var damage: Error? = nil
        let opened: Handles? = try H5.run {
            f = try H5.openFile(path, write: true)
            do {
                let layout: TripletLayout
                (layout, t, n, i) = try TripletLayout.inspect(f, path)
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
                for (d, name) in [(n, TripletFormat.noiseName), (i, TripletFormat.imageName), (t, TripletFormat.textName)] {
                    guard H5.dims(d).max.first == -1 else { throw DataError("\(path): dataset '/\(name)' is not extendable") }
                }
                let chunkRows = H5.chunkRows(n) ?? 1
                // Drop whatever an interrupted append left past the commit marker.
                let e = layout.extents, c = layout.committed
                if e.text != c || e.noise != c || e.image != c {
                    do {
                        try H5.setRows(t, c, path, "/text")
                        try H5.setRows(n, c, path, "/noise")
                        try H5.setRows(i, c, path, "/image")
                        try H5.check(H5Fflush(f, H5F_SCOPE_GLOBAL), path, "cannot flush")
                    } catch {
                        damage = error
                        closeAll()
                        return nil
                    }
                }
                return Handles(file: f, text: t, noise: n, image: i, committed: c, chunkRows: chunkRows)
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

    /// Rewrites `path` as a fresh triplet file holding only its committed rows.
    private static func salvage(path: String) throws {
        let reader: TripletReader
        do { reader = try TripletReader(path: path) } catch {
            throw DataError("\(path): cannot resume: the file is damaged beyond its committed rows and "
                + "they cannot be read either (\(error))")
        }
        defer { reader.close() }
        let tmp = path + ".salvage-\(getpid())"
        let chunkRows = try H5.run { () -> Int in
            let f = try H5.openFile(path, write: false)
            defer { H5Fclose(f) }
            let d = H5Dopen2(f, TripletFormat.noiseName, rf_H5P_DEFAULT())
            defer { if d >= 0 { H5Dclose(d) } }
            return d >= 0 ? (H5.chunkRows(d) ?? 64) : 64
        }
        let w = try TripletWriter(path: tmp, itemShape: reader.itemShape, attributes: reader.writerAttributes,
                                  mode: .overwrite, rowsPerChunk: chunkRows)
        do {
            let block = max(1, (4 << 20) / (reader.itemShape.reduce(1, *) * 4))
            var a = 0
            while a < reader.count {
                let b = min(reader.count, a + block)
                let batch = try reader.read(a..<b)
                try w.append(texts: batch.texts, noise: batch.noise, images: batch.images)
                a = b
            }
            try w.close()
        } catch {
            try? w.close()
            unlink(tmp)
            throw error
        }
        reader.close()
        guard rename(tmp, path) == 0 else {
            let why = String(cString: strerror(errno))
            unlink(tmp)
            throw DataError("\(path): cannot replace the damaged file with its salvaged copy: \(why)")
        }
    }

    /// Builds an empty triplet file under a temporary name, then renames it to `path`.
    private static func createEmpty(path: String, itemShape: [Int], attributes: [String: String],
                                    rowsPerChunk: Int, compression: Int) throws {
        let tmp = path + ".partial-\(getpid())"
        unlink(tmp)
        let file = H5Fcreate(tmp, rf_H5F_ACC_TRUNC(), rf_H5P_DEFAULT(), rf_H5P_DEFAULT())
        if file < 0 { throw DataError("\(path): cannot create HDF5 file \(tmp): \(H5.takeError())") }
        var closed = false
        defer { if !closed { H5Fclose(file); unlink(tmp) } }

        func dataset(_ name: String, type: hid_t, item: [Int], chunkRows: Int, deflate: Int) throws {
            var cur = ([0] + item).map { hsize_t($0) }
            var max = cur
            max[0] = rf_H5S_UNLIMITED()
            let space = H5Screate_simple(Int32(cur.count), &cur, &max)
            defer { H5Sclose(space) }
            let dcpl = H5Pcreate(rf_H5P_DATASET_CREATE())
            defer { H5Pclose(dcpl) }
            var chunk = ([chunkRows] + item).map { hsize_t($0) }
            try H5.check(H5Pset_chunk(dcpl, Int32(chunk.count), &chunk), path, "cannot set chunking of '/\(name)'")
            if deflate > 0 {
                try H5.check(H5Pset_shuffle(dcpl), path, "cannot set the shuffle filter")
                try H5.check(H5Pset_deflate(dcpl, UInt32(deflate)), path, "cannot set deflate compression")
            }
            let d = H5Dcreate2(file, name, type, space, rf_H5P_DEFAULT(), dcpl, rf_H5P_DEFAULT())
            if d < 0 { throw DataError("\(path): cannot create dataset '/\(name)': \(H5.takeError())") }
            H5Dclose(d)
        }
        let str = H5.variableStringType()
        defer { H5Tclose(str) }
        // /text is unfiltered: its fixed-size chunks are rewritten in place, committed entries unchanged.
        try dataset(TripletFormat.textName, type: str, item: [], chunkRows: 1024, deflate: 0)
        try dataset(TripletFormat.noiseName, type: rf_H5T_IEEE_F32LE(), item: itemShape, chunkRows: rowsPerChunk, deflate: compression)
        try dataset(TripletFormat.imageName, type: rf_H5T_IEEE_F32LE(), item: itemShape, chunkRows: rowsPerChunk, deflate: compression)
        for (k, v) in TripletFormat.fixedAttributes.merging(attributes, uniquingKeysWith: { a, _ in a }).sorted(by: { $0.key < $1.key }) {
            try H5.writeString(file, k, v, path)
        }
        try H5.writeInt(file, TripletFormat.Key.committedRows, 0, path)
        closed = true
        guard H5Fclose(file) >= 0 else {
            unlink(tmp)
            throw DataError("\(path): cannot finish creating \(tmp): \(H5.takeError())")
        }
        guard rename(tmp, path) == 0 else {
            let why = String(cString: strerror(errno))
            unlink(tmp)
            throw DataError("\(path): cannot move \(tmp) into place: \(why)")
        }
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
            let textBytes = pendingTexts[0..<rows].reduce(0) { $0 + $1.utf8.count + 32 }
            reserveFileSpace(2 * (2 * rows * itemSize * 4 + textBytes) + (1 << 20))
            try H5.setRows(noise, end, path, "/noise")
            try H5.setRows(image, end, path, "/image")
            try H5.setRows(text, end, path, "/text")
            try pendingNoise.withUnsafeBufferPointer {
                try H5.writeFloats(noise, start: start, rows: rows, itemShape: itemShape, $0.baseAddress!, path, "/noise")
            }
            try pendingImages.withUnsafeBufferPointer {
                try H5.writeFloats(image, start: start, rows: rows, itemShape: itemShape, $0.baseAddress!, path, "/image")
            }
            try H5.writeStrings(text, start: start, Array(pendingTexts[0..<rows]), path, "/text")
            try H5.check(H5Fflush(file, H5F_SCOPE_GLOBAL), path, "cannot flush rows \(start)..<\(end)")
            try H5.writeInt(file, TripletFormat.Key.committedRows, end, path)
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
        guard file >= 0 else { return }
        var failure: Error? = nil
        do { try flush() } catch { failure = error }
        try H5.run {
            let f = file
            // HDF5's own idea of the file size (its end of allocation): the slack that
            // `reserveFileSpace` added past it is cut once the file is closed.
            var size: hsize_t = 0
            let sized = H5Fget_filesize(f, &size) >= 0
            for d in [text, noise, image] where d >= 0 { H5Dclose(d) }
            text = -1; noise = -1; image = -1; file = -1
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
