# Cross-compiling dtrn-edge for Linux aarch64 on a Debian x86-64 host (scripts/arm64.sh).
#
# Compiler: Debian's cross toolchain (g++-aarch64-linux-gnu), whose C library and
# libstdc++ live in /usr/aarch64-linux-gnu. Libraries: the arm64 .debs of XNNPACK,
# pthreadpool, FlatBuffers, TBB, GoogleTest, nlohmann-json, xxhash and Google Benchmark,
# unpacked with `dpkg -x` into a sysroot (no `dpkg --add-architecture` on the host):
#   -DDTRN_ARM64_SYSROOT=DIR, else $DTRN_ARM64_SYSROOT, else ~/.cache/dtrn-arm64-sysroot.
# flatc and other build-time programs are the host's. Tests run under qemu-aarch64
# through cmake/toolchains/qemu-aarch64-run (ctest and gtest discovery use it as the
# CMAKE_CROSSCOMPILING_EMULATOR; QEMU_CPU picks the emulated CPU model).
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)

set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)

if(NOT DTRN_ARM64_SYSROOT)
  if(DEFINED ENV{DTRN_ARM64_SYSROOT} AND NOT "$ENV{DTRN_ARM64_SYSROOT}" STREQUAL "")
    set(DTRN_ARM64_SYSROOT "$ENV{DTRN_ARM64_SYSROOT}")
  else()
    set(DTRN_ARM64_SYSROOT "$ENV{HOME}/.cache/dtrn-arm64-sysroot")
  endif()
endif()
set(DTRN_ARM64_SYSROOT "${DTRN_ARM64_SYSROOT}" CACHE PATH "dpkg -x sysroot of the arm64 -dev packages")
# try_compile projects re-read this file: hand them the same sysroot.
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES DTRN_ARM64_SYSROOT)
if(NOT EXISTS "${DTRN_ARM64_SYSROOT}/usr/include/xnnpack.h")
  message(FATAL_ERROR "no arm64 sysroot at ${DTRN_ARM64_SYSROOT} (run scripts/arm64.sh --setup)")
endif()

# Libraries, headers and CMake packages come from the sysroot (and the cross libc); programs from the host.
set(CMAKE_FIND_ROOT_PATH "${DTRN_ARM64_SYSROOT}" /usr/aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# Link against the sysroot's shared libraries (and theirs: libcpuinfo behind libXNNPACK),
# and record it as DT_RPATH (not RUNPATH: it then also applies to those indirect
# dependencies), so the binaries run under qemu with no LD_LIBRARY_PATH that would leak
# into the x86 programs the tests start (sh, python3).
set(_dtrn_arm64_libdir "${DTRN_ARM64_SYSROOT}/usr/lib/aarch64-linux-gnu")
foreach(kind EXE SHARED MODULE)
  set(CMAKE_${kind}_LINKER_FLAGS_INIT "-Wl,-rpath-link,${_dtrn_arm64_libdir} -Wl,--disable-new-dtags")
endforeach()
set(CMAKE_BUILD_RPATH "${_dtrn_arm64_libdir}")

get_filename_component(_dtrn_toolchain_dir "${CMAKE_CURRENT_LIST_FILE}" DIRECTORY)
set(CMAKE_CROSSCOMPILING_EMULATOR "${_dtrn_toolchain_dir}/qemu-aarch64-run")

# Multiarch headers of the sysroot (OpenSSL's opensslconf.h / configuration.h live there).
set(CMAKE_C_STANDARD_INCLUDE_DIRECTORIES "${DTRN_ARM64_SYSROOT}/usr/include/aarch64-linux-gnu")
set(CMAKE_CXX_STANDARD_INCLUDE_DIRECTORIES "${DTRN_ARM64_SYSROOT}/usr/include/aarch64-linux-gnu")
