# 32-bit ARM with hardware floating point (Debian armhf: ARMv7, Raspberry Pi
# OS 32-bit, older gateways). See toolchain-debian-cross.cmake.
set(CMDGATE_CROSS_TRIPLET arm-linux-gnueabihf)
set(CMDGATE_CROSS_PROCESSOR arm)
set(CMDGATE_CROSS_QEMU qemu-arm)
include(${CMAKE_CURRENT_LIST_DIR}/toolchain-debian-cross.cmake)
