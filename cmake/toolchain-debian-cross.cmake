# Cross-compiling cmdgate for a Debian target with Debian's cross compilers
# (crossbuild-essential-ARCH) against a target root filesystem (a sysroot:
# scripts/cross.sh makes one with mmdebstrap). Included by
# toolchain-arm64.cmake and toolchain-armhf.cmake, which set
# CMDGATE_CROSS_TRIPLET, CMDGATE_CROSS_PROCESSOR and CMDGATE_CROSS_QEMU.
#
#   cmake -S . -B build-arm64 -DCMAKE_TOOLCHAIN_FILE=cmake/toolchain-arm64.cmake \
#         -DCMAKE_SYSROOT=/path/to/arm64/sysroot
#
# (or CMDGATE_SYSROOT in the environment instead of -DCMAKE_SYSROOT).
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR ${CMDGATE_CROSS_PROCESSOR})
set(CMAKE_LIBRARY_ARCHITECTURE ${CMDGATE_CROSS_TRIPLET})
set(CMAKE_C_COMPILER ${CMDGATE_CROSS_TRIPLET}-gcc)

if(NOT CMAKE_SYSROOT AND DEFINED ENV{CMDGATE_SYSROOT})
  set(CMAKE_SYSROOT "$ENV{CMDGATE_SYSROOT}")
endif()
if(NOT CMAKE_SYSROOT)
  message(FATAL_ERROR "cross build: give the target's root with -DCMAKE_SYSROOT=DIR "
    "(or CMDGATE_SYSROOT=DIR); scripts/cross.sh makes one")
endif()

# Headers, libraries and CMake package files come from the target only;
# programs (the compiler's helpers, pkg-config) from the build machine.
set(CMAKE_FIND_ROOT_PATH ${CMAKE_SYSROOT})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# pkg-config must read the target's .pc files, never the build machine's:
# otherwise CMake silently links the host's libraries.
set(ENV{PKG_CONFIG_LIBDIR}
  "${CMAKE_SYSROOT}/usr/lib/${CMDGATE_CROSS_TRIPLET}/pkgconfig:${CMAKE_SYSROOT}/usr/share/pkgconfig")
set(ENV{PKG_CONFIG_PATH} "")
set(ENV{PKG_CONFIG_SYSROOT_DIR} "${CMAKE_SYSROOT}")

# Test programs run under qemu-user with the target's libraries.
find_program(CMDGATE_QEMU ${CMDGATE_CROSS_QEMU})
if(CMDGATE_QEMU)
  set(CMAKE_CROSSCOMPILING_EMULATOR ${CMDGATE_QEMU} -L ${CMAKE_SYSROOT})
endif()
