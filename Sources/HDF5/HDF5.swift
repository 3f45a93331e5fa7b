import CHDF5
import Foundation
import Formats

/// Thin helpers over the HDF5 C API (its own target, so that the triplet store holds the format
/// alone). Everything here runs inside `H5.run`,
/// which serialises our calls (one reader may prefetch while a writer appends) and turns off
/// HDF5's automatic error-stack printing: failures become `DataError`s that carry HDF5's own
/// innermost message instead of a page of stderr.
public enum H5 {
    private static let lock = NSRecursiveLock()

    /// Runs once, before our first HDF5 call. H5dont_atexit: HDF5's own exit handler closes every
    /// file still open, and a file whose close already failed (disk full) is still registered, so
    /// the handler tried again on half-freed state and crashed (SIGSEGV after the right error).
    /// Our writers close their files themselves; what a failed close leaves is what a killed
    /// process leaves, which the commit protocol covers. Only effective before the library is
    /// initialised (tests that call HDF5 directly first just keep the default).
    private static let setUp: Void = { _ = H5dont_atexit() }()

    public static func run<T>(_ body: () throws -> T) rethrows -> T {
        lock.lock()
        defer { lock.unlock() }
        _ = setUp
        // Per thread in a thread-safe HDF5 build (Debian's is), so set it on every entry.
        H5Eset_auto2(rf_H5E_DEFAULT(), nil, nil)
        return try body()
    }

    /// The HDF5 error stack as "outer call: innermost cause", then cleared.
    public static func takeError() -> String {
        final class Box { var messages: [String] = [] }
        let box = Box()
        let walker: H5E_walk2_t = { _, desc, data in
            guard let desc, let data else { return 0 }
            let box = Unmanaged<Box>.fromOpaque(data).takeUnretainedValue()
            if let d = desc.pointee.desc {
                let s = String(cString: d)
                if !s.isEmpty { box.messages.append(s) }
            }
            return 0
        }
        _ = withExtendedLifetime(box) {
            H5Ewalk2(rf_H5E_DEFAULT(), H5E_WALK_DOWNWARD, walker, Unmanaged.passUnretained(box).toOpaque())
        }
        H5Eclear2(rf_H5E_DEFAULT())
        guard let first = box.messages.first else { return "unknown HDF5 error" }
        if let last = box.messages.last, box.messages.count > 1 { return "\(first) (\(plainIOError(last)))" }
        return plainIOError(first)
    }

    /// HDF5's file driver reports a failed read or write as a page of fields (time, buffer
    /// address, byte counts); keep the OS error, and say what a full disk means for the user.
    public static func plainIOError(_ message: String) -> String {
        guard let e = message.range(of: "errno = "), let m = message.range(of: "error message = '"),
              let end = message[m.upperBound...].firstIndex(of: "'") else { return message }
        let code = Int32(message[e.upperBound...].prefix(while: { $0.isNumber })) ?? 0
        let what = message.prefix(while: { $0 != "(" && $0 != "," && $0 != ":" }).trimmingCharacters(in: .whitespaces)
        var out = "\(what): \(message[m.upperBound..<end])"
        if code == ENOSPC || code == EFBIG || code == EDQUOT {
            out += "; the disk is full or a file size limit was reached: make room and re-run the same command, "
                + "it keeps the committed rows and continues"
        }
        return out
    }

    /// Throws a `DataError` "<path>: <what> (<HDF5 message>)" when `status` is negative.
    @discardableResult
    public static func check<T: BinaryInteger>(_ status: T, _ path: String, _ what: @autoclosure () -> String) throws -> T {
        if status < 0 { throw DataError("\(path): \(what()): \(takeError())") }
        return status
    }

    // MARK: Files

