# Writes OUT: `#define VKI_GIT_COMMIT "<short hash>"` of the source tree SRC ("unknown" without
# git or outside a checkout), rewriting it only when the hash changed so that an unchanged
# commit rebuilds nothing. Run at every build by the vki_git_commit target (apps/CMakeLists.txt).
set(commit "unknown")
find_package(Git QUIET)
if(GIT_FOUND)
  execute_process(COMMAND ${GIT_EXECUTABLE} rev-parse --short HEAD
                  WORKING_DIRECTORY ${SRC} OUTPUT_VARIABLE out RESULT_VARIABLE rc
                  OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
  if(rc EQUAL 0 AND out MATCHES "^[0-9a-f]+$")
    set(commit "${out}")
  endif()
endif()
set(text "#define VKI_GIT_COMMIT \"${commit}\"\n")
set(old "")
if(EXISTS ${OUT})
  file(READ ${OUT} old)
endif()
if(NOT old STREQUAL text)
  file(WRITE ${OUT} "${text}")
endif()
