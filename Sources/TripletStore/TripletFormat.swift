import CHDF5
import HDF5
import Foundation
import Formats
import TensorCore

/// The (text, noise, image) triplet file: what `reflow-gen-pairs` writes and reflow/distillation
/// train on. Plain HDF5, readable with h5py and no code of ours. Format version 2:
///
///     /text      fixed-length UTF-8 strings, NUL-padded, [N]     chunked, extendable (h5py: bytes, .decode())
///     /noise     float32 [N, C, H, W]  x0 ~ N(0, I) (t = 0)      chunked along N, shuffle+deflate, extendable
///     /image     float32 [N, C, H, W]  x1, the teacher's ODE output  (same)
///     /checksum  uint32 [N, 3]: per row, CRC32 of the /text, /noise and /image row     chunked, extendable
///     root attributes, fixed-length UTF-8 strings (h5py: bytes):
///         format = "reflow-triplets", format_version = "2",
///         time_convention = "t=0 noise, t=1 data; x_t = t*x1 + (1-t)*x0",
///         plus the writer's own: teacher_checkpoint, teacher_sha256, solver (JSON: name and steps or rtol/atol),
///         guidance, seed, ... (see `TripletFormat.Key`)
///     attributes_crc32 (int64): CRC32 of all string attributes, sorted by name, as name NUL value NUL
///     committed_rows (int64 [2]): [n, ~n] (n and its bitwise complement): rows 0..<n are complete.
///
/// Why no variable-length data: variable-length strings (format 1's /text and attributes) live in
/// HDF5's global heap, and libhdf5 crashes (H5HG_read) or spins on a damaged heap, inside
/// H5Dread/H5Aread, before any check of ours can run. Format 2 reads only fixed-size data, whose
/// damage HDF5 either reports or hands back as wrong bytes, which the checks below catch.
/// Format-1 files are refused with a message saying how to regenerate them, without reading a
/// single variable-length value.
///
/// Why per-row CRC32s in a dataset rather than HDF5's fletcher32 filter: the commit protocol
/// below relies on committed bytes never changing when a chunk is rewritten in place (/text,
/// /checksum, and a partial last chunk); a filter checksum covers the whole chunk and changes
/// with every rewrite, so a killed rewrite would leave committed rows failing their check. A row's
/// CRC is written once with the row and never changes, names the damaged row, and covers the text
/// too. CRC32 of (row index as int64 little-endian) + (the row's bytes: the text's fixed-size
/// NUL-padded bytes; the floats as float32 little-endian in C order), zlib's polynomial, so Python
/// checks it with `zlib.crc32(np.int64(i).tobytes() + f["noise"][i].astype("<f4").tobytes())`.
///
/// Every value a reader returns is checked: the row's CRC32s, then finiteness and bounds
/// (|noise| <= 10, a standard normal never gets there; |image| <= 10, ten times the [-1, 1] range
/// images live in: an untrained teacher overshoots by a few units, garbage by far more). Writers refuse rows that break the bounds. Errors name the
/// file, the dataset and the row.
///
/// Commit protocol: why a `kill -9` at any moment leaves a file that opens and holds only whole
/// rows. HDF5 is not journaled, so the writer arranges its writes so that the state on disk after
/// any prefix of them is readable:
///   - Rows are buffered until they fill whole chunks of /noise and /image, and only whole chunks
///     are written. A compressed chunk that grows is moved to new space, and HDF5 can hand the
///     old space (still named by the on-disk chunk index) to the next allocation; never
///     rewriting a compressed chunk removes that way to lose committed rows. (/text is not
///     filtered, nor is /checksum: their chunks keep their place and committed entries keep
///     their bytes.) Only
///     `flush()`/`close()` write a partial last chunk, rewritten once when more rows follow.
///   - A commit of rows [n, m): extend the four datasets to m rows and write the rows; flush
///     (data, chunk indexes, extents reach the OS); rewrite `committed_rows` = [m, ~m] in place (16
///     bytes of one attribute in the root object header, one small write: old or new value); flush.
///     So `committed_rows` never counts a row whose data were not flushed before it.
///   - Before each commit the file is made longer (sparse) than any end-of-file address that
///     commit can record: a flush killed after writing the superblock but before growing the
///     file would otherwise leave a file HDF5 refuses to open ("truncated file"). HDF5 trims it
///     when the flush completes; `close()` cuts what is left.
///   - Readers trust `committed_rows` and never look past it (rows past it, and extents larger
///     than it, are what an interrupted commit leaves).
///   - A reopening writer first moves the superblock's end-of-file address up to the physical
///     size (blocks an interrupted flush wrote past the recorded end must not be reallocated),
///     checks the committed rows as a reader would, then cuts the datasets back to `committed_rows`; if HDF5 fails on that damaged
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
    public static let version = "2"
    /// Largest |x0| a file may hold: a standard normal exceeds 10 with probability ~1e-23.
    public static let noiseBound: Float = 10
    /// Largest |x1|. Images live in [-1, 1], but a pair's image is whatever the teacher's ODE
    /// gives, and an early or untrained teacher (a random one gives |x1| up to ~2.7 with guidance
    /// 1.5) overshoots by a few units: that is still the coupling reflow must learn. Ten times the
    /// data range is garbage (a diverged model, a foreign or damaged file), never a teacher's output.
    public static let imageBound: Float = 10
    /// /text entry size of a new file when the writer is not told one, and the largest allowed.
    public static let defaultTextBytes = 256, maxTextBytes = 1 << 16
    public static let timeConvention = "t=0 noise, t=1 data; x_t = t*x1 + (1-t)*x0"

    /// Root attribute names.
    public enum Key {
        public static let format = "format"
        public static let formatVersion = "format_version"
        public static let timeConvention = "time_convention"
        /// int64 [n, ~n], not a string: the commit marker.
        public static let committedRows = "committed_rows"
        /// int64: CRC32 of the string attributes.
        public static let attributesCRC = "attributes_crc32"
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

    static let textName = "text", noiseName = "noise", imageName = "image", checksumName = "checksum"
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
    /// Every string root attribute (fixed + writer's).
    var attributes: [String: String]
    /// Rows each dataset holds (more than `committed` after an interrupted commit).
    var extents: [Int]

    var userAttributes: [String: String] { attributes.filter { TripletFormat.fixedAttributes[$0.key] == nil } }

    /// Checks the format attributes, their checksum, the commit marker and the four datasets,
    /// reading no variable-length data; every failure names the file and the thing that is wrong.
    /// `file` is an open file id; returns the open datasets (caller closes).
    static func inspect(_ file: hid_t, _ path: String) throws -> (TripletLayout, TripletDatasets) {
        let notOurs = "\(path): not a reflow triplet file"
        typealias Key = TripletFormat.Key
        guard let kind = try H5.attributeKind(file, Key.format, path) else {
            throw DataError("\(notOurs): root attribute 'format' is missing (expected '\(TripletFormat.name)')")
        }
        let versionKind = try H5.attributeKind(file, Key.formatVersion, path)
        if kind.variable || versionKind?.variable == true {
            throw DataError("\(path): triplet file of format version 1 (variable-length strings), which this build no "
                + "longer reads: damage in those strings crashes libhdf5, so they are not opened at all. Regenerate it "
                + "with this build (format \(TripletFormat.version)): re-run the reflow-gen-pairs command that made it "
                + "with --overwrite (the chain's `reflow` command regenerates it by itself)")
        }
        guard let format = try H5.readString(file, Key.format, path), format == TripletFormat.name else {
            throw DataError("\(notOurs): root attribute 'format' is not the string '\(TripletFormat.name)'")
        }
        let version = try H5.readString(file, Key.formatVersion, path)
        guard version == TripletFormat.version else {
            throw DataError("\(path): triplet format_version '\(version ?? "(missing)")' is not supported "
                + "(this build reads version \(TripletFormat.version); regenerate the file with reflow-gen-pairs --overwrite)")
        }
        guard let marker = try H5.readInts(file, Key.committedRows, path), marker.count == 2, marker[0] >= 0,
              marker[1] == ~marker[0] else {
            throw DataError("\(path): root attribute '\(Key.committedRows)' is missing or not [n, ~n] (corrupt triplet file)")
        }
        var attributes = [String: String]()
        for name in try H5.attributeNames(file, path) where name != Key.committedRows && name != Key.attributesCRC {
            if let v = try H5.readString(file, name, path) { attributes[name] = v }
        }
        guard let crc = try H5.readInts(file, Key.attributesCRC, path), crc.count == 1,
              crc[0] == TripletCheck.attributesCRC(attributes) else {
            throw DataError("\(path): the root attributes fail their checksum '\(Key.attributesCRC)' (damaged "
                + "triplet file); regenerate it (re-run reflow-gen-pairs with --overwrite)")
        }
        let committed = Int(marker[0])

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
            let checksum = try open(TripletFormat.checksumName)
            func type(_ d: hid_t) -> (cls: H5T_class_t, size: Int, variable: Bool) {
                let t = H5Dget_type(d)
                defer { H5Tclose(t) }
                return (H5Tget_class(t), H5Tget_size(t), H5Tis_variable_str(t) > 0)
            }
            for (d, name) in [(noise, TripletFormat.noiseName), (image, TripletFormat.imageName)] {
                let t = type(d)
                guard t.cls == H5T_FLOAT, t.size == 4 else { throw DataError("\(path): dataset '/\(name)' is not float32") }
            }
            // Layouts and filters before the first read (see `H5.requireReadableLayout`).
            for (d, name) in [(text, TripletFormat.textName), (noise, TripletFormat.noiseName),
                              (image, TripletFormat.imageName), (checksum, TripletFormat.checksumName)] {
                try H5.requireReadableLayout(d, path, "/" + name)
            }
            let tt = type(text), ct = type(checksum)
            let ts = H5.dims(text).dims, ns = H5.dims(noise).dims, ims = H5.dims(image).dims, cs = H5.dims(checksum).dims
            guard tt.cls == H5T_STRING, !tt.variable, (1...TripletFormat.maxTextBytes).contains(tt.size), ts.count == 1 else {
                throw DataError("\(path): dataset '/text' must be a 1-D fixed-length string dataset [N] of at most "
                    + "\(TripletFormat.maxTextBytes) bytes an entry (corrupt triplet file)")
            }
            guard ct.cls == H5T_INTEGER, ct.size == 4, cs.count == 2, cs[1] == 3 else {
                throw DataError("\(path): dataset '/checksum' must be uint32 [N, 3], found shape \(cs) (corrupt triplet file)")
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
            // Sizes a damaged dataspace could inflate: refuse before anything is allocated from them.
            let item = Array(ns.dropFirst())
            guard item.allSatisfy({ (1...(1 << 16)).contains($0) }), item.reduce(1, *) <= 1 << 26 else {
                throw DataError("\(path): items of shape \(item) are empty or implausibly large (corrupt triplet file)")
            }
            let extents = [ts[0], ns[0], ims[0], cs[0]]
            guard committed <= extents.min()! else {
                throw DataError("\(path): \(Key.committedRows) = \(committed) but the datasets hold "
                    + "\(ts[0]) texts, \(ns[0]) noise rows, \(ims[0]) image rows and \(cs[0]) checksums (corrupt triplet file)")
            }
            let layout = TripletLayout(itemShape: item, committed: committed, attributes: attributes, extents: extents)
            let data = TripletDatasets(path: path, text: text, noise: noise, image: image, checksum: checksum,
                                       itemShape: item, itemSize: item.reduce(1, *), textBytes: tt.size)
            return (layout, data)
        } catch {
            for d in opened { H5Dclose(d) }
            throw error
        }
    }
}