    /// Opens an existing HDF5 file, telling "missing", "not HDF5" and "HDF5 but unreadable" apart.
    public static func openFile(_ path: String, write: Bool) throws -> hid_t {
        guard FileManager.default.fileExists(atPath: path) else { throw DataError("\(path): no such file") }
        let isHDF5 = H5Fis_hdf5(path)
        if isHDF5 == 0 {
            throw DataError("\(path): not an HDF5 file (no HDF5 signature found: another format, or corrupt)")
        }
        if isHDF5 < 0 { throw DataError("\(path): cannot read the file: \(takeError())") }
        // Say "read-only" plainly rather than through HDF5's open error, which suggests damage.
        if write && access(path, W_OK) != 0 {
            throw DataError("\(path): cannot open the file for writing: \(String(cString: strerror(errno))) "
                + "(read-only file or folder?)")
        }
        let file = H5Fopen(path, write ? rf_H5F_ACC_RDWR() : rf_H5F_ACC_RDONLY(), rf_H5P_DEFAULT())
        if file < 0, let short = Superblock.shortfall(path) {
            H5Eclear2(rf_H5E_DEFAULT())
            throw DataError("\(path): the file is truncated, shorter than HDF5 recorded (\(short)): an interrupted "
                + "copy, or a write that failed part-way (disk full? a file size limit?). If reflow-gen-pairs was writing "
                + "it, re-run that command: it repairs the file, keeps the committed rows and finishes it")
        }
        if file < 0 {
            throw DataError("\(path): cannot open the HDF5 file (corrupt or truncated, or held open for "
                + "writing by another process): \(takeError())")
        }
        return file
    }

    // MARK: Attributes

    public static func hasAttribute(_ obj: hid_t, _ name: String) -> Bool { H5Aexists(obj, name) > 0 }

    /// Names of all attributes of `obj`, in name order.
    public static func attributeNames(_ obj: hid_t, _ path: String) throws -> [String] {
        final class Box { var names: [String] = [] }
        let box = Box()
        let visit: H5A_operator2_t = { _, name, _, data in
            guard let name, let data else { return 0 }
            Unmanaged<Box>.fromOpaque(data).takeUnretainedValue().names.append(String(cString: name))
            return 0
        }
        var index: hsize_t = 0
        let rc = withExtendedLifetime(box) {
            H5Aiterate2(obj, H5_INDEX_NAME, H5_ITER_INC, &index, visit, Unmanaged.passUnretained(box).toOpaque())
        }
        try check(rc, path, "cannot list attributes")
        return box.names
    }

    /// The type class of attribute `name` and whether it is a variable-length string, read
    /// without touching its value (a variable-length value lives in the global heap).
    public static func attributeKind(_ obj: hid_t, _ name: String, _ path: String) throws -> (cls: H5T_class_t, variable: Bool)? {
        try withAttribute(obj, name, path) { _, ftype in
            let cls = H5Tget_class(ftype)
            return (cls, cls == H5T_STRING && H5Tis_variable_str(ftype) > 0)
        }
    }

    /// `body(attribute, its file type)` with both open (closed after), nil when there is no
    /// attribute `name`.
    static func withAttribute<T>(_ obj: hid_t, _ name: String, _ path: String,
                                 _ body: (_ attr: hid_t, _ ftype: hid_t) throws -> T?) throws -> T? {
        guard hasAttribute(obj, name) else { return nil }
        let attr = try check(H5Aopen(obj, name, rf_H5P_DEFAULT()), path, "cannot open attribute '\(name)'")
        defer { H5Aclose(attr) }
        let ftype = try check(H5Aget_type(attr), path, "cannot read the type of attribute '\(name)'")
        defer { H5Tclose(ftype) }
        return try body(attr, ftype)
    }

    /// Longest string an attribute or a /text entry may hold: a damaged type must not make us
    /// allocate gigabytes.
    public static let maxStringBytes = 1 << 20

