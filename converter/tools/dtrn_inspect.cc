// dtrn-inspect: describe a .dtrn model (config, layers, tensors, totals, version, checksum).
#include <iostream>
#include <string>

#include "dtrn/runtime.h"
#include "inspect.h"

int main(int argc, char** argv) {
  if (argc == 2 && std::string(argv[1]) == "--version") {
    std::cout << "dtrn-inspect (dtrn-edge " << dtrn::Version() << "), reads .dtrn format_version "
              << dtrn::FormatVersion() << "\n";
    return 0;
  }
  if (argc == 2 && (std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h")) {
    std::cout << "usage: dtrn-inspect MODEL.dtrn\n       dtrn-inspect --version\n\n"
                 "Prints the model's config, every layer (precision, int8 or f32), every\n"
                 "tensor (shape, type, quantization, bytes), totals, the converter's int8 decisions,\n"
                 "the format version, the checkpoint's digest and whether the file's checksum holds;\n"
                 "then loads it with the runtime. --version prints the library and format versions.\n"
                 "Exit code 0 if the model is valid, 2 if not (with the reason).\n";
    return 0;
  }
  if (argc != 2 || argv[1][0] == '-') {
    std::cerr << "usage: dtrn-inspect MODEL.dtrn (see --help)\n";
    return 2;
  }
  dtrn::Status st = dtrn::convert::InspectDtrnFile(argv[1], std::cout);
  std::cout.flush();
  if (!st.ok()) {
    std::cerr << "dtrn-inspect: " << argv[1] << ": " << st.message() << "\n";
    return st.code() == dtrn::StatusCode::kIo || st.code() == dtrn::StatusCode::kInternal ? 1 : 2;
  }
  return 0;
}
