# Cross-compiling for 64-bit Windows with Debian's mingw-w64 (gcc-mingw-w64-x86-64).
# Used by tools/build_windows.sh: cmake -DCMAKE_TOOLCHAIN_FILE=cmake/mingw-w64-x86_64.cmake
set(CMAKE_SYSTEM_NAME Windows)
set(CMAKE_SYSTEM_PROCESSOR x86_64)
set(VKI_MINGW_TRIPLE x86_64-w64-mingw32)

# The -posix variants have the C11/C++11 threading runtime; the C library does not need it, but
# the -posix gcc is the one Debian's g++-mingw-w64 pairs with, so both sides agree.
find_program(CMAKE_C_COMPILER NAMES ${VKI_MINGW_TRIPLE}-gcc-posix ${VKI_MINGW_TRIPLE}-gcc REQUIRED)
find_program(CMAKE_CXX_COMPILER NAMES ${VKI_MINGW_TRIPLE}-g++-posix ${VKI_MINGW_TRIPLE}-g++)
find_program(CMAKE_RC_COMPILER NAMES ${VKI_MINGW_TRIPLE}-windres)
set(CMAKE_AR ${VKI_MINGW_TRIPLE}-ar CACHE FILEPATH "")
set(CMAKE_RANLIB ${VKI_MINGW_TRIPLE}-ranlib CACHE FILEPATH "")

# Libraries and headers come from the mingw sysroot and from the prefix the build script fills
# (PCRE2 and cJSON cross-compiled from Debian's sources: VKI_WIN_PREFIX); host programs
# (glslangValidator, spirv-val) from the build machine.
set(CMAKE_FIND_ROOT_PATH /usr/${VKI_MINGW_TRIPLE} ${VKI_WIN_PREFIX})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# C99 printf family (%zu, %llu) from mingw's own stdio rather than the old msvcrt's.
add_compile_definitions(__USE_MINGW_ANSI_STDIO=1)
# A self-contained .exe: no libgcc or winpthread DLLs beside it.
set(CMAKE_EXE_LINKER_FLAGS_INIT "-static")
