# 64-bit ARM (Debian arm64: Raspberry Pi 3/4/5 with a 64-bit OS, most
# industrial ARM gateways). See toolchain-debian-cross.cmake.
set(CMDGATE_CROSS_TRIPLET aarch64-linux-gnu)
set(CMDGATE_CROSS_PROCESSOR aarch64)
set(CMDGATE_CROSS_QEMU qemu-aarch64)
include(${CMAKE_CURRENT_LIST_DIR}/toolchain-debian-cross.cmake)
