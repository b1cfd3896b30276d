// The x86 AVX-512 VNNI implementation of INT8 dense layers (see dense_vnni.cc).
#pragma once

#include <memory>

#include "dense.h"

#if defined(__x86_64__) && defined(__GNUC__)
#define DTRN_HAVE_VNNI_KERNEL 1
#else
#define DTRN_HAVE_VNNI_KERNEL 0
#endif

namespace dtrn {

// True when this build has the kernel and the CPU (and OS) support AVX-512 VNNI.
bool VnniAvailable();
// The layer on the VNNI kernel; bit-identical outputs to XNNPACK's qc8 operator.
Result<std::unique_ptr<DenseLayer>> CreateVnniQc8Layer(const LinearSpec& spec);

}  // namespace dtrn
