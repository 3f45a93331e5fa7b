#include <hdf5.h>
// HDF5's type and property-list identifiers are macros that expand to global variables after
// H5open(); Swift cannot import them, so expose each through a getter.
static inline hid_t rf_H5T_NATIVE_FLOAT(void) { return H5T_NATIVE_FLOAT; }
static inline hid_t rf_H5T_NATIVE_INT64(void) { return H5T_NATIVE_INT64; }
static inline hid_t rf_H5T_NATIVE_UINT8(void) { return H5T_NATIVE_UINT8; }
static inline hid_t rf_H5T_C_S1(void) { return H5T_C_S1; }
static inline hid_t rf_H5P_DEFAULT(void) { return H5P_DEFAULT; }
static inline hid_t rf_H5P_DATASET_CREATE(void) { return H5P_DATASET_CREATE; }
static inline hid_t rf_H5P_FILE_ACCESS(void) { return H5P_FILE_ACCESS; }
static inline hid_t rf_H5S_ALL(void) { return H5S_ALL; }
static inline unsigned rf_H5F_ACC_TRUNC(void) { return H5F_ACC_TRUNC; }
static inline unsigned rf_H5F_ACC_RDONLY(void) { return H5F_ACC_RDONLY; }
static inline unsigned rf_H5F_ACC_RDWR(void) { return H5F_ACC_RDWR; }
static inline unsigned rf_H5F_ACC_EXCL(void) { return H5F_ACC_EXCL; }
static inline hsize_t rf_H5S_UNLIMITED(void) { return H5S_UNLIMITED; }
// Added for the Data target (triplet store): file types, the default error stack, variable-length
// sizes and the access/creation property-list classes.
static inline hid_t rf_H5T_IEEE_F32LE(void) { return H5T_IEEE_F32LE; }
static inline hid_t rf_H5T_STD_I64LE(void) { return H5T_STD_I64LE; }
static inline hid_t rf_H5T_NATIVE_DOUBLE(void) { return H5T_NATIVE_DOUBLE; }
static inline size_t rf_H5T_VARIABLE(void) { return H5T_VARIABLE; }
static inline hid_t rf_H5E_DEFAULT(void) { return H5E_DEFAULT; }
static inline hid_t rf_H5P_DATASET_ACCESS(void) { return H5P_DATASET_ACCESS; }
static inline hid_t rf_H5P_DATASET_XFER(void) { return H5P_DATASET_XFER; }
static inline hid_t rf_H5P_FILE_CREATE(void) { return H5P_FILE_CREATE; }
// Added for triplet format 2: the per-row checksum column type.
static inline hid_t rf_H5T_NATIVE_UINT32(void) { return H5T_NATIVE_UINT32; }
static inline hid_t rf_H5T_STD_U32LE(void) { return H5T_STD_U32LE; }