    /// A scalar fixed-length string attribute, nil when absent or not a fixed-length string.
    /// Variable-length strings are never read (see `TripletFormat`: their heap crashes libhdf5
    /// when damaged).
    public static func readString(_ obj: hid_t, _ name: String, _ path: String) throws -> String? {
        try withAttribute(obj, name, path) { attr, ftype in
            guard H5Tget_class(ftype) == H5T_STRING, H5Tis_variable_str(ftype) == 0 else { return nil }
            let space = H5Aget_space(attr)
            defer { H5Sclose(space) }
            guard H5Sget_simple_extent_npoints(space) == 1 else { return nil }
            let size = H5Tget_size(ftype)
            guard size > 0, size <= maxStringBytes else {
                throw DataError("\(path): attribute '\(name)' claims a string of \(size) bytes (corrupt file)")
            }
            // The file's own type as the memory type: same size, padding and character set, no conversion.
            var buf = [UInt8](repeating: 0, count: size)
            try check(H5Aread(attr, ftype, &buf), path, "cannot read attribute '\(name)'")
            return try decodeFixed(buf[...], path, "attribute '\(name)'")
        }
    }

    /// A fixed-length string's bytes (NUL-padded) as text; invalid UTF-8 is an error.
    public static func decodeFixed(_ bytes: ArraySlice<UInt8>, _ path: String, _ what: @autoclosure () -> String) throws -> String {
        let end = bytes.firstIndex(of: 0) ?? bytes.endIndex
        guard let s = String(validating: bytes[bytes.startIndex..<end], as: UTF8.self) else {
            throw DataError("\(path): \(what()) is not valid UTF-8 (corrupt file)")
        }
        return s
    }

    /// A fixed-length, NUL-padded UTF-8 string type of `bytes` bytes (caller closes).
    public static func fixedStringType(bytes: Int) -> hid_t {
        let t = H5Tcopy(rf_H5T_C_S1())
        H5Tset_size(t, max(1, bytes))
        H5Tset_cset(t, H5T_CSET_UTF8)
        H5Tset_strpad(t, H5T_STR_NULLPAD)
        return t
    }

    /// Creates a scalar fixed-length UTF-8 string attribute (h5py reads it as bytes: `.decode()`).
    public static func writeString(_ obj: hid_t, _ name: String, _ value: String, _ path: String) throws {
        var bytes = Array(value.utf8)
        guard !bytes.contains(0), bytes.count <= maxStringBytes else {
            throw DataError("\(path): attribute '\(name)' holds a NUL byte or is longer than \(maxStringBytes) bytes")
        }
        if hasAttribute(obj, name) { try check(H5Adelete(obj, name), path, "cannot replace attribute '\(name)'") }
        if bytes.isEmpty { bytes = [0] }
        let type = fixedStringType(bytes: bytes.count)
        defer { H5Tclose(type) }
        let space = H5Screate(H5S_SCALAR)
        defer { H5Sclose(space) }
        let attr = try check(H5Acreate2(obj, name, type, space, rf_H5P_DEFAULT(), rf_H5P_DEFAULT()),
                             path, "cannot create attribute '\(name)'")
        defer { H5Aclose(attr) }
        try check(H5Awrite(attr, type, &bytes), path, "cannot write attribute '\(name)'")
    }

    /// An integer attribute of 1...16 elements (scalar or 1-D), nil when absent or of another kind.
    public static func readInts(_ obj: hid_t, _ name: String, _ path: String) throws -> [Int64]? {
        try withAttribute(obj, name, path) { attr, ftype in
            let space = H5Aget_space(attr)
            defer { H5Sclose(space) }
            let n = Int(H5Sget_simple_extent_npoints(space))
            guard H5Tget_class(ftype) == H5T_INTEGER, (1...16).contains(n) else { return nil }
            var v = [Int64](repeating: 0, count: n)
            try check(H5Aread(attr, rf_H5T_NATIVE_INT64(), &v), path, "cannot read attribute '\(name)'")
            return v
        }
    }

