# Finds the Debian-packaged libraries eltd builds on. llhttp has no shared library in
# Debian: the node-llhttp package ships its C sources, which we compile from where they
# are installed. Nothing third-party is copied into this repository.
find_package(PkgConfig REQUIRED)
pkg_check_modules(LIBUV REQUIRED IMPORTED_TARGET libuv)
pkg_check_modules(LIBPQ REQUIRED IMPORTED_TARGET libpq)
pkg_check_modules(LIBCURL REQUIRED IMPORTED_TARGET libcurl)
pkg_check_modules(YAML REQUIRED IMPORTED_TARGET yaml-0.1)
pkg_check_modules(JANSSON REQUIRED IMPORTED_TARGET jansson)

set(LLHTTP_SRC_DIR /usr/share/llhttp CACHE PATH "llhttp C sources (Debian node-llhttp)")
set(LLHTTP_INCLUDE_DIR /usr/share/include/llhttp CACHE PATH "llhttp header (Debian node-llhttp)")
if(NOT EXISTS ${LLHTTP_SRC_DIR}/llhttp.c OR NOT EXISTS ${LLHTTP_INCLUDE_DIR}/llhttp.h)
  message(FATAL_ERROR "llhttp sources not found in ${LLHTTP_SRC_DIR}: run deps/install.sh")
endif()
add_library(llhttp_c STATIC ${LLHTTP_SRC_DIR}/llhttp.c ${LLHTTP_SRC_DIR}/api.c ${LLHTTP_SRC_DIR}/http.c)
target_include_directories(llhttp_c SYSTEM PUBLIC ${LLHTTP_INCLUDE_DIR})
# Generated third-party code: build it without our warning flags.
target_compile_options(llhttp_c PRIVATE -w)
set_target_properties(llhttp_c PROPERTIES C_STANDARD 99 POSITION_INDEPENDENT_CODE ON)
