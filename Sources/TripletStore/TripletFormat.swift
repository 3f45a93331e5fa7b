import CHDF5
import Foundation
import Formats
import TensorCore

/// The (text, noise, image) triplet file: what `reflow-gen-pairs` writes and reflow/distillation
/// train on. Plain HDF5, readable with h5py and no code of ours:
///
///     /text   variable-length UTF-8 strings, [N]                  chunked, extendable
///     /noise  float32 [N, C, H, W]  x0 ~ N(0, I) (t = 0)          chunked along N, shuffle+deflate, extendable
///     /image  float32 [N, C, H, W]  x1, the teacher's ODE output  (same)
///     root attributes (scalar variable-length UTF-8 strings):
///         format = "reflow-triplets", format_version = "1",
///         time_convention = "t=0 noise, t=1 data; x_t = t*x1 + (1-t)*x0",
///         plus the writer's own: teacher_checkpoint, teacher_sha256, solver (JSON: name and steps or rtol/atol),
///         guidance, seed, ... (see `TripletFormat.Key`)
///     root attribute committed_rows (int64): rows 0..<committed_rows are complete.
///
/// Commit protocol: why a `kill -9` at any moment leaves a file that opens and holds only whole
/// rows. HDF5 is not journaled, so the writer arranges its writes so that the state on disk after
/// any prefix of them is readable:
///   - Rows are buffered until they fill whole chunks of /noise and /image, and only whole chunks
///     are written. A compressed chunk that grows is moved to new space, and HDF5 can hand the
///     old space (still named by the on-disk chunk index) to the next allocation; never
///     rewriting a compressed chunk removes that way to lose committed rows. (/text is not
///     filtered: its chunks keep their place and committed entries keep their bytes.) Only
///     `flush()`/`close()` write a partial last chunk, rewritten once when more rows follow.
///   - A commit of rows [n, m): extend the three datasets to m rows and write the rows; flush
///     (data, chunk indexes, extents reach the OS); rewrite `committed_rows` = m in place (a
///     fixed-size scalar in the root object header, one small write: old or new value); flush.
///     So `committed_rows` never counts a row whose data were not flushed before it.
///   - Before each commit the file is made longer (sparse) than any end-of-file address that
///     commit can record: a flush killed after writing the superblock but before growing the
///     file would otherwise leave a file HDF5 refuses to open ("truncated file"). HDF5 trims it
///     when the flush completes; `close()` cuts what is left.
///   - Readers trust `committed_rows` and never look past it (rows past it, and extents larger
///     than it, are what an interrupted commit leaves).
///   - A reopening writer first moves the superblock's end-of-file address up to the physical
///     size (blocks an interrupted flush wrote past the recorded end must not be reallocated),
///     then cuts the three datasets back to `committed_rows`; if HDF5 fails on that damaged
///     tail, it copies the committed rows into a fresh file that replaces the old one. The
///     interrupted rows are then regenerated: pair i's noise depends only on (seed, i), so the
///     result equals an uninterrupted run.
///   - A new file is built under a temporary name and renamed into place, so the path never
///     names a file without the format attributes.
/// Tested by killing a writer 900 times mid-append (resuming after each): every file opened
/// with whole, correct rows. Limits: flushes reach the OS, not the disk (no fsync), so this
/// covers a killed process, not a power cut; a SIGKILL that tears a multi-page in-place metadata
/// write is not excluded, only very unlikely. Keep HDF5's default "earliest" file format (no
/// SWMR, superblock v0): a v3 superblock left marked open by a killed writer refuses to open
/// until `h5clear -s` is run on it.
public enum TripletFormat {
    public static let name = "reflow-triplets"
    public static let version = "1"
    public static let timeConvention = "t=0 noise, t=1 data; x_t = t*x1 + (1-t)*x0"

    /// Root attribute names.
    public enum Key {
        public static let format = "format"
        public static let formatVersion = "format_version"
        public static let timeConvention = "time_convention"
        /// int64, not a string: the commit marker.
        public static let committedRows = "committed_rows"
        // Conventional writer attributes (not enforced).
        public static let teacherCheckpoint = "teacher_checkpoint"
        public static let teacherSHA256 = "teacher_sha256"
        /// The solver and its settings as one JSON object, e.g. `{"name":"rk4","steps":8}`.
        public static let solver = "solver"
        public static let guidance = "guidance"
        public static let seed = "seed"
    }

    /// Attributes every triplet file carries, whatever the writer passes.
    public static let fixedAttributes: [String: String] = [
        Key.format: name, Key.formatVersion: version, Key.timeConvention: timeConvention,
    ]

    static let textName = "text", noiseName = "noise", imageName = "image"
}

