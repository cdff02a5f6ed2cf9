# mswrt.cmake: libmswrt, the runtime an app links to run models compiled
# ahead of time (docs/embedding.md), and the install tree.
#
# Built from runtime/ and support/ only (no LLVM, no frontend, no IR),
# compiled again as position-independent code with a section per function,
# so an app linking with --gc-sections keeps only what it calls:
#   libmswrt.a   one relocatable object (cmake/mswrt_link.sh: ld -r) of what
#                the msw_ functions of include/msw.h reach, in which only
#                they stay global (objcopy), so the runtime's rt_, mem_,
#                diag_ names cannot clash with an app's;
#   libmswrt.so  the same objects, exporting msw_ symbols only (a version
#                script), soname libmswrt.so.0; installed with
#                -DMSW_INSTALL_SHARED=ON (else pkg-config links the static one).
# Install: bin/mswc, include/msw.h, lib/libmswrt.a, lib/pkgconfig/mswrt.pc,
# share/mswc/{models,examples}.
file(GLOB MSWRT_SRCS CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/runtime/*.c ${CMAKE_SOURCE_DIR}/support/*.c)
add_library(mswrt_objs OBJECT ${MSWRT_SRCS})
target_include_directories(mswrt_objs PRIVATE ${CMAKE_SOURCE_DIR} ${CMAKE_SOURCE_DIR}/include)
target_compile_options(mswrt_objs PRIVATE -ffunction-sections -fdata-sections)
set_target_properties(mswrt_objs PROPERTIES POSITION_INDEPENDENT_CODE ON)
target_link_libraries(mswrt_objs PRIVATE PkgConfig::CJSON PkgConfig::XXHASH)

find_program(MSW_LD NAMES ld REQUIRED)
find_program(MSW_OBJCOPY NAMES objcopy REQUIRED)
set(MSWRT_A ${CMAKE_BINARY_DIR}/libmswrt.a)
add_custom_command(OUTPUT ${MSWRT_A}
  COMMAND sh ${CMAKE_SOURCE_DIR}/cmake/mswrt_link.sh ${MSWRT_A} ${MSW_LD} ${MSW_OBJCOPY}
          ${CMAKE_AR} ${CMAKE_NM} $<TARGET_OBJECTS:mswrt_objs>
  DEPENDS mswrt_objs $<TARGET_OBJECTS:mswrt_objs> ${CMAKE_SOURCE_DIR}/cmake/mswrt_link.sh
  COMMAND_EXPAND_LISTS VERBATIM
  COMMENT "libmswrt.a: what the msw_ API reaches, only msw_ symbols global")
add_custom_target(mswrt_static ALL DEPENDS ${MSWRT_A})

add_library(mswrt SHARED $<TARGET_OBJECTS:mswrt_objs>)
set_target_properties(mswrt PROPERTIES VERSION ${PROJECT_VERSION} SOVERSION ${PROJECT_VERSION_MAJOR}
                      LINK_DEPENDS ${CMAKE_SOURCE_DIR}/cmake/mswrt.map)
target_link_options(mswrt PRIVATE -Wl,--version-script=${CMAKE_SOURCE_DIR}/cmake/mswrt.map -Wl,--gc-sections)
target_link_libraries(mswrt PRIVATE PkgConfig::CJSON PkgConfig::XXHASH Threads::Threads ${MATH_LIB})

# A sanitizer build's library calls the sanitizers' runtimes, so an app
# linking it through pkg-config must link them too.
set(MSWRT_EXTRA_LIBS "")
if(MSW_SANITIZE)
  set(MSWRT_EXTRA_LIBS "-fsanitize=address,undefined")
endif()
configure_file(${CMAKE_SOURCE_DIR}/cmake/mswrt.pc.in ${CMAKE_BINARY_DIR}/mswrt.pc @ONLY)
option(MSW_INSTALL_SHARED "Install libmswrt.so too (pkg-config then links it)" OFF)
install(TARGETS mswc RUNTIME DESTINATION bin)
install(FILES ${CMAKE_SOURCE_DIR}/include/msw.h DESTINATION include)
install(FILES ${MSWRT_A} DESTINATION lib)
if(MSW_INSTALL_SHARED)
  install(TARGETS mswrt LIBRARY DESTINATION lib)
endif()
install(FILES ${CMAKE_BINARY_DIR}/mswrt.pc DESTINATION lib/pkgconfig)
install(DIRECTORY ${CMAKE_SOURCE_DIR}/models/ DESTINATION share/mswc/models)
install(DIRECTORY ${CMAKE_SOURCE_DIR}/examples/ DESTINATION share/mswc/examples)
