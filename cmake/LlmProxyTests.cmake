# llmproxy_add_test(tst_name LIBS lib...): a QtTest executable from tst_name.cpp, run by CTest.
# A test whose source does not exist yet is skipped, so areas can land one at a time.
function(llmproxy_add_test name)
    cmake_parse_arguments(T "" "TIMEOUT" "LIBS;ENV" ${ARGN})
    set(_src ${CMAKE_CURRENT_SOURCE_DIR}/${name}.cpp)
    if(NOT EXISTS ${_src})
        return()
    endif()
    add_executable(${name} ${_src})
    target_link_libraries(${name} PRIVATE llmproxy_flags Qt6::Test ${T_LIBS})
    add_test(NAME ${name} COMMAND ${name})
    if(NOT T_TIMEOUT)
        set(T_TIMEOUT 300)
    endif()
    set_tests_properties(${name} PROPERTIES TIMEOUT ${T_TIMEOUT}
        ENVIRONMENT "QT_QPA_PLATFORM=offscreen;LLMPROXY_SOURCE_DIR=${PROJECT_SOURCE_DIR};LLMPROXY_SHARED_DIR=${PROJECT_SOURCE_DIR}/../shared;${T_ENV}")
endfunction()