    /// Writes an int64 attribute (scalar for one value, else 1-D) in place, creating it the first
    /// time. In place matters: the value lives in the object header and is rewritten without
    /// moving anything else.
    public static func writeInts(_ obj: hid_t, _ name: String, _ values: [Int64], _ path: String) throws {
        let attr: hid_t
        if hasAttribute(obj, name) {
            attr = try check(H5Aopen(obj, name, rf_H5P_DEFAULT()), path, "cannot open attribute '\(name)'")
        } else {
            var n = hsize_t(values.count)
            let space = values.count == 1 ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, &n, nil)
            defer { H5Sclose(space) }
            attr = try check(H5Acreate2(obj, name, rf_H5T_STD_I64LE(), space, rf_H5P_DEFAULT(), rf_H5P_DEFAULT()),
                             path, "cannot create attribute '\(name)'")
        }
        defer { H5Aclose(attr) }
        var v = values
        try check(H5Awrite(attr, rf_H5T_NATIVE_INT64(), &v), path, "cannot write attribute '\(name)'")
    }

    // MARK: Types and datasets

    public static func dims(_ dset: hid_t) -> (dims: [Int], max: [Int]) {
        let space = H5Dget_space(dset)
        defer { H5Sclose(space) }
        let rank = Int(H5Sget_simple_extent_ndims(space))
        guard rank > 0 else { return ([], []) }
        var d = [hsize_t](repeating: 0, count: rank), m = [hsize_t](repeating: 0, count: rank)
        H5Sget_simple_extent_dims(space, &d, &m)
        // Clamped: a damaged dataspace may claim 2^64 - 1 rows, and the callers refuse what is too big.
        return (d.map { Int(clamping: $0) }, m.map { $0 == rf_H5S_UNLIMITED() ? -1 : Int(clamping: $0) })
    }

    /// Sets the first dimension of `dset` to `rows`, keeping the others.
    public static func setRows(_ dset: hid_t, _ rows: Int, _ path: String, _ name: String) throws {
        var d = dims(dset).dims.map { hsize_t($0) }
        d[0] = hsize_t(rows)
        try check(H5Dset_extent(dset, &d), path, "cannot resize '\(name)' to \(rows) rows")
    }

    /// A hyperslab of rows [start, start + rows) of `dset` (rank = `itemShape.count + 1`), with a
    /// matching memory space; the caller closes both.
    public static func rowSelection(_ dset: hid_t, start: Int, rows: Int, itemShape: [Int]) -> (file: hid_t, mem: hid_t) {
        let file = H5Dget_space(dset)
        var offset = [hsize_t](repeating: 0, count: itemShape.count + 1)
        offset[0] = hsize_t(start)
        var count = ([rows] + itemShape).map { hsize_t($0) }
        H5Sselect_hyperslab(file, H5S_SELECT_SET, &offset, nil, &count, nil)
        let mem = H5Screate_simple(Int32(count.count), &count, nil)
        return (file, mem)
    }

    /// Writes rows [start, start + rows) of `dset` from `data`, laid out as `memType` items.
    public static func writeRows(_ dset: hid_t, start: Int, rows: Int, itemShape: [Int], memType: hid_t,
                          _ data: UnsafeRawPointer, _ path: String, _ name: String) throws {
        let sel = rowSelection(dset, start: start, rows: rows, itemShape: itemShape)
        defer { H5Sclose(sel.file); H5Sclose(sel.mem) }
        try check(H5Dwrite(dset, memType, sel.mem, sel.file, rf_H5P_DEFAULT(), data),
                  path, "cannot write rows \(start)..<\(start + rows) of '\(name)'")
    }

    /// Reads rows [start, start + rows) of `dset` into `out`, converted to `memType` items.
    public static func readRows(_ dset: hid_t, start: Int, rows: Int, itemShape: [Int], memType: hid_t,
                         _ out: UnsafeMutableRawPointer, _ path: String, _ name: String) throws {
        let sel = rowSelection(dset, start: start, rows: rows, itemShape: itemShape)
        defer { H5Sclose(sel.file); H5Sclose(sel.mem) }
        try check(H5Dread(dset, memType, sel.mem, sel.file, rf_H5P_DEFAULT(), out),
                  path, "cannot read rows \(start)..<\(start + rows) of '\(name)' (corrupt data?)")
    }
}

