import CHDF5
import Formats

// How a dataset is stored: what readers check before trusting libhdf5 with a read.

extension H5 {
    /// Throws unless `dset` is stored as HDF5 lays out data it can check: contiguous with room for
    /// every element, or chunked with a chunk of the dataset's rank and only built-in filters
    /// (deflate, shuffle, fletcher32). Why: libhdf5 1.10 trusts a compact dataset's stored size and
    /// copies past its buffer when a damaged header lies about it (a SEGV inside H5Dread, in
    /// H5D__compact_readvv, found by the fuzzer); other filters run code we never chose.
    public static func requireReadableLayout(_ dset: hid_t, _ path: String, _ name: String) throws {
        let dcpl = H5Dget_create_plist(dset)
        guard dcpl >= 0 else { throw DataError("\(path): cannot read the storage layout of '\(name)': \(takeError())") }
        defer { H5Pclose(dcpl) }
        let elements = H5.dims(dset).dims.reduce(1) { $0.multipliedReportingOverflow(by: $1).partialValue }
        switch H5Pget_layout(dcpl) {
        case H5D_CONTIGUOUS:
            let t = H5Dget_type(dset)
            let bytes = elements.multipliedReportingOverflow(by: H5Tget_size(t))
            H5Tclose(t)
            let stored = H5Dget_storage_size(dset)  // 0: never written, reads give the fill value
            guard !bytes.overflow, stored == 0 || stored >= UInt64(max(0, bytes.partialValue)) else {
                throw DataError("\(path): dataset '\(name)' stores fewer bytes than its shape needs (damaged file)")
            }
        case H5D_CHUNKED:
            var dims = [hsize_t](repeating: 0, count: 32)
            let rank = H5Pget_chunk(dcpl, 32, &dims)
            guard rank == Int32(H5.dims(dset).dims.count), dims.prefix(Int(max(0, rank))).allSatisfy({ $0 > 0 }) else {
                throw DataError("\(path): dataset '\(name)' has a chunk shape that does not fit its rank (damaged file)")
            }
            let n = H5Pget_nfilters(dcpl)
            guard (0...8).contains(n) else {
                throw DataError("\(path): dataset '\(name)' has an unreadable filter pipeline (damaged file)")
            }
            for k in 0..<n {
                var flags: UInt32 = 0, config: UInt32 = 0, count = 8
                var values = [UInt32](repeating: 0, count: 8)
                var label = [CChar](repeating: 0, count: 64)
                let id = H5Pget_filter2(dcpl, UInt32(k), &flags, &count, &values, 64, &label, &config)
                guard [1, 2, 3].contains(id) else {
                    throw DataError("\(path): dataset '\(name)' uses HDF5 filter \(id); triplet files may use only "
                        + "deflate (1), shuffle (2) and fletcher32 (3) (written by another tool, or damaged)")
                }
            }
        default:
            throw DataError("\(path): dataset '\(name)' uses compact (or unknown) storage; triplet datasets are "
                + "chunked or contiguous (written by another tool, or damaged)")
        }
    }

    /// The chunk length along the first dimension of a chunked dataset, nil when not chunked.
    public static func chunkRows(_ dset: hid_t) -> Int? {
        let dcpl = H5Dget_create_plist(dset)
        defer { H5Pclose(dcpl) }
        guard H5Pget_layout(dcpl) == H5D_CHUNKED else { return nil }
        var dims = [hsize_t](repeating: 0, count: 8)
        let rank = H5Pget_chunk(dcpl, 8, &dims)
        return rank > 0 ? Int(clamping: dims[0]) : nil
    }
}
