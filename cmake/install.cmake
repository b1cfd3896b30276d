# Packaging: the installable libraries, headers, CLIs, the exported CMake package
# (find_package(dtrn) -> dtrn::runtime, dtrn::c_api) and dtrn.pc. Included last from the
# root CMakeLists.txt; docs/integration.md explains the choices.
#
#   libdtrn.so.<major>.<minor>  (soname; 0.x: every minor release may break the ABI)
#   libdtrn.a                   the same code as one static archive
#
# Both hold the runtime core (model loading and verification, every DTRN component,
# kernels), the .dtrn framing, the C API *and* the JSON Lines request/score I/O: the C
# API's dtrn_request_from_json needs the JSON parser, and one library with the whole C API
# is what an app wants. nlohmann-json is header-only, so this adds code, not a dependency.
# Ranking metrics (dtrn_metrics), the converter and the tools' helpers are not in it.
# The shared library exports only the C API and the C++ API (runtime/dtrn.map).

include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

# A version script needs an ELF linker (GNU ld, gold, lld: Linux, Android). Apple targets
# (iOS: static library / XCFramework) and Windows get the static library only.
if(APPLE OR WIN32)
  set(_dtrn_shared_default OFF)
else()
  set(_dtrn_shared_default ON)
endif()
option(DTRN_BUILD_SHARED "Build libdtrn.so (C and C++ API only exported)" ${_dtrn_shared_default})

set(DTRN_SOVERSION ${PROJECT_VERSION_MAJOR}.${PROJECT_VERSION_MINOR})
set(DTRN_PACKAGED_LIBS dtrn_runtime dtrn_format dtrn_io dtrn_c dtrn_c_json)
set(_dtrn_objects)
foreach(lib ${DTRN_PACKAGED_LIBS})
  list(APPEND _dtrn_objects $<TARGET_OBJECTS:${lib}>)
endforeach()
set(_dtrn_public_includes
  $<BUILD_INTERFACE:${CMAKE_SOURCE_DIR}/runtime/include>
  $<BUILD_INTERFACE:${CMAKE_SOURCE_DIR}/runtime/io/include>
  $<BUILD_INTERFACE:${CMAKE_SOURCE_DIR}/runtime/c_api>
  $<BUILD_INTERFACE:${DTRN_GEN_DIR}>
  $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
# What the packaged objects need at link time (flatbuffers is used header-only).
set(_dtrn_private_libs ${XNNPACK_LIBRARY} ${PTHREADPOOL_LIBRARY} ${XXHASH_LIBRARY} Threads::Threads)

# The static archive (one file instead of five; the in-tree static libraries stay as they are).
add_library(dtrn_static STATIC ${_dtrn_objects})
add_dependencies(dtrn_static ${DTRN_PACKAGED_LIBS})
set_target_properties(dtrn_static PROPERTIES OUTPUT_NAME dtrn EXPORT_NAME dtrn_static LINKER_LANGUAGE CXX
  ARCHIVE_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/lib)
target_include_directories(dtrn_static INTERFACE ${_dtrn_public_includes})
# Its dependencies are found by dtrnConfig.cmake on the consumer's machine (not exported as
# absolute paths): see cmake/dtrnConfig.cmake.in.

set(_dtrn_install_targets dtrn_static)
if(DTRN_BUILD_SHARED)
  add_library(dtrn SHARED ${_dtrn_objects})
  add_dependencies(dtrn ${DTRN_PACKAGED_LIBS})
  set_target_properties(dtrn PROPERTIES EXPORT_NAME dtrn_shared LINKER_LANGUAGE CXX
    VERSION ${PROJECT_VERSION} SOVERSION ${DTRN_SOVERSION}
    LIBRARY_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/lib
    LINK_DEPENDS ${CMAKE_SOURCE_DIR}/runtime/dtrn.map)
  target_include_directories(dtrn INTERFACE ${_dtrn_public_includes})
  target_link_libraries(dtrn PRIVATE ${_dtrn_private_libs})
  target_link_options(dtrn PRIVATE "LINKER:--version-script=${CMAKE_SOURCE_DIR}/runtime/dtrn.map"
    "LINKER:--exclude-libs,ALL")
  # Every symbol resolved at link time; not under sanitizers, whose runtime (clang's) the
  # executable brings.
  if(NOT (DTRN_ASAN OR DTRN_TSAN OR DTRN_FUZZ))
    target_link_options(dtrn PRIVATE "LINKER:--no-undefined")
  endif()
  list(APPEND _dtrn_install_targets dtrn)
endif()

install(TARGETS ${_dtrn_install_targets} EXPORT dtrnTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT dev
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT runtime NAMELINK_COMPONENT dev
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT runtime)

# Public headers only: the C API, the C++ API (+ the generated version.h) and the JSON I/O.
install(FILES runtime/c_api/dtrn.h DESTINATION ${CMAKE_INSTALL_INCLUDEDIR} COMPONENT dev)
install(FILES runtime/include/dtrn/runtime.h runtime/include/dtrn/status.h ${DTRN_GEN_DIR}/dtrn/version.h
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/dtrn COMPONENT dev)
install(FILES runtime/io/include/dtrn/io/line_reader.h runtime/io/include/dtrn/io/requests.h
  runtime/io/include/dtrn/io/scores.h DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/dtrn/io COMPONENT dev)
# The C example, the Android JNI bridge and the iOS (Swift) sketch, for docs/integration.md.
install(FILES examples/score_c.c DESTINATION ${CMAKE_INSTALL_DATADIR}/dtrn/examples COMPONENT dev)
install(DIRECTORY examples/android examples/ios DESTINATION ${CMAKE_INSTALL_DATADIR}/dtrn/examples COMPONENT dev)

# The command-line tools.
set(_dtrn_tools)
foreach(t dtrn-convert dtrn-inspect dtrn-run dtrn-bench)
  if(TARGET ${t})
    list(APPEND _dtrn_tools ${t})
  endif()
endforeach()
if(_dtrn_tools)
  install(TARGETS ${_dtrn_tools} RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT tools)
endif()

# CMake package: <prefix>/lib/cmake/dtrn/{dtrnConfig,dtrnConfigVersion,dtrnTargets*}.cmake.
set(DTRN_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/dtrn)
install(EXPORT dtrnTargets NAMESPACE dtrn:: DESTINATION ${DTRN_CMAKE_DIR} COMPONENT dev)
# The file names of the static archive's dependencies, for the config to find them again.
foreach(dep XNNPACK PTHREADPOOL XXHASH)
  get_filename_component(DTRN_DEP_${dep}_NAME "${${dep}_LIBRARY}" NAME)
  get_filename_component(DTRN_DEP_${dep}_DIR "${${dep}_LIBRARY}" DIRECTORY)
endforeach()
configure_package_config_file(cmake/dtrnConfig.cmake.in ${CMAKE_BINARY_DIR}/packaging/dtrnConfig.cmake
  INSTALL_DESTINATION ${DTRN_CMAKE_DIR})
# 0.x: a minor release may change the ABI, so only the same major.minor is compatible.
write_basic_package_version_file(${CMAKE_BINARY_DIR}/packaging/dtrnConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_BINARY_DIR}/packaging/dtrnConfig.cmake ${CMAKE_BINARY_DIR}/packaging/dtrnConfigVersion.cmake
  DESTINATION ${DTRN_CMAKE_DIR} COMPONENT dev)