/// The few bytes of the HDF5 superblock (versions 0 and 1, what HDF5 writes by default) that a
/// resuming writer needs to touch. File format spec, "Superblock": signature (8 bytes), version
/// numbers (8), B-tree K values and flags (8, plus 4 in version 1), then the base address, the
/// free-space address, the end-of-file address and the driver-info address, each "size of
/// offsets" bytes, little-endian.
public enum Superblock {
    /// Makes HDF5's end-of-allocation cover the whole physical file, as `h5clear --increment`
    /// does. A writer killed mid-flush may have written blocks past the end address recorded in
    /// the superblock; left alone, a reopened writer would allocate new space over them, and
    /// when committed metadata already points there (a B-tree node split in that flush), over
    /// committed rows. Moving the end address up only leaks the extra bytes. A file shorter than
    /// its end address (a failed flush) is extended with zeros instead. Files with another
    /// superblock version, a user block or a base address are left alone.
    /// Where the end-of-file address lies and its value, for a superblock this code understands.
    public static func endAddress(_ fd: Int32) -> (field: Int, value: UInt64)? {
        var head = [UInt8](repeating: 0, count: 64)
        guard pread(fd, &head, 64, 0) == 64 else { return nil }
        let signature: [UInt8] = [0x89, 0x48, 0x44, 0x46, 0x0D, 0x0A, 0x1A, 0x0A]
        guard Array(head[0..<8]) == signature, head[8] <= 1, head[13] == 8 else { return nil }
        let fieldStart = head[8] == 0 ? 24 : 28
        func u64(_ at: Int) -> UInt64 { (0..<8).reduce(UInt64(0)) { $0 | UInt64(head[at + $1]) << (8 * UInt64($1)) } }
        guard u64(fieldStart) == 0 else { return nil }  // a base address: not ours
        return (fieldStart + 16, u64(fieldStart + 16))
    }

    /// "(size) of (recorded end) bytes" when the file is shorter than its superblock says.
    public static func shortfall(_ path: String) -> String? {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var st = stat()
        guard let (_, eoa) = endAddress(fd), fstat(fd, &st) == 0, UInt64(st.st_size) < eoa else { return nil }
        return "\(st.st_size) of \(eoa) bytes"
    }

    public static func coverPhysicalSize(_ path: String) throws {
        let fd = open(path, O_RDWR)
        guard fd >= 0 else { return }
        defer { close(fd) }
        // HDF5 holds this lock while a writer has the file open: then leave the file to it.
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else { return }
        guard let (eoaField, eoa) = endAddress(fd) else { return }
        var st = stat()
        guard fstat(fd, &st) == 0, UInt64(st.st_size) != eoa else { return }
        // A damaged end address could ask for exabytes: no failed commit allocates a gigabyte.
        if UInt64(st.st_size) < eoa && eoa - UInt64(st.st_size) <= 1 << 30 {
            // A flush that failed (disk full, file size limit) after writing the superblock left
            // the file shorter than its recorded end, and HDF5 refuses it as truncated. The
            // missing bytes were never written, so they belong to the failed commit: zeros do.
            // The committed rows are checked (CRC32s) before anything is appended.
            guard ftruncate(fd, off_t(eoa)) == 0 else {
                throw DataError("\(path): the file is shorter than HDF5 recorded (an interrupted write) and cannot be "
                    + "extended to repair it: \(String(cString: strerror(errno)))")
            }
            return
        }
        var bytes = (0..<8).map { UInt8(truncatingIfNeeded: UInt64(st.st_size) >> (8 * UInt64($0))) }
        guard UInt64(st.st_size) > eoa, pwrite(fd, &bytes, 8, off_t(eoaField)) == 8 else {
            throw DataError("\(path): cannot update the HDF5 end-of-file address: \(String(cString: strerror(errno)))")
        }
    }
}
