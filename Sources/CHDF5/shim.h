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
