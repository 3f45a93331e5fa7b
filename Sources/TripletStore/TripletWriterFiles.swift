import CHDF5
import HDF5
import Foundation
import Formats

// The two whole-file operations of a writer: building a new empty file, and salvaging the
// committed rows of a file whose uncommitted tail HDF5 cannot cut (see `TripletFormat`).
extension TripletWriter {
    /// Appends every committed row of `reader`, in blocks of about 4 MB (salvage and merge).
    func append(allRowsOf reader: TripletReader) throws {
        let block = max(1, (4 << 20) / (reader.itemShape.reduce(1, *) * 4))
        var a = 0
        while a < reader.count {
            let b = min(reader.count, a + block)
            let batch = try reader.read(a..<b)
            try append(texts: batch.texts, noise: batch.noise, images: batch.images)
            a = b
        }
    }

    /// Rewrites `path` as a fresh triplet file holding only its committed rows.
    static func salvage(path: String) throws {
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
            return d >= 0 ? max(1, min(H5.chunkRows(d) ?? 64, 1 << 16)) : 64
        }
        let w = try TripletWriter(path: tmp, itemShape: reader.itemShape, attributes: reader.writerAttributes,
                                  mode: .overwrite, rowsPerChunk: chunkRows, textBytes: reader.textBytes)
        do {
            try w.append(allRowsOf: reader)
            try w.close()
        } catch {
            try? w.close()
            unlink(tmp); unlink(WriterLock.path(for: tmp))
            throw error
        }
        reader.close()
        unlink(WriterLock.path(for: tmp))  // the temporary's own lock, released by close()
        guard rename(tmp, path) == 0 else {
            let why = String(cString: strerror(errno))
            unlink(tmp)
            throw DataError("\(path): cannot replace the damaged file with its salvaged copy: \(why)")
        }
    }

    /// Builds an empty triplet file under a temporary name, then renames it to `path`.
    static func createEmpty(path: String, itemShape: [Int], attributes: [String: String],
                                    rowsPerChunk: Int, compression: Int, textBytes: Int) throws {
        let tmp = path + ".partial-\(getpid())"
        unlink(tmp)
        // Say "not writable" plainly rather than through HDF5's open error.
        let folder = (path as NSString).deletingLastPathComponent
        if access(folder.isEmpty ? "." : folder, W_OK) != 0 {
            throw DataError("\(path): cannot create the file: folder '\(folder.isEmpty ? "." : folder)' is not writable "
                + "(\(String(cString: strerror(errno))))")
        }
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
        let str = H5.fixedStringType(bytes: textBytes)
        defer { H5Tclose(str) }
        // /text and /checksum are unfiltered: their fixed-size chunks are rewritten in place,
        // committed entries unchanged.
        try dataset(TripletFormat.textName, type: str, item: [], chunkRows: 1024, deflate: 0)
        try dataset(TripletFormat.noiseName, type: rf_H5T_IEEE_F32LE(), item: itemShape, chunkRows: rowsPerChunk, deflate: compression)
        try dataset(TripletFormat.imageName, type: rf_H5T_IEEE_F32LE(), item: itemShape, chunkRows: rowsPerChunk, deflate: compression)
        try dataset(TripletFormat.checksumName, type: rf_H5T_STD_U32LE(), item: [3], chunkRows: 1024, deflate: 0)
        let all = TripletFormat.fixedAttributes.merging(attributes, uniquingKeysWith: { a, _ in a })
        for (k, v) in all.sorted(by: { $0.key < $1.key }) { try H5.writeString(file, k, v, path) }
        try H5.writeInts(file, TripletFormat.Key.attributesCRC, [TripletCheck.attributesCRC(all)], path)
        try H5.writeInts(file, TripletFormat.Key.committedRows, [0, ~0], path)
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
}