/// Rows read from a triplet file: captions, noise x0 and images x1, both [n, C, H, W].
public struct TripletBatch: @unchecked Sendable {
    public let texts: [String]
    public let noise: Storage
    public let images: Storage
    public let shape: [Int]
}

/// What a validated triplet file holds (shared by the reader and a reopening writer).
struct TripletLayout {
    var itemShape: [Int]
    var committed: Int
    /// Every string root attribute (fixed + writer's), without `committed_rows`.
    var attributes: [String: String]
    var extents: (text: Int, noise: Int, image: Int)

    var userAttributes: [String: String] { attributes.filter { TripletFormat.fixedAttributes[$0.key] == nil } }

    /// Checks the format attributes and the three datasets; every failure names the file and the
    /// thing that is wrong. `file` is an open file id; returns the open dataset ids (caller closes).
    static func inspect(_ file: hid_t, _ path: String) throws -> (TripletLayout, text: hid_t, noise: hid_t, image: hid_t) {
        let notOurs = "\(path): not a reflow triplet file"
        guard let format = try H5.readString(file, TripletFormat.Key.format, path) else {
            throw DataError("\(notOurs): root attribute 'format' is missing (expected '\(TripletFormat.name)')")
        }
        guard format == TripletFormat.name else {
            throw DataError("\(notOurs): root attribute 'format' is '\(format)', expected '\(TripletFormat.name)'")
        }
        let version = try H5.readString(file, TripletFormat.Key.formatVersion, path)
        guard version == TripletFormat.version else {
            throw DataError("\(path): triplet format_version '\(version ?? "(missing)")' is not supported "
                + "(this build reads version \(TripletFormat.version))")
        }
        guard let committed = try H5.readInt(file, TripletFormat.Key.committedRows, path), committed >= 0 else {
            throw DataError("\(path): root attribute '\(TripletFormat.Key.committedRows)' is missing or not a "
                + "non-negative integer (corrupt triplet file)")
        }
        var attributes = [String: String]()
        for name in try H5.attributeNames(file, path) where name != TripletFormat.Key.committedRows {
            if let v = try H5.readString(file, name, path) { attributes[name] = v }
        }

        var opened = [hid_t]()
        func open(_ name: String) throws -> hid_t {
            guard H5Lexists(file, name, rf_H5P_DEFAULT()) > 0 else {
                throw DataError("\(path): dataset '/\(name)' is missing (corrupt triplet file)")
            }
            let d = H5Dopen2(file, name, rf_H5P_DEFAULT())
            if d < 0 { throw DataError("\(path): cannot open dataset '/\(name)': \(H5.takeError())") }
            opened.append(d)
            return d
        }
        do {
            let text = try open(TripletFormat.textName)
            let noise = try open(TripletFormat.noiseName)
            let image = try open(TripletFormat.imageName)

            for (d, name) in [(noise, TripletFormat.noiseName), (image, TripletFormat.imageName)] {
                let t = H5Dget_type(d)
                defer { H5Tclose(t) }
                guard H5Tget_class(t) == H5T_FLOAT, H5Tget_size(t) == 4 else {
                    throw DataError("\(path): dataset '/\(name)' is not float32")
                }
            }
            let t = H5Dget_type(text)
            let isVarString = H5Tget_class(t) == H5T_STRING && H5Tis_variable_str(t) > 0
            H5Tclose(t)
            let ts = H5.dims(text).dims, ns = H5.dims(noise).dims, ims = H5.dims(image).dims
            guard isVarString, ts.count == 1 else {
                throw DataError("\(path): dataset '/text' must be a 1-D variable-length string dataset [N], "
                    + "found \(isVarString ? "shape \(ts)" : "another type")")
            }
            guard ns.count == 4 else {
                throw DataError("\(path): dataset '/noise' has shape \(ns), expected [N, C, H, W]")
            }
            guard ims.count == 4 else {
                throw DataError("\(path): dataset '/image' has shape \(ims), expected [N, C, H, W]")
            }
            guard Array(ns.dropFirst()) == Array(ims.dropFirst()) else {
                throw DataError("\(path): dataset '/noise' has shape \(ns) but '/image' has \(ims); "
                    + "both must be [N, C, H, W] with the same C, H, W")
            }
            let minRows = min(ts[0], ns[0], ims[0])
            guard committed <= minRows else {
                throw DataError("\(path): \(TripletFormat.Key.committedRows) = \(committed) but the datasets hold "
                    + "\(ts[0]) texts, \(ns[0]) noise rows and \(ims[0]) image rows (corrupt triplet file)")
            }
            let layout = TripletLayout(itemShape: Array(ns.dropFirst()), committed: committed, attributes: attributes,
                                       extents: (ts[0], ns[0], ims[0]))
            return (layout, text, noise, image)
        } catch {
            for d in opened { H5Dclose(d) }
            throw error
        }
    }
}
