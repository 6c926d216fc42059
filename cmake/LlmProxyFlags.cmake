# One INTERFACE target carries every warning flag, Qt define and sanitizer option.
add_library(llmproxy_flags INTERFACE)
target_compile_options(llmproxy_flags INTERFACE
    -Wall -Wextra -Wpedantic -Wshadow -Wold-style-cast -Woverloaded-virtual -Wnon-virtual-dtor)
if(LLMPROXY_WERROR)
    target_compile_options(llmproxy_flags INTERFACE -Werror)
endif()
target_compile_definitions(llmproxy_flags INTERFACE
    QT_NO_CAST_FROM_ASCII QT_NO_CAST_TO_ASCII QT_NO_URL_CAST_FROM_STRING
    QT_USE_QSTRINGBUILDER QT_NO_FOREACH
    LLMPROXY_VERSION="${PROJECT_VERSION}")
if(LLMPROXY_SANITIZE)
    target_compile_options(llmproxy_flags INTERFACE
        -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
    target_link_options(llmproxy_flags INTERFACE -fsanitize=address,undefined)
endif()
if(LLMPROXY_FUZZ)
    # The libraries get libFuzzer's coverage hooks without its main(); tests/fuzz links it.
    target_compile_options(llmproxy_flags INTERFACE
        -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer
        -fno-sanitize-recover=undefined)
    target_link_options(llmproxy_flags INTERFACE -fsanitize=address,undefined)
endif()