# pkg-config: relocatable (prefix relative to the .pc file).
if(IS_ABSOLUTE "${CMAKE_INSTALL_LIBDIR}")
  set(DTRN_PC_PREFIX "${CMAKE_INSTALL_PREFIX}")
  set(DTRN_PC_LIBDIR "${CMAKE_INSTALL_LIBDIR}")
else()
  file(RELATIVE_PATH _dtrn_pc_up "/${CMAKE_INSTALL_LIBDIR}/pkgconfig" "/")
  string(REGEX REPLACE "/$" "" _dtrn_pc_up "${_dtrn_pc_up}")
  set(DTRN_PC_PREFIX "\${pcfiledir}/${_dtrn_pc_up}")
  set(DTRN_PC_LIBDIR "\${prefix}/${CMAKE_INSTALL_LIBDIR}")
endif()
if(IS_ABSOLUTE "${CMAKE_INSTALL_INCLUDEDIR}")
  set(DTRN_PC_INCLUDEDIR "${CMAKE_INSTALL_INCLUDEDIR}")
else()
  set(DTRN_PC_INCLUDEDIR "\${prefix}/${CMAKE_INSTALL_INCLUDEDIR}")
endif()
set(DTRN_PC_LIBS_PRIVATE)
foreach(dep XNNPACK PTHREADPOOL XXHASH)
  string(REGEX REPLACE "^lib|\\.(a|so.*|dylib)$" "" _n "${DTRN_DEP_${dep}_NAME}")
  string(APPEND DTRN_PC_LIBS_PRIVATE " -l${_n}")
endforeach()
configure_file(cmake/dtrn.pc.in ${CMAKE_BINARY_DIR}/packaging/dtrn.pc @ONLY)
install(FILES ${CMAKE_BINARY_DIR}/packaging/dtrn.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig COMPONENT dev)

# Tests of the package (tests/install_test.sh, tests/exports_test.sh): quick, no rebuild.
if(DTRN_BUILD_TESTS)
  if(DTRN_BUILD_SHARED)
    add_test(NAME shared_library_exports
      COMMAND bash ${CMAKE_SOURCE_DIR}/tests/exports_test.sh $<TARGET_FILE:dtrn> ${CMAKE_SOURCE_DIR})
  endif()
  add_test(NAME install_package COMMAND bash ${CMAKE_SOURCE_DIR}/tests/install_test.sh ${CMAKE_BINARY_DIR})
  set_tests_properties(install_package PROPERTIES TIMEOUT 600)
endif()
